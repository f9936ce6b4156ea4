"""`make demo` and `make dev`: the code location against the sandbox, through the real `dagster` CLI.

`python -m analytics_assets.sandbox.demo` starts the sandbox, materializes every asset into the local
DuckDB file with `dagster asset materialize`, prints the rows of each table and stops the sandbox.
With `--dev` it runs `dagster dev` (the UI on http://localhost:3000) against the sandbox instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from analytics_assets.sandbox import Sandbox, SandboxConfig
from analytics_assets.warehouse import DEFAULT_DUCKDB_PATH, DUCKDB_PATH_ENV

DAGSTER = str(Path(sys.executable).with_name("dagster"))


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
    """Materialize every asset with the dagster CLI and print the rows per table."""
    env = {**os.environ, **sandbox.env()}
    started = time.monotonic()
    command = [DAGSTER, "asset", "materialize", "--select", "*", "-m", "analytics_assets.definitions"]
    print(f"$ {' '.join(command)}", flush=True)
    done = subprocess.run(command, env=env, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(
            f"dagster asset materialize failed (exit {done.returncode}); see the log above.", file=sys.stderr
        )
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


def dev(sandbox: Sandbox, port: int = 3000) -> int:
    """Run `dagster dev` against the sandbox until interrupted."""
    env = {**os.environ, **sandbox.env()}
    print(f"Sandbox serving both APIs at {sandbox.url}; Dagster UI on http://localhost:{port}", flush=True)
    try:
        command = [DAGSTER, "dev", "-w", "workspace.yaml", "-p", str(port)]
        return subprocess.run(command, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0


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
