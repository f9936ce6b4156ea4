"""Column descriptions in the Dagster UI: each API's documented fields (`reading/<api>/columns.py`) attached to
the column schema dlt reports for a materialization (`dagster/column_schema`)."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import TableColumn, TableSchema
from dlt.common.normalizers.naming import NamingConvention

from analytics_assets.reading.naming import field_column

COLUMN_SCHEMA = "dagster/column_schema"
"""The metadata entry of a table's columns (what the UI's Columns tab shows)."""


def with_descriptions(
    schema: TableSchema, descriptions: Mapping[str, str], naming: NamingConvention
) -> TableSchema:
    """`schema` with the description of every documented column.

    Args:
        schema: The column schema of one table, as dlt's schema gives it.
        descriptions: What each field means, by its name on the wire (`firstName`; a nested object's
            field with dots: `companyInfo.domain`).
        naming: The naming convention that named the table's columns (`first_name`, `company_info__domain`).
    """
    by_column = {field_column(field.split("."), naming): text for field, text in descriptions.items()}
    return TableSchema(
        columns=[
            TableColumn(
                name=column.name,
                type=column.type,
                description=by_column.get(column.name, column.description),
                constraints=column.constraints,
                tags=column.tags,
            )
            for column in schema.columns
        ],
        constraints=schema.constraints,
    )
