"""`analytics_assets.reading.naming`: warehouse names come from the schema dlt loads with, not from a hard-coded
`snake_case`. Real dlt extractions and a real DuckDB file under dlt's non-default naming conventions
(`direct` keeps every name as it is, `sql_cs_v1` keeps the API's case); no server, no Dagster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.normalizers.naming import direct, snake_case, sql_cs_v1

from analytics_assets.reading.history import first_of_each_key
from analytics_assets.reading.naming import configured_naming, key_fields, nested_tables
from analytics_assets.reading.sweep import MissingKeyError, ServedKeys, SweepResult
from analytics_assets_tests.unit.test_sweep import sweep

ACCOUNTS = [{"accountId": i, "name": f"Account {i}", "tags": [{"tag": f"t-{i}"}]} for i in range(1, 4)]


def test_the_key_field_is_the_one_the_naming_convention_turns_into_the_key_column() -> None:
    record = {"accountId": 1, "name": "x"}
    assert key_fields(record, ["account_id"], snake_case.NamingConvention()) == ["accountId"]
    assert key_fields(record, ["accountId"], sql_cs_v1.NamingConvention()) == ["accountId"]
    # Under `direct`, no field becomes `account_id`: it is looked up as it is, and is not there.
    assert key_fields(record, ["account_id"], direct.NamingConvention()) == ["account_id"]


def test_outside_a_pipeline_the_configured_convention_is_dlts_default() -> None:
    assert type(configured_naming()).__module__ == snake_case.__name__


def extract(tmp_path: Path, naming: str, records: list[dict[str, Any]], step: Any) -> None:
    """Extract `records` through `step` with a schema of the given naming convention, as a load does."""
    pipeline = dlt.pipeline(pipeline_name=f"naming_{naming}", pipelines_dir=str(tmp_path / naming))
    resource = dlt.resource(records, name="accounts").add_map(step)
    pipeline.extract(resource, schema=dlt.Schema("accounts", normalizers={"names": naming}))


def causes(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


def test_the_served_key_step_asks_the_schema_it_extracts_with(tmp_path: Path) -> None:
    served = ServedKeys()
    extract(tmp_path, "snake_case", ACCOUNTS, served.step("accounts", ["account_id"]))
    assert len(served.sorted_hashes("accounts")) == 3

    served = ServedKeys()
    extract(tmp_path, "sql_cs_v1", ACCOUNTS, served.step("accounts", ["accountId"]))
    assert len(served.sorted_hashes("accounts")) == 3

    # Under `direct` the warehouse column is `accountId`: asked for `account_id`, the step finds no
    # field that becomes it, where a hard-coded snake_case would have found `accountId`.
    with pytest.raises(Exception) as raised:
        extract(tmp_path, "direct", ACCOUNTS, ServedKeys().step("accounts", ["account_id"]))
    missing = next(e for e in causes(raised.value) if isinstance(e, MissingKeyError))
    assert missing.fields == ["account_id"]


def test_history_keeps_the_first_record_of_a_key_named_by_the_schema(tmp_path: Path) -> None:
    kept: list[dict[str, Any]] = []
    keep = first_of_each_key(["accountId"])

    def step(record: dict[str, Any]) -> dict[str, Any]:
        if keep(record):
            kept.append(record)
        return record

    extract(tmp_path, "sql_cs_v1", [*ACCOUNTS, {**ACCOUNTS[0], "name": "again"}], step)
    assert [r["name"] for r in kept] == ["Account 1", "Account 2", "Account 3"]


def test_sweep_names_the_table_its_key_and_its_nested_rows_as_the_schema_does(tmp_path: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="naming_sweep",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="audience",
    )
    schema = dlt.Schema("audience", normalizers={"names": "sql_cs_v1"})
    resource = dlt.resource(ACCOUNTS, name="accounts", primary_key="accountId", write_disposition="merge")
    pipeline.run(resource, schema=schema)
    assert pipeline.default_schema.naming.name() == "sql_cs_v1"
    assert nested_tables(pipeline, "accounts") == ["accounts__tags"]

    served = ServedKeys()
    observe = served.step("accounts", ["accountId"])
    observe(ACCOUNTS[1])
    assert sweep(pipeline, "accounts", ["accountId"], served) == SweepResult(served=1, deleted=2, missing=0)
    with pipeline.sql_client() as client:
        assert client.execute_sql('select "accountId" from accounts') == [(2,)]
        assert client.execute_sql("select tag from accounts__tags") == [("t-2",)]
