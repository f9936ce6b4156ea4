"""Warehouse names as dlt makes them: through the naming convention of the schema it loads with.

dlt turns a resource's name into a table name and the API's field names (camelCase) into column names
with its schema's naming convention: `snake_case` unless configured otherwise (`[schema] naming` in
`.dlt/config.toml`, e.g. `sql_cs_v1` keeps the API's case). Code that finds a key in a record, or names
a table or column in SQL, asks the schema here instead of assuming `snake_case`. What a stored table
holds that only its schema says (history mode's validity columns) is read here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.schema import Schema
from dlt.common.schema.utils import get_nested_tables
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable


def configured_naming() -> NamingConvention:
    """The naming convention a new dlt schema gets from the configuration (`snake_case` by default)."""
    return Schema("naming").naming


def extract_naming() -> NamingConvention:
    """The naming convention of the schema dlt is extracting with (the pipeline's, restored from the
    warehouse); outside an extraction, the configured one."""
    try:
        return dlt.current.source_schema().naming
    except CurrentSourceSchemaNotAvailable:
        return configured_naming()


def extract_field_naming() -> tuple[NamingConvention, bool]:
    """The naming convention dlt extracts with (`extract_naming`), and whether its relational normalizer
    breaks a field's name at the path separator (`a__b` as the field `b` of `a`, dlt's default; schemas
    migrated from older dlt versions do not), read from the schema's public dict form."""
    try:
        schema = dlt.current.source_schema()
    except CurrentSourceSchemaNotAvailable:
        return configured_naming(), True
    normalizers = schema.to_dict(bump_version=False).get("normalizers") or {}
    return schema.naming, normalizers.get("use_break_path_on_normalize", True) is not False


def pipeline_naming(pipeline: dlt.Pipeline) -> NamingConvention:
    """The naming convention of the pipeline's schema; the configured one before its first load."""
    if pipeline.default_schema_name is None:
        return configured_naming()
    return pipeline.default_schema.naming


def field_column(path: Sequence[str], naming: NamingConvention) -> str:
    """The column dlt flattens a field into under `naming`: `("companyInfo", "domain")` ->
    `company_info__domain` in `snake_case` (a top-level field: its own normalized name)."""
    return naming.make_path(*(naming.normalize_identifier(name) for name in path))


def key_fields(record: Mapping[str, Any], key_columns: Sequence[str], naming: NamingConvention) -> list[str]:
    """The fields of an API record that dlt loads into `key_columns` under `naming` (a column no field
    maps to is looked up under its own name)."""
    by_column = {naming.normalize_identifier(name): name for name in record}
    return [by_column.get(column, column) for column in key_columns]


def nested_tables(pipeline: dlt.Pipeline, table: str) -> list[str]:
    """The tables dlt made of the lists inside the records of `table`, at any depth, from its schema."""
    if pipeline.default_schema_name is None:
        return []
    return [t["name"] for t in get_nested_tables(pipeline.default_schema.tables, table, include_self=False)]


VALID_FROM, VALID_TO = "_dlt_valid_from", "_dlt_valid_to"
"""History mode's validity columns (dlt's scd2 defaults)."""


def stored_history(pipeline: dlt.Pipeline, table: str) -> bool:
    """Whether the warehouse's `table` keeps history (its schema, restored from the warehouse, has the
    validity columns)."""
    if pipeline.default_schema_name is None:  # nothing loaded yet
        return False
    schema = pipeline.default_schema
    columns = (schema.tables.get(schema.naming.normalize_table_identifier(table)) or {}).get("columns") or {}
    return any(c.get("x-valid-to") for c in columns.values())
