"""`make demo`'s and `make dev`'s commands, end to end: the sandbox, the real `dg` CLI, a DuckDB file, the
summary, and no warning."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

import duckdb
import psutil
import pytest

from analytics_assets_tests.cli import warnings_in
from analytics_assets_tests.test_definitions import EXPECTED_KEYS
from analytics_assets_tests.test_e2e import free_port

pytestmark = pytest.mark.slow  # runs the demo: the dg CLI and `dg dev`

REPO = Path(__file__).resolve().parents[1]


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
