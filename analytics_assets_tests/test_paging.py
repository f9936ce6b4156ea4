"""A list is read to its end, or not swept, whole Dagster runs: `/segments` as the seed describes it
(one page, the whole list whatever the offset) and paged as the public connector reads it, and an API
that answers only its first page whatever the offset. The rules themselves are proven over a model of
every way an API serves a list in `unit/test_paging_model.py`; these show what only a whole run shows."""

from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

MANY_SEGMENTS = SandboxConfig(seed=7, people=40, segments=150, members_per_segment=3)
SEGMENTS = "/audience/v1/segments"
SELECTION = ("audience/segments", "audience/segment_people")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


def segment_ids(warehouse: Warehouse) -> set[int]:
    return {int(r[0]) for r in warehouse.query("select id from audience.segments")}


def memberships(warehouse: Warehouse) -> set[tuple[int, str]]:
    return {(int(s), p) for s, p in warehouse.query("select segment_id, id from audience.segment_people")}


def served_memberships(sandbox: Sandbox) -> set[tuple[int, str]]:
    return {(int(s), p) for s, p in sandbox.data.memberships()}


def asset_metadata(result: ExecuteInProcessResult, resource: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == resource]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def warnings(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == 30 and "deleted nothing" in entry.user_message  # logging.WARNING
    ]


@pytest.mark.parametrize("sandbox", [MANY_SEGMENTS], indirect=True)
@pytest.mark.parametrize(
    ("mode", "offsets"),
    # Pages overlap by one record (the next is asked from the last record served). The seed's one page
    # answers 150 records for 100: the next offset is 149, and its answer, the same 150 again, is asked
    # once more (a page served twice by accident is no rule): the API ignores the offset and the limit,
    # and those 150 were the whole list.
    [("pages", ["0", "99"]), ("default", ["0", "149", "149"])],
)
def test_150_segments_load_exactly_whether_the_api_pages_them_or_not(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance, mode: str, offsets: list[str]
) -> None:
    configured.set_paging("segments", mode)
    result = materialize(*SELECTION, instance=instance)
    assert result.success
    assert segment_ids(warehouse) == {r["id"] for r in configured.data.records("segments")}
    assert len(segment_ids(warehouse)) == 150
    assert memberships(warehouse) == served_memberships(configured)
    assert len(memberships(warehouse)) == 150 * 3
    # Per read of the list (the segments op and the members op each read it once): the second page is
    # the short one, or the repeat of an API that ignores the parameters, asked once more.
    assert [r["query"].get("offset") for r in configured.requests(path=SEGMENTS)] == offsets * 2
    assert asset_metadata(result, "segments")["keys_served_twice"] == 0  # a repeated page is not loaded
    assert warnings(instance, result) == []


@pytest.mark.parametrize("sandbox", [MANY_SEGMENTS], indirect=True)
def test_a_sync_that_cannot_see_the_end_of_a_list_deletes_nothing(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    assert materialize(*SELECTION, instance=instance).success  # the whole list: 150 segments
    loaded_segments, loaded_members = segment_ids(warehouse), memberships(warehouse)
    removed = next(iter(configured.data.records("segments")))["id"]
    configured.data.delete_segment(removed)
    configured.set_paging("segments", "ignore_first_page")  # 100 segments, whatever the offset

    result = materialize(*SELECTION, instance=instance)
    assert result.success
    # The removed segment and the 50 segments never served stay, with their members: nothing swept.
    assert segment_ids(warehouse) == loaded_segments
    assert memberships(warehouse) == loaded_members
    assert asset_metadata(result, "segments")["rows_deleted"] == 0
    assert asset_metadata(result, "segment_people")["rows_deleted"] == 0
    said = warnings(instance, result)
    assert len(said) == 2, said  # segments, and segment_people (read from part of the segments)
    assert "at offset=99 answered the same records as the page before, asked twice (100 records)" in said[0]
    assert "ignores the paging parameters (limit, offset)" in said[0]
    assert any("its parent segments" in s for s in said)

    configured.set_paging("segments", "default")  # the seed's whole list: the removal is swept
    assert materialize(*SELECTION, instance=instance).success
    assert segment_ids(warehouse) == loaded_segments - {removed}
    assert memberships(warehouse) == served_memberships(configured)


@pytest.mark.parametrize("history", [False, True], ids=["merge", "history"])
def test_the_seeds_one_page_segments_are_swept_by_the_next_nightly(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, history: bool
) -> None:
    """`/segments` answered whole whatever the offset (the seed's form, the sandbox's default): removed
    memberships and the memberships of deleted people leave `segment_people` with the next nightly
    sync; in history mode their versions are closed, and the current view equals the API."""
    if history:
        monkeypatch.setenv("ANALYTICS_HISTORY", "audience.segment_people")
    with DagsterInstance.ephemeral() as instance:
        assert materialize(job="nightly_sync", instance=instance).success
        assert memberships(warehouse) == served_memberships(configured)
        segment = next(iter(configured.data.records("segments")))["id"]
        removed = configured.data.remove_memberships(segment, 5)
        gone = configured.data.delete_people(configured.data.segment_members(segment)[:2])
        left = {(segment, p) for p in removed} | {(s, p) for s, p in memberships(warehouse) if p in gone}
        configured.clear_requests()
        result = materialize(job="nightly_sync", instance=instance)
        assert result.success
        assert warnings(instance, result) == []

    table = "audience.segment_people_current" if history else "audience.segment_people"
    now = {(int(s), p) for s, p in warehouse.query(f"select segment_id, id from {table}")}
    assert now == served_memberships(configured)
    assert len(left) >= 7 and not left & now
    facts = asset_metadata(result, "segment_people")
    assert facts["rows_closed" if history else "rows_deleted"] >= 7
    if history:  # every version is kept: the removed ones closed
        closed = warehouse.query(
            "select count(*) from audience.segment_people where _dlt_valid_to is not null"
        )
        assert closed[0][0] == facts["rows_closed"]
    # One page of 3 segments per read of the list, answered again at the next offset and once more.
    offsets = [r["query"].get("offset") for r in configured.requests(path=SEGMENTS)]
    assert offsets == ["0", "2", "2"] * (len(offsets) // 3) and offsets
