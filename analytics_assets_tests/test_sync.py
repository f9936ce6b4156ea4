"""Incremental syncs keep the warehouse equal to the APIs while reading as little as they can."""

import shutil
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from analytics_assets.reading.feedback.source import PAGE_CONCURRENCY as FEEDBACK_PAGE_CONCURRENCY
from analytics_assets_tests.conftest import SMALL, Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

# table -> (key fields on the wire, key columns in the warehouse)
KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "audience.schemas": (("name",), ("name",)),
    "audience.peoples": (("id",), ("id",)),
    "audience.accounts": (("accountId",), ("account_id",)),
    "audience.account_tags": (("tag",), ("tag",)),
    "audience.segments": (("id",), ("id",)),
    "audience.fields": (("name",), ("name",)),
    "feedback.surveys": (("id",), ("id",)),
    "feedback.action_classes": (("id",), ("id",)),
    "feedback.attribute_classes": (("id",), ("id",)),
    "feedback.identified_peoples": (("id",), ("id",)),
    "feedback.responses": (("id",), ("id",)),
    "feedback.webhooks": (("id",), ("id",)),
}
PEOPLE = "/audience/v1/people/all"
RESPONSES = "/feedback/v1/management/responses"
MANY_RESPONSES = replace(SMALL, responses=2000)


def assert_warehouse_equals_api(warehouse: Warehouse, sandbox: Sandbox) -> None:
    """Every table holds exactly the API's keys, and the fields that changes touch hold the API's values."""
    for table, (fields, columns) in KEYS.items():
        resource = table.split(".")[1]
        expected = {tuple(str(r[f]) for f in fields) for r in sandbox.data.records(resource)}
        loaded = {
            tuple(str(v) for v in row) for row in warehouse.query(f"select {', '.join(columns)} from {table}")
        }
        assert loaded == expected, f"{table}: missing {expected - loaded}, extra {loaded - expected}"
    memberships = {(str(s), str(p)) for s, p in sandbox.data.memberships()}
    loaded = {
        (str(s), str(p)) for s, p in warehouse.query("select segment_id, id from audience.segment_people")
    }
    assert loaded == memberships, (
        f"segment_people: missing {memberships - loaded}, extra {loaded - memberships}"
    )

    people = {r["id"]: (r["lastName"], r["updatedAt"][:19]) for r in sandbox.data.records("peoples")}
    rows = warehouse.query("select id, last_name, cast(updated_at as varchar) from audience.peoples")
    assert {i: (name, str(ts).replace(" ", "T")[:19]) for i, name, ts in rows} == people
    responses = {r["id"]: r["finished"] for r in sandbox.data.records("responses")}
    assert dict(warehouse.query("select id, finished from feedback.responses")) == responses


def change_script(sandbox: Sandbox, recent_responses: list[Any]) -> None:
    """The changes of a day at the source."""
    data = sandbox.data
    data.update_people(10)
    data.add_people(10)
    data.delete_people(3)
    data.add_responses(5)
    data.update_responses(recent_responses[:3])
    segment = next(iter(data.records("segments")))["id"]
    data.remove_memberships(segment, 5)
    data.add_memberships(segment, 5)
    data.delete_record("webhooks", next(iter(data.records("webhooks")))["id"])


def requests_by_endpoint(sandbox: Sandbox) -> Counter[str]:
    counts: Counter[str] = Counter()
    for r in sandbox.requests():
        path = r["path"]
        counts["segment_people" if "/segments/" in path else path.rsplit("/", 1)[-1]] += 1
    return counts


