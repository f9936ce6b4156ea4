"""Runs of one API take turns and no two runs wait on each other (the lock order of
`analytics_assets/loading/locks.py`), through the real `dagster` CLI on one instance."""

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest

from analytics_assets_tests.cli import (
    dagster_home,
    job_command,
    materialize_command,
    start,
    start_materialize,
)
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_sync import assert_warehouse_equals_api, assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # two dagster CLI runs at once

PEOPLE = "/audience/v1/people/all"
RESPONSES = "/feedback/v1/management/responses"
RUN_START = re.compile(r" - ([0-9a-f-]{36}) - \d+ - RUN_START")


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    """After a failed assertion: the run and its step processes (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_seconds(log: str) -> int:
    """Seconds from the run's start to its end, from the CLI's log lines (one-second stamps)."""
    stamps = [
        datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
        for line in log.splitlines()
        if re.search(r" - RUN_(START|SUCCESS|FAILURE) - ", line)
    ]
    return int((stamps[-1] - stamps[0]).total_seconds())


def run_id(log: str) -> str:
    match = RUN_START.search(log)
    assert match, log[-3000:]
    return match.group(1)


RUNS_TOGETHER = {
    "nightly": job_command("nightly_sync"),  # the nightly schedule
    "new_feedback": materialize_command("feedback/responses"),  # what `new_feedback_sensor` starts
    "refresh": job_command("audience_full_refresh"),  # a refresh started by hand
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("instance", "warehouse"),
    [("embedded", "duckdb"), ("postgres", "postgres"), ("embedded", "mysql")],
    indirect=["warehouse"],
)
def test_the_runs_schedules_and_sensors_start_together_take_turns_and_all_finish(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path, instance: str
) -> None:
    """The nightly sync, a `new_feedback_sensor` run and a refresh of the audience API, started at once
    through the real CLI on one instance: the nightly and the refresh both need the audience API, the
    nightly and the sensor's run both the feedback API, and all three the warehouse. Each finishes, the
    runs of one API one after the other, and the warehouse equals both APIs."""
    # The first run to reach the people's second page, or the responses' first, waits 10 s for it while
    # holding that API's lock: the others are live meanwhile, and meet the lock.
    configured.inject_fault(PEOPLE, "latency", delay=10, query={"offset": "99"})
    configured.inject_fault(RESPONSES, "latency", delay=10)
    with ExitStack() as stack:
        home = dagster_home(instance, tmp_path, stack)
        logs = {name: tmp_path / f"{name}.log" for name in RUNS_TOGETHER}
        runs = {name: start(command, home, logs[name]) for name, command in RUNS_TOGETHER.items()}
        for process in runs.values():
            stack.callback(kill_if_running, process)
        for name, process in runs.items():
            assert process.wait(timeout=600) == 0, f"{name}: " + logs[name].read_text()[-3000:]
    outputs = {name: log.read_text() for name, log in logs.items()}
    ids = {name: run_id(output) for name, output in outputs.items()}
    for output in outputs.values():
        assert "Gave up waiting" not in output
    print(f"\n{instance}: " + ", ".join(f"{name} {run_seconds(out)} s" for name, out in outputs.items()))

    # The nightly and the refresh took turns on the audience API, and the one that waited said for which run.
    waits = [
        line[line.index("Waiting") :]
        for name, other in (("nightly", "refresh"), ("refresh", "nightly"))
        for line in outputs[name].splitlines()
        if "Waiting for the audience API's lock" in line and ids[other] in line
    ]
    assert waits, "neither the nightly nor the refresh logged that it waited for the other"
    print(f"\n{instance}: {waits[0]}")
    # Each read of a list was whole, page after page, never interleaved with another run's read of it.
    for path, offset in ((PEOPLE, "offset"), (RESPONSES, "skip")):
        offsets = [int(r["query"].get(offset, 0)) for r in configured.requests(path=path)]
        starts = [i for i, value in enumerate(offsets) if value == 0]
        passes = [offsets[a:b] for a, b in zip(starts, [*starts[1:], len(offsets)], strict=True)]
        assert len(passes) >= 2 and all(p == sorted(set(p)) for p in passes), (path, offsets)
    assert_warehouse_equals_api(warehouse, configured)


SEGMENTS = "/audience/v1/segments"
CHECK_STEP = """
import fcntl, sys, time
api, warehouse = open(sys.argv[1], "a+"), open(sys.argv[2], "a+")
fcntl.flock(api, fcntl.LOCK_EX)  # a feedback check step: its API's lock first ...
api.seek(0); api.truncate(); api.write("feedback-checks-run"); api.flush()
print("holding", flush=True)
sys.stdin.readline()  # the sync holds the audience API's lock and waits for the feedback one
fcntl.flock(warehouse, fcntl.LOCK_EX)  # ... then the warehouse's, waiting for it as long as it takes
print("checked", flush=True)
"""


@pytest.mark.timeout(600)
def test_a_sync_never_holds_the_warehouse_while_it_waits_for_an_api(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pair a schedule and a sensor start together: a sync of every asset whose `/segments` fails (so
    the members read for it are never written) and a feedback run whose check step holds the feedback
    API's lock while it waits for the warehouse (here a process doing exactly what that step does, to
    meet the sync at the one moment that matters: while the sync holds the audience API's lock and waits
    for the feedback one). The sync takes the warehouse only after every API lock (`locks.py`): the
    check step gets it, lets go of both, and the sync goes on."""
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
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        stack.callback(kill_if_running, checks)  # type: ignore[arg-type]
        assert checks.stdout is not None and checks.stdout.readline().strip() == "holding"
        sync = start_materialize("*", home, tmp_path / "sync.log")
        stack.callback(kill_if_running, sync)
        for _ in range(1800):
            if "Waiting for the feedback API" in (tmp_path / "sync.log").read_text():
                break
            assert sync.poll() is None, (tmp_path / "sync.log").read_text()[-3000:]
            time.sleep(0.1)
        else:
            pytest.fail("the sync never waited for the feedback API's lock")
        assert checks.stdin is not None
        checks.stdin.write("go\n")
        checks.stdin.flush()
        # The check step gets the warehouse at once (the sync holds none yet), and lets go of both.
        assert checks.wait(timeout=180) == 0, "the check step never got the warehouse"
        assert checks.stdout.read().strip() == "checked"
        assert sync.wait(timeout=300) != 0, "the sync fails: /segments answered 500"
    output = (tmp_path / "sync.log").read_text()
    assert "audience API: audience/segments, audience/segment_people failed" in output
    assert "- audience/segment_people: audience API answered 500 on GET /audience/v1/segments" in output
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
