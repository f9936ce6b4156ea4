"""`make demo` and `make dev`: the code location against the sandbox, through the real `dg` CLI.

`python -m analytics_sandbox.demo` starts the sandbox, runs the main job (`nightly_sync`: every asset,
what the nightly schedule runs) into the local DuckDB file with `dg launch --job nightly_sync`, prints
the rows of each table and stops the sandbox.
With `--dev` it runs `dg dev` (the UI on http://localhost:3000) against the sandbox instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from types import FrameType

import duckdb

from analytics_assets.loading.warehouse import DEFAULT_DUCKDB_PATH, DUCKDB_PATH_ENV
from analytics_sandbox import Sandbox, SandboxConfig

BIN = Path(sys.executable).parent
DG = str(BIN / "dg")


def dg_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment `dg` runs in: this virtual environment active, as `source .venv/bin/activate` does
    (`dg` warns when the active environment is not the project's), plus `extra`."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "PATH": path, **extra}


def _row_counts(path: Path) -> list[tuple[str, int]]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('audience', 'feedback') and table_name not like '\\_dlt%' escape '\\'"
            " and table_name not like '%\\_\\_%' escape '\\' order by 1, 2"
        ).fetchall()
        return [
            (f"{schema}.{table}", con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0])  # type: ignore[index]
            for schema, table in tables
        ]


def demo(sandbox: Sandbox) -> int:
    """Run the main job with the dg CLI and print the rows per table.

    The job rather than `dg launch --assets '*'`, which loads the same assets but has Dagster's selection
    parser call a beta parameter (`AssetSelection.all(include_sources=...)`) and print a BetaWarning.
    """
    env = dg_env(sandbox.env())
    started = time.monotonic()
    command = [DG, "launch", "--job", "nightly_sync"]
    print(f"$ {' '.join(command)}", flush=True)
    done = subprocess.run(command, env=env, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(f"dg launch failed (exit {done.returncode}); see the log above.", file=sys.stderr)
        return done.returncode
    path = Path(env.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH)
    rows = _row_counts(path)
    width = max(len(name) for name, _ in rows)
    print(f"\nLoaded into {path} in {elapsed:.1f} s:\n")
    print(f"{'table'.ljust(width)}  {'rows':>9}")
    for name, count in rows:
        print(f"{name.ljust(width)}  {count:>9,}")
    print(f"\n{len(rows)} tables. Explore them: duckdb {path}  (or `make dev` for the Dagster UI)")
    return 0


STOP_GRACE_SECONDS = 20.0
"""How long `dg dev` may take to stop its services once interrupted, before what is left is killed."""


def dev(sandbox: Sandbox, port: int = 3000) -> int:
    """Run `dg dev` against the sandbox until this process gets SIGTERM, SIGINT (Ctrl-C) or SIGHUP.

    `dg dev` (which runs `dagster dev` in its own process) gets a process group of its own, which this
    launcher stops as a whole. Left to itself it would not stop on SIGTERM when started where SIGINT is ignored (a background job of a
    script, many service setups): dagster maps SIGTERM onto SIGINT's handler
    (`setup_interrupt_handlers`), so it ignores SIGTERM too, and so do its webserver and daemon. The
    daemon, which installs handlers of its own, does shut its threads down, then waits forever for the
    shutdown message `dagster dev` sends on a pipe (`interrupt_on_ipc_shutdown_message` joins the pipe's
    reader thread), which an ignored signal never triggers. Here SIGINT is handled, so `dg dev` starts
    with it at its default (exec resets handled signals), and every stop goes through the interrupt
    `dagster dev` is written for: SIGINT to its group, as Ctrl-C in a terminal sends.
    """
    env = dg_env(sandbox.env())
    print(f"Sandbox serving both APIs at {sandbox.url}; Dagster UI on http://localhost:{port}", flush=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    command = [DG, "dev", "-p", str(port)]
    process = subprocess.Popen(command, env=env, process_group=0)
    try:
        while process.poll() is None and not stop.is_set():
            stop.wait(0.5)
    finally:
        _stop_group(process)
    return 0 if stop.is_set() else process.returncode


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Interrupt `dagster dev` and its group, wait for them, then kill whatever is still left."""
    group = process.pid
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.2)  # its code servers and run workers stop a little after it
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", action="store_true", help="run the Dagster UI instead of a one-off load")
    parser.add_argument("--port", type=int, default=3000, help="the port of the Dagster UI (with --dev)")
    parser.add_argument("--people", type=int, default=SandboxConfig.people, help="people in the sandbox")
    args = parser.parse_args()
    with Sandbox(SandboxConfig(people=args.people), port=0) as sandbox:
        sys.exit(dev(sandbox, args.port) if args.dev else demo(sandbox))


if __name__ == "__main__":
    main()
