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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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
JSON columns and child tables come through `csv` identically. `parquet` needs the ADBC driver
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


class _ProcessFileLock:
    """One process's hold on a lock file: an `flock` for the process, and one thread at a time inside.

    An `flock` belongs to an open file, so two threads opening the file on their own would lock each
    other out; and DuckDB, opened by two threads at once, can refuse the second ("Unique file handle
    conflict ... already attached"). So the threads of a process take turns on a re-entrant lock, and
    the first one in takes the `flock` for the process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.file: IO[str] | None = None

    def acquire(self, log: logging.Logger, what: Path) -> None:
        self.thread_lock.acquire()
        if self.depth == 0:
            file = open(self.path, "w")  # noqa: SIM115 (closed in release)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(f"Waiting for another step or run to finish with {what} (DuckDB allows one writer).")
                try:
                    fcntl.flock(file, fcntl.LOCK_EX)
                except BaseException:
                    file.close()
                    self.thread_lock.release()
                    raise
            self.file = file
        self.depth += 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.file is not None:
            self.file.close()  # closing the file drops the flock
            self.file = None
        self.thread_lock.release()


_process_locks: dict[Path, _ProcessFileLock] = {}
_process_locks_guard = threading.Lock()


@contextmanager
def warehouse_lock(log: logging.Logger) -> Iterator[None]:
    """Hold the embedded warehouse for one process at a time, for as long as the block uses it.

    DuckDB lets only one process open a file for writing (and a reader in another process conflicts
    with a writer). Runs of the two APIs are processes of their own (a schedule tick can meet a manual
    run), and so is every step of a run (`definitions.py`): they take turns on a lock file beside the
    database. Hold it only around the work that opens the file (restoring a pipeline's state, a load,
    the sweep, the checks' queries), never around API requests, so that one step reads its API while
    another writes. Within a process, one thread at a time (re-entrant). Taken after `locks.api_lock`,
    never before, and no API lock is waited for while it is held: the locks cannot deadlock. Server
    destinations handle concurrent writers themselves: no-op.
    """
    if destination_name() != "duckdb":
        yield
        return
    path = duckdb_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with _process_locks_guard:
        lock = _process_locks.setdefault(lock_path, _ProcessFileLock(lock_path))
    lock.acquire(log, path)
    try:
        yield
    finally:
        lock.release()
