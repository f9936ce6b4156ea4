"""Checks that query a loaded table: emptiness, primary keys, seed columns, references, shares.

Each statement is written once, in DuckDB's SQL, and sent in the destination's (`CheckContext.rows`,
`reading.statements`); what tables and columns exist, and their types, come from dlt's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import AssetCheckSeverity

from analytics_assets.loading.tags import UNAVAILABLE
from analytics_assets.reading.history import HISTORY_SETTING, current_view
from analytics_assets.reading.naming import VALID_FROM, VALID_TO
from analytics_assets.reading.personal_data import EXCLUDED_SETTING, personal_data
from analytics_assets.watching.checks.core import (
    SAMPLE_SIZE,
    Check,
    CheckContext,
    Outcome,
    metadata_value,
)

TEXT, TIMESTAMP, NUMERIC, BOOLEAN, JSON = "text", "timestamp", "numeric", "boolean", "json"

_FAMILIES = (  # substrings of a dlt data type (or a warehouse's type name), first match wins
    (TIMESTAMP, ("timestamp", "date", "time")),
    (NUMERIC, ("int", "numeric", "decimal", "double", "real", "float", "number")),
    (BOOLEAN, ("bool",)),
    (JSON, ("json",)),
    (TEXT, ("char", "text", "string")),
)


def type_family(data_type: str) -> str:
    """The family of a column's dlt data type: `text`, `timestamp`, `numeric`, `boolean`, `json`."""
    lowered = data_type.lower()
    return next((family for family, names in _FAMILIES if any(n in lowered for n in names)), lowered)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _missing_table(context: CheckContext) -> Outcome:
    return Outcome(
        False,
        f"Table {context.dataset}.{context.table} does not exist: the asset was never loaded into this"
        " warehouse. Materialize it.",
        {"table": f"{context.dataset}.{context.table}"},
    )


def available_on_plan() -> Check:
    """The API's plan offers the endpoint: a WARN, not an outage, when the plan does not (403 on a
    successor path that needs a licence). The other checks of the asset stand aside meanwhile."""

    def evaluate(context: CheckContext) -> Outcome:
        why = metadata_value(context.materialized_now(), UNAVAILABLE)
        if why:
            return Outcome(False, str(why), {"unavailable": str(why)})
        return Outcome(True, "the endpoint served this run")

    return Check(
        "available_on_plan",
        "The API's plan offers this endpoint. Warns (and pages nobody) when the server answers 403 for it:"
        " upgrade the plan, or leave it; the other tables load either way.",
        evaluate,
        severity=AssetCheckSeverity.WARN,
    )


def not_empty() -> Check:
    """The endpoint served records and the table has rows: for endpoints that always have data."""

    def evaluate(context: CheckContext) -> Outcome:
        if not context.exists():
            return _missing_table(context)
        rows = context.count()
        # The loader records how many keys the API served when it read the whole list; when that was
        # none it keeps the previous rows, so the table alone would not show the empty answer.
        served = metadata_value(context.materialized_now(), "keys_served")
        if rows == 0 or served == 0:
            table = f"{context.dataset}.{context.table}"
            what = (
                f"{table} is empty"
                if rows == 0
                else f"The API served no {context.table} this run ({table} keeps {rows} rows from before)"
            )
            return Outcome(
                False,
                f"{what}, but the API always has {context.table}. Check the API key's permissions and the"
                " endpoint (a changed path or data selector loads nothing).",
                {"row_count": rows, **({"keys_served": served} if served is not None else {})},
            )
        return Outcome(True, f"{rows} rows", {"row_count": rows})

    return Check(
        name="not_empty",
        description=(
            "The endpoint served records and the table has rows. Fails when an endpoint that always has"
            " data answered with nothing (the loader then keeps the previous rows) or the table is empty."
        ),
        evaluate=evaluate,
    )


def _key_columns(context: CheckContext, key: Sequence[str]) -> str:
    return ", ".join(context.column(k) for k in key)


