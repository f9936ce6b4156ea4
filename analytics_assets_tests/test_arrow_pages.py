"""Pages as Arrow tables (`arrow_pages.py`): the warehouse is the same as when every page goes as rows.

Each test loads the same sandbox data twice, into two warehouses of its own: once with every page as
rows (`SOURCES__AUDIENCE__ARROW_PAGES=false`), once with the defaults, and compares the tables
(columns, their order and types, every value but dlt's row and load ids) and dlt's schemas.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.utils import many_uniq_ids_base64

from analytics_assets.reading.arrow_pages import _dlt_ids
from analytics_assets_tests.conftest import Warehouse, make_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

ASSETS = ("audience/peoples", "audience/segments", "audience/segment_people")
TABLES = {"peoples": "id", "segment_people": "segment_id, id"}
DLT_IDS = ("_dlt_id", "_dlt_load_id")
PIPELINES = ("audience_peoples", "audience_segment_people")


class Twins:
    """Two warehouses loaded from one sandbox: `rows` with every page as rows, `arrow` with the defaults."""

    def __init__(self, tmp_path: Path, destination: str) -> None:
        self.tmp_path = tmp_path
        self.destination = destination
        self.stack = ExitStack()
        self.warehouses: dict[str, Warehouse] = {}
        self.formats: dict[str, dict[str, set[str]]] = {}
        """The file formats each warehouse's last load extracted into, per pipeline."""

    def __enter__(self) -> Twins:
        for name in ("rows", "arrow"):
            self.warehouses[name] = self.stack.enter_context(
                make_warehouse(self.destination, self.tmp_path / name)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def materialize(self, name: str, *keys: str) -> Any:
        with pytest.MonkeyPatch.context() as patch:
            for variable, value in self.warehouses[name].env.items():
                patch.setenv(variable, value)
            patch.setenv("SOURCES__AUDIENCE__ARROW_PAGES", "false" if name == "rows" else "true")
            result = materialize(*keys)
            assert result.success
            self.formats[name] = {pipeline: extracted_formats(pipeline) for pipeline in PIPELINES}
            return result

    def both(self, *keys: str) -> dict[str, Any]:
        return {name: self.materialize(name, *keys) for name in ("rows", "arrow")}


def extracted_formats(pipeline: str) -> set[str]:
    """The file formats dlt extracted the last load of `pipeline` into (`parquet` for Arrow pages)."""
    trace = dlt.attach(pipeline).last_trace  # dlt's folder: the one the process's first load chose
    assert trace is not None and trace.last_extract_info is not None
    return {
        job.split(".")[-1]
        for metrics in trace.last_extract_info.metrics.values()
        for job in metrics[0]["job_metrics"]
        if job.split(".")[0] in TABLES
    }


def columns(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query(
        "select table_name, ordinal_position, column_name, data_type, is_nullable"
        " from information_schema.columns where table_schema = 'audience'"
        " and table_name not like '\\_dlt%' escape '\\' order by 1, 2"
    )


def rows(warehouse: Warehouse, table: str) -> list[tuple[Any, ...]]:
    names = sorted(c for t, _, c, *_ in columns(warehouse) if t == table and c not in DLT_IDS)
    return warehouse.query(f"select {', '.join(names)} from audience.{table} order by {TABLES[table]}")


def stored_schema(warehouse: Warehouse, schema: str) -> dict[str, Any]:
    """dlt's newest stored schema of a pipeline, without its version fields."""
    [(text,)] = warehouse.query(
        f"select schema from audience._dlt_version where schema_name = '{schema}'"
        " order by inserted_at desc limit 1"
    )
    tables = json.loads(text)["tables"]
    return {name: table["columns"] for name, table in tables.items() if name in TABLES}


def assert_same_warehouse(twins: Twins, unordered: tuple[str, ...] = ()) -> None:
    """The same tables, columns (in the same order, but in `unordered` tables), types, values and dlt
    schemas in both warehouses."""
    rows_path, arrow_path = twins.warehouses["rows"], twins.warehouses["arrow"]

    def layout(warehouse: Warehouse) -> list[tuple[Any, ...]]:
        return sorted((t, 0 if t in unordered else n, *rest) for t, n, *rest in columns(warehouse))

    assert layout(arrow_path) == layout(rows_path)
    for table in TABLES:
        assert rows(arrow_path, table) == rows(rows_path, table), table
        assert arrow_path.query(f"select count(distinct _dlt_id) from audience.{table}") == arrow_path.query(
            f"select count(*) from audience.{table}"
        )
    for schema in ("audience_peoples", "audience_segment_people"):
        arrow_tables, row_tables = stored_schema(arrow_path, schema), stored_schema(rows_path, schema)
        differing = {
            (table, column): (arrow_tables[table].get(column), row_tables[table].get(column))
            for table in row_tables
            for column in {*row_tables[table], *arrow_tables.get(table, {})}
            if arrow_tables.get(table, {}).get(column) != row_tables[table].get(column)
        }
        assert differing == {}, f"{schema}: {differing}"


@pytest.fixture
def twins(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Twins]:
    with Twins(tmp_path, getattr(request, "param", "duckdb")) as pair:
        yield pair


def new_columns(result: Any, asset: str = "audience/peoples") -> list[str]:
    [materialization] = [
        m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == asset
    ]
    return list(materialization.materialization.metadata["new_columns"].value)


@pytest.mark.parametrize("twins", ["duckdb", "postgres"], indirect=True)
def test_arrow_pages_load_the_warehouse_rows_would(twins: Twins, configured_sandbox: Sandbox) -> None:
    # The first person has no last activity: the row path adds that column after its own.
    first = next(iter(configured_sandbox.data.records("peoples", limit=1)))["id"]
    configured_sandbox.data.patch_record("peoples", first, set_fields={"lastActivity": None})
    twins.both(*ASSETS)
    assert twins.formats == {
        "rows": {"audience_peoples": {"typed-jsonl"}, "audience_segment_people": {"typed-jsonl"}},
        "arrow": {"audience_peoples": {"parquet"}, "audience_segment_people": {"typed-jsonl"}},
    }
    assert_same_warehouse(twins)
    # A nightly sync: changed people pass the cursor, unchanged people are skipped.
    configured_sandbox.data.update_people(20)
    results = twins.both(*ASSETS)
    assert {name: new_columns(result) for name, result in results.items()} == {"rows": [], "arrow": []}
    assert twins.formats["arrow"]["audience_peoples"] == {"parquet"}
    assert_same_warehouse(twins)
    # A new field: its page goes as rows, whose normalizer reports the new column.
    configured_sandbox.data.patch_record("peoples", first, set_fields={"favoriteColor": "teal"})
    results = twins.both(*ASSETS)
    assert {name: new_columns(result) for name, result in results.items()} == {
        "rows": ["favorite_color"],
        "arrow": ["favorite_color"],
    }
    assert_same_warehouse(twins)


def test_drift_on_an_arrow_page_makes_the_variant_column_rows_would(
    twins: Twins, configured_sandbox: Sandbox
) -> None:
    twins.both(*ASSETS)
    people = [r["id"] for r in configured_sandbox.data.records("peoples")]
    # The second page's fifth person: the first page still goes as Arrow, the drift as rows.
    configured_sandbox.data.patch_record("peoples", people[104], set_fields={"leadScore": "high"})
    configured_sandbox.data.patch_record("peoples", people[107], set_fields={"favoriteColor": "teal"})
    results = twins.both(*ASSETS)
    for result in results.values():
        assert set(new_columns(result)) == {"lead_score__v_text", "favorite_color"}
    assert twins.warehouses["arrow"].query(
        "select id, lead_score__v_text from audience.peoples where lead_score__v_text is not null"
    ) == [(people[104], "high")]
    # Segments are read side by side: which one meets a new column first is a matter of timing.
    assert_same_warehouse(twins, unordered=("segment_people",))


@pytest.fixture
def configured_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Both sources pointed at the sandbox (each load picks its warehouse itself, see `Twins`)."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    return sandbox


@pytest.mark.parametrize("size", [10, 16, 11])
def test_the_row_ids_of_an_arrow_page_are_made_as_dlt_makes_them(size: int) -> None:
    ids = _dlt_ids(2_000, size).to_pylist()
    assert len(set(ids)) == 2_000
    assert {len(i) for i in ids} == {len(dlt_id) for dlt_id in many_uniq_ids_base64(10, size)}
    for row_id in ids:  # `size` bytes in standard base64, without its padding
        raw = base64.b64decode(row_id + "=" * (-len(row_id) % 4), validate=True)
        assert len(raw) == size
        assert base64.b64encode(raw).decode("ascii").rstrip("=") == row_id
