"""What history mode costs (`python -m benchmarks.history_cost`): `audience/peoples` at 100,000 people
into DuckDB, as a mirror and with `ANALYTICS_HISTORY=audience.peoples`, over the same syncs (a first
load, then three nightly syncs after 1% of the people changed and 0.1% were deleted each day, then a full
scan). Prints rows and seconds per sync, then (`--demo`, small data) the versions of one person and of
one membership across three syncs.

In process (sandbox and loader share a GIL): compare the two modes with each other, not with `make bench`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
from dagster import AssetKey

from analytics_sandbox import Sandbox, SandboxConfig

FULL_SCAN = {"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["audience"]}}}}


def _run(*keys: str, run_config: dict[str, Any] | None = None) -> float:
    from analytics_assets.definitions import defs  # after the environment is set

    job = defs.resolve_implicit_global_asset_job_def()
    start = time.perf_counter()
    result = job.execute_in_process(
        asset_selection=[AssetKey.from_user_string(k) for k in keys], run_config=run_config
    )
    assert result.success
    return time.perf_counter() - start


def _env(sandbox: Sandbox, folder: Path, history: str) -> Path:
    path = folder / "analytics.duckdb"
    os.environ.update(sandbox.env())
    os.environ.update(
        {
            "ANALYTICS_DESTINATION": "duckdb",
            "ANALYTICS_DUCKDB_PATH": str(path),
            "DLT_DATA_DIR": str(folder / "dlt"),
        }
    )
    os.environ["ANALYTICS_HISTORY"] = history
    return path


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def cost(people: int) -> None:
    config = SandboxConfig(seed=7, people=people, segments=1, members_per_segment=10, surveys=1, responses=10)
    print(f"{'mode':8} {'sync':22} {'seconds':>8} {'rows':>9} {'active':>9}")
    for mode, history in (("mirror", ""), ("history", "audience.peoples")):
        with Sandbox(config, port=0) as sandbox, tempfile.TemporaryDirectory() as tmp:
            path = _env(sandbox, Path(tmp), history)
            syncs: list[tuple[str, dict[str, Any] | None]] = [("first load", None)]
            syncs += [(f"nightly {day} (1% changed)", None) for day in (1, 2, 3)]
            syncs += [("full scan", FULL_SCAN)]
            for name, run_config in syncs:
                if name.startswith("nightly"):
                    sandbox.data.update_people(people // 100)
                    sandbox.data.delete_people(people // 1000)
                seconds = _run("audience/peoples", run_config=run_config)
                rows = _query(path, "select count(*) from audience.peoples")[0][0]
                active = (
                    _query(path, "select count(*) from audience.peoples_current")[0][0] if history else rows
                )
                print(f"{mode:8} {name:22} {seconds:8.1f} {rows:9,} {active:9,}")


def demo() -> None:
    config = SandboxConfig(seed=7, people=250, segments=2, members_per_segment=50, surveys=1, responses=10)
    selection = ("audience/peoples", "audience/segments", "audience/segment_people")
    with Sandbox(config, port=0) as sandbox, tempfile.TemporaryDirectory() as tmp:
        path = _env(sandbox, Path(tmp), "audience.peoples,audience.segment_people")
        _run(*selection)
        segment = next(iter(sandbox.data.records("segments")))["id"]
        person = sandbox.data.segment_members(segment)[0]
        sandbox.data.update_people([person])
        sandbox.data.remove_memberships(segment, [person])
        _run(*selection)
        sandbox.data.update_people([person])
        sandbox.data.add_memberships(segment, [person])
        _run(*selection)
        columns = "id, last_name, lead_score, _dlt_valid_from, _dlt_valid_to"
        _show(path, f"select {columns} from audience.peoples where id = '{person}' order by 4")
        _show(
            path,
            f"select segment_id, {columns} from audience.segment_people"
            f" where segment_id = {segment} and id = '{person}' order by 5",
        )


def _show(path: Path, sql: str) -> None:
    print(sql)
    for row in _query(path, sql):
        print("  ", " | ".join(str(v) for v in row))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--demo", action="store_true", help="the versions of one person and one membership")
    args = parser.parse_args(argv)
    demo() if args.demo else cost(args.people)


if __name__ == "__main__":
    main()