def _key_value(row: Sequence[Any]) -> Any:
    return row[0] if len(row) == 1 else list(row)


def _served_twice(context: CheckContext) -> tuple[int, list[Any]]:
    """Keys the API served more than once in this run's load, as the loader counted them.

    The loader sees every record the API serves, before dlt's cursor drops unchanged ones, so a key
    served twice counts even when neither record was written (the table cannot show it, and dlt's
    own staging tables only hold what was written). Nothing when this run did not load the asset.
    """
    materialization = context.materialized_now()
    count = metadata_value(materialization, "keys_served_twice")
    sample = metadata_value(materialization, "keys_served_twice_sample")
    return int(count or 0), list(sample or [])[:SAMPLE_SIZE]


def primary_key_unique(key: Sequence[str]) -> Check:
    """No two rows share the primary key; also reports keys the API served twice in one load."""
    shown = ", ".join(key)

    def evaluate(context: CheckContext) -> Outcome:
        if not context.exists():
            return _missing_table(context)
        table, columns = context.qualified(), _key_columns(context, key)
        repeated = f"select {columns}, count(*) as n from {table} group by {columns} having count(*) > 1"
        extra = int(context.scalar(f"select coalesce(sum(n - 1), 0) from ({repeated}) d") or 0)
        if extra:
            sample = context.rows(f"{repeated} order by n desc limit {SAMPLE_SIZE}")
            return Outcome(
                False,
                f"{_rows(extra)} of {context.dataset}.{context.table} {'repeats' if extra == 1 else 'repeat'} a ({shown}) already in the table:"
                " joins on it double count. Find what wrote them (a load with another write disposition,"
                " a manual insert) and run a refresh of the asset.",
                {"duplicate_rows": extra, "duplicate_keys": [_key_value(r[:-1]) for r in sample]},
            )
        served_twice, sample_served = _served_twice(context)
        if served_twice:
            return Outcome(
                False,
                f"The API served {served_twice} {context.table} {'record' if served_twice == 1 else 'records'}"
                f" under a ({shown}) it had already served in this load (offset paging over data that"
                " changed during the sync, or two records sharing one key). The merge kept one row per key,"
                " so the table has no duplicate, but a record may have shifted past a page boundary unseen"
                " (the next sync picks it up) or one of two records under one key is not in the warehouse."
                " Look the keys listed up in the API; if it repeats every night, sync when the API is quiet.",
                {"duplicates_served": served_twice, "duplicate_keys_served": sample_served},
                severity=AssetCheckSeverity.WARN,
            )
        return Outcome(True, f"({shown}) is unique", {"duplicate_rows": 0})

    return Check(
        name="primary_key_unique",
        description=(
            f"No two rows share ({shown}) (ERROR). Also warns (WARN) when the API served a key twice in the"
            " run's load (counted by the loader, even when neither record was written), which the merge"
            " absorbed: a sign of records shifting between pages, or of two records under one key."
        ),
        evaluate=evaluate,
    )


def primary_key_not_null(key: Sequence[str]) -> Check:
    """Every key column is set and not blank."""
    shown = ", ".join(key)

    def evaluate(context: CheckContext) -> Outcome:
        if not context.exists():
            return _missing_table(context)
        table = context.qualified()
        blank = " or ".join(
            f"{context.column(k)} is null or trim(cast({context.column(k)} as varchar)) = ''" for k in key
        )
        bad = int(context.scalar(f"select count(*) from {table} where {blank}"))
        if bad:
            dlt_id = context.column("_dlt_id")
            sample = context.rows(f"select {dlt_id} from {table} where {blank} limit {SAMPLE_SIZE}")
            return Outcome(
                False,
                f"{_rows(bad)} of {context.dataset}.{context.table} {'has' if bad == 1 else 'have'} no ({shown}): the API sent records"
                " without an identity. They cannot be merged or joined; report them to the API owner"
                " (sample rows by `_dlt_id`).",
                {"rows_without_key": bad, "sample_dlt_ids": [r[0] for r in sample]},
            )
        return Outcome(True, f"every row has a ({shown})", {"rows_without_key": 0})

    return Check(
        name="primary_key_not_null",
        description=(
            f"Every row has a non-blank ({shown}). (A record without the key field at all stops the load at"
            " dlt's normalize step: the run fails and alerts instead.)"
        ),
        evaluate=evaluate,
    )


