"""The loads a benchmark times, each run in a fresh process by `bench.py` (`python -m benchmarks.worker`).

    project  --select audience/peoples   materialize assets of the code location through Dagster
    baseline                             load /people/all with a plain dlt `rest_api` pipeline, dlt defaults
    import   MODULE [MODULE ...]         time importing modules (start-up)
    definitions MODULE:ATTR              time loading a code location: import it, build its repository

Each writes its figures as JSON to `--result`. The sandbox and the warehouse come from the environment
(`SOURCES__*`, `ANALYTICS_DUCKDB_PATH`, `DLT_DATA_DIR`), set by the benchmark.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any


def table_rows(duckdb_path: str, datasets: tuple[str, ...] = ("audience", "feedback")) -> dict[str, int]:
    """Rows per data table (child tables included, dlt's own tables not) of a DuckDB file."""
    import duckdb

    with duckdb.connect(duckdb_path, read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            f" where table_schema in ({', '.join(repr(d) for d in datasets)})"
            " and table_name not like '\\_dlt%' escape '\\' order by 1, 2"
        ).fetchall()
        counts = {}
        for schema, table in tables:
            row = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            assert row is not None
            counts[f"{schema}.{table}"] = int(row[0])
        return counts


def project(selection: list[str]) -> dict[str, Any]:
    """Materialize `selection` (all assets when empty) in process, as `dagster.materialize` does."""
    started = time.perf_counter()
    from dagster import AssetKey, DagsterInstance

    from analytics_assets.definitions import defs

    imported = time.perf_counter() - started
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [AssetKey.from_user_string(s) for s in selection] or None
    with DagsterInstance.ephemeral() as instance:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = job.execute_in_process(asset_selection=keys, instance=instance, raise_on_error=False)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        steps = {
            s.step_key: (s.end_time or 0.0) - (s.start_time or 0.0)
            for s in instance.get_run_step_stats(result.run_id)
        }
    return {
        "success": result.success,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "steps_seconds": steps,
        "import_seconds": imported,
        "rows": table_rows(os.environ["ANALYTICS_DUCKDB_PATH"]),
    }


def baseline() -> dict[str, Any]:
    """`/people/all` through a plain dlt `rest_api` source, with dlt's defaults for everything else.

    Defaults: append, DuckDB's preferred `insert_values`, compressed intermediate files, one normalize
    worker, and dlt's stock offset paginator (no total: it pages until an empty page). Run with a working
    directory that has no `.dlt/`, so none of the project's settings apply.
    """
    import dlt
    from dlt.sources.rest_api import rest_api_source

    path = os.environ["ANALYTICS_DUCKDB_PATH"]
    source = rest_api_source(
        {
            "client": {
                "base_url": os.environ["SOURCES__AUDIENCE__BASE_URL"],
                "auth": {
                    "type": "api_key",
                    "name": "api_key",
                    "api_key": os.environ["SOURCES__AUDIENCE__API_KEY"],
                    "location": "header",
                },
            },
            "resources": [
                {
                    "name": "peoples",
                    "endpoint": {
                        "path": "/people/all",
                        "data_selector": "people",
                        "paginator": {
                            "type": "offset",
                            "limit": 100,
                            "offset_param": "offset",
                            "limit_param": "limit",
                            "total_path": None,
                        },
                    },
                }
            ],
        },
        name="audience",
    )
    pipeline = dlt.pipeline(
        "baseline_peoples", destination=dlt.destinations.duckdb(path), dataset_name="audience"
    )
    started = time.perf_counter()
    pipeline.run(source).raise_on_failed_jobs()
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    assert trace is not None, "the run left a trace"
    steps = {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in trace.steps
        if step.finished_at is not None
    }
    return {"success": True, "seconds": seconds, "steps": steps, "rows": table_rows(path, ("audience",))}


def import_modules(modules: list[str]) -> dict[str, Any]:
    """Seconds to import `modules` in this fresh interpreter (`Definitions` objects are built on import)."""
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    return {"success": True, "seconds": time.perf_counter() - started}


def load_definitions(target: str) -> dict[str, Any]:
    """Seconds to load a code location as Dagster's code server does: import it and build its repository."""
    started = time.perf_counter()
    module, _, attr = target.partition(":")
    defs = getattr(importlib.import_module(module), attr)
    defs.get_repository_def()
    return {"success": True, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--result", type=Path, required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("project").add_argument("--select", action="append", default=[])
    commands.add_parser("baseline")
    commands.add_parser("import").add_argument("modules", nargs="+")
    commands.add_parser("definitions").add_argument("target")
    args = parser.parse_args(argv)
    if args.command == "project":
        result = project(args.select)
    elif args.command == "baseline":
        result = baseline()
    elif args.command == "import":
        result = import_modules(args.modules)
    else:
        result = load_definitions(args.target)
    args.result.write_text(json.dumps(result))
    return 0 if result["success"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
