"""History mode: tables that keep every version of a record (dlt's `scd2` merge), opt-in per table.

`ANALYTICS_HISTORY` lists the tables, as `<dataset>.<table>` (`audience.peoples,feedback.responses`).
It is read when called: when the definitions load and when a run starts, never at import; this module
is the one place that reads it. Unlike the `warehouse` resource's settings it is not a Dagster resource:
it shapes the definitions themselves (a history table's `one_active_version` check, its description),
and Dagster builds those before any resource is resolved.

How a history table stays equal to the API (see the README's "History mode"):

- dlt's `scd2` merge versions only the records in the load: its `destination_scope` limits what a load
  may retire to the active versions whose key is in the load. dlt's default treats a load as the whole
  list and retires every active version absent from it, which would close the people the cursor skipped
  as unchanged and the responses older than the nightly window.
- An updated record closes its active version (`_dlt_valid_to` = the sync's time) and opens a new one; a
  record read again unchanged has the same row hash and adds nothing.
- Records the API no longer serves are closed by the sweep (`sweep.py`), with its guards (a whole-list
  read whose end was seen, a non-empty answer), instead of deleted.
- `<table>_current` is a view of the active versions: exactly the mirror's rows. One underscore, not
  dlt's two: `<table>__<field>` is where dlt puts a nested list.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltSource

from analytics_assets.reading.apis import APIS
from analytics_assets.reading.naming import (
    VALID_FROM,
    VALID_TO,
    extract_naming,
    key_fields,
    pipeline_naming,
    stored_history,
)
from analytics_assets.reading.statements import Target, destination_column

HISTORY_SETTING = "ANALYTICS_HISTORY"
CURRENT_SUFFIX = "_current"


class HistorySettingError(ValueError):
    """`ANALYTICS_HISTORY` names a table this code location does not load."""


class HistorySwitchError(RuntimeError):
    """A table that keeps history in the warehouse was taken out of `ANALYTICS_HISTORY` without a refresh."""


def known_tables() -> list[str]:
    """Every table the code location loads, as `<dataset>.<table>`."""
    return sorted(f"{api.name}.{name}" for api in APIS for name in api.catalog)


def history_tables() -> frozenset[str]:
    """The tables kept with history, from `ANALYTICS_HISTORY` (empty: every table is a mirror).

    Raises:
        HistorySettingError: A name is not `<dataset>.<table>` of a table this code location loads.
    """
    raw = os.environ.get(HISTORY_SETTING, "")
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if not names:
        return frozenset()
    known = known_tables()
    unknown = sorted(names - set(known))
    if unknown:
        raise HistorySettingError(
            f"{HISTORY_SETTING} lists {', '.join(unknown)}, which this code location does not load. List tables"
            f" as <dataset>.<table>, comma-separated, from: {', '.join(known)} (or leave it empty: no history)."
        )
    return frozenset(names)


def keeps_history(dataset: str, table: str) -> bool:
    """Whether `ANALYTICS_HISTORY` lists `<dataset>.<table>`."""
    return f"{dataset}.{table}" in history_tables()


def current_view(table: str) -> str:
    """The name of the view of the active versions of a history table."""
    return f"{table}{CURRENT_SUFFIX}"


def scd2_disposition(
    key_columns: Sequence[str], synced_at: datetime | None = None, capabilities: Any = None
) -> dict[str, Any]:
    """dlt's write disposition for a history table whose records are identified by `key_columns`.

    Args:
        key_columns: The primary key, as warehouse columns.
        synced_at: The sync's time: closes replaced versions and opens new ones (dlt's
            `boundary_timestamp`); None: the load package's creation time.
        capabilities: The destination's dlt capabilities: dlt pastes the scope into its SQL as it is,
            so its columns are quoted as the destination quotes them (MySQL: backticks). None: DuckDB's.
    """
    # A correlated EXISTS rather than dlt's `merge_key`: a composite merge key compiles to
    # CONCAT(segment_id, id), which cannot tell (1, "23") from (12, "3").
    # dlt leaves the updated table unaliased, so its qualified name `{table}` prefixes its columns.
    quoted = [
        destination_column(c, capabilities) if capabilities is not None else f'"{c}"' for c in key_columns
    ]
    match = " and ".join(f"k.{c} = {{table}}.{c}" for c in quoted)
    disposition: dict[str, Any] = {
        "disposition": "merge",
        "strategy": "scd2",
        "validity_column_names": [VALID_FROM, VALID_TO],
        "destination_scope": f"exists (select 1 from {{staging_table}} k where {match})",
    }
    if synced_at is not None:
        disposition["boundary_timestamp"] = synced_at
    return disposition


def first_of_each_key(key_columns: Sequence[str]) -> Callable[[Any], bool]:
    """A dlt filter keeping the first record of each key in one run.

    A mirror's merge keeps one row per key when the API serves a key twice (offset paging over data that
    changes, see `ServedKeys.repeats`); dlt's `scd2` does not deduplicate, and two records of one key with
    different contents would open two active versions. The loader still counts the repeat (its step runs
    first). Items that are not records (an Arrow table) pass: `one_active_version` catches a repeat there.
    """
    seen: set[int] = set()
    fields: list[str] = []
    lock = threading.Lock()

    def keep(record: Any) -> bool:
        if not isinstance(record, dict):
            return True
        if not fields:
            fields.extend(key_fields(record, key_columns, extract_naming()))
        key = hash(tuple(str(record.get(f)) for f in fields))
        with lock:  # parallelized resources: records may come from several threads
            if key in seen:
                return False
            seen.add(key)
        return True

    return keep


def apply_history(
    source: DltSource,
    dataset: str,
    primary_keys: Mapping[str, Sequence[str]],
    synced_at: datetime | None = None,
    capabilities: Any = None,
) -> DltSource:
    """Switch the resources of `source` that `ANALYTICS_HISTORY` lists to history (in place).

    Args:
        source: An API's source, as built for a run.
        dataset: The API's dataset.
        primary_keys: Each resource's primary key (warehouse columns).
        synced_at: The sync's time (see `scd2_disposition`).
        capabilities: The destination's dlt capabilities (see `scd2_disposition`).
    """
    tables = history_tables()
    naming = source.schema.naming  # what the key columns are called in the warehouse
    for name, resource in source.resources.items():
        if f"{dataset}.{name}" in tables:
            columns = [naming.normalize_identifier(c) for c in primary_keys[name]]
            disposition = scd2_disposition(columns, synced_at, capabilities)
            resource.apply_hints(write_disposition=disposition)  # type: ignore[arg-type]
            resource.add_filter(first_of_each_key(primary_keys[name]))
    return source


def check_switch(pipeline: dlt.Pipeline, dataset: str, table: str, refresh: bool) -> None:
    """Before a load: stop a table leaving history mode without a refresh, and drop the current view
    of a table about to be dropped (PostgreSQL will not drop a table a view depends on).

    Entering history mode needs nothing: the mirror's rows become active versions (opened at no known
    time), and the next changes version them. Leaving it does: a plain merge would keep every closed
    version of an unchanged record as a row of the mirror.

    Raises:
        HistorySwitchError: The table keeps history, `ANALYTICS_HISTORY` no longer lists it, no refresh.
    """
    if refresh:
        view = pipeline_naming(pipeline).normalize_table_identifier(current_view(table))
        with pipeline.sql_client() as client:
            target = Target.of(client)
            client.execute_sql(target.sql(f"drop view if exists {target.table(view)}"))
        return
    if stored_history(pipeline, table) and not keeps_history(dataset, table):
        raise HistorySwitchError(
            f"{dataset}.{table} keeps history in the warehouse, but {HISTORY_SETTING} no longer lists it. Run"
            f" it once with the run config `refresh: true` to turn it back into a mirror (this drops its"
            f" history and reloads it), or add {dataset}.{table} to {HISTORY_SETTING} again."
        )


def refresh_current_view(pipeline: dlt.Pipeline, table: str) -> None:
    """(Re)create `<table>_current`, the active versions of a history table, after a load.

    Recreated on every load: a view binds the table's columns when created, and a load may add some.
    """
    naming = pipeline_naming(pipeline)
    with pipeline.sql_client() as client:
        target = Target.of(client)
        view = target.table(naming.normalize_table_identifier(current_view(table)))
        source = target.table(naming.normalize_table_identifier(table))
        valid_to = target.column(naming.normalize_identifier(VALID_TO))
        with client.begin_transaction():
            client.execute_sql(target.sql(f"drop view if exists {view}"))
            client.execute_sql(
                target.sql(f"create view {view} as select * from {source} where {valid_to} is null")
            )


def version_counts(pipeline: dlt.Pipeline, table: str) -> tuple[int, int]:
    """(active rows, versions) of a history table; (0, 0) before its first load."""
    naming = pipeline_naming(pipeline)
    with pipeline.sql_client() as client:
        target = Target.of(client)
        valid_to = target.column(naming.normalize_identifier(VALID_TO))
        try:
            rows = client.execute_sql(
                target.sql(
                    f"select sum(case when {valid_to} is null then 1 else 0 end), count(*)"
                    f" from {target.table(naming.normalize_table_identifier(table))}"
                )
            )
        except DatabaseUndefinedRelation:
            return 0, 0
    assert rows, "count(*) returns a row"
    return int(rows[0][0] or 0), int(rows[0][1] or 0)


def describe(dataset: str, table: str, tables: Collection[str]) -> str:
    """A line for the asset description, or "" when the table is a mirror."""
    if f"{dataset}.{table}" not in tables:
        return ""
    return (
        f"- keeps history ({HISTORY_SETTING}): every version of a record, with `{VALID_FROM}` / `{VALID_TO}`;"
        f" a record the API no longer serves is closed, not deleted; the current rows are the view"
        f" `{dataset}.{current_view(table)}` (`{VALID_TO}` is null)"
    )


def history_metadata(pipeline: dlt.Pipeline, dataset: str, table: str, closed: int | None) -> dict[str, Any]:
    """The materialization metadata of a history table (none for a mirror): `dagster/row_count` is the
    active rows (the mirror's count, which `row_count_drop` compares), beside the versions kept.

    Args:
        closed: Active versions the sweep closed this run (None: no sweep ran).
    """
    if not keeps_history(dataset, table):
        return {}
    active, versions = version_counts(pipeline, table)
    metadata: dict[str, Any] = {
        "history": True,
        "dagster/row_count": active,
        "active_rows": active,
        "versions": versions,
        "current_view": f"{dataset}.{current_view(table)}",
    }
    if closed is not None:
        metadata["rows_closed"] = closed
    return metadata