def seed_columns(seed: Mapping[str, str]) -> Check:
    """The columns the seed schema names exist with a compatible type (`TEXT`, `NUMERIC`, ...), but
    those of fields kept out of the warehouse (`ANALYTICS_EXCLUDED_FIELDS`, read when it runs)."""
    shown = ", ".join(f"{name} ({family})" for name, family in seed.items())

    def evaluate(context: CheckContext) -> Outcome:
        actual = context.columns()
        if not actual:
            return _missing_table(context)
        excluded = personal_data(require_key=False).excluded_columns(context.dataset, context.table)
        expected = {name: family for name, family in seed.items() if name not in excluded}
        missing = [name for name in expected if name not in actual]
        wrong = {
            name: f"{actual[name]} (expected {family})"
            for name, family in expected.items()
            if name in actual and type_family(actual[name]) != family
        }
        if missing or wrong:
            return Outcome(
                False,
                f"{context.dataset}.{context.table} does not match its seed schema: missing {missing or 'none'},"
                f" incompatible {sorted(wrong) or 'none'}. Downstream models rely on these columns: check"
                " what the API sends now (a renamed field, a number sent as text).",
                {"missing_columns": missing, "incompatible_columns": wrong},
            )
        return Outcome(
            True,
            "seed columns present with compatible types",
            {
                "columns_checked": list(expected),
                **({"columns_excluded": sorted(excluded & set(seed))} if excluded & set(seed) else {}),
            },
        )

    return Check(
        name="seed_columns",
        description=(
            f"The seed schema's columns exist with compatible types: {shown}; but those of fields kept out of"
            f" the warehouse ({EXCLUDED_SETTING})."
        ),
        evaluate=evaluate,
    )


def references(column: str, parent: str, parent_column: str) -> Check:
    """Every non-null `column` value exists as `parent.parent_column` in the same dataset."""

    def evaluate(context: CheckContext) -> Outcome:
        if not context.exists():
            return _missing_table(context)
        if not context.exists(parent):
            return Outcome(
                False,
                f"{context.dataset}.{parent} does not exist, so no {column} of {context.table} can be"
                f" resolved: materialize {context.asset_key.path[0]}/{parent}.",
                {"parent_table": f"{context.dataset}.{parent}"},
            )
        child, ref = context.column(column), context.column(parent_column)
        orphans = (
            f"from {context.qualified()} c where c.{child} is not null and not exists"
            f" (select 1 from {context.qualified(parent)} p where p.{ref} = c.{child})"
        )
        rows = int(context.scalar(f"select count(*) {orphans}"))
        if rows:
            sample = context.rows(
                f"select c.{child}, count(*) as n {orphans} group by c.{child} order by n desc limit {SAMPLE_SIZE}"
            )
            return Outcome(
                False,
                f"{_rows(rows)} of {context.dataset}.{context.table} {'points' if rows == 1 else 'point'} to a {column} that is not in"
                f" {context.dataset}.{parent}: joins drop them. Either {parent} changed between the two loads"
                f" (materialize {context.asset_key.path[0]}/{parent}, then {context.table}), or the API serves"
                f" {context.table} of {parent} it no longer lists (ask the API owner).",
                {"orphan_rows": rows, f"missing_{column}s": [r[0] for r in sample]},
            )
        return Outcome(True, f"every {column} exists in {parent}", {"orphan_rows": 0})

    return Check(
        name=f"{column}s_exist",
        description=f"Every `{column}` of the table exists as `{parent}.{parent_column}` (referential integrity).",
        evaluate=evaluate,
        uses=(parent,),
    )


