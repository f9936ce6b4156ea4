"""History mode (`ANALYTICS_HISTORY`): every version kept, the current view equal to the API."""

from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance

from analytics_assets.loading.tables import TableColumns
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.history import HISTORY_SETTING, HistorySettingError, history_tables
from analytics_assets.watching.checks.core import CheckContext
from analytics_assets.watching.checks.table import one_active_version, primary_key_unique
from analytics_assets_tests.conftest import Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_checks import execute
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

# On PostgreSQL too (`@on_every_warehouse`): what runs SQL that differs there: dlt's scd2 merge (a person
# updated twice), the sweep closing versions (a person deleted), the current view dropped before a
# refresh (switching out of history). The rest is the same SQL on any warehouse: DuckDB only.

PEOPLE_HISTORY = "audience.peoples,audience.segment_people,feedback.responses"
FULL_SCAN = {"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["feedback"]}}}}


@pytest.fixture
def history(configured: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv(HISTORY_SETTING, PEOPLE_HISTORY)
    return configured


def versions(warehouse: Warehouse, table: str, where: str) -> list[tuple[Any, ...]]:
    """(valid_from, valid_to, _dlt_load_id) of the versions of one record, oldest first."""
    return warehouse.query(
        f"select _dlt_valid_from, _dlt_valid_to, _dlt_load_id from {table} where {where}"
        " order by _dlt_valid_from nulls first"
    )


def metadata(result: Any, key: str) -> dict[str, Any]:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def people_ids(warehouse: Warehouse, table: str) -> set[str]:
    return {r[0] for r in warehouse.query(f"select id from {table}")}


@on_every_warehouse
def test_a_person_updated_twice_keeps_three_versions(history: Sandbox, warehouse: Warehouse) -> None:
    assert materialize("audience/peoples").success
    person, untouched = [r["id"] for r in history.data.records("peoples")][:2]
    history.data.update_people([person])
    assert materialize("audience/peoples").success
    history.data.update_people([person])
    third = materialize("audience/peoples")
    assert third.success

    rows = versions(warehouse, "audience.peoples", f"id = '{person}'")
    assert len(rows) == 3
    (from1, to1, _), (from2, to2, _), (from3, to3, _) = rows
    assert to1 == from2 and to2 == from3 and to3 is None  # closed at the syncs that replaced them
    assert from1 < from2 < from3
    api = history.data.record("peoples", person)
    assert api is not None
    current = warehouse.query(
        f"select last_name, lead_score from audience.peoples_current where id = '{person}'"
    )
    assert current == [(api["lastName"], api["leadScore"])]
    # The cursor skipped the untouched person as unchanged twice: still its first, active version.
    [(_, valid_to, load_id)] = versions(warehouse, "audience.peoples", f"id = '{untouched}'")
    assert valid_to is None and load_id == rows[0][2]
    # The current view is the mirror: exactly the API's people, one row each.
    assert people_ids(warehouse, "audience.peoples_current") == {
        r["id"] for r in history.data.records("peoples")
    }
    facts = metadata(third, "audience/peoples")
    assert facts["history"] is True
    assert facts["active_rows"] == facts["dagster/row_count"] == history.data.count("peoples")
    assert facts["versions"] == facts["active_rows"] + 2


def test_a_membership_removed_then_added_back(history: Sandbox, warehouse: Warehouse) -> None:
    selection = ("audience/segments", "audience/segment_people")
    assert materialize(*selection).success
    segment = next(iter(history.data.records("segments")))["id"]
    person = history.data.segment_members(segment)[0]
    assert history.data.remove_memberships(segment, [person]) == [person]
    removed = materialize(*selection)
    assert removed.success
    assert metadata(removed, "audience/segment_people")["rows_closed"] == 1
    assert history.data.add_memberships(segment, [person]) == [person]
    assert materialize(*selection).success

    rows = versions(warehouse, "audience.segment_people", f"segment_id = {segment} and id = '{person}'")
    assert len(rows) == 2
    (_, closed_at, _), (reopened_at, active, _) = rows
    assert closed_at is not None and active is None and reopened_at > closed_at
    current = {
        (int(s), str(p))
        for s, p in warehouse.query("select segment_id, id from audience.segment_people_current")
    }
    assert current == {(int(s), str(p)) for s, p in history.data.memberships()}


@on_every_warehouse
def test_a_deleted_person_is_closed_not_deleted(history: Sandbox, warehouse: Warehouse) -> None:
    assert materialize("audience/peoples").success
    [gone] = history.data.delete_people(1)
    result = materialize("audience/peoples")
    assert result.success
    [(_, closed_at, _)] = versions(warehouse, "audience.peoples", f"id = '{gone}'")
    assert closed_at is not None
    assert gone not in people_ids(warehouse, "audience.peoples_current")
    facts = metadata(result, "audience/peoples")
    assert facts["rows_closed"] == 1 and facts["rows_deleted"] == 0
    assert facts["versions"] == facts["active_rows"] + 1


def test_a_nightly_window_closes_nothing_outside_it(history: Sandbox, warehouse: Warehouse) -> None:
    """Responses: a nightly sync reads a window; what it did not read stays active until a full scan."""
    history.data.add_responses(3)
    assert materialize("feedback/responses").success
    ids = [r["id"] for r in history.data.records("responses")]
    recent, old, doomed = ids[0], ids[-1], ids[-2]
    history.data.update_responses([recent])
    history.data.delete_record("responses", doomed)
    assert materialize("feedback/responses").success
    assert len(versions(warehouse, "feedback.responses", f"id = '{recent}'")) == 2
    assert versions(warehouse, "feedback.responses", f"id = '{old}'")[0][1] is None
    assert versions(warehouse, "feedback.responses", f"id = '{doomed}'")[0][1] is None  # outside the window

    reconciled = materialize("feedback/responses", run_config=FULL_SCAN)
    assert reconciled.success
    [(_, closed_at, _)] = versions(warehouse, "feedback.responses", f"id = '{doomed}'")
    assert closed_at is not None
    assert (
        len(versions(warehouse, "feedback.responses", f"id = '{recent}'")) == 2
    )  # read again: no new version
    assert people_ids(warehouse, "feedback.responses_current") == {
        r["id"] for r in history.data.records("responses")
    }


@on_every_warehouse
def test_switching_a_table_into_and_out_of_history(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert materialize("audience/peoples").success  # a mirror
    monkeypatch.setenv(HISTORY_SETTING, "audience.peoples")
    [person] = configured.data.update_people(1)
    assert materialize("audience/peoples").success
    # The mirror's rows became active versions opened at no known time; the change is versioned.
    rows = versions(warehouse, "audience.peoples", f"id = '{person}'")
    assert [(f is None, t is None) for f, t, _ in rows] == [(True, False), (False, True)]
    assert warehouse.query("select count(*) from audience.peoples where _dlt_valid_from is null")[0][0] == (
        configured.data.count("peoples")
    )

    monkeypatch.delenv(HISTORY_SETTING)
    refused = materialize("audience/peoples", raise_on_error=False)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "refresh: true" in str(failure.step_failure_data.error) and HISTORY_SETTING in str(
        failure.step_failure_data.error
    )
    refresh = {"ops": {"analytics_load": {"config": {"refresh": True, "apis": ["audience"]}}}}
    assert materialize("audience/peoples", run_config=refresh).success
    columns = {
        r[0]
        for r in warehouse.query(
            "select column_name from information_schema.columns where table_schema = 'audience' and table_name = 'peoples'"
        )
    }
    assert "_dlt_valid_to" not in columns
    assert people_ids(warehouse, "audience.peoples") == {r["id"] for r in configured.data.records("peoples")}
    assert not warehouse.query(
        "select 1 from information_schema.tables where table_schema = 'audience' and table_name = 'peoples_current'"
    )


def test_an_unknown_table_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HISTORY_SETTING, "audience.peoples, audience.people")
    with pytest.raises(
        HistorySettingError, match=f"{HISTORY_SETTING} lists audience.people,.*audience.peoples"
    ):
        history_tables()
    monkeypatch.setenv(HISTORY_SETTING, " audience.peoples ,feedback.responses,")
    assert history_tables() == {"audience.peoples", "feedback.responses"}
    monkeypatch.delenv(HISTORY_SETTING)
    assert history_tables() == frozenset()


def test_a_key_served_twice_opens_one_version_and_the_checks_judge_current_rows(
    history: Sandbox, warehouse: Warehouse
) -> None:
    assert materialize("audience/peoples").success
    [person] = history.data.update_people(1)
    first = history.data.record("peoples", person)
    assert first is not None
    history.data.add_raw_record("peoples", {**first, "lastName": "Twice"})  # the same id, other content
    result = materialize("audience/peoples")
    assert result.success
    assert metadata(result, "audience/peoples")["keys_served_twice"] == 1
    rows = warehouse.query(
        f"select last_name from audience.peoples where id = '{person}' and _dlt_valid_to is null"
    )
    assert rows == [(first["lastName"],)]  # the first served, as the mirror keeps

    def evaluate(check: Any) -> Any:
        warehouse_resource = WarehouseResource()  # its settings from the environment, as in a run
        pipeline = warehouse_resource.pipeline("audience_history_checks", "audience")
        with pipeline.sql_client() as sql:
            context = CheckContext(
                sql,
                DagsterInstance.ephemeral(),
                "no-run",
                AssetKey(["audience", "peoples"]),
                warehouse_resource,
                TableColumns(pipeline, "audience"),
            )
            return check.evaluate(context)

    # Two versions of one id in the table: the key checks judge the active ones.
    assert evaluate(primary_key_unique(("id",))).passed
    assert evaluate(one_active_version(("id",))).passed
    execute(warehouse, f"update audience.peoples set _dlt_valid_to = null where id = '{person}'")
    broken = evaluate(one_active_version(("id",)))
    assert not broken.passed and broken.metadata["keys"] == [person]
    assert broken.metadata["keys_with_two_active_versions"] == 1
