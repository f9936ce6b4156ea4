"""Runs through the real `dagster` CLI on a Dagster instance of the test's own (embedded or PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

from dagster import DagsterInstance

from analytics_assets_tests.test_e2e import REPO, instance_settings

INSTANCES = ("embedded", "postgres")
"""The repo's `dagster.yaml` (SQLite under DAGSTER_HOME) and `deploy/dagster.yaml` (PostgreSQL)."""


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


def start_materialize(select: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`dagster asset materialize --select <select>` in a process group of its own, output into `log`.

    The rest of the environment (sources, warehouse) is the test's: `os.environ`, as fixtures set it.
    """
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "--select", select]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*command, "-m", "analytics_assets.definitions"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so a test can kill it with all its step processes
        )
