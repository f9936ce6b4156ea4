"""`loading/destinations.py`: which driver words mean which failure of the warehouse, and the one line made
of them. The DuckDB and PostgreSQL words are also made to happen for real (`test_warehouse_failures.py`);
MySQL/MariaDB's are its documented error numbers, held here only."""

from __future__ import annotations

import pytest

from analytics_assets.loading.destinations import (
    CONNECTION_LOST,
    DISK_FULL,
    NO_PRIVILEGE,
    READ_ONLY,
    warehouse_failure,
    warehouse_fault,
)


def _wrapped(inner: BaseException) -> BaseException:
    """`inner` behind two layers, as dlt and Dagster wrap a driver's error."""
    try:
        try:
            raise inner
        except BaseException as error:
            raise RuntimeError("Pipeline execution failed at `step=load`") from error
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("driver_says", "kind"),
    [
        ('Could not write file "/d/w.duckdb.wal": No space left on device', DISK_FULL),
        ('could not extend file "base/1/2": No space left on device', DISK_FULL),
        ("(1114, \"The table '#sql-1' is full\")", DISK_FULL),
        ("[Errno 30] Read-only file system: '/d/w.duckdb.lock'", READ_ONLY),
        ("permission denied for database analytics", NO_PRIVILEGE),
        ("(1044, \"Access denied for user 'loader'@'%' to database 'audience'\")", NO_PRIVILEGE),
        ("(1142, \"CREATE command denied to user 'loader'@'localhost' for table 'peoples'\")", NO_PRIVILEGE),
        ("server closed the connection unexpectedly", CONNECTION_LOST),
        ("(2013, 'Lost connection to MySQL server during query')", CONNECTION_LOST),
        ("(2006, 'MySQL server has gone away')", CONNECTION_LOST),
    ],
)
def test_the_drivers_words_name_the_failure(driver_says: str, kind: str) -> None:
    fault = warehouse_fault(_wrapped(OSError(driver_says)))
    assert fault is not None and (fault.kind, fault.reason) == (kind, driver_says)


def test_other_failures_are_not_the_warehouses() -> None:
    assert warehouse_fault(_wrapped(ValueError("a record without its key"))) is None
    assert warehouse_failure(_wrapped(KeyError("x")), "duckdb", "the DuckDB file /d", None) is None


def test_one_line_without_the_password() -> None:
    error = _wrapped(
        OSError("connection to loader:s3cret@db failed: server closed the connection unexpectedly")
    )
    line = warehouse_failure(error, "postgres", "postgres at db:5432/analytics", "s3cret")
    assert line is not None and "\n" not in line and "s3cret" not in line
    assert line.startswith(
        "the connection to the warehouse was lost during the load: postgres at db:5432/analytics ("
    )
    assert "DESTINATION__POSTGRES__CREDENTIALS" in line
