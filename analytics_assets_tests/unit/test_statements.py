"""Every statement the project sends to a warehouse, generated for each destination dlt speaks SQL to and
parsed back in that destination's dialect (sqlglot), without a connection: the checks of every table
(mirror and history), the row count, the sweep (scan, delete, close, nested rows, unconfirmed keys),
history mode's view, counts and `destination_scope`.

A recording SQL client stands in for dlt's: it has the destination's real dlt capabilities (dialect, case
folding) and records what it is sent. DuckDB, PostgreSQL and MariaDB run these statements for real in
the whole-run tests; here the others, which cannot run on this machine, are held to parse. A statement
sqlglot cannot parse in the destination's dialect fails here, naming the statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import dlt
import pytest
import sqlglot
from dagster import AssetKey, DagsterInstance
from dlt.common.destination import Destination
from dlt.common.schema.utils import new_column, new_table

from analytics_assets.loading.tables import row_count
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading import history, sweep
from analytics_assets.reading.apis import APIS
from analytics_assets.reading.history import refresh_current_view, scd2_disposition, version_counts
from analytics_assets.reading.naming import VALID_FROM, VALID_TO
from analytics_assets.reading.statements import DRIVER_MARKER, Target
from analytics_assets.watching.checks.core import CheckContext
from analytics_assets.watching.checks.suite import _apis, checks_of
from analytics_assets.watching.checks.table import one_active_version

GENERATED_AND_PARSED = (
    "snowflake",
    "bigquery",
    "databricks",
    "redshift",
    "mssql",
    "clickhouse",
    "motherduck",
)
"""Destinations held to parse here only (the README's "generated and parsed")."""
RUN_FOR_REAL = ("duckdb", "postgres")
"""Run for real in the whole-run tests (MariaDB too: its dialect is the SQLAlchemy URL's, see below)."""


class Recording:
    """A stand-in for dlt's SQL client of one destination: its capabilities, its way of naming a table,
    and every statement it was sent. Answers each query with `answer`."""

    def __init__(self, destination: str, answer: list[tuple[Any, ...]]) -> None:
        self.capabilities = Destination.from_reference(destination).capabilities()
        self.dataset_name = "audience"
        self.sent: list[str] = []
        self.answer = answer

    def make_qualified_table_name_path(self, table: str, quote: bool = False) -> list[str]:
        fold = self.capabilities.casefold_identifier
        return [fold(self.dataset_name), fold(table)]

    def execute_sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        self.sent.append(sql)
        return self.answer

    @contextmanager
    def execute_query(self, sql: str, *args: Any) -> Iterator[Any]:
        self.sent.append(sql)
        yield SimpleNamespace(fetchmany=lambda size: [])

    @contextmanager
    def begin_transaction(self) -> Iterator[None]:
        yield

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _schema() -> dlt.Schema:
    """A dlt schema with a mirror (`peoples`, a nested table), a history table (`responses`), and a table
    with a composite key (`segment_people`)."""
    schema = dlt.Schema("audience_test")
    text = [new_column(name, "text") for name in ("id", "email", "_dlt_id", "_dlt_root_id")]
    schema.update_table(new_table("peoples", columns=text), normalize_identifiers=False)
    schema.update_table(new_table("peoples__tags", parent_table_name="peoples", columns=text))
    valid_to = new_column(VALID_TO, "timestamp")
    valid_to["x-valid-to"] = True  # type: ignore[typeddict-unknown-key]
    schema.update_table(
        new_table("responses", columns=[*text, new_column(VALID_FROM, "timestamp"), valid_to]),
        normalize_identifiers=False,
    )
    return schema


def _pipeline(client: Recording) -> Any:
    schema = _schema()
    return SimpleNamespace(
        default_schema_name=schema.name,
        default_schema=schema,
        sql_client=lambda: client,
        dataset_name="audience",
    )


def _check_statements(client: Recording, history_columns: bool) -> None:
    """Every check of every table evaluated over `client`: each statement it sends is recorded."""
    columns = {
        name: "text" for name in ("id", "email", "name", "tag", "account_id", "segment_id", "survey_id")
    } | {"created_at": "timestamp", "updated_at": "timestamp", "first_name": "text", "last_name": "text"}
    if history_columns:
        columns |= {VALID_FROM: "timestamp", VALID_TO: "timestamp"}
    with DagsterInstance.ephemeral() as instance:
        for api in _apis().values():
            for resource in api.catalog:
                key = AssetKey([api.name, resource])
                context = CheckContext(
                    client,  # type: ignore[arg-type]
                    instance,
                    "run",
                    key,
                    WarehouseResource(),
                    lambda table: columns,
                )
                checks = [*checks_of(api, resource), one_active_version(api.catalog[resource].primary_key)]
                for check in checks:
                    check.evaluate(context)


def _sweep_statements(client: Recording) -> None:
    pipeline = _pipeline(client)
    closing = datetime(2026, 12, 7, tzinfo=UTC)
    for table, key in (("peoples", ["id"]), ("responses", ["id"])):
        names = sweep._Table(pipeline, client, table)
        names.scan(key, set())
        plan = sweep.SweepPlan(table, key, sweep.array("q"), [("a",), ("b",)], [("c",)])
        sweep._delete(pipeline, client, names, plan, closing)
    sweep._keep_unconfirmed(client, "peoples", [("c",), ("d",)], closing, exists=True)
    sweep._exists(client, "peoples")


def _history_statements(client: Recording) -> None:
    pipeline = _pipeline(client)
    history.check_switch(pipeline, "audience", "responses", refresh=True)
    refresh_current_view(pipeline, "responses")
    version_counts(pipeline, "responses")
    row_count(pipeline, "peoples")  # type: ignore[arg-type]
    # dlt pastes `destination_scope` into its own statements, already in the destination's SQL: here
    # into a delete like its merge's, its table names as the destination quotes them.
    target = Target.of(client)
    table, staging = (
        sqlglot.exp.to_table(target.table(name), dialect="duckdb").sql(target.dialect)
        for name in ("segment_people", "staging")
    )
    scope = scd2_disposition(["segment_id", "id"], capabilities=client.capabilities)["destination_scope"]
    client.sent.append(f"delete from {table} where {scope.format(table=table, staging_table=staging)}")


def all_statements(destination: str) -> list[str]:
    """Every statement the project sends, as generated for `destination` (checks twice: with rows
    that pass, and with rows that fail, which send the sample queries)."""
    sent: list[str] = []
    for answer, history_columns in (([(0, 0)], False), ([(1, 1, 1)], True)):
        client = Recording(destination, answer)
        _check_statements(client, history_columns)
        _sweep_statements(client)
        _history_statements(client)
        sent += client.sent
    return sent


@pytest.mark.parametrize("destination", [*GENERATED_AND_PARSED, *RUN_FOR_REAL])
def test_every_statement_parses_in_the_destinations_dialect(
    destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_HASHED_FIELDS", "audience.peoples.email")  # the hash variant of a check
    dialect = Destination.from_reference(destination).capabilities().sqlglot_dialect
    assert dialect
    statements = all_statements(destination)
    assert len(statements) > 100
    for statement in statements:
        # `%s` is how dlt's clients take a parameter, not SQL: parsed back as the SQL placeholder.
        assert "%s" not in statement.replace(DRIVER_MARKER, "")
        try:
            sqlglot.parse_one(statement.replace(DRIVER_MARKER, "?"), read=dialect)
        except sqlglot.errors.ParseError as error:
            raise AssertionError(f"{destination} ({dialect}) cannot parse: {statement}") from error


def test_statements_are_in_the_destinations_dialect_and_quoting() -> None:
    snowflake = all_statements("snowflake")
    assert any('FROM "AUDIENCE"."PEOPLES"' in s for s in snowflake)  # Snowflake folds names to upper case
    assert any("TOP 5" in s or "FETCH FIRST 5" in s for s in all_statements("mssql"))  # no LIMIT in T-SQL
    bigquery = all_statements("bigquery")
    assert any("FROM `audience`.`peoples`" in s for s in bigquery)
    assert not [s for s in [*snowflake, *bigquery] if "%s" in s and "?" in s]


def test_the_mysql_dialect_comes_from_the_sqlalchemy_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_DESTINATION", "sqlalchemy")
    monkeypatch.setenv("DESTINATION__SQLALCHEMY__CREDENTIALS", "mysql+pymysql://loader:secret@db:3306/x")
    capabilities = WarehouseResource().capabilities()
    assert capabilities.sqlglot_dialect == "mysql"
    scope = scd2_disposition(["id"], capabilities=capabilities)["destination_scope"]
    assert scope == "exists (select 1 from {staging_table} k where k.`id` = {table}.`id`)"


@pytest.mark.parametrize(
    ("destination", "credentials"),
    [
        ("duckdb", None),
        ("postgres", "postgresql://loader:secret@localhost:5432/db"),
        ("sqlalchemy", "mysql+pymysql://loader:secret@localhost:3306/db"),
    ],
)
def test_names_are_quoted_as_the_sql_client_quotes_them(
    destination: str, credentials: str | None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No connection is opened: an SQL client only names things until it is entered.
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path))
    if credentials:
        monkeypatch.setenv(f"DESTINATION__{destination.upper()}__CREDENTIALS", credentials)
    target_destination: Any = (
        dlt.destinations.duckdb(str(tmp_path / "w.duckdb")) if destination == "duckdb" else destination
    )
    client = dlt.pipeline(
        "statements_quoting", destination=target_destination, dataset_name="audience"
    ).sql_client()
    target = Target.of(client)
    render = lambda name: sqlglot.parse_one(name, read="duckdb").sql(target.dialect)  # noqa: E731
    assert render(target.table("peoples")) == client.make_qualified_table_name("peoples")
    assert render(target.column("segment_id")) == client.escape_column_name("segment_id")


def test_the_catalog_of_tables_the_checks_read_is_every_table() -> None:
    assert {api.name for api in APIS} == set(_apis())
