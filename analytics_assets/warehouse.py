"""Where the data lands: the dlt pipeline of each API, built at run time from the environment.

`ANALYTICS_DESTINATION` picks the dlt destination (`duckdb` by default, `postgres`, or any other dlt
destination name, configured the dlt way: `DESTINATION__<NAME>__CREDENTIALS`, ...).
`ANALYTICS_DUCKDB_PATH` is the DuckDB file (default `data/analytics.duckdb`).
Each API gets its own pipeline name and dataset, so their state and tables never mix.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt
from dagster import Failure
from dlt.common.destination import Destination
from dlt.common.typing import TLoaderFileFormat

DESTINATION_ENV = "ANALYTICS_DESTINATION"
DUCKDB_PATH_ENV = "ANALYTICS_DUCKDB_PATH"
DEFAULT_DESTINATION = "duckdb"
DEFAULT_DUCKDB_PATH = "data/analytics.duckdb"

LOADER_FILE_FORMATS: dict[str, TLoaderFileFormat] = {"duckdb": "parquet", "postgres": "insert_values"}
"""The loader file format per destination, chosen for speed among those that keep the data intact.

DuckDB, measured on 200,000 people rows (2 cores): dlt's default `insert_values` took 68 s (55 s of it
in the load step), `jsonl` 13 s, `parquet` 11 s. DuckDB reads Parquet natively and in bulk, so Parquet
wins.

PostgreSQL, measured with `benchmarks/postgres_file_format.py` (2 shared cores, PostgreSQL 15):
on 200,000 people (202,630 rows in all) `insert_values` took 25.9 s (load step 5.9 s), `csv` (dlt
loads it with `COPY`) 22.7 s (load step 3.1 s); on 100,000 responses with their JSON columns and
child tables (122,558 rows) 19.2 s against 22.2 s. Extract and normalize dominate, so `csv` saves
at most a few seconds, and it loses data: Postgres `COPY ... CSV` cannot tell an empty string from
NULL (dlt forces NULL on nullable columns), so every `''` (e.g. `peoples.tags`) would arrive as NULL.
JSON columns and child tables come through `csv` identically. Measured again with `make bench-postgres`
(2026-12-02, benchmarks/README.md, cores shared at load 6-11): 100,000 people and 20,000 responses (126,419 rows), `insert_values`
37.1-44.5 s, `csv` 31.9-41.7 s, 25,539 empty strings lost. `parquet` needs the ADBC driver
(`adbc-driver-postgresql`, not a dependency). So PostgreSQL keeps dlt's default, `insert_values`,
named here so the choice is explicit. Destinations not listed keep dlt's default for them.
"""


def destination_name() -> str:
    """The configured dlt destination name, read when a run starts (never at import)."""
    return (os.environ.get(DESTINATION_ENV) or DEFAULT_DESTINATION).strip().lower()


def duckdb_path() -> Path:
    """The DuckDB file the embedded warehouse writes to, relative paths taken from the working directory.

    Resolved here because dlt would otherwise resolve a relative path against its own local folder.
    """
    return Path(os.environ.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH).resolve()


def destination() -> Destination:
    """The dlt destination for this run, from `ANALYTICS_DESTINATION`."""
    name = destination_name()
    if name == "duckdb":
        path = duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return dlt.destinations.duckdb(str(path))
    # Any other dlt destination, configured through dlt's own settings (credentials included).
    resolved = Destination.from_reference(name)
    assert resolved is not None, "only an empty reference resolves to None"
    return resolved


def loader_file_format() -> TLoaderFileFormat:
    """The fastest loader file format for the configured destination (its own preference if unlisted)."""
    chosen = LOADER_FILE_FORMATS.get(destination_name())
    return chosen or destination().capabilities().preferred_loader_file_format


def warehouse_pipeline(name: str, dataset: str) -> dlt.Pipeline:
    """A dlt pipeline that loads into the dataset of its API.

    Args:
        name: The pipeline name, unique per op so no two share local state or cursors.
        dataset: The dataset (schema) name: the API's name.
    """
    return dlt.pipeline(pipeline_name=name, destination=destination(), dataset_name=dataset)


class WarehouseUnreachableError(Failure):
    """The warehouse could not be reached: which one, why, and the setting that points at it."""


def check_reachable(pipeline: dlt.Pipeline) -> None:
    """Open (and close) one connection to a server warehouse, before a run spends any API request.

    Without it a warehouse that is down shows up only after every page was read, as the driver's raw
    error and traceback (psycopg2's `OperationalError`). The embedded DuckDB file is not checked: it
    is created on first use, and opening it outside `warehouse_lock` would contend with a writer.

    Raises:
        WarehouseUnreachableError: Naming the destination, host and port (never the password), the
            driver's reason, and the setting that holds the credentials.
    """
    name = destination_name()
    if name == "duckdb":
        return
    try:
        with pipeline.sql_client():
            return
    except Exception as error:  # each driver raises its own error class for a refused connection
        where, password = _describe(pipeline, name)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if password:
            reason = reason.replace(password, "***")
        setting = f"DESTINATION__{name.upper()}__CREDENTIALS"
        raise WarehouseUnreachableError(
            description=(
                f"The warehouse could not be reached: {where} ({reason}). Nothing was requested from the"
                f" APIs. Check that the database server is up and that {setting} (or"
                f" [destination.{name}.credentials] in .dlt/secrets.toml) points at it."
            ),
            metadata={"destination": name},
        ) from None


def _describe(pipeline: dlt.Pipeline, name: str) -> tuple[str, str | None]:
    """`<destination> at host:port/database` from the resolved credentials, and the password to hide."""
    try:
        credentials = pipeline.destination_client().config.credentials
    except Exception:  # credentials that do not even resolve: the destination name is all we know
        return f"{name}", None
    host = getattr(credentials, "host", None)
    port = getattr(credentials, "port", None)
    database = getattr(credentials, "database", None)
    where = f"{name} at {host or '?'}" + (f":{port}" if port else "") + (f"/{database}" if database else "")
    password = getattr(credentials, "password", None)
    return where, str(password) if password else None


@contextmanager
def warehouse_lock(log: logging.Logger) -> Iterator[None]:
    """Hold the embedded warehouse for one writer at a time.

    DuckDB lets only one process open a file for writing; runs of the two APIs are processes of their
    own (a schedule tick can meet a manual run), so their loads take turns on a lock file beside the
    database. Server destinations handle concurrent writers themselves: no-op.
    """
    if destination_name() != "duckdb":
        yield
        return
    path = duckdb_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"Waiting for another load to finish writing {path} (DuckDB allows one writer).")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
