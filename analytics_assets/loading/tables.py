"""The warehouse's tables as dlt knows them: which exist and with which columns (dlt's schema stored in
the warehouse, read through dlt's dataset layer), and how many rows one holds.

Each endpoint loads on a pipeline of its own, `<api>_<resource>` (`endpoint_pipeline_name`), whose schema,
of the same name, is the one that knows that table; a check op reads the schemas of the tables it looks
at this way, whatever pipeline it runs on. Never `information_schema`: not every destination has one
(SQLite, ClickHouse's differs), and dlt's schema knows the answer, in dlt's data types.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from analytics_assets.reading.statements import Target


def endpoint_pipeline_name(api: str, resource: str) -> str:
    """The pipeline (and dlt schema) an endpoint is loaded with."""
    return f"{api}_{resource}"


class TableColumns:
    """`table -> {column: dlt data type}` of one API's dataset, from the schema dlt stored in the warehouse
    with the table's last load; empty when dlt never created the table. Read once per table."""

    def __init__(self, pipeline: dlt.Pipeline, api: str) -> None:
        self._pipeline = pipeline
        self._api = api
        self._known: dict[str, dict[str, str]] = {}

    def __call__(self, table: str) -> dict[str, str]:
        if table not in self._known:
            # From the warehouse, not the pipeline's local copy: the load op's own pipeline holds the
            # schema it extracted with, whose columns get their data types only in the stored one.
            name = endpoint_pipeline_name(self._api, table)
            schema = dlt.dataset(self._pipeline.destination, self._pipeline.dataset_name, schema=name).schema
            stored = schema.tables.get(schema.naming.normalize_table_identifier(table)) or {}
            columns = stored.get("columns") or {}
            # A column without a data type is a hint dlt has not created in the warehouse yet.
            self._known[table] = {
                name: str(column["data_type"]) for name, column in columns.items() if column.get("data_type")
            }
        return self._known[table]


def row_count(pipeline: dlt.Pipeline, table: str) -> int:
    """Rows of a table of the pipeline's dataset; 0 before dlt created it."""
    with pipeline.sql_client() as client:
        target = Target.of(client)
        try:
            rows: Any = client.execute_sql(target.sql(f"select count(*) from {target.table(table)}"))
        except DatabaseUndefinedRelation:
            return 0  # the endpoint has served nothing yet, so dlt created no table
    assert rows, "count(*) returns a row"
    return int(rows[0][0])
