"""`analytics_assets.reading.arrow_pages` on its own: the columns a first Arrow page creates are those dlt's row
normalizer creates for the same first values, read from the schema's public settings (a real dlt
normalize into a DuckDB file; no server, no Dagster). The whole-run comparison of both paths is
`analytics_assets_tests/test_arrow_pages.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.schema.utils import autodetect_sc_type

from analytics_assets.reading.arrow_pages import _PY_TYPES, _row_path_column, _type_detections

ROW = {"id": 7, "name": "Ada", "score": 1.5, "active": True, "created_at": "2024-01-02T03:04:05Z", "src": "x"}


def row_path_schema(tmp_path: Path, schema: dlt.Schema) -> dlt.Schema:
    """The schema after dlt's row normalizer read `ROW` into a new table `t`."""
    pipeline = dlt.pipeline(
        "arrow_pages_unit",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
    )
    pipeline.extract([dict(ROW)], table_name="t", schema=schema)
    pipeline.normalize()
    return pipeline.default_schema


def arrow_path_column(schema: dlt.Schema, name: str, value: Any) -> dict[str, Any]:
    """The column `arrow_pages` creates for a new column whose first value is `value`."""
    data_type = (
        schema.get_preferred_type(name)
        or autodetect_sc_type(_type_detections(schema), type(value), value)
        or _PY_TYPES[type(value)]
    )
    return dict(_row_path_column(schema, name, data_type))


@pytest.mark.parametrize(
    "hints",
    [
        {},  # dlt's own: `_dlt_id` unique, the row key; `_dlt_load_id` not null
        {"not_null": ["name"], "partition": ["re:^sc"], "unique": ["src"]},  # a schema's own, exact and regex
    ],
)
def test_a_first_arrow_page_creates_the_columns_the_row_normalizer_does(
    tmp_path: Path, hints: dict[str, list[str]]
) -> None:
    schema = dlt.Schema("arrow_pages_unit")
    if hints:
        schema.merge_hints(hints)  # type: ignore[arg-type]
    normalized = row_path_schema(tmp_path, schema)
    columns = normalized.tables["t"]["columns"]
    values = {**ROW, "_dlt_load_id": "1.2", "_dlt_id": "abc"}
    assert list(columns) == [*ROW, "_dlt_load_id", "_dlt_id"]
    for name, column in columns.items():
        assert arrow_path_column(normalized, name, values[name]) == column, name
    assert columns["created_at"]["data_type"] == "timestamp"  # dlt's type detection, from the settings
    if hints:
        assert columns["name"]["nullable"] is False and columns["score"].get("partition") is True
