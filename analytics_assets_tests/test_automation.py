"""What drives the syncs: schedules, sensors, the segment-members automation, and run concurrency."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    AssetKey,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    instance_for_test,
)

from analytics_assets.definitions import defs
from analytics_assets.watching.schedules import build_jobs, build_schedules
from analytics_assets.watching.sensors import new_feedback_sensor
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]


def test_the_nightly_schedule_runs_every_asset_at_two_with_tags() -> None:
    schedule = defs.resolve_schedule_def("nightly_sync_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 23, 2, 0, tzinfo=ZoneInfo("UTC"))
    )
    [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.tags["analytics/sync"] == "nightly"
    job = defs.resolve_job_def(schedule.job_name)
    assert set(job.asset_layer.executable_asset_keys) == set(defs.resolve_asset_graph().get_all_asset_keys())


def test_the_weekly_reconciliation_reads_everything() -> None:
    schedule = defs.resolve_schedule_def("weekly_reconciliation_schedule")
    assert schedule.cron_schedule == "0 3 * * 0"
    job = defs.resolve_job_def(schedule.job_name)
    assert job.run_config["ops"]["analytics_load"]["config"] == {
        "full_scan": True,
        "refresh": False,
        "apis": [],
    }
    assert job.tags["analytics/sync"] == "reconciliation"


def test_a_full_refresh_job_refreshes_only_its_api() -> None:
    for api in ("audience", "feedback"):
        job = defs.resolve_job_def(f"{api}_full_refresh")
        assert job.run_config["ops"]["analytics_load"]["config"] == {
            "full_scan": False,
            "refresh": True,
            "apis": [api],
        }


def test_the_schedule_time_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_SCHEDULE_TIMEZONE", "Europe/Paris")
    assets = list(defs.assets or [])
    schedules = {s.name: s for s in build_schedules(build_jobs(assets))}  # type: ignore[arg-type]
    assert schedules["nightly_sync_schedule"].execution_timezone == "Europe/Paris"
    assert "02:00 Europe/Paris" in (schedules["nightly_sync_schedule"].description or "")


def test_every_sensor_and_schedule_says_whether_it_is_on_by_default() -> None:
    for definition in [*(defs.schedules or []), *(defs.sensors or [])]:
        text = (definition.description or "").lower()
        assert "on by default" in text or "off by default" in text, definition.name
    assert defs.resolve_sensor_def("new_feedback_sensor").default_status.value == "STOPPED"


def test_the_new_feedback_sensor_requests_one_run_per_change(configured: Sandbox) -> None:
    configured.clear_requests()
    first = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(first, SensorResult) and len(first.run_requests or []) == 1
    cursor = first.cursor

    nothing = new_feedback_sensor(build_sensor_context(cursor=cursor))
    assert isinstance(nothing, SkipReason)

    configured.data.add_responses(1)
    changed = new_feedback_sensor(build_sensor_context(cursor=cursor))
    again = new_feedback_sensor(build_sensor_context(cursor=cursor))  # the same change seen twice
    assert isinstance(changed, SensorResult) and isinstance(again, SensorResult)
    [run] = changed.run_requests or []
    assert run.run_key == (again.run_requests or [])[0].run_key != first.run_requests[0].run_key  # type: ignore[index]
    assert run.tags["analytics/sync"] == "new-feedback"

    # One cheap request per tick, key in its header only.
    seen = configured.requests(api="feedback")
    assert len(seen) == 4
    assert all(r["query"] == {"limit": "1", "skip": "0"} for r in seen)
    assert all(r["headers"]["x-api-key"] == configured.feedback_key for r in seen)


def test_the_new_feedback_sensor_skips_clearly_on_a_wrong_key(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__FEEDBACK__API_KEY", "wrong-key-123456")
    result = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(result, SkipReason)
    assert "401" in (result.skip_message or "")
    assert "wrong-key-123456" not in (result.skip_message or "")


@pytest.mark.slow
def test_segment_people_follow_a_segments_materialization(configured: Sandbox, warehouse: Warehouse) -> None:
    with instance_for_test() as instance:
        assert materialize("audience/segment_people", instance=instance).success
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0  # members are as new as their segments

        assert materialize("audience/segments", instance=instance).success
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.get_requested_partitions(AssetKey(["audience", "segment_people"])) == {None}
        assert result.total_requested == 1


def test_no_op_waits_on_a_dagster_pool() -> None:
    """A killed run keeps its pool slot forever: runs of one API take turns on `api_lock` instead
    (test_locks.py), so no op may be in a pool."""
    job = defs.resolve_implicit_global_asset_job_def()
    assert {
        node.name: node.definition.pool for node in job.graph.node_dict.values() if node.definition.pool
    } == {}