def share_at_least(
    name: str,
    description: str,
    column: str,
    is_valid: Callable[[str], str],
    min_share: float,
    key: str = "id",
) -> Check:
    """At least `min_share` of the non-null values of a column are valid (WARN: a plausibility check).

    Args:
        name: The check name.
        description: What it catches and what to do (the UI text).
        column: The column to look at.
        is_valid: SQL predicate for a valid value, given the quoted column.
        min_share: The least share of valid values that passes.
        key: The column that identifies an offending row in the metadata.
    """

    def evaluate(context: CheckContext) -> Outcome:
        columns = context.columns()
        if not columns:
            return _missing_table(context)
        if column not in columns:
            return Outcome(True, f"no {column} column to look at (seed_columns reports a missing one)")
        quoted = context.column(column)
        invalid = f"from {context.qualified()} where {quoted} is not null and not ({is_valid(quoted)})"
        total = int(context.scalar(f"select count({quoted}) from {context.qualified()}"))
        bad = int(context.scalar(f"select count(*) {invalid}"))
        share = (total - bad) / total if total else 1.0
        metadata: dict[str, Any] = {
            "valid_share": round(share, 4),
            "invalid_rows": bad,
            "checked_rows": total,
        }
        if share < min_share:
            sample = context.rows(f"select {context.column(key)} {invalid} limit {SAMPLE_SIZE}")
            metadata[f"invalid_{key}s"] = [r[0] for r in sample]
            return Outcome(
                False,
                f"Only {share:.1%} of {context.table}.{column} look valid (expected at least {min_share:.0%}).",
                metadata,
            )
        return Outcome(True, f"{share:.1%} of {column} values look valid", metadata)

    return Check(name=name, description=description, evaluate=evaluate, severity=AssetCheckSeverity.WARN)


def one_active_version(key: Sequence[str]) -> Check:
    """A history table (`ANALYTICS_HISTORY`) has at most one active version per key, and no version
    closes before it opens."""
    shown = ", ".join(key)

    def evaluate(context: CheckContext) -> Outcome:
        if not context.exists():
            return _missing_table(context)
        table, columns = context.base_table(), _key_columns(context, key)
        valid_from, valid_to = context.column(VALID_FROM), context.column(VALID_TO)
        if VALID_TO not in context.columns():
            return Outcome(
                False,
                f"{context.dataset}.{context.table} has no {VALID_TO}: it is listed in {HISTORY_SETTING} but"
                " was loaded as a mirror. Materialize it (a load adds the validity columns).",
            )
        doubled = (
            f"select {columns}, count(*) as n from {table} where {valid_to} is null"
            f" group by {columns} having count(*) > 1"
        )
        extra = int(context.scalar(f"select count(*) from ({doubled}) d") or 0)
        backwards = int(context.scalar(f"select count(*) from {table} where {valid_to} < {valid_from}") or 0)
        versions = int(context.scalar(f"select count(*) from {table}") or 0)
        metadata = {"keys_with_two_active_versions": extra, "versions_closed_before_opened": backwards}
        if extra or backwards:
            sample = context.rows(f"{doubled} order by n desc limit {SAMPLE_SIZE}")
            return Outcome(
                False,
                f"{extra} ({shown}) of {context.dataset}.{context.table} have two or more active versions"
                f" ({VALID_TO} null), {backwards} versions close before they open: the current view"
                f" {current_view(context.table)} double counts them. A key served twice with different"
                " content in one sync does this; run a refresh of the asset (it drops the history).",
                {**metadata, "keys": [_key_value(r[:-1]) for r in sample]},
            )
        return Outcome(True, f"one active version per ({shown}), {versions} versions", metadata)

    return Check(
        name="one_active_version",
        description=(
            f"History mode: no ({shown}) has two active versions (`{VALID_TO}` null), and no version closes"
            " before it opens. The other checks judge the active versions (the current view)."
        ),
        evaluate=evaluate,
    )
