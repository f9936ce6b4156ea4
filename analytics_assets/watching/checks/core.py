"""What a data check is, and the Dagster check op that runs the checks of one asset.

A `Check` is a name, a description, a severity and a function from a `CheckContext` (one open
warehouse connection, the Dagster instance) to an `Outcome`. `build_load_checks` turns the checks
of an asset into one `@multi_asset_check`: one op per asset, not one per check (one warehouse
connection serves them all), and not one per load op (when one endpoint of an op fails, the checks of
the others still run). A blocking check of a parent runs in the load op itself (`build_gate`, passed to
`loading.assets.build_load_assets` by `definitions.py`), between the parent's write and its children's.
"""

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    EventLogRecord,
    multi_asset_check,
)
from dlt.destinations.sql_client import SqlClientBase

from analytics_assets.loading.assets import Gate
from analytics_assets.loading.tables import TableColumns
from analytics_assets.loading.tags import UNAVAILABLE
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.history import current_view
from analytics_assets.reading.naming import VALID_TO
from analytics_assets.reading.statements import Target

SAMPLE_SIZE = 5
"""How many offending keys a failed check lists in its metadata."""


def metadata_value(record: EventLogRecord | None, key: str) -> Any:
    """The value of a materialization's metadata entry, or None."""
    materialization = record.asset_materialization if record else None
    entry = materialization.metadata.get(key) if materialization else None
    return entry.value if entry is not None else None


@dataclass(frozen=True)
class Outcome:
    """The result of one check on one table.

    Attributes:
        passed: Whether the data is as expected.
        summary: One line a person can act on (the check result's description in the UI).
        metadata: Counts and a few offending keys.
        severity: Overrides the check's severity for this result (a milder finding of the same check).
    """

    passed: bool
    summary: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    severity: AssetCheckSeverity | None = None


class CheckContext:
    """What a check sees: the asset's table over one open warehouse connection, the instance, and the
    `warehouse` resource (the tolerated row drop).

    A check writes its SQL once, in DuckDB's dialect (`reading.statements`), with names from `qualified`
    and `column`; `rows` and `scalar` send it in the destination's dialect through dlt's client. What
    tables and columns exist is dlt's schema stored in the warehouse (`TableColumns`), never the
    database catalog (`information_schema` is not on every destination, and a failed query would end a
    PostgreSQL transaction).
    """

    def __init__(
        self,
        sql: SqlClientBase[Any],
        instance: DagsterInstance,
        run_id: str,
        asset_key: AssetKey,
        warehouse: WarehouseResource,
        stored_columns: TableColumns,
    ) -> None:
        self.sql = sql
        self.target = Target.of(sql)
        self.warehouse = warehouse
        self.instance = instance
        self.run_id = run_id
        self.asset_key = asset_key
        self.table = asset_key.path[-1]
        self._stored_columns = stored_columns
        self._history: list[EventLogRecord] | None = None

    @property
    def dataset(self) -> str:
        """The API's dataset, as its users name it (the asset key's first part)."""
        return self.asset_key.path[0]

    def qualified(self, table: str | None = None) -> str:
        """The qualified name of a table of the dataset (this asset's by default), for a statement; for a
        table that keeps history, of its view of the active versions, so that checks judge the current rows."""
        name = table or self.table
        if VALID_TO in self.columns(
            name
        ):  # history mode: `refresh_current_view` keeps the view after each load
            return self.target.table(current_view(name))
        return self.target.table(name)

    def base_table(self, table: str | None = None) -> str:
        """The qualified name of the table itself, every version of a history table included."""
        return self.target.table(table or self.table)

    def column(self, name: str) -> str:
        """A quoted column name, for a statement."""
        return self.target.column(name)

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of a query written in DuckDB's SQL (`?` placeholders for `args`), sent in the
        destination's."""
        return [tuple(row) for row in self.sql.execute_sql(self.target.sql(query), *args) or []]

    def scalar(self, query: str, *args: Any) -> Any:
        """The first value of the first row of a query."""
        rows = self.rows(query, *args)
        return rows[0][0] if rows else None

    def columns(self, table: str | None = None) -> dict[str, str]:
        """Column name -> dlt's data type (`text`, `bigint`, `timestamp`, ...), as dlt's schema stored in
        the warehouse says; empty when dlt never created the table."""
        return self._stored_columns(table or self.table)

    def exists(self, table: str | None = None) -> bool:
        """Whether dlt created the table (its schema in the warehouse has it)."""
        return bool(self.columns(table))

    def count(self, table: str | None = None) -> int:
        """Rows in a table of the dataset; 0 when it does not exist."""
        if not self.exists(table):
            return 0
        return int(self.scalar(f"select count(*) from {self.qualified(table)}"))

    def history(self) -> list[EventLogRecord]:
        """The asset's two latest materializations, newest first (this run's first, if it made one)."""
        if self._history is None:
            self._history = list(self.instance.fetch_materializations(self.asset_key, limit=2).records)
        return self._history

    def materialized_now(self) -> EventLogRecord | None:
        """This run's materialization of the asset, if the run made one."""
        records = self.history()
        return records[0] if records and records[0].run_id == self.run_id else None

    def previous_materialization(self) -> EventLogRecord | None:
        """The latest materialization made by an earlier run."""
        return next((r for r in self.history() if r.run_id != self.run_id), None)


