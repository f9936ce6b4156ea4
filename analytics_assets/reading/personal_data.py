"""Personal data kept out of the warehouse, field by field: which fields are hashed and which never load.

- `ANALYTICS_HASHED_FIELDS`: `<dataset>.<table>.<field>`, comma-separated, the field as the API's record
  names it, dots for nesting (`audience.peoples.email`, `feedback.identified_peoples.attributes.email`).
  Each value is replaced by its keyed hash (`field_rules.Hasher`) with the secret `ANALYTICS_HASH_KEY`.
- `ANALYTICS_EXCLUDED_FIELDS`: the same form; the field is dropped from every record before dlt sees it.

Read when a run starts (like `ANALYTICS_HISTORY`, never at import), from the environment only: the key is
a secret, and none of this module's messages, metadata or reprs ever holds it. A name the catalog does not
know (`reading/<api>/columns.py`, or any name inside a JSON column) fails the run before any request,
naming the setting and the entry: a typo must not load the field it meant to keep out.

Plain dlt, no Dagster import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dlt

from analytics_assets.reading.apis import APIS, Api
from analytics_assets.reading.field_rules import FORM_STATE, FieldRules, Hasher, Path
from analytics_assets.reading.naming import configured_naming, field_column

HASHED_SETTING = "ANALYTICS_HASHED_FIELDS"
EXCLUDED_SETTING = "ANALYTICS_EXCLUDED_FIELDS"
KEY_SETTING = "ANALYTICS_HASH_KEY"
MIN_KEY_LENGTH = 16
"""A shorter key could be guessed by trying keys against a hash of a known address."""
HASHED_NOTE = (
    f"Hashed ({HASHED_SETTING}): the hex HMAC-SHA256 of the value under {KEY_SETTING}; the same value has"
    " the same hash in every table."
)


class PersonalDataSettingError(ValueError):
    """`ANALYTICS_HASHED_FIELDS` or `ANALYTICS_EXCLUDED_FIELDS` names a field that cannot be hashed or
    excluded, or fields are hashed without `ANALYTICS_HASH_KEY`."""


class PersonalDataSwitchError(RuntimeError):
    """A key field's form changed (newly hashed, no longer hashed, another key) without a refresh: the
    merge would keep every row twice, once under each form of its key."""


def _fields(api: Api, table: str) -> set[str]:
    """The documented fields of a table, with each object on the way to a nested one (`meta` for
    `meta.country`)."""
    names: set[str] = set()
    for documented in api.columns.get(table, {}):
        parts = documented.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def _check_entry(setting: str, entry: str, excluded: bool) -> tuple[str, str, Path]:
    """(dataset, table, path) of one entry, or the reason it cannot be."""

    def refuse(reason: str) -> PersonalDataSettingError:
        return PersonalDataSettingError(f"{setting} lists {entry}, {reason}")

    parts = entry.split(".")
    if len(parts) < 3 or not all(parts):
        raise refuse("which is not <dataset>.<table>.<field> (e.g. audience.peoples.email).")
    dataset, table, path = parts[0], parts[1], tuple(parts[2:])
    apis = {api.name: api for api in APIS}
    api = apis.get(dataset)
    if api is None:
        raise refuse(f"but this code location loads no dataset {dataset}: one of {', '.join(apis)}.")
    endpoint = api.catalog.get(table)
    if endpoint is None:
        raise refuse(f"but {dataset} has no table {table}: one of {', '.join(sorted(api.catalog))}.")
    name = ".".join(path)
    if name in api.loader_fields.get(table, {}):
        raise refuse(
            f"but {name} is not a field of the API's records: the loader adds it"
            f" ({api.loader_fields[table][name]}), and it links the tables."
        )
    if name not in _fields(api, table) and path[0] not in endpoint.json_columns:
        known = sorted(_fields(api, table))
        inside = [f"{c}.<name>" for c in endpoint.json_columns]
        raise refuse(
            f"but the catalog knows no field {name} in {dataset}.{table} (fields as the API names them,"
            f" dots for nesting): one of {', '.join(known + inside)}."
        )
    if name == endpoint.cursor:
        raise refuse(f"but {name} is the sync's cursor: the loader needs it as the API serves it.")
    children = [e.resource for e in api.catalog.values() if e.parent == table and e.parent_field == name]
    if children:
        raise refuse(f"but the requests of {', '.join(children)} are made with each {table} record's {name}.")
    if excluded and _is_key(name, endpoint.primary_key):
        raise refuse(
            f"but {name} is the primary key of {dataset}.{table} (rows without it cannot be merged):"
            f" list it in {HASHED_SETTING} instead."
        )
    return dataset, table, path


def _is_key(name: str, key_columns: tuple[str, ...]) -> bool:
    # The catalog names a key as its warehouse columns (`account_id`), the settings as the API (`accountId`).
    return configured_naming().normalize_identifier(name) in key_columns


def _entries(setting: str) -> list[str]:
    return [e.strip() for e in os.environ.get(setting, "").split(",") if e.strip()]


@dataclass(frozen=True)
class PersonalData:
    """The fields to hash and to exclude, by `<dataset>.<table>`, and the hasher of the key.

    Attributes:
        hashed: The hashed fields of each table (`{"audience.peoples": (("email",),)}`).
        excluded: The excluded fields of each table.
        hasher: Hashes with `ANALYTICS_HASH_KEY` (None when no field is hashed). Never shown.
    """

    hashed: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    excluded: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    hasher: Hasher | None = field(default=None, repr=False)

    def rules(self, dataset: str, table: str) -> FieldRules:
        """What to do to the records of one table (empty rules: nothing)."""
        name = f"{dataset}.{table}"
        return FieldRules(self.hashed.get(name, ()), self.excluded.get(name, ()), self.hasher)

    def for_api(self, api: Api) -> dict[str, FieldRules]:
        """The rules of every table of an API, for its source (`field_rules=`)."""
        return {table: self.rules(api.name, table) for table in api.catalog}

    def is_hashed(self, dataset: str, table: str, name: str) -> bool:
        """Whether the field `name` (dots for nesting) of `<dataset>.<table>` is hashed."""
        return tuple(name.split(".")) in self.hashed.get(f"{dataset}.{table}", ())

    def excluded_columns(self, dataset: str, table: str) -> set[str]:
        """The columns of `<dataset>.<table>` that excluded fields would have made (`first_name`)."""
        naming = configured_naming()
        return {field_column(path, naming) for path in self.excluded.get(f"{dataset}.{table}", ())}

    def describe(self, dataset: str, table: str, descriptions: Mapping[str, str]) -> dict[str, str]:
        """The column descriptions of a table (`reading/<api>/columns.py`) as loaded: a hashed column says
        so, a JSON column names what is hashed inside it, and an excluded field is not described."""
        rules = self.rules(dataset, table)
        excluded = {".".join(p) for p in rules.excluded}
        result = {name: text for name, text in descriptions.items() if name not in excluded}
        for path in rules.hashed:
            name = ".".join(path)
            if name in result:
                result[name] = f"{result[name]} {HASHED_NOTE}"
            elif path[0] in result:  # inside a JSON column
                result[path[0]] = (
                    f"{result[path[0]]} Its `{'.'.join(path[1:])}` is hashed ({HASHED_SETTING})."
                )
        return result


def personal_data(require_key: bool = True) -> PersonalData:
    """The settings, checked against the catalog.

    Args:
        require_key: Fail when fields are hashed and `ANALYTICS_HASH_KEY` is unset (a run); False for
            what only asks which fields are hashed (a check).

    Raises:
        PersonalDataSettingError: An entry the catalog does not know or that cannot be hashed or
            excluded, a field in both settings, or hashed fields without a key (or with a short one).
    """
    hashed: dict[str, list[Path]] = {}
    excluded: dict[str, list[Path]] = {}
    for setting, into in ((HASHED_SETTING, hashed), (EXCLUDED_SETTING, excluded)):
        for entry in _entries(setting):
            dataset, table, path = _check_entry(setting, entry, excluded=into is excluded)
            paths = into.setdefault(f"{dataset}.{table}", [])
            if path not in paths:
                paths.append(path)
    both = sorted(
        f"{t}.{'.'.join(p)}" for t, paths in hashed.items() for p in paths if p in excluded.get(t, [])
    )
    if both:
        raise PersonalDataSettingError(
            f"{HASHED_SETTING} and {EXCLUDED_SETTING} both list {', '.join(both)}: a field is hashed or"
            " excluded, not both."
        )
    hasher = None
    if hashed:
        key = os.environ.get(KEY_SETTING, "")
        if require_key and not key.strip():
            raise PersonalDataSettingError(
                f"{HASHED_SETTING} lists fields to hash, but {KEY_SETTING} is not set: set it to a secret of at"
                f" least {MIN_KEY_LENGTH} random characters (e.g. `openssl rand -hex 32`), the same for every"
                " run, or nothing is loaded."
            )
        if require_key and len(key) < MIN_KEY_LENGTH:
            raise PersonalDataSettingError(
                f"{KEY_SETTING} is shorter than {MIN_KEY_LENGTH} characters: anyone holding a hash of a known"
                " address could find it by trying keys. Use a long random one (e.g. `openssl rand -hex 32`)."
            )
        hasher = Hasher(key) if key else None
    return PersonalData(
        {t: tuple(p) for t, p in hashed.items()}, {t: tuple(p) for t, p in excluded.items()}, hasher
    )


# -- a change of the settings between loads ----------------------------------------------------------


def stored_form(pipeline: dlt.Pipeline, table: str) -> dict[str, Any] | None:
    """The form the last load of `table` wrote its fields in (`FieldRules.form`), from the pipeline's
    state as restored from the warehouse; the form without rules for a table loaded before this was
    recorded; None for a table not loaded yet."""
    sources = pipeline.state.get("sources") or {}
    resource = ((sources.get(pipeline.pipeline_name) or {}).get("resources") or {}).get(table) or {}
    form = resource.get(FORM_STATE)
    if form is not None:
        return dict(form)
    if pipeline.default_schema_name is None:
        return None
    schema = pipeline.default_schema
    columns = (schema.tables.get(schema.naming.normalize_table_identifier(table)) or {}).get("columns") or {}
    return FieldRules().form() if "_dlt_id" in columns else None


def refresh_job(dataset: str) -> str:
    """The job that drops an API's tables and loads them again (`watching/schedules.py`)."""
    return f"{dataset}_full_refresh"


