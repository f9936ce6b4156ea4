"""Checks that compare a table with what earlier materializations recorded in the Dagster instance.

`row_count_drop` compares the table's rows now with the previous run's `dagster/row_count`;
`schema_drift` compares the `dagster/column_schema` (from dlt's schema) of the two latest
materializations. Neither needs anything stored besides what the assets already emit.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckSeverity, EventLogRecord, TableSchema

from analytics_assets.watching.checks.core import Check, CheckContext, Outcome, metadata_value

VARIANT_MARKER = "__v_"
"""dlt names a column that received a value of another type `<column>__v_<type>` (a variant column)."""


def row_count_drop(severity: AssetCheckSeverity = AssetCheckSeverity.WARN) -> Check:
    """The table did not lose more than the warehouse's `max_row_drop` (`ANALYTICS_MAX_ROW_DROP`) of its
    rows since the previous run."""

    def evaluate(context: CheckContext) -> Outcome:
        limit = context.warehouse.max_row_drop_share()
        previous_record = context.previous_materialization()
        previous = metadata_value(previous_record, "dagster/row_count")
        rows = context.count()
        metadata: dict[str, Any] = {"row_count": rows, "max_drop": limit}
        if previous is None:
            return Outcome(True, "no earlier materialization with a row count to compare with", metadata)
        previous = int(previous)
        drop = (previous - rows) / previous if previous else 0.0
        metadata.update(previous_row_count=previous, drop=round(drop, 4))
        if previous_record is not None:
            metadata["previous_run_id"] = previous_record.run_id
        if drop > limit:
            return Outcome(
                False,
                f"{context.dataset}.{context.table} fell from {previous} to {rows} rows ({drop:.0%}, more than"
                f" {limit:.0%}). Compare with the API: a silently truncated endpoint, a changed filter or"
                " key scope, or real mass deletions. If they are real, the next run passes again.",
                metadata,
            )
        return Outcome(True, f"{previous} -> {rows} rows", metadata)

    return Check(
        name="row_count_drop",
        description=(
            "The table did not lose more than ANALYTICS_MAX_ROW_DROP (default 50%) of its rows since the"
            " previous materialization: catches a silently truncated endpoint."
        ),
        evaluate=evaluate,
        severity=severity,
    )


def _columns(record: EventLogRecord | None) -> dict[str, str] | None:
    schema = metadata_value(record, "dagster/column_schema")
    if not isinstance(schema, TableSchema):
        return None
    return {column.name: column.type for column in schema.columns}


def schema_drift() -> Check:
    """Reports columns the API added since the previous materialization (WARN: information)."""

    def evaluate(context: CheckContext) -> Outcome:
        records = context.history()
        now = _columns(records[0]) if records else None
        before = _columns(records[1]) if len(records) > 1 else None
        if now is None or before is None:
            return Outcome(True, "fewer than two materializations with a column schema to compare", {})
        added = sorted(set(now) - set(before))
        changed = {
            name: f"{before[name]} -> {now[name]}"
            for name in now
            if name in before and now[name] != before[name]
        }
        variants = [name for name in added if VARIANT_MARKER in name]
        metadata: dict[str, Any] = {
            "added_columns": added,
            "type_changes": changed,
            "variant_columns": variants,
        }
        if added or changed:
            return Outcome(
                False,
                f"The API changed the shape of {context.table}: new columns {added or 'none'}"
                + (
                    f"; values of another type than before went to variant columns {variants}"
                    if variants
                    else ""
                )
                + ". dlt loaded them; update the models that read this table if they should use them.",
                metadata,
            )
        return Outcome(True, "same columns as the previous materialization", metadata)

    return Check(
        name="schema_drift",
        description=(
            "Reports columns added since the previous materialization, and values that arrived with another"
            " type (dlt's variant columns `<column>__v_<type>`). Information, not an error: WARN."
        ),
        evaluate=evaluate,
        severity=AssetCheckSeverity.WARN,
    )
