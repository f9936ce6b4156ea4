"""Runs of one API take turns (`analytics_assets/locks.py`), through the real `dagster` CLI on one instance."""

import os
import re
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from analytics_assets_tests.cli import INSTANCES, dagster_home, start_materialize
from analytics_assets_tests.conftest import Warehouse
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
        i for i, output in enumerate(outputs) if f"Waiting for the audience API: run {ids[1 - i]}" in output
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