@pytest.mark.parametrize("sandbox", [MANY_RESPONSES], indirect=True)
def test_a_nightly_sync_after_a_day_of_changes_equals_the_api_and_reads_little_even_without_local_state(
    configured: Sandbox, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    recent = configured.data.add_responses(20)  # answered in the last days, already loaded tonight
    assert materialize().success
    first = requests_by_endpoint(configured)

    # A new machine, a wiped disk: dlt's local state is gone, and the cursors come back from the warehouse.
    shutil.rmtree(warehouse.env["DLT_DATA_DIR"])
    change_script(configured, recent)
    configured.clear_requests()
    assert materialize().success
    second = requests_by_endpoint(configured)

    assert_warehouse_equals_api(warehouse, configured)
    # 2,020 responses are 21 pages (plus, pages being read side by side, at most one window past the
    # end); a nightly sync reads the first page and stops at the look-back window.
    assert 21 <= first["responses"] <= 21 + FEEDBACK_PAGE_CONCURRENCY - 1
    assert second["responses"] == 1
    # Audience endpoints have no filter: deletions are only seen by reading the whole list.
    assert second["all"] == first["all"] == 3
    with capsys.disabled():
        print(f"\nrequests, first sync: {sum(first.values())} {dict(first)}")
        print(f"requests, nightly sync: {sum(second.values())} {dict(second)}")


def test_unchanged_people_are_not_rewritten(configured: Sandbox, warehouse: Warehouse) -> None:
    assert materialize("audience/peoples").success
    changed = set(configured.data.update_people(7))
    assert materialize("audience/peoples").success
    loads = warehouse.query("select _dlt_load_id, count(*) from audience.peoples group by 1 order by 1")
    assert [count for _, count in loads] == [SMALL.people - 7, 7]
    newest = loads[-1][0]
    rewritten = {
        r[0] for r in warehouse.query(f"select id from audience.peoples where _dlt_load_id = '{newest}'")
    }
    assert rewritten == changed


def test_a_failed_endpoint_advances_no_cursor(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a look-back window, a cursor that advanced in the failed run would skip these responses.
    monkeypatch.setenv("SOURCES__FEEDBACK__RESPONSES_LOOKBACK_HOURS", "0")
    cursors = ("audience/peoples", "feedback/responses")  # the resources with a cursor
    assert materialize(*cursors).success
    new_responses = set(configured.data.add_responses(5))
    updated = set(configured.data.update_people(4))
    # Both cursor resources fail after their first pages were read: the last page of people answers 404,
    # and so does the second page of every response list (a full scan reads them all).
    configured.inject_fault(PEOPLE, "status", status=404, query={"offset": "198"})
    configured.inject_fault(RESPONSES, "status", status=404, query={"skip": "99"})
    full_scan = {"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["feedback"]}}}}
    failed = materialize(*cursors, raise_on_error=False, run_config=full_scan)
    assert not failed.success
    assert not new_responses & {r[0] for r in warehouse.query("select id from feedback.responses")}
    names = {r["id"]: r["lastName"] for r in configured.data.records("peoples") if r["id"] in updated}
    loaded = dict(warehouse.query("select id, last_name from audience.peoples"))
    assert all(loaded[i] != names[i] for i in updated), "the failed endpoint wrote none of its changes"

    assert materialize(*cursors).success  # a nightly run: the cursors are where the last good run left them
    assert new_responses <= {r[0] for r in warehouse.query("select id from feedback.responses")}
    for table in ("audience.peoples", "feedback.responses"):
        assert_warehouse_equals_api_table(warehouse, configured, table)
    names = {r["id"]: r["lastName"] for r in configured.data.records("peoples")}
    assert dict(warehouse.query("select id, last_name from audience.peoples")) == names  # the updates too


def test_an_old_response_updated_waits_for_the_reconciliation(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    configured.data.add_responses(3)
    assert materialize("feedback/responses").success
    old = list(configured.data.records("responses"))[-1]["id"]  # the oldest: far outside the window
    configured.data.update_responses([old])
    doomed = list(configured.data.records("responses"))[-2]["id"]
    configured.data.delete_record("responses", doomed)

    assert materialize("feedback/responses").success
    finished = dict(warehouse.query("select id, finished from feedback.responses"))
    assert finished[old] is False and doomed in finished  # a nightly sync reads only its window

    reconciled = materialize(
        "feedback/responses",
        run_config={"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["feedback"]}}}},
    )
    assert reconciled.success
    finished = dict(warehouse.query("select id, finished from feedback.responses"))
    assert finished[old] is True and doomed not in finished
    event = reconciled.get_asset_materialization_events()[0]
    assert event.materialization.metadata["rows_deleted"].value == 1


@on_every_warehouse
def test_a_row_lost_from_the_warehouse_comes_back(configured: Sandbox, warehouse: Warehouse) -> None:
    """Offset paging can skip a person while the API changes; the cursor would keep it out: a sync repairs it."""
    assert materialize("audience/peoples").success
    lost = warehouse.query("select id from audience.peoples limit 1")[0][0]
    # Simulate the skip: the row is gone from the warehouse while the API still serves it, unchanged.
    placeholder = "?" if warehouse.destination == "duckdb" else "%s"
    warehouse.execute(f"delete from audience.peoples where id = {placeholder}", lost)
    assert warehouse.query(f"select count(*) from audience.peoples where id = '{lost}'")[0][0] == 0
    assert materialize("audience/peoples").success
    assert warehouse.query(f"select count(*) from audience.peoples where id = '{lost}'")[0][0] == 1
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")


def assert_warehouse_equals_api_table(warehouse: Warehouse, sandbox: Sandbox, table: str) -> None:
    fields, columns = KEYS[table]
    expected = {tuple(str(r[f]) for f in fields) for r in sandbox.data.records(table.split(".")[1])}
    loaded = {
        tuple(str(v) for v in row) for row in warehouse.query(f"select {', '.join(columns)} from {table}")
    }
    assert loaded == expected


def test_a_full_refresh_reloads_from_scratch(configured: Sandbox, warehouse: Warehouse) -> None:
    feedback = [t for t in KEYS if t.startswith("feedback.")]
    assert materialize(*(t.replace(".", "/") for t in feedback)).success
    configured.data.delete_record("webhooks", next(iter(configured.data.records("webhooks")))["id"])
    configured.clear_requests()
    result = materialize(job="feedback_full_refresh")
    assert result.success
    assert requests_by_endpoint(configured)["responses"] == 3  # every page again
    for table in feedback:
        assert_warehouse_equals_api_table(warehouse, configured, table)
    loads = warehouse.query("select count(distinct _dlt_load_id) from feedback.responses")
    assert loads[0][0] == 1  # dropped and loaded again, not merged into the old rows


def test_an_endpoint_with_nothing_yet_loads_as_empty(configured: Sandbox, warehouse: Warehouse) -> None:
    configured.data.truncate("webhooks", 0)
    result = materialize("feedback/webhooks")
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == 0
    configured.data.truncate("webhooks", None)
    assert materialize("feedback/webhooks").success
    assert_warehouse_equals_api_table(warehouse, configured, "feedback.webhooks")
