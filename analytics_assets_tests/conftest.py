"""Shared fixtures: a sandbox serving both APIs over loopback, and a warehouse of the test's own.

The warehouse is a fresh DuckDB file by default. A test runs against PostgreSQL and MariaDB/MySQL too
when it is marked `@on_every_warehouse`: its PostgreSQL variant gets a database of its own on the server
named by `ANALYTICS_TEST_POSTGRES_URL`, its MariaDB variant (dlt's `sqlalchemy` destination with
`pymysql`) databases of its own on the server named by `ANALYTICS_TEST_MYSQL_URL` (created before,
dropped after); each variant is skipped when its variable is unset.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg2
import pymysql
import pytest
import sqlglot
from hypothesis import settings

from analytics_sandbox import Sandbox, SandboxConfig

# Properties (Hypothesis): the same examples on every run (`derandomize`), so that `make test` and CI
# agree; `HYPOTHESIS_PROFILE=long` runs twenty times as many, for a contributor changing a rule that
# decides what is loaded or deleted (so a property leaves `max_examples` to the profile).
settings.register_profile("default", derandomize=True, deadline=None, print_blob=True, database=None)
settings.register_profile("long", settings.get_profile("default"), derandomize=False, max_examples=2_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SMALL = SandboxConfig(
    seed=7,
    people=250,  # three pages of /people/all: 100, 100 and a short last page of 50
    segments=3,
    members_per_segment=120,  # two pages per segment: 100 and 20
    surveys=4,
    responses=230,
)

POSTGRES_URL_ENV = "ANALYTICS_TEST_POSTGRES_URL"
MYSQL_URL_ENV = "ANALYTICS_TEST_MYSQL_URL"
WAREHOUSES = ("duckdb", "postgres", "mysql")
DATASETS = ("audience", "feedback")

on_every_warehouse = pytest.mark.parametrize("warehouse", WAREHOUSES, indirect=True)
"""Run the marked test once per warehouse destination (PostgreSQL only when configured)."""


def _server_url(variable: str, server: str, example: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{server} tests need a server: set {variable} (e.g. {example}; .ci/run sets it)")
    return url


def postgres_server_url() -> str:
    """The PostgreSQL server the tests may create databases on, or skip the test with the reason."""
    return _server_url(POSTGRES_URL_ENV, "PostgreSQL", "postgresql://postgres@127.0.0.1:5432/test")


def mysql_server_url() -> str:
    """The MariaDB/MySQL server the tests may create databases on, or skip the test with the reason."""
    return _server_url(MYSQL_URL_ENV, "MariaDB", "mysql+pymysql://root@127.0.0.1:3306/test")


def mysql_connect(url: str, database: str | None = None) -> Any:
    """A pymysql connection to the server of a `mysql+pymysql://` URL (autocommit)."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database or parts.path.lstrip("/") or None,
        autocommit=True,
    )


@contextmanager
def fresh_mysql_datasets(server_url: str, prefix: str = "analytics_test") -> Iterator[str]:
    """The datasets of one test on a MariaDB/MySQL server; yields their prefix (`<prefix>_audience`, ...).

    MySQL has no schemas inside a database: a dlt dataset is a database of its own, so a test cannot
    get "a database" holding `audience` and `feedback` as on PostgreSQL. It gets its own names instead,
    through the warehouse's `dataset_prefix` (`ANALYTICS_DATASET_PREFIX`), and every database under its
    prefix (the staging ones included) is dropped afterwards.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        con = mysql_connect(server_url)
        try:
            with con.cursor() as cursor:
                cursor.execute("show databases like %s", (f"{name}\\_%",))
                for (database,) in cursor.fetchall():
                    cursor.execute(f"drop database if exists `{database}`")
        finally:
            con.close()


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def dlt_postgres_credentials(url: str) -> str:
    """`url` as dlt's Postgres credentials: dlt requires a password, so trust auth gets an empty one."""
    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:@{parts.netloc.split('@', 1)[1]}"))


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "analytics_test") -> Iterator[str]:
    """A new, empty database on the server (dropped afterwards, connections and all); yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'create database "{name}"')
        yield with_database(server_url, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


@dataclass
class Warehouse:
    """The warehouse a test loads into: its destination, the settings that select it, and queries.

    Attributes:
        destination: `duckdb`, `postgres` or `mysql` (MariaDB through dlt's `sqlalchemy` destination; the
            value of `ANALYTICS_DESTINATION` is `sqlalchemy`).
        env: The environment variables that point the code location at this warehouse.
        path: The DuckDB file (DuckDB only).
        url: The database URL (PostgreSQL and MariaDB).
        prefix: MariaDB only: what the test's dataset names start with (`fresh_mysql_datasets`); its
            queries name the datasets `audience` and `feedback` as on the other warehouses.
    """

    destination: str
    env: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    url: str | None = None
    prefix: str | None = None

    def dataset(self, name: str) -> str:
        """The name a dataset has in this warehouse."""
        return f"{self.prefix}_{name}" if self.prefix else name

    def _mysql(self, sql: str, transpile: bool = True) -> str:
        # Tests write DuckDB's (PostgreSQL's) SQL: sqlglot turns it into MySQL's (`nulls first`, `"x"`).
        # The datasets are databases with the test's prefix: `audience.peoples` -> `<prefix>_audience`.peoples
        if transpile:  # not with `%s` parameters, which are no SQL
            sql = sqlglot.transpile(sql, read="duckdb", write="mysql")[0]
        return re.sub(rf"\b({'|'.join(DATASETS)})\.", lambda m: f"`{self.dataset(m[1])}`.", sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query (DuckDB is opened read-only, so nothing is left locked)."""
        if self.destination == "duckdb":
            assert self.path is not None
            with duckdb.connect(str(self.path), read_only=True) as con:
                return con.execute(sql).fetchall()
        assert self.url is not None
        if self.destination == "mysql":
            mcon = mysql_connect(self.url)
            try:
                with mcon.cursor() as cursor:
                    cursor.execute(self._mysql(sql))
                    return [tuple(row) for row in cursor.fetchall()]
            finally:
                mcon.close()
        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cursor:
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()]
        finally:
            con.close()

    def execute(self, sql: str, *args: Any) -> None:
        """Change the warehouse behind the loader's back (`%s` placeholders on PostgreSQL and MariaDB, `?`
        on DuckDB)."""
        if self.destination == "duckdb":
            assert self.path is not None
            with duckdb.connect(str(self.path)) as con:
                con.execute(sql, list(args))
            return
        assert self.url is not None
        if self.destination == "mysql":
            mcon = mysql_connect(self.url)
            try:
                with mcon.cursor() as cursor:
                    cursor.execute(self._mysql(sql, transpile=not args), args or None)
            finally:
                mcon.close()
            return
        con = psycopg2.connect(self.url)
        try:
            with con, con.cursor() as cursor:
                cursor.execute(sql, args)
        finally:
            con.close()

    def tables(self, dataset: str) -> set[str]:
        """The data tables of a dataset: neither dlt's own tables nor child tables (`a__b`)."""
        rows = self.query(
            f"select table_name from information_schema.tables where table_schema = '{self.dataset(dataset)}'"
        )
        # neither dlt's own tables nor child tables
        return {r[0] for r in rows if not r[0].startswith("_dlt") and "__" not in r[0]}

    def row_counts(self) -> dict[str, int]:
        """Rows per data table of both datasets, as `{"audience.peoples": 250, ...}`."""
        return {
            f"{dataset}.{table}": int(self.query(f"select count(*) from {dataset}.{table}")[0][0])
            for dataset in ("audience", "feedback")
            for table in sorted(self.tables(dataset))
        }


