"""`make bench` at tiny scale, so that it never rots: every measure runs and lands in the JSON.

No figure is compared with a time: the machine decides those. Only what must hold on any machine is.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analytics_assets_tests.conftest import POSTGRES_URL_ENV, postgres_server_url

pytestmark = [pytest.mark.slow, pytest.mark.bench]  # the benchmark in a subprocess: `make bench-smoke`

REPO = Path(__file__).resolve().parents[1]
TINY_PEOPLE = 1_000

POSITIVE_FIGURES = [
    ("limit", "rows_per_s"),
    ("http_stack", "rows_per_s"),
    ("baseline", "rows_per_s"),
    ("peoples", "rows_per_s"),
    ("peoples", "peak_rss_mb"),
    ("all_assets", "rows_per_s"),
    ("syncs", "first", "run_seconds"),
    ("syncs", "nightly", "run_seconds"),
    ("latency", "run_seconds"),
    ("latency", "span_seconds"),
    ("latency", "requests_vs_sequential"),
    ("latency", "round_trip_s"),
    ("latency", "longest_chain_seconds"),
    ("latency", "sum_seconds"),
    ("latency", "vs_longest_chain"),
    ("latency", "vs_sum"),
    ("memory", "small", "peak_rss_mb"),
    ("memory", "large", "peak_rss_mb"),
    ("memory", "ratio"),
    ("startup", "import_dagster_dlt_s"),
    ("startup", "definitions_s"),
    ("startup", "ratio"),
]


def run_benchmark(*args: str, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` from the repo root, as `make bench*` runs it, with none of the project's, sources'
    or dlt's settings of the test's environment (the benchmark sets its own), plus `env`; it must succeed."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_", "DLT_"))}
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def figure(figures: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = figures
    for key in path:
        value = value[key]
    return value


@pytest.mark.timeout(600)  # past the benchmark's own 420 s limit, which says what it was doing
def test_the_benchmark_runs_at_tiny_scale_and_reports_every_figure(tmp_path: Path) -> None:
    done = run_benchmark(
        "benchmarks",
        "--tiny",
        f"--out={tmp_path}",
        f"--workdir={tmp_path}",
        timeout=420,  # two latency-bound CLI syncs among the rest
    )
    [result] = tmp_path.glob("*-tiny.json")
    figures = json.loads(result.read_text())

    for path in POSITIVE_FIGURES:
        value = figure(figures, path)
        assert isinstance(value, int | float) and value > 0, f"{'.'.join(path)} = {value!r}"
    # Every load read the same data, whole.
    for load in ("limit", "http_stack", "baseline", "peoples"):
        assert figures[load]["rows"] == TINY_PEOPLE, load
    assert figures["limit"]["requests"] == TINY_PEOPLE // 100 + 1  # ten full pages, then an empty one
    assert figures["peoples"]["steps_seconds"]["analytics_load"] > 0
    for sync in (figures["all_assets"], figures["syncs"]["first"]):
        assert sync["rows_per_table"]["audience.peoples"] == TINY_PEOPLE
        assert len(sync["rows_per_table"]) >= 13  # every asset's table, child tables too
    # The sandbox counted the requests of both syncs; a nightly one reads only the newest responses.
    first, nightly = figures["syncs"]["first"]["requests"], figures["syncs"]["nightly"]["requests"]
    assert set(first["per_api"]) == set(nightly["per_api"]) == {"audience", "feedback"}
    assert first["total"] > nightly["total"] > 0
    assert figures["latency"]["longest_chain"].endswith("/people/all")
    assert figures["latency"]["sum_seconds"] > figures["latency"]["longest_chain_seconds"]
    # Pages side by side read the same pages as one by one, and at most a window more per list.
    runs = figures["latency"]["runs"]
    assert runs["side_by_side"]["rows"] == runs["sequential"]["rows"]
    assert runs["sequential"]["requests"] <= runs["side_by_side"]["requests"]
    assert figures["memory"]["large"]["people"] > figures["memory"]["small"]["people"]
    assert {t["name"] for t in figures["targets"]} >= {
        "peoples throughput / limit",
        "peoples throughput / baseline",
        "latency-bound sync / longest chain",
        "requests: side by side / sequential",
        "peak RSS large / small",
        "definitions load / import dagster+dlt",
    }
    assert all(t["value"] is not None and t["met"] in (True, False) for t in figures["targets"])
    assert "| measure" in done.stdout and str(result) in done.stdout


@pytest.mark.timeout(300)
def test_the_hashing_benchmark_runs_at_tiny_scale(tmp_path: Path) -> None:
    """`make bench BENCH_ARGS=--hash-email`: the people load with and without the email hashed, each run
    reading every person (the hashed run checks that its emails are hashes)."""
    done = run_benchmark(
        "benchmarks", "--hash-email", "--tiny", "--pairs=1", f"--out={tmp_path}", timeout=240
    )
    [result] = tmp_path.glob("*-hash-email-tiny.json")
    hashing = json.loads(result.read_text())["hash_email"]
    for name in ("plain", "hashed"):
        assert len(hashing[name]["rows_per_s"]) == 1 and hashing[name]["median_rows_per_s"] > 0, name
    assert hashing["hashed_vs_plain"] > 0
    assert "| hashed email |" in done.stdout


def test_the_postgres_file_format_benchmark_runs_at_tiny_scale() -> None:
    """`make bench-postgres` at tiny scale: both formats load the same rows, and the only difference
    it finds is the one it documents (`csv` loads an empty string as NULL)."""
    server = postgres_server_url()  # skips without PostgreSQL
    done = run_benchmark(
        "benchmarks.postgres_file_format",
        "--people",
        "300",
        "--responses",
        "150",
        timeout=300,
        **{POSTGRES_URL_ENV: server},
    )
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in done.stdout.splitlines()}
    rows = {fmt: lines[fmt].rsplit(";", 1)[1].strip() for fmt in ("insert_values", "csv")}
    assert rows["insert_values"] == rows["csv"] != "0 rows", rows
    verdict = lines["csv vs insert_values"].strip()
    assert verdict == "identical" or verdict.startswith("identical but for"), verdict
