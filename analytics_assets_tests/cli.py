"""Runs through the real `dagster` CLI on a Dagster instance of the test's own (embedded or PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

from dagster import AssetKey, DagsterEventType, DagsterInstance

from analytics_assets_tests.test_e2e import REPO, instance_settings
from analytics_sandbox.demo import DG, dg_env

INSTANCES = ("embedded", "postgres")
"""`deploy/embedded/dagster.yaml` (SQLite under DAGSTER_HOME) and `deploy/dagster.yaml` (PostgreSQL)."""


def dagster_home(kind: str, tmp_path: Path, stack: ExitStack) -> dict[str, str]:
    """A fresh DAGSTER_HOME with the instance config of `kind` (a fresh database for PostgreSQL);
    the environment variables that select it."""
    home = tmp_path / f"home_{kind}"
    home.mkdir()
    env = {"DAGSTER_HOME": str(home), **instance_settings(kind, home, stack)}
    # Create its storage now: two CLI runs started at once on a brand-new instance would both try to.
    with patch.dict(os.environ, env):
        DagsterInstance.from_config(str(home)).dispose()
    return env


def materialize_command(select: str) -> list[str]:
    """`dagster asset materialize --select <select>` of the code location, as a command line."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "--select",
        select,
        "-m",
        "analytics_assets.definitions",
    ]


def job_command(job: str) -> list[str]:
    """`dagster job execute -j <job>` of the code location (what a schedule launches), as a command line."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "job",
        "execute",
        "-m",
        "analytics_assets.definitions",
        "-j",
        job,
    ]


def run_dg_job(job: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`dg launch --job <job>`, the README's command (`make demo` runs it for `nightly_sync`), to its end;
    its exit status and output. The rest of the environment is the test's, as in `run_materialize`."""
    return subprocess.run(
        [DG, "launch", "--job", job],
        cwd=REPO,
        env=dg_env({**os.environ, **env}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


WARNING = re.compile(r"Warning\b|\bWARNING\b|\bwarn(ing)?\b", re.IGNORECASE)
"""A warning in a command's output, however it was printed: a Python warning (`...py:12: BetaWarning:`),
a line logged at WARNING (dlt's `|[WARNING]|`, Dagster's `- WARNING -`), or a message that says so."""


def warnings_in(output: str) -> list[str]:
    """The lines of `output` that are, or start, a warning."""
    return [line for line in output.splitlines() if WARNING.search(line)]


def start_materialize(select: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`dagster asset materialize --select <select>` in a process group of its own, output into `log`."""
    return start(materialize_command(select), env, log)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A `dagster` command in a process group of its own, output into `log`.

    The rest of the environment (sources, warehouse) is the test's: `os.environ`, as fixtures set it.
    """
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so a test can kill it with all its step processes
        )


def run_materialize(
    select: str, env: dict[str, str], *extra: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`dagster asset materialize --select <select>` to its end; its exit status and output.

    The rest of the environment (sources, warehouse) is the test's: `os.environ`, as fixtures set it.
    """
    return subprocess.run(
        [*materialize_command(select), *extra],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_run_events(home: Path, kind: DagsterEventType) -> set[str]:
    """The asset keys of the events of one kind of the newest run on the instance in `home`, as
    `api/resource`."""
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_records(limit=1)[0].dagster_run
        records = instance.get_records_for_run(run.run_id, of_type=kind, limit=10_000).records
    keys = {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}
    return {k.to_user_string() for k in keys if isinstance(k, AssetKey)}
