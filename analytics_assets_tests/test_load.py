"""Loading the sandbox into a real warehouse through the Dagster assets: DuckDB, and PostgreSQL and MariaDB
when configured."""

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, TableSchema

from analytics_assets_tests.conftest import SMALL, Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_checks import EXPECTED_CHECKS, evaluations, failed, metadata
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

# resource -> (its key on the wire, its key column in the warehouse)
KEYS = {
    ("audience", "schemas"): ("name", "name"),
    ("audience", "peoples"): ("id", "id"),
    ("audience", "accounts"): ("accountId", "account_id"),
    ("audience", "account_tags"): ("tag", "tag"),
    ("audience", "segments"): ("id", "id"),
    ("audience", "fields"): ("name", "name"),
    ("feedback", "surveys"): ("id", "id"),
    ("feedback", "action_classes"): ("id", "id"),
    ("feedback", "attribute_classes"): ("id", "id"),
    ("feedback", "identified_peoples"): ("id", "id"),
    ("feedback", "responses"): ("id", "id"),
    ("feedback", "webhooks"): ("id", "id"),
}


def assert_warehouse_equals_sandbox(warehouse: Warehouse, sandbox: Sandbox) -> None:
    for (dataset, resource), (api_key, column) in KEYS.items():
        expected = sorted(str(r[api_key]) for r in sandbox.data.records(resource))
        loaded = sorted(str(r[0]) for r in warehouse.query(f"select {column} from {dataset}.{resource}"))
        assert loaded == expected, f"{dataset}.{resource}"
    memberships = sorted((str(s), p) for s, p in sandbox.data.memberships())
    loaded = sorted(
        (str(s), p) for s, p in warehouse.query("select segment_id, id from audience.segment_people")
    )
    assert loaded == memberships


def assert_every_check_passed(result: ExecuteInProcessResult) -> None:
    assert len(evaluations(result)) == sum(len(names) for names in EXPECTED_CHECKS.values())
    assert failed(result) == {}


def columns(warehouse: Warehouse, table: str) -> dict[str, str]:
    rows = warehouse.query(
        "select column_name, data_type from information_schema.columns"
        f" where table_schema = '{warehouse.dataset('audience')}' and table_name = '{table}'"
    )
    return {name: data_type.upper() for name, data_type in rows}


