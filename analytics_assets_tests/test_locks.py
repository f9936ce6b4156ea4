"""Runs of one API take turns (`analytics_assets/loading/locks.py`), through the real `dagster` CLI on one instance."""

import os
import re
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from analytics_assets_tests.cli import INSTANCES, dagster_home, start_materialize
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_sync import assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # two dagster CLI runs at once

PEOPLE = "/audience/v1/people/all"
RUN_START = re.compile(r"__ASSET_JOB - ([0-9a-f-]{36}) - \d+ - RUN_START")


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    """After a failed assertion: the run and its step processes (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_id(log: str) -> str:
    match = RUN_START.search(log)
    assert match, log[-3000:]
    return match.group(1)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("instance", INSTANCES)
def test_two_live_runs_of_one_api_take_turns(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path, instance: str
) -> None:
    # The first run to reach the people's second page waits 20 s for it, holding the API's lock: without
    # the lock, the other run would read all its pages in between.
    configured.inject_fault(PEOPLE, "latency", delay=20, query={"offset": "99"})
    with ExitStack() as stack:
        home = dagster_home(instance, tmp_path, stack)
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        runs = [start_materialize("group:audience", home, log) for log in logs]
        for process in runs:
            stack.callback(kill_if_running, process)
        for process, log in zip(runs, logs, strict=True):
            assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    outputs = [log.read_text() for log in logs]
    ids = [run_id(output) for output in outputs]

    # One run said, in its log, that it waited and for which run.
    waited = [
        i
        for i, output in enumerate(outputs)
        if f"Waiting for the audience API's lock (the loads and checks of one API take turns): run {ids[1 - i]}"
        in output
    ]
    assert waited, "neither run logged that it waited for the other"
    line = next(x for x in outputs[waited[0]].splitlines() if "Waiting for the audience API" in x)
    print(f"\n{instance}: {line[line.index('Waiting') :]}")

    # The people pages came in two whole passes, one run after the other, never interleaved.
    offsets = [r["query"].get("offset") for r in configured.requests(path=PEOPLE)]
    assert offsets == ["0", "99", "198"] * 2  # pages overlap by one record
    for table in ("audience.peoples", "audience.segments", "audience.accounts"):
        assert_warehouse_equals_api_table(warehouse, configured, table)
    memberships = warehouse.query("select segment_id, id from audience.segment_people")
    assert sorted((str(s), str(p)) for s, p in memberships) == sorted(
        (str(s), str(p)) for s, p in configured.data.memberships()
    )
    assert warehouse.query("select count(*) - count(distinct id) from audience.peoples") == [(0,)]


SEGMENTS = "/audience/v1/segments"
CHECK_STEP = """
import fcntl, sys, time
api, warehouse = open(sys.argv[1], "a+"), open(sys.argv[2], "a+")
fcntl.flock(api, fcntl.LOCK_EX)  # a feedback check step: its API's lock first ...
api.seek(0); api.truncate(); api.write("feedback-checks-run"); api.flush()
print("holding", flush=True)
while True:  # the sync's first step takes the warehouse: from then on this step waits for it
    try:
        fcntl.flock(warehouse, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        break
    fcntl.flock(warehouse, fcntl.LOCK_UN)
    time.sleep(0.02)
fcntl.flock(warehouse, fcntl.LOCK_EX)  # ... then the warehouse's, waiting for it as long as it takes
print("checked", flush=True)
"""


@pytest.mark.timeout(600)
def test_a_sync_never_holds_the_warehouse_while_it_waits_for_an_api(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pair a schedule and a sensor start together: a sync of every asset whose `/segments` fails (so
    the members read ahead for it are never written) and a feedback run whose check step holds the
    feedback API's lock while it waits for the warehouse (here a process doing exactly what that step
    does, to meet the sync at the one moment that matters). The sync must let go of the warehouse before
    it waits for the feedback API: before, both waited for good."""
    monkeypatch.setenv("SOURCES__AUDIENCE__RETRY_BACKOFF_FACTOR", "0.05")
    configured.inject_fault(SEGMENTS, "status", status=500, times=1000)
    assert warehouse.path is not None
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        home = dagster_home("embedded", tmp_path, stack)
        locks = Path(home["DAGSTER_HOME"]) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        checks = subprocess.Popen(
            [sys.executable, "-c", CHECK_STEP, str(locks / "feedback.lock"), f"{warehouse.path}.lock"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        stack.callback(kill_if_running, checks)  # type: ignore[arg-type]
        assert checks.stdout is not None and checks.stdout.readline().strip() == "holding"
        sync = start_materialize("*", home, tmp_path / "sync.log")
        stack.callback(kill_if_running, sync)
        # The check step gets the warehouse once the sync's audience step is done, and lets go of both.
        assert checks.wait(timeout=180) == 0, "the check step never got the warehouse"
        assert checks.stdout.read().strip() == "checked"
        assert sync.wait(timeout=300) != 0, "the sync fails: /segments answered 500"
    output = (tmp_path / "sync.log").read_text()
    assert "audience/segments failed" in output
    assert "Not reading feedback ahead: another run holds the feedback API's lock." in output
    assert "Gave up waiting" not in output
    for table in ("feedback.responses", "feedback.surveys", "audience.peoples", "audience.fields"):
        assert_warehouse_equals_api_table(warehouse, configured, table)


HOLD_THE_FILE = (
    "import duckdb, sys, time; connection = duckdb.connect(sys.argv[1]);"
    " print('open', flush=True); time.sleep(120)"
)


def test_a_duckdb_file_held_by_another_process_is_named_and_nothing_is_requested(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook or BI tool with the file open: the run waits within its bound, then says which process
    holds the file, having asked the API for nothing."""
    assert warehouse.path is not None
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("ANALYTICS_LOCK_TIMEOUT_SECONDS", "2")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_FILE, str(warehouse.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = materialize("audience/fields", raise_on_error=False)
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert f"is held by another process, process {holder.pid} (" in message
    assert "Waited 2 s (ANALYTICS_LOCK_TIMEOUT_SECONDS); nothing was requested from the APIs" in message
    assert configured.requests() == []
    assert materialize("audience/fields").success  # closed: the next run loads at once
