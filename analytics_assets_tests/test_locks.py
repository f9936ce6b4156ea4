"""Runs of one API take turns (`analytics_assets/locks.py`), through the real `dagster` CLI on one instance."""

import os
import re
import signal
import subprocess
import sys
import time
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


RESPONSES = "/feedback/v1/management/responses"
SEGMENTS = "/audience/v1/segments"


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("instance", "warehouse"), [("embedded", "duckdb"), ("postgres", "postgres")], indirect=["warehouse"]
)
def test_a_sync_and_a_feedback_run_never_wait_on_each_other(
    configured: Sandbox,
    warehouse: Warehouse,
    tmp_path: Path,
    instance: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pair a schedule and a sensor start together: a feedback run reading a slow responses page,
    and a sync of every asset whose `/segments` fails, so that the members read ahead for it are never
    written. Neither may hold a lock the other waits for while it waits itself (`locks.py`)."""
    for api in ("AUDIENCE", "FEEDBACK"):
        monkeypatch.setenv(f"SOURCES__{api}__RETRY_BACKOFF_FACTOR", "0.05")
    configured.inject_fault(RESPONSES, "latency", delay=15, query={"skip": "0"})
    configured.inject_fault(SEGMENTS, "status", status=500, times=1000)
    with ExitStack() as stack:
        home = dagster_home(instance, tmp_path, stack)
        feedback = start_materialize("group:feedback", home, tmp_path / "feedback.log")
        stack.callback(kill_if_running, feedback)
        deadline = time.monotonic() + 120
        while not configured.requests(path=RESPONSES) and time.monotonic() < deadline:
            time.sleep(0.2)  # the feedback run holds its API's lock from its first request on
        assert configured.requests(path=RESPONSES), (tmp_path / "feedback.log").read_text()[-3000:]
        sync = start_materialize("*", home, tmp_path / "sync.log")
        stack.callback(kill_if_running, sync)
        assert feedback.wait(timeout=300) == 0, (tmp_path / "feedback.log").read_text()[-3000:]
        assert sync.wait(timeout=300) != 0  # /segments failed: the run fails, naming it
    output = (tmp_path / "sync.log").read_text()
    assert "audience/segments failed" in output
    assert "Gave up waiting" not in output + (tmp_path / "feedback.log").read_text()
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
