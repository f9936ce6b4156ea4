"""What differs between the warehouses the project loads into (dlt destinations), in one place: the loader
file format each loads fastest without losing data, how each one's driver says that the warehouse itself
failed, and what a person does about it.

The SQL does not differ: every statement is written once and rendered in the destination's dialect
(`reading/statements.py`); the dialect and the names come from dlt (`Target.of`, `WarehouseResource.
capabilities`). What stays different is the drivers' words. A load that fails because the warehouse's
disk is full, its user may not create a schema or table, its file or filesystem is read-only, or its
connection dropped for good (after dlt's retries) reaches the run as a chain of dlt, driver and Dagster
exceptions, sixty lines long; `warehouse_failure` turns it into one line naming the warehouse and what to
do. The driver's own line comes along, its password removed.

Each sign below was seen by a test that makes the failure happen (`test_warehouse_failures.py`) unless
it says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlt.common.typing import TLoaderFileFormat

from analytics_assets.loading.errors import error_chain

KEEPS_NUL = frozenset({"duckdb"})
"""The destinations known to store NUL (`\u0000`) in text and JSON as it is (`odd_values.py` replaces it
by U+FFFD for the others: PostgreSQL refuses it in text and JSON alike)."""
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

DISK_FULL, READ_ONLY, NO_PRIVILEGE, CONNECTION_LOST = (
    "disk full",
    "read-only",
    "no privilege",
    "connection lost",
)

_SIGNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Checked in this order: a read-only filesystem also answers "permission denied" on some systems.
    (
        DISK_FULL,
        (
            "no space left on device",  # DuckDB (its file or WAL), PostgreSQL ("could not extend file")
            "could not extend file",  # PostgreSQL
            "diskfull",  # psycopg2's class for SQLSTATE 53100
            "(1114,",  # MySQL/MariaDB: the table is full (its disk or quota)
            "(1021,",  # MySQL/MariaDB: disk full (not made to happen here)
        ),
    ),
    (READ_ONLY, ("read-only file system", "read-only mode", "read only mode", "readonly database")),
    (
        NO_PRIVILEGE,
        (
            "permission denied",  # PostgreSQL (42501), a DuckDB file the user may not write
            "insufficientprivilege",  # psycopg2's class for 42501
            "(1044,",  # MySQL/MariaDB: access denied to a database
            "(1142,",  # MySQL/MariaDB: a command denied on a table
        ),
    ),
    (
        CONNECTION_LOST,
        (
            "server closed the connection unexpectedly",  # PostgreSQL
            "terminating connection",  # PostgreSQL: the backend was ended
            "connection already closed",  # psycopg2
            "lost connection to",  # MySQL/MariaDB (2013)
            "server has gone away",  # MySQL/MariaDB (2006)
            "connection reset by peer",
            "connection refused",
        ),
    ),
)


@dataclass(frozen=True)
class WarehouseFault:
    """A failure of the warehouse itself: which kind, and the driver's own line about it."""

    kind: str
    reason: str


def warehouse_fault(error: BaseException) -> WarehouseFault | None:
    """The warehouse's own failure behind `error` (anywhere in its chain), or None."""
    chain = list(error_chain(error))
    for kind, signs in _SIGNS:
        for cause in reversed(chain):  # the innermost says it best: the driver's words
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            for line in lines:
                if any(sign in line.lower() for sign in signs):
                    return WarehouseFault(kind, line[:300])
            if lines and any(sign in type(cause).__name__.lower() for sign in signs):
                return WarehouseFault(kind, lines[0][:300])  # psycopg2's DiskFull, InsufficientPrivilege
    return None


def _todo(kind: str, destination: str) -> str:
    setting = f"DESTINATION__{destination.upper()}__CREDENTIALS"
    embedded = destination == "duckdb"
    if kind == DISK_FULL:
        return (
            "free space on the disk that holds it (or set ANALYTICS_DUCKDB_PATH to a file on a larger one)"
            if embedded
            else "free space on the database server's disk (or raise the database's quota)"
        )
    if kind == READ_ONLY:
        return "make the file and its filesystem writable for the user the runs run as (or point ANALYTICS_DUCKDB_PATH elsewhere)"
    if kind == NO_PRIVILEGE:
        return (
            "make the file and its folder writable for the user the runs run as"
            if embedded
            else f"grant the user of {setting} the right to create schemas and tables in that database"
            " (PostgreSQL: GRANT CREATE ON DATABASE ...; MySQL/MariaDB: GRANT ALL ON the datasets' databases)"
        )
    return f"check that the database server is up and reachable from here ({setting})"


_WHAT = {
    DISK_FULL: "the warehouse's disk is full",
    READ_ONLY: "the warehouse is read-only",
    NO_PRIVILEGE: "the warehouse refused the loading user the right to write",
    CONNECTION_LOST: "the connection to the warehouse was lost during the load",
}


ENDPOINT_KEPT = "Nothing of this endpoint was written: its table and cursor are as they were."
NOTHING_DONE = "Nothing was requested from the APIs and nothing was written."


def warehouse_failure(
    error: BaseException, destination: str, where: str, secret: str | None, kept: str = ENDPOINT_KEPT
) -> str | None:
    """One line for a load that failed because of the warehouse itself, or None when it did not.

    Args:
        error: What the load raised.
        destination: The dlt destination's name (`duckdb`, `postgres`, `sqlalchemy`, ...).
        where: The warehouse as a person knows it (`duckdb file /data/analytics.duckdb`,
            `postgres at db:5432/analytics`), never with a password.
        secret: The password of the credentials, removed from the driver's line.
        kept: What the failure left as it was (an endpoint's table, or everything).
    """
    fault = warehouse_fault(error)
    if fault is None:
        return None
    reason = fault.reason.replace(secret, "***") if secret else fault.reason
    return (
        f"{_WHAT[fault.kind]}: {where} ({reason}). {kept} To do: {_todo(fault.kind, destination)}, then run"
        " it again."
    )
