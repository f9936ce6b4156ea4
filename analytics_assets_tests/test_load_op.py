"""The one load op (`analytics_assets/loading/assets.py`) and the locks it shares with its reading threads."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, instance_for_test

from analytics_assets.loading.locks import Release, RunHolds
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_sync import assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox


def test_the_holders_of_one_run_share_a_lock_and_the_last_one_releases_it(tmp_path: Path) -> None:
    path = tmp_path / "api.lock"

    def acquire() -> Release | None:
        handle = open(path, "a+")  # noqa: SIM115 (closed by the release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle.close

    run_1, run_2 = RunHolds(), RunHolds()  # each run's own (the warehouse resource's copy for the run)
    step = run_1.hold("api x", acquire)
    ahead = run_1.hold("api x", acquire)  # a reading thread of the op joins: no second flock of its own
    assert step is not None and ahead is not None
    assert run_2.hold("api x", acquire) is None  # another run is refused
    step()
    step()  # a release lets go once
    assert run_2.hold("api x", acquire) is None  # the reading thread still holds it
    ahead()
    other = run_2.hold("api x", acquire)
    assert other is not None
    other()


def test_a_runs_holds_are_let_go_when_the_run_ends(tmp_path: Path) -> None:
    path = tmp_path / "api.lock"
    run = RunHolds()
    handle = open(path, "a+")  # noqa: SIM115 (closed by the release)
    assert run.hold("api x", lambda: (fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB), handle.close)[1])
    run.close()  # the warehouse resource's teardown: a hold nobody let go goes with the run
    probe = open(path, "a+")  # noqa: SIM115
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises BlockingIOError otherwise
    probe.close()


def _messages(instance: DagsterInstance) -> list[str]:
    records = instance.get_run_records(limit=1)
    if not records:
        return []
    return [e.user_message for e in instance.all_logs(records[0].dagster_run.run_id)]


def _wait_for(instance: DagsterInstance, text: str, run: threading.Thread) -> None:
    for _ in range(1200):
        if any(text in m for m in _messages(instance)):
            return
        assert run.is_alive(), f"the run ended before logging {text!r}"
        time.sleep(0.1)
    pytest.fail(f"no {text!r} in the run's log")


ASSETS = ("audience/segments", "audience/segment_people", "feedback/surveys", "feedback/responses")
"""A run of both APIs and a child."""


@pytest.mark.slow  # a whole run against the sandbox
@pytest.mark.timeout(600)
def test_the_load_op_takes_both_api_locks_in_order_before_any_request(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    """The op holds the audience API's lock and waits (bounded) for the feedback one another run holds,
    the order of `locks.py`; it requests nothing of either API until it holds both, then loads everything
    exactly."""
    results: list[ExecuteInProcessResult] = []
    with instance_for_test() as instance:
        lock = Path(instance.root_directory) / "locks" / "feedback.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        run = threading.Thread(target=lambda: results.append(materialize(*ASSETS, instance=instance)))
        with open(lock, "a+") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another run's feedback load
            run.start()
            _wait_for(instance, "Waiting for the feedback API", run)
            assert configured.requests(api="feedback") == [] and configured.requests(api="audience") == []
        run.join(timeout=300)
        assert results and results[0].success
    for table in ("audience.segments", "feedback.surveys", "feedback.responses"):
        assert_warehouse_equals_api_table(warehouse, configured, table)
    members = {(str(s), str(p)) for s, p in configured.data.memberships()}
    assert {
        (str(s), str(p)) for s, p in warehouse.query("select segment_id, id from audience.segment_people")
    } == members
