"""Shared fixtures: a sandbox serving both APIs over loopback, and a warehouse in a fresh DuckDB file."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics_assets.sandbox import Sandbox, SandboxConfig

SMALL = SandboxConfig(
    seed=7,
    people=250,  # three pages of /people/all: 100, 100 and a short last page of 50
    segments=3,
    members_per_segment=120,  # two pages per segment: 100 and 20
    surveys=4,
    responses=230,
)


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox with small data; a test may pass its own SandboxConfig with `indirect` parametrization."""
    config = getattr(request, "param", SMALL)
    with Sandbox(config, port=0) as sb:
        yield sb


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DuckDB warehouse and dlt data folder of this test's own."""
    path = tmp_path / "warehouse" / "analytics.duckdb"
    monkeypatch.setenv("ANALYTICS_DESTINATION", "duckdb")
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(path))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    return path


@pytest.fixture
def configured(sandbox: Sandbox, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Both sources pointed at the sandbox, loading into the test's warehouse."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    return sandbox


def query(path: Path, sql: str) -> list[tuple]:
    """Rows of a query against the DuckDB warehouse (read-only, so nothing is left locked)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()