def form_change(
    dataset: str, table: str, stored: Mapping[str, Any] | None, rules: FieldRules, key: tuple[str, ...]
) -> str | None:
    """What changed since the last load of a table in how its fields are written, as a clause for the
    run's warning, or None.

    Raises:
        PersonalDataSwitchError: The change touches the primary key `key` (warehouse columns).
    """
    if stored is None:
        return None
    now = rules.form()
    before_hashed, now_hashed = set(stored.get("hashed") or []), set(now["hashed"])
    rehashed = sorted(before_hashed & now_hashed) if stored.get("key") != now["key"] else []
    changes = {
        "now hashed": sorted(now_hashed - before_hashed),
        "no longer hashed": sorted(before_hashed - now_hashed),
        f"hashed with another {KEY_SETTING}": rehashed,
        "now excluded": sorted(set(now["excluded"]) - set(stored.get("excluded") or [])),
        "no longer excluded (loaded again from this run on)": sorted(
            set(stored.get("excluded") or []) - set(now["excluded"])
        ),
    }
    said = [f"{', '.join(names)} {what}" for what, names in changes.items() if names]
    if not said:
        return None
    touched = sorted(
        {n for what, names in changes.items() if "hashed" in what for n in names if _is_key(n, key)}
    )
    if touched:
        raise PersonalDataSwitchError(
            f"{dataset}.{table}: its key {', '.join(touched)} is written in another form than at its last load"
            f" ({'; '.join(said)}), so every row would load again beside the one under the old key. Run the job"
            f" {refresh_job(dataset)}"
            f" (or {dataset}/{table} with the run config `refresh: true`) to reload it in the new form, or set"
            f" {HASHED_SETTING} and {KEY_SETTING} back."
        )
    return f"{dataset}.{table} ({'; '.join(said)})"


def change_warning(changes: Mapping[str, list[str]]) -> str:
    """The run's one warning about tables whose fields are written differently from this run on.

    Args:
        changes: The clauses of `form_change`, by dataset.
    """
    tables = "; ".join(c for clauses in changes.values() for c in clauses)
    jobs = " / ".join(refresh_job(dataset) for dataset in changes)
    return (
        f"The personal data settings ({HASHED_SETTING}, {EXCLUDED_SETTING}, {KEY_SETTING}) changed since"
        f" the last load of {tables}. Rows loaded before keep their old form (raw or differently hashed"
        f" values, excluded fields still filled, closed history versions too) until a refresh rewrites"
        f" them: run the job {jobs} (or the run config `refresh: true`)."
    )