@contextmanager
def make_warehouse(destination: str, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty warehouse of the destination, and a dlt data folder of its own, under `tmp_path`."""
    env = {"ANALYTICS_DESTINATION": destination, "DLT_DATA_DIR": str(tmp_path / "dlt")}
    if destination == "duckdb":
        path = tmp_path / "warehouse" / "analytics.duckdb"
        yield Warehouse(destination, {**env, "ANALYTICS_DUCKDB_PATH": str(path)}, path=path)
    elif destination == "postgres":
        with fresh_postgres_database(postgres_server_url()) as url:
            env["DESTINATION__POSTGRES__CREDENTIALS"] = dlt_postgres_credentials(url)
            yield Warehouse(destination, env, url=url)
    elif destination == "mysql":
        server = mysql_server_url()
        with fresh_mysql_datasets(server) as prefix:
            env["ANALYTICS_DESTINATION"] = "sqlalchemy"
            env["DESTINATION__SQLALCHEMY__CREDENTIALS"] = server
            env["ANALYTICS_DATASET_PREFIX"] = f"{prefix}_"
            yield Warehouse(destination, env, url=server, prefix=prefix)
    else:
        raise ValueError(f"no test warehouse for {destination!r}")


LONGEST_FIRST = (
    "test_e2e.py",
    "test_demo.py",
    "test_bench.py",
    "test_locks.py",
    "test_alerts.py",
    "test_isolation.py",
    "test_deletions.py",
)
"""Modules of the longest tests (`dagster dev`, the benchmark, CLI runs taking turns, a daemon with CLI
runs, CLI runs from the shared first sync), run first."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: on `make test`'s xdist workers, one of them started last would keep the
    run going while the other worker has nothing left to do."""
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: otherwise as collected


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox with small data; a test may pass its own SandboxConfig with `indirect` parametrization."""
    config = getattr(request, "param", SMALL)
    with Sandbox(config, port=0) as sb:
        yield sb


@pytest.fixture
def warehouse(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Warehouse]:
    """An empty warehouse of this test's own, selected for the code location through the environment.

    DuckDB unless the test is parametrized otherwise (`@on_every_warehouse`, or `indirect` with
    `"postgres"` or `"mysql"`).
    """
    destination = getattr(request, "param", "duckdb")
    for name in (
        "ANALYTICS_DUCKDB_PATH",
        "DESTINATION__POSTGRES__CREDENTIALS",
        "DESTINATION__SQLALCHEMY__CREDENTIALS",
        "ANALYTICS_DATASET_PREFIX",
    ):
        monkeypatch.delenv(name, raising=False)
    with make_warehouse(destination, tmp_path) as wh:
        for name, value in wh.env.items():
            monkeypatch.setenv(name, value)
        yield wh


@pytest.fixture
def configured(sandbox: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Both sources pointed at the sandbox, loading into the test's warehouse."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    return sandbox


def query(warehouse: Warehouse | Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query against the warehouse (or a DuckDB file); same as `warehouse.query(sql)`."""
    if isinstance(warehouse, Warehouse):
        return warehouse.query(sql)
    return Warehouse("duckdb", path=Path(warehouse)).query(sql)
