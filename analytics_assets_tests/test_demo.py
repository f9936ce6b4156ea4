"""`make demo`'s and `make dev`'s commands, end to end: the sandbox, the real `dg` CLI, a DuckDB file, the
summary; and what a run started with the README's command prints."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, suppress
from pathlib import Path

import duckdb
import psutil
import pytest

from analytics_assets_tests.cli import dagster_home
from analytics_assets_tests.test_definitions import EXPECTED_KEYS
from analytics_assets_tests.test_e2e import free_port
from analytics_sandbox import Sandbox
from analytics_sandbox.demo import DG, dg_env

pytestmark = pytest.mark.slow  # runs the demo: the dg CLI and `dg dev`

REPO = Path(__file__).resolve().parents[1]

WARNING = re.compile(r"Warning\b|\bWARNING\b|\bwarn(ing)?\b", re.IGNORECASE)
"""A warning in a command's output, however it was printed: a Python warning (`...py:12: BetaWarning:`),
a line logged at WARNING (dlt's `|[WARNING]|`, Dagster's `- WARNING -`), or a message that says so."""


def warnings_in(output: str) -> list[str]:
    """The lines of `output` that are, or start, a warning."""
    return [line for line in output.splitlines() if WARNING.search(line)]


def test_demo_materializes_every_asset_with_the_dg_cli(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "embedded" / "dagster.yaml").read_text())
    warehouse = tmp_path / "demo.duckdb"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_"))},
        "DAGSTER_HOME": str(home),
        "ANALYTICS_DUCKDB_PATH": str(warehouse),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "analytics_sandbox.demo", "--people", "1234"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("Loaded into") :]
    for key in EXPECTED_KEYS:
        assert ".".join(key.path) in summary
    assert "audience.peoples                 1,234" in summary
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from audience.peoples").fetchone() == (1234,)
    # The run went through the instance in DAGSTER_HOME, as a run from the UI would.
    assert (home / "history").exists() or (home / "storage").exists()
    assert warnings_in(done.stdout + done.stderr) == []


def test_a_run_of_the_readmes_command_with_a_failing_endpoint_prints_no_warning(
    configured: Sandbox, tmp_path: Path
) -> None:
    """The README's command (`dg launch --job nightly_sync`, what `make demo` runs) through the real `dg`
    CLI while one endpoint of each API has vanished (404): the run fails naming only those, loads the
    others, and prints no warning at all: none from the project's code (`analytics_assets/`), none from
    the command (a superseded or beta call), none that dlt logs about the project's schema."""
    configured.inject_fault("/audience/v1/fields", "status", times=1000, status=404)
    configured.inject_fault("/feedback/v1/webhooks", "status", times=1000, status=404)
    with ExitStack() as stack:
        env = dg_env(dagster_home("embedded", tmp_path, stack))
        done = subprocess.run(
            [DG, "launch", "--job", "nightly_sync"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "audience API: audience/fields failed; feedback API: feedback/webhooks failed" in output, output[
        -3000:
    ]
    assert output.count("ASSET_MATERIALIZATION -") == 11, output[-3000:]
    assert warnings_in(output) == [], output[-3000:]


def _ignore_sigint() -> None:
    # As in a background job of a non-interactive shell (`make dev &` in a script): SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _dev_is_up(launcher: psutil.Process, port: int) -> bool:
    commands = [" ".join(p.cmdline()) for p in launcher.children(recursive=True)]
    if not any("dagster._daemon" in c for c in commands) or not any("code-server" in c for c in commands):
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.mark.timeout(420)
def test_make_dev_stops_on_sigterm(tmp_path: Path) -> None:
    """`make dev`'s command, sent SIGTERM as a container runtime does (`docker stop`: to its first process
    only): it stops everything it started. (SIGTERM to the whole process group, as systemd sends it,
    reaches each process itself: Dagster's own processes stop on it.)"""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "embedded" / "dagster.yaml").read_text())
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_"))},
        "DAGSTER_HOME": str(home),
        "ANALYTICS_DUCKDB_PATH": str(tmp_path / "dev.duckdb"),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    with open(tmp_path / "dev.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "analytics_sandbox.demo", "--dev", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
    launcher = psutil.Process(process.pid)
    everything: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while not _dev_is_up(launcher, port):
            assert process.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()[-3000:]
            time.sleep(1)
        everything = [launcher, *launcher.children(recursive=True)]
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(everything, timeout=30)
        print(f"\n{len(everything)} processes, all gone {time.monotonic() - sent:.1f} s after SIGTERM")
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        assert process.wait(timeout=5) == 0
    finally:
        for leftover in everything or [launcher]:
            with suppress(psutil.NoSuchProcess):
                leftover.kill()