@dataclass(frozen=True)
class Check:
    """One data check of one table.

    Attributes:
        name: The check name in Dagster (`<asset>:<name>`).
        description: What it catches and what to do about it (shown in the UI).
        evaluate: The check itself.
        severity: ERROR where a failure means the data is wrong, WARN where it is suspicious.
        blocking: A failure at ERROR keeps the asset's children from loading in the same run.
        uses: Other tables of the dataset it reads (the check's extra dependencies).
    """

    name: str
    description: str
    evaluate: Callable[[CheckContext], Outcome]
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
    blocking: bool = False
    uses: tuple[str, ...] = ()

    def guarding_children(self) -> "Check":
        """This check at ERROR and blocking: for a parent whose bad data would flow into its children."""
        return replace(
            self,
            severity=AssetCheckSeverity.ERROR,
            blocking=True,
            description=f"{self.description} Blocking: on failure, child assets do not load in the same run.",
        )


def _evaluate(check: Check, context: CheckContext, log: logging.Logger) -> Outcome:
    if check.name != "available_on_plan" and metadata_value(context.materialized_now(), UNAVAILABLE):
        # Nothing was loaded and nothing changed: only `available_on_plan` has something to say.
        return Outcome(
            True, "Not evaluated: the API's plan does not offer this endpoint (see available_on_plan)."
        )
    try:
        return check.evaluate(context)
    except Exception as error:
        # A check that cannot run says so in its result, at its own severity, instead of failing the op
        # (which would hide the results of the other checks of the same op).
        log.exception(f"Check {check.name} of {context.asset_key.to_user_string()} could not run")
        return Outcome(False, f"The check could not run: {type(error).__name__}: {error}")


def _spec(key: AssetCheckKey, check: Check) -> AssetCheckSpec:
    return AssetCheckSpec(
        check.name,
        asset=key.asset_key,
        description=check.description,
        blocking=check.blocking,
        additional_deps=[AssetKey([*key.asset_key.path[:-1], table]) for table in check.uses],
        metadata={"severity": check.severity.value},
    )


def _results(
    by_key: Mapping[AssetCheckKey, Check],
    context: AssetExecutionContext | AssetCheckExecutionContext,
    sql: SqlClientBase[Any],
    warehouse: WarehouseResource,
    pipeline: Any,
) -> Iterator[AssetCheckResult]:
    """The results of the checks of `by_key` the run selected, read over `sql` (a connection of
    `pipeline`'s): the load op's gate and the check ops alike."""
    stored: dict[str, TableColumns] = {}  # per API (dataset): each table's schema is read once
    for key, check in by_key.items():
        if key not in context.selected_asset_check_keys:
            continue
        api = key.asset_key.path[0]
        columns = stored.setdefault(api, TableColumns(pipeline, api))
        check_context = CheckContext(
            sql, context.instance, context.run.run_id, key.asset_key, warehouse, columns
        )
        outcome = _evaluate(check, check_context, context.log)
        yield AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=outcome.passed,
            severity=outcome.severity or check.severity,
            description=outcome.summary,
            metadata=dict(outcome.metadata),
        )


def build_gate(key: AssetKey, checks: Sequence[Check]) -> Gate:
    """The blocking checks of a parent asset, for the load op to evaluate right after it writes the
    parent and before it writes the children (`loading.assets.Gate`).

    The op holds the API's and the warehouse's locks already, and opens the warehouse one thread at a time;
    the checks read the parent's dataset over its own pipeline's connection.
    """
    by_key = {AssetCheckKey(key, check.name): check for check in checks}

    def evaluate(
        context: AssetExecutionContext, warehouse: WarehouseResource, pipeline: Any
    ) -> Iterator[AssetCheckResult]:
        with pipeline.sql_client() as sql:
            yield from _results(by_key, context, sql, warehouse, pipeline)

    return Gate(specs=[_spec(k, c) for k, c in by_key.items()], evaluate=evaluate)


def build_load_checks(
    name: str, dataset: str, checks: Mapping[AssetKey, Sequence[Check]]
) -> AssetChecksDefinition:
    """One check op for the given assets (the code location gives it one asset: see `suite.py`).

    Args:
        name: The check op is `<name>_checks`.
        dataset: The dataset (schema) of the tables.
        checks: The checks of each asset.
    """
    by_key = {AssetCheckKey(key, check.name): check for key, group in checks.items() for check in group}
    specs = [_spec(key, check) for key, check in by_key.items()]

    # No `from __future__ import annotations` in this module: Dagster reads the `context` annotation.
    @multi_asset_check(
        specs=specs,
        name=f"{name}_checks",
        can_subset=True,
        description=f"Data checks of `{name}`.",
    )
    def _checks(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[AssetCheckResult]:
        pipeline = warehouse.pipeline(f"{name}_checks", dataset=dataset)
        # The API's lock: checks never read a dataset (or dlt's staging tables) while another run of the
        # API is merging into it. DuckDB: a check op also takes its turn on the file.
        with (
            warehouse.api_lock(dataset, context),
            warehouse.lock(context),
            pipeline.sql_client() as sql,
        ):
            yield from _results(by_key, context, sql, warehouse, pipeline)

    return _checks
