"""The README's command on each warehouse that runs here (DuckDB, PostgreSQL, MariaDB): `dg launch --job
nightly_sync` through the real CLI loads all 13 tables exactly with every check passing, and after
changes and deletions at the source the next run leaves the warehouse equal to the APIs again."""

from contextlib import ExitStack
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from analytics_assets_tests.cli import dagster_home, run_dg_job
from analytics_assets_tests.conftest import SMALL, Warehouse, on_every_warehouse
from analytics_assets_tests.test_checks import EXPECTED_CHECKS
from analytics_assets_tests.test_load import assert_warehouse_equals_sandbox
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # two CLI runs per warehouse

TABLES = 13


def check_results(home: Path) -> dict[tuple[str, str], bool]:
    """(asset, check) -> passed, of the newest run on the instance in `home`."""
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_records(limit=1)[0].dagster_run
        records = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        ).records
    results = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        assert event is not None
        evaluation = event.event_specific_data
        results[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation.passed  # type: ignore[union-attr]
    return results


def assert_every_check_passed(home: Path) -> None:
    results = check_results(home)
    assert set(results) == {(asset, name) for asset, names in EXPECTED_CHECKS.items() for name in names}
    assert [key for key, passed in results.items() if not passed] == []


@pytest.mark.timeout(900)
@on_every_warehouse
def test_the_nightly_sync_through_dg_launch_is_exact_and_stays_exact_after_changes_and_deletions(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        env = dagster_home("embedded", tmp_path, stack)
        home = Path(env["DAGSTER_HOME"])

        first = run_dg_job("nightly_sync", env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        counts = warehouse.row_counts()
        assert len(counts) == TABLES
        assert counts["audience.peoples"] == SMALL.people
        assert counts["audience.segment_people"] == SMALL.segments * SMALL.members_per_segment
        assert_warehouse_equals_sandbox(warehouse, configured)
        assert_every_check_passed(home)

        # A day at the source: people changed, added and deleted; a segment gone with its members,
        # memberships removed from another; responses changed.
        data = configured.data
        changed = data.update_people(10)
        added = data.add_people(5)
        deleted = data.delete_people(7)
        segments = sorted(s["id"] for s in data.records("segments"))
        data.delete_segment(segments[0])
        data.remove_memberships(segments[1], 4)
        data.update_responses(5)

        second = run_dg_job("nightly_sync", env)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert_warehouse_equals_sandbox(warehouse, configured)
        assert_every_check_passed(home)
        after = warehouse.row_counts()
        assert after["audience.peoples"] == SMALL.people + len(added) - len(deleted)
        assert after["audience.segments"] == counts["audience.segments"] - 1
        people = {row[0] for row in warehouse.query("select id from audience.peoples")}
        assert set(changed) - set(deleted) <= people and not set(deleted) & people
        print(
            f"\n{warehouse.destination}: first run {counts}; after {len(changed)} changed, {len(added)} added,"
            f" {len(deleted)} deleted people, a segment deleted and 4 memberships removed: {after}"
        )
