"""SQL written once, sent to any dlt destination: each statement the project sends to the warehouse is
written in one dialect (`WRITTEN_IN`, DuckDB's) and transpiled by sqlglot into the destination's.

Plain dlt and sqlglot, no Dagster: the sweep and history mode (`reading/`) and the checks and row counts
(`watching/`, `loading/`) render their statements here. A `Target` knows three things about a destination,
all from dlt: its sqlglot dialect (`capabilities.sqlglot_dialect`), how its SQL client spells a table
(`make_qualified_table_name_path`: catalog, dataset, table, case folded) and a column (its
`casefold_identifier`). Names come from dlt's schema (the caller's naming convention) and are quoted by
sqlglot in the destination's dialect, as the SQL client would quote them (`test_statements.py` holds the
two together on the engines tested here). Values travel as parameters (`?` in a template), never as text.

A statement is built as DuckDB SQL, its names rendered by `Target.table` and `Target.column` (quoted in
`WRITTEN_IN`), so that sqlglot parses it whole; `Target.sql` renders it in the destination's dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

WRITTEN_IN = "duckdb"
"""The dialect every template is written in."""

DRIVER_MARKER = "%s"
"""How a parameter is written for dlt's SQL clients: each translates `%s` for its driver (DuckDB `?`,
SQLAlchemy `:named`, psycopg2 as is)."""


@dataclass(frozen=True)
class Target:
    """What SQL a destination speaks and how its SQL client names a table.

    Attributes:
        dialect: The sqlglot dialect of the destination.
        casefold: How the destination folds an identifier (Snowflake: upper case; most: as is).
        path: A table's name -> its path as the SQL client spells it, unquoted (`[dataset, table]`, or
            `[catalog, dataset, table]` where the destination has catalogs).
    """

    dialect: str
    casefold: Callable[[str], str]
    path: Callable[[str], Sequence[str]]

    @classmethod
    def of(cls, client: Any) -> Target:
        """The target of a dlt SQL client (`pipeline.sql_client()`; it need not be open)."""
        capabilities = client.capabilities
        return cls(
            dialect=str(capabilities.sqlglot_dialect or WRITTEN_IN),
            casefold=capabilities.casefold_identifier,
            path=lambda table: list(client.make_qualified_table_name_path(table, quote=False)),
        )

    def table(self, name: str) -> str:
        """A table of the client's dataset, qualified and quoted in `WRITTEN_IN`, for a template."""
        parts = [exp.to_identifier(part, quoted=True) for part in self.path(name)]
        return ".".join(part.sql(WRITTEN_IN) for part in parts)

    def column(self, name: str, alias: str | None = None) -> str:
        """A column (of the table `alias`, if given), quoted in `WRITTEN_IN`, for a template."""
        quoted = exp.to_identifier(self.casefold(name), quoted=True).sql(WRITTEN_IN)
        return f"{alias}.{quoted}" if alias else quoted

    def sql(self, statement: str) -> str:
        """A statement of `WRITTEN_IN` (names from `table` and `column`, parameters `?`) in the
        destination's SQL.

        Raises:
            sqlglot.errors.ParseError: The statement is not SQL of `WRITTEN_IN` (a bug in a template).
        """
        tree = sqlglot.parse_one(statement, read=WRITTEN_IN)
        # A parameter is no SQL of any dialect: `?` in the template, dlt's `%s` in what is sent.
        tree = tree.transform(
            lambda node: exp.Var(this=DRIVER_MARKER) if isinstance(node, exp.Placeholder) else node
        )
        return tree.sql(dialect=self.dialect)


def destination_column(name: str, capabilities: Any) -> str:
    """A column as the destination's own SQL quotes it, for a fragment dlt pastes into its statements as
    it is (history mode's `destination_scope`), given the destination's dlt capabilities."""
    dialect = str(capabilities.sqlglot_dialect or WRITTEN_IN)
    return exp.to_identifier(capabilities.casefold_identifier(name), quoted=True).sql(dialect)