@on_every_warehouse
def test_a_full_materialization_loads_exactly_the_sandbox_data_and_a_second_changes_nothing(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    """One materialization of every asset, asserted on from every side; then a second one, which leaves
    the same rows. Every check of both runs passes on the default data (the second compares with the
    first: row counts, columns)."""
    with DagsterInstance.ephemeral() as instance:
        result = materialize(instance=instance)
        assert result.success
        assert_every_check_passed(result)
        again = materialize(instance=instance)
        assert again.success
        assert_every_check_passed(again)
    drop = metadata(evaluations(again)[("audience/peoples", "row_count_drop")])
    assert (drop["previous_row_count"], drop["row_count"]) == (SMALL.people, SMALL.people)
    assert metadata(evaluations(again)[("audience/peoples", "email_format")])["valid_share"] == 1.0

    assert warehouse.tables("audience") == {
        "schemas",
        "peoples",
        "accounts",
        "account_tags",
        "segments",
        "fields",
        "segment_people",
    }
    assert warehouse.tables("feedback") == {
        "surveys",
        "action_classes",
        "attribute_classes",
        "identified_peoples",
        "responses",
        "webhooks",
    }
    assert_warehouse_equals_sandbox(warehouse, configured)
    assert warehouse.query("select count(*) from audience.peoples") == [(SMALL.people,)]

    # segment_people: one row per membership; a person in several segments is several rows.
    rows = warehouse.query(
        "select segment_id, count(*), count(distinct id) from audience.segment_people group by 1"
    )
    assert {r[0] for r in rows} == {r["id"] for r in configured.data.records("segments")}
    assert all(count == distinct == SMALL.members_per_segment for _, count, distinct in rows)
    shared = warehouse.query(
        "select count(*) from (select id from audience.segment_people group by id having count(*) > 1) as s"
    )
    assert shared[0][0] > 0

    # Columns follow the seed schemas; credentials in the account payload never reach the warehouse.
    peoples = columns(warehouse, "peoples")
    assert {"id", "email", "first_name", "last_name", "created_at", "updated_at"} <= set(peoples)
    assert peoples["created_at"].startswith(("TIMESTAMP", "DATETIME"))  # MariaDB: DATETIME
    accounts = columns(warehouse, "accounts")
    assert accounts["account_id"] in {"BIGINT", "INTEGER", "DOUBLE", "DOUBLE PRECISION", "DECIMAL", "NUMERIC"}
    assert not {"api_key", "write_key"} & set(accounts)

    # The UI's column schema describes the seed's documented fields.
    described = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        schema = materialization.metadata["dagster/column_schema"].value
        assert isinstance(schema, TableSchema)
        for column in schema.columns:
            described[f"{materialization.asset_key.path[-1]}.{column.name}"] = column.description
    for column in ("id", "email", "first_name", "last_name", "created_at", "updated_at"):
        assert described[f"peoples.{column}"], column
    for column in ("account_id", "name", "created_at"):
        assert described[f"accounts.{column}"], column
    assert described["peoples.first_name"] == "The person's first name."
    assert described["peoples._dlt_id"] is None  # dlt's own columns stay as dlt describes them

    # The loader file format keeps `''` apart from NULL (Postgres `COPY ... CSV` would not).
    empty = sum(1 for r in configured.data.records("peoples") if r["tags"] == "")
    assert empty > 0
    assert warehouse.query("select count(*) from audience.peoples where tags = ''") == [(empty,)]
    assert warehouse.query("select count(*) from audience.peoples where tags is null") == [(0,)]

    # After the second run: the same rows, none twice.
    assert_warehouse_equals_sandbox(warehouse, configured)
    assert warehouse.query("select count(*) - count(distinct id) from audience.peoples") == [(0,)]


@on_every_warehouse
def test_materializing_only_segment_people_loads_only_that_table(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    result = materialize("audience/segment_people")
    assert result.success
    assert warehouse.tables("audience") == {"segment_people"}
    assert warehouse.tables("feedback") == set()
    memberships = sorted((str(s), p) for s, p in configured.data.memberships())
    loaded = sorted(
        (str(s), p) for s, p in warehouse.query("select segment_id, id from audience.segment_people")
    )
    assert loaded == memberships
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {k.to_user_string() for k in materialized} == {"audience/segment_people"}


def test_requests_carry_the_key_in_the_header_and_page_by_100(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    assert materialize().success
    requests = configured.requests()
    assert requests
    for r in requests:
        header = "api_key" if r["api"] == "audience" else "x-api-key"
        expected_key = configured.audience_key if r["api"] == "audience" else configured.feedback_key
        assert r["headers"].get(header) == expected_key
        assert expected_key not in str(r["query"])
        assert "key" not in " ".join(r["query"]).lower()

    people_pages = [r["query"] for r in requests if r["path"].endswith("/people/all")]
    # 250 people, pages overlapping by one record: the short page at 198 ends it.
    assert [p["offset"] for p in people_pages] == ["0", "99", "198"]
    assert all(p["limit"] == "100" for p in people_pages)
    response_pages = [r["query"] for r in requests if r["path"].endswith("/responses")]
    assert [p["skip"] for p in response_pages] == [
        "0",
        "99",
        "198",
    ]  # 230 responses, pages overlapping by one
    for segment in configured.data.records("segments"):
        pages = [r["query"] for r in requests if r["path"].endswith(f"/segments/{segment['id']}/people")]
        assert [p["offset"] for p in pages] == ["0", "99"]  # 120 members


def test_a_full_last_page_costs_one_more_request(sandbox_298: Sandbox, warehouse: Warehouse) -> None:
    assert materialize("audience/peoples").success
    offsets = [r["query"]["offset"] for r in sandbox_298.requests() if r["path"].endswith("/people/all")]
    # No total: after the full page 198-297, only a page holding its last record alone says it was the last.
    assert offsets == ["0", "99", "198", "297"]
    assert warehouse.query("select count(*) from audience.peoples") == [(298,)]


@pytest.fixture
def sandbox_298(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch):
    from dataclasses import replace

    with Sandbox(replace(SMALL, people=298), port=0) as sb:
        for name, value in sb.env().items():
            monkeypatch.setenv(name, value)
        yield sb


def test_a_run_without_a_key_names_the_variable(configured: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCES__FEEDBACK__API_KEY")
    # One op loads both APIs: an API without its settings fails only its own endpoints.
    result = materialize("feedback/webhooks", "audience/accounts", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "SOURCES__FEEDBACK__API_KEY" in message
    assert "feedback API: feedback/webhooks failed; the other 1 endpoint(s)" in message
    assert configured.requests(api="feedback") == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"audience/accounts"}
