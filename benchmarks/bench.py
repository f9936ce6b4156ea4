"""`make bench`: how fast the loader is against the limit and a dlt-defaults baseline, in one run, on the
same data.

Starts the sandbox at the chosen scale in a process of its own and measures:

- limit: a plain keep-alive HTTP client (`http.client` + `json`) reading every page of `/people/all`;
- baseline: the same endpoint loaded by a plain dlt `rest_api` pipeline with dlt's defaults;
- project: `audience/peoples`, then all 13 assets, materialized through Dagster (`materialize`, each in
  a fresh process), in rows per second;
- latency-bound: a first sync of all 13 assets of 20,000 people with the real `dagster asset
  materialize` (the executor, pools and checks of a real run) while the sandbox adds 50 ms to every
  request, once with pages one by one (`PAGE_CONCURRENCY=1`) and once with the defaults: first
  request to last response against the longest chain of requests of the one-by-one read, and the
  requests of both;
- request economy: the requests of a first sync, and of a nightly sync (`dagster job execute -j
  nightly_sync`) after 1% of people and responses changed (the sandbox's request log);
- memory: peak RSS of the loading process tree while `audience/peoples` loads 100,000 and 1,000,000
  people;
- start-up: importing the definitions and building the repository against `import dagster, dlt`, in
  fresh interpreters, median of several.

Prints a table and writes the figures as JSON to `benchmarks/results/<date>.json`.

`--hash-email` measures only `audience/peoples`, with `audience.peoples.email` hashed
(`ANALYTICS_HASHED_FIELDS`) against the same load without, in pairs on one sandbox, each pair in the
other order than the one before (plain-hashed, hashed-plain, ...), so that a machine growing busier
weighs on both alike: `benchmarks/results/<date>-hash-email.json`.

    .venv/bin/python -m benchmarks             # default scale, a few minutes on 2 cores
    .venv/bin/python -m benchmarks --scale 10  # 10x the people
    .venv/bin/python -m benchmarks --tiny      # seconds: checks that every measure works
    .venv/bin/python -m benchmarks --hash-email --pairs 3   # hashing's cost on the people load
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.harness import (
    DAGSTER,
    PYTHON,
    REPO,
    DagsterHome,
    Measured,
    SandboxProcess,
    clean_env,
    run_measured,
)
from benchmarks.worker import table_rows

RESULTS_DIR = REPO / "benchmarks" / "results"
PAGE_SIZE = 100
LATENCY = 0.05
CHANGED_SHARE = 0.01
DEFINITIONS = "analytics_assets.definitions"


@dataclass(frozen=True)
class Scale:
    """How big a benchmark run is."""

    name: str
    people: int
    """People the sandbox serves for throughput, latency and request economy."""
    memory_people: tuple[int, int]
    """The two loads whose peak RSS is compared."""
    repeats: int
    """Repeats of the cheap measures (limit, start-up), of which the median counts."""
    responses: int = 2000
    """Kept under ~95 pages: the feedback source paces itself to the API's 100 requests a minute."""
    latency_people: int = 20_000
    """People of the latency-bound sync (the issue's figure: 201 requests of `/people/all` at +50 ms)."""
    side_by_side: bool = False
    """Measure memory and start-up while the sandbox measures run: faster, but each disturbs the other's
    figures, so only for the tiny smoke run, whose figures mean nothing."""


TINY = Scale(
    "tiny",
    people=1_000,
    memory_people=(1_000, 10_000),
    repeats=1,
    responses=200,
    latency_people=1_000,
    side_by_side=True,
)


def scale_for(factor: int) -> Scale:
    """`--scale N`: N x 100,000 people (memory stays at 100,000 against 1,000,000, where its target is)."""
    name = "default" if factor == 1 else f"scale{factor}"
    return Scale(name, people=100_000 * factor, memory_people=(100_000, 1_000_000), repeats=5)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the limit --------------------------------------------------------------------------------------


def _http_client_get(base_url: str, api_key: str) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """GET on one keep-alive `http.client` connection: the plainest client there is."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)

    def get(path_and_query: str) -> bytes:
        connection.request("GET", parts.path + path_and_query, headers={"api_key": api_key})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path_and_query} answered {response.status}: {body[:200]!r}")
        return body

    return get, connection.close


def _requests_get(base_url: str, api_key: str) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """GET through a `requests` session: the HTTP stack under dlt's REST client."""
    import requests

    session = requests.Session()

    def get(path_and_query: str) -> bytes:
        response = session.get(base_url + path_and_query, headers={"api_key": api_key}, timeout=60)
        response.raise_for_status()
        return response.content

    return get, session.close


def fetch_people(
    base_url: str, api_key: str, max_pages: int | None = None, client: str = "http.client"
) -> tuple[int, int, float]:
    """Every page of `/people/all` (or the first `max_pages`) on one keep-alive connection, parsed.

    Args:
        client: `http.client` (the limit) or `requests` (dlt's HTTP stack).

    Returns:
        (rows, requests, seconds)
    """
    get, close = (_requests_get if client == "requests" else _http_client_get)(base_url, api_key)
    rows = requests = 0
    started = time.perf_counter()
    try:
        while max_pages is None or requests < max_pages:
            page = json.loads(get(f"/people/all?limit={PAGE_SIZE}&offset={rows}"))["people"]
            requests += 1
            rows += len(page)
            if len(page) < PAGE_SIZE:
                break
    finally:
        close()
    return rows, requests, time.perf_counter() - started


def measure_limit(sandbox: SandboxProcess, repeats: int, client: str = "http.client") -> dict[str, Any]:
    """Rows per second of a client that only fetches and parses the pages, median of `repeats`."""
    key = sandbox.env["SOURCES__AUDIENCE__API_KEY"]
    runs = [fetch_people(sandbox.audience_base_url, key, client=client) for _ in range(repeats)]
    rows, requests, _ = runs[0]
    seconds = statistics.median(r[2] for r in runs)
    return {
        "client": client,
        "rows": rows,
        "requests": requests,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "runs_seconds": [r[2] for r in runs],
    }


# -- loads ------------------------------------------------------------------------------------------


class Workspace:
    """Fresh warehouses, dlt folders and result files under one temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._numbers = itertools.count(1)

    def new(self, name: str) -> Path:
        path = self.root / f"{next(self._numbers):02d}-{name}"
        path.mkdir(parents=True)
        return path


def load_env(sandbox: SandboxProcess, place: Path, **extra: str) -> dict[str, str]:
    """The environment of a load: the sandbox's settings, a DuckDB file and a dlt folder under `place`."""
    return clean_env(
        {
            **sandbox.env,
            "ANALYTICS_DESTINATION": "duckdb",
            "ANALYTICS_DUCKDB_PATH": str(place / "warehouse.duckdb"),
            "DLT_DATA_DIR": str(place / "dlt"),
            **extra,
        }
    )


def worker(args: list[str], env: dict[str, str], place: Path, cwd: Path = REPO) -> Measured:
    result = place / f"result-{time.monotonic_ns()}.json"
    command = [PYTHON, "-m", "benchmarks.worker", f"--result={result}", *args]
    return run_measured(command, env, cwd=cwd, result_file=result).check()


def throughput(measured: Measured, table: str) -> dict[str, Any]:
    rows = measured.result["rows"].get(table, 0)
    seconds = measured.result["seconds"]
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "process_seconds": measured.seconds,
        "peak_rss_mb": measured.peak_rss / 2**20,
    }


def measure_baseline(sandbox: SandboxProcess, workspace: Workspace) -> dict[str, Any]:
    place = workspace.new("baseline")
    # A working directory without `.dlt/`: none of the project's dlt settings apply.
    measured = worker(["baseline"], load_env(sandbox, place), place, cwd=place)
    return {**throughput(measured, "audience.peoples"), "steps": measured.result["steps"]}


def measure_all_assets(sandbox: SandboxProcess, workspace: Workspace) -> dict[str, Any]:
    place = workspace.new("all_assets")
    measured = worker(["project"], load_env(sandbox, place), place)
    rows = measured.result["rows"]
    seconds = measured.result["seconds"]
    return {
        "rows": sum(rows.values()),
        "rows_per_table": rows,
        "seconds": seconds,
        "rows_per_s": sum(rows.values()) / seconds,
        "peak_rss_mb": measured.peak_rss / 2**20,
        "steps_seconds": measured.result["steps_seconds"],
    }


def measure_peoples(sandbox: SandboxProcess, workspace: Workspace, **settings: str) -> dict[str, Any]:
    place = workspace.new("peoples_hashed" if settings else "peoples")
    measured = worker(["project", "--select=audience/peoples"], load_env(sandbox, place, **settings), place)
    if settings:  # the settings took: the emails are hashes (64 hex digits), not addresses
        import duckdb

        with duckdb.connect(str(place / "warehouse.duckdb"), read_only=True) as con:
            shapes = con.execute(
                "select distinct length(email), email like '%@%' from audience.peoples"
            ).fetchall()
        assert shapes == [(64, False)], f"the hashed run loaded emails of another shape: {shapes}"
    return {
        **throughput(measured, "audience.peoples"),
        "import_seconds": measured.result["import_seconds"],
        "steps_seconds": measured.result["steps_seconds"],
    }


HASHED_EMAIL = {
    "ANALYTICS_HASHED_FIELDS": "audience.peoples.email",
    "ANALYTICS_HASH_KEY": "benchmark-only-key-0123456789abcdef",  # not a secret: sandbox data
}


def measure_hashing(scale: Scale, workspace: Workspace, pairs: int) -> dict[str, Any]:
    """`audience/peoples` with the email hashed and without, `pairs` times each, interleaved."""
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "hashed": []}
    with SandboxProcess(workspace.new("sandbox"), people=scale.people, responses=scale.responses) as sandbox:
        for pair in range(pairs):
            for name in ("plain", "hashed") if pair % 2 == 0 else ("hashed", "plain"):
                log(f"peoples, {name} email ({pair + 1}/{pairs}, {scale.people:,} people)")
                runs[name].append(
                    measure_peoples(sandbox, workspace, **(HASHED_EMAIL if name == "hashed" else {}))
                )
    result: dict[str, Any] = {
        name: {
            "rows_per_s": [r["rows_per_s"] for r in measured],
            "seconds": [r["seconds"] for r in measured],
            "median_rows_per_s": statistics.median(r["rows_per_s"] for r in measured),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in measured),
        }
        for name, measured in runs.items()
    }
    result["hashed_vs_plain"] = result["hashed"]["median_rows_per_s"] / result["plain"]["median_rows_per_s"]
    return result


def hashing_table(figures: dict[str, Any]) -> str:
    hashing = figures["hash_email"]
    lines = ["| audience/peoples | median rows/s | each run, rows/s | peak RSS MB |", "|---|---:|---|---:|"]
    for name in ("plain", "hashed"):
        each = ", ".join(_n(v) for v in hashing[name]["rows_per_s"])
        lines.append(
            f"| {name} email | {_n(hashing[name]['median_rows_per_s'])} | {each} |"
            f" {hashing[name]['peak_rss_mb']:.0f} |"
        )
    lines.append(f"\nhashed / plain: {hashing['hashed_vs_plain']:.3f}")
    return "\n".join(lines)


# -- syncs through the dagster CLI ------------------------------------------------------------------


def requests_of(sandbox: SandboxProcess) -> dict[str, Any]:
    """The sandbox's request counters since they were last cleared: total, per API, per endpoint."""
    stats = sandbox.client.stats()
    by_endpoint = {
        f"{api}{template}": endpoint["requests"]
        for api, endpoints in stats["apis"].items()
        for template, endpoint in endpoints.items()
    }
    per_api = {
        api: sum(e["requests"] for e in endpoints.values()) for api, endpoints in stats["apis"].items()
    }
    return {"total": stats["total"], "per_api": per_api, "by_endpoint": by_endpoint}


def cli_sync(
    sandbox: SandboxProcess, home: DagsterHome, place: Path, command: list[str], **extra_env: str
) -> tuple[Measured, dict[str, Any]]:
    """Run a `dagster` CLI command loading into the warehouse under `place`; its run as the instance saw it."""
    env = load_env(sandbox, place, DAGSTER_HOME=str(home.path), **extra_env)
    sandbox.client.clear_requests()
    measured = run_measured([DAGSTER, *command, "-m", DEFINITIONS], env).check()
    run = home.last_run()
    if run.status != "SUCCESS":
        raise RuntimeError(
            f"{' '.join(command)}: run {run.run_id} ended {run.status}:\n{measured.output[-4000:]}"
        )
    rows = table_rows(str(place / "warehouse.duckdb"))
    return measured, {
        "run_seconds": run.seconds,
        "cli_seconds": measured.seconds,
        "steps_seconds": run.steps,
        "rows": sum(rows.values()),
        "rows_per_table": rows,
        "rows_per_s": sum(rows.values()) / run.seconds,
        "peak_rss_mb": measured.peak_rss / 2**20,
        "requests": requests_of(sandbox),
    }


MATERIALIZE_ALL = ["asset", "materialize", "--select", "*"]
NIGHTLY = ["job", "execute", "-j", "nightly_sync"]


def request_chains(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Requests that must follow each other, per path: its pages, after the parent page listing it.

    A child path (`/segments/7/people`) can only start once the page of its parent list (`/segments`)
    that names it was read, so its chain is its own pages plus one.
    """
    per_path = Counter(e["path"] for e in entries)
    chains = {}
    for path, count in per_path.items():
        parent, _, rest = path.rpartition("/segments/")
        is_child = bool(parent) and "/" in rest and f"{parent}/segments" in per_path
        chains[path] = count + (1 if is_child else 0)
    return chains


SEQUENTIAL = {f"SOURCES__{api}__PAGE_CONCURRENCY": "1" for api in ("AUDIENCE", "FEEDBACK")}
"""Each list read one page after another (what every loader we compare with does)."""


def span(entries: list[dict[str, Any]]) -> float:
    """First request to last response: the sandbox answers a request LATENCY after it arrived."""
    arrivals = [e["time"] for e in entries]
    return max(arrivals) + LATENCY - min(arrivals)


def measure_latency_bound(workspace: Workspace, scale: Scale) -> dict[str, Any]:
    """The first sync of all assets with the real `dagster asset materialize` while every request takes
    50 ms more: once with each list read one page after another, once as configured (pages side by
    side). Its first request to its last response, against the longest chain of requests of the
    sequential read (priced at a plain client's round trip) and against the sum of all its requests.
    """
    with SandboxProcess(
        workspace.new("sandbox-latency"), people=scale.latency_people, responses=scale.responses
    ) as sandbox:
        runs: dict[str, dict[str, Any]] = {}
        sandbox.client.set_latency(LATENCY)
        # One round trip of a plain client at this latency prices each request of the chains.
        _, requests, seconds = fetch_people(
            sandbox.audience_base_url, sandbox.env["SOURCES__AUDIENCE__API_KEY"], max_pages=20
        )
        round_trip = seconds / requests
        try:
            for name, env in (("sequential", SEQUENTIAL), ("side_by_side", {})):
                home = DagsterHome(workspace.new(f"dagster_home-{name}"))
                _, sync = cli_sync(sandbox, home, workspace.new(f"latency-{name}"), MATERIALIZE_ALL, **env)
                entries = sandbox.client.requests()
                runs[name] = {**sync, "requests": len(entries), "span_seconds": span(entries)}
                if name == "sequential":
                    chains = request_chains(entries)
        finally:
            sandbox.client.set_latency(0)
    longest_path = max(chains, key=lambda p: chains[p])
    longest = chains[longest_path] * round_trip
    side = runs["side_by_side"]
    return {
        "people": scale.latency_people,
        "latency_s": LATENCY,
        "round_trip_s": round_trip,
        "runs": runs,
        "run_seconds": side["run_seconds"],
        "span_seconds": side["span_seconds"],
        "sum_seconds": runs["sequential"]["requests"] * round_trip,
        "longest_chain": longest_path,
        "longest_chain_requests": chains[longest_path],
        "longest_chain_seconds": longest,
        "vs_longest_chain": side["span_seconds"] / longest,
        "sequential_vs_longest_chain": runs["sequential"]["span_seconds"] / longest,
        "vs_sum": side["span_seconds"] / (runs["sequential"]["requests"] * round_trip),
        "requests_vs_sequential": side["requests"] / runs["sequential"]["requests"],
    }


def measure_syncs(sandbox: SandboxProcess, workspace: Workspace, scale: Scale) -> dict[str, Any]:
    """Two runs of the real CLI: a first sync of every asset, then a nightly sync after 1% of people
    and responses changed (their requests; the latency-bound sync is `measure_latency_bound`)."""
    home = DagsterHome(workspace.new("dagster_home"))
    place = workspace.new("syncs")
    _, first = cli_sync(sandbox, home, place, MATERIALIZE_ALL)
    changed = {
        "people": len(sandbox.client.data.update_people(max(1, int(scale.people * CHANGED_SHARE)))),
        "responses": len(
            sandbox.client.data.update_responses(max(1, int(scale.responses * CHANGED_SHARE)), recent=True)
        ),
    }
    _, nightly = cli_sync(sandbox, home, place, NIGHTLY)
    return {"first": first, "nightly": {**nightly, "changed": changed}}


# -- memory and start-up ----------------------------------------------------------------------------


def memory_loads(scale: Scale, workspace: Workspace, skip_large: bool) -> dict[int, dict[str, Any]]:
    """The `audience/peoples` loads of the memory measure that the throughput measures do not make."""
    loads = {}
    for label, people in zip(("small", "large"), scale.memory_people, strict=True):
        if people == scale.people or (label == "large" and skip_large):
            continue
        log(f"memory: loading {people:,} people")
        with SandboxProcess(workspace.new(f"sandbox-{people}"), people=people) as sandbox:
            loads[people] = measure_peoples(sandbox, workspace)
    return loads


def memory_figures(scale: Scale, loads: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS of the process tree loading `audience/peoples`, at the scale's two sizes."""
    figures: dict[str, Any] = {}
    for label, people in zip(("small", "large"), scale.memory_people, strict=True):
        load = loads.get(people)
        figures[label] = {
            "people": people,
            "peak_rss_mb": load["peak_rss_mb"] if load else None,
            "seconds": load["seconds"] if load else None,
            "rows_per_s": load["rows_per_s"] if load else None,
        }
    small, large = figures["small"]["peak_rss_mb"], figures["large"]["peak_rss_mb"]
    figures["ratio"] = large / small if small and large else None
    return figures


def measure_startup(workspace: Workspace, repeats: int) -> dict[str, Any]:
    """Seconds to import `dagster, dlt`, and to load the definitions, each in fresh interpreters."""
    place = workspace.new("startup")
    env = clean_env()
    base, definitions = [], []
    for _ in range(repeats):  # interleaved, so that a busy moment hits both alike
        base.append(worker(["import", "dagster", "dlt"], env, place).result["seconds"])
        definitions.append(worker(["definitions", f"{DEFINITIONS}:defs"], env, place).result["seconds"])
    return {
        "import_dagster_dlt_s": statistics.median(base),
        "definitions_s": statistics.median(definitions),
        "ratio": statistics.median(definitions) / statistics.median(base),
        "repeats": repeats,
        "runs": {"import_dagster_dlt": base, "definitions": definitions},
    }


# -- the report -------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    value: float | None
    bound: float
    kind: str  # "min" (value >= bound) or "max" (value <= bound)

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.bound if self.kind == "min" else self.value <= self.bound


def targets(figures: dict[str, Any]) -> list[Target]:
    peoples, limit, base = figures["peoples"], figures["limit"], figures["baseline"]
    return [
        Target("peoples throughput / limit", peoples["rows_per_s"] / limit["rows_per_s"], 0.25, "min"),
        Target("peoples throughput / baseline", peoples["rows_per_s"] / base["rows_per_s"], 5.0, "min"),
        Target("latency-bound sync / longest chain", figures["latency"]["vs_longest_chain"], 0.5, "max"),
        Target(
            "requests: side by side / sequential", figures["latency"]["requests_vs_sequential"], 1.1, "max"
        ),
        Target("peak RSS large / small", figures["memory"]["ratio"], 1.5, "max"),
        Target("definitions load / import dagster+dlt", figures["startup"]["ratio"], 1.5, "max"),
    ]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def table(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table (the README's performance section shows it as is)."""
    lim, base, peo, every = figures["limit"], figures["baseline"], figures["peoples"], figures["all_assets"]
    http = figures["http_stack"]
    load_step = peo["steps_seconds"].get("analytics_load", 0.0)
    checks = sum(peo["steps_seconds"].values()) - load_step
    first, nightly = figures["syncs"]["first"], figures["syncs"]["nightly"]
    lat, mem, start = figures["latency"], figures["memory"], figures["startup"]
    seq, side = lat["runs"]["sequential"], lat["runs"]["side_by_side"]

    def rss(entry: dict[str, Any]) -> str:
        if entry["peak_rss_mb"] is None:
            return f"not measured at this scale (`--scale 10` loads {entry['people']:,})"
        return f"{_n(entry['peak_rss_mb'])} MB ({entry['people']:,} people, {entry['seconds']:.1f} s)"

    def api_requests(sync: dict[str, Any]) -> str:
        per_api = sync["requests"]["per_api"]
        return (
            f"{sync['requests']['total']:,} ({', '.join(f'{a} {n:,}' for a, n in sorted(per_api.items()))})"
        )

    rows = [
        ("limit: plain HTTP client, `/people/all`", f"{_n(lim['rows_per_s'])} rows/s",
         f"{lim['rows']:,} rows, {lim['requests']:,} requests in {lim['seconds']:.2f} s"),
        ("dlt's HTTP stack alone: `requests`, same loop", f"{_n(http['rows_per_s'])} rows/s",
         f"{http['rows_per_s'] / lim['rows_per_s']:.2f} x limit: the ceiling of any loader on `requests`"),
        ("baseline: plain dlt `rest_api`, dlt defaults", f"{_n(base['rows_per_s'])} rows/s",
         f"{base['seconds']:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in base["steps"].items() if k != "run") + ")"),
        ("project: `audience/peoples` via Dagster", f"{_n(peo['rows_per_s'])} rows/s",
         f"{peo['seconds']:.1f} s, {peo['rows']:,} rows (load step {load_step:.1f} s, its checks {checks:.1f} s)"),
        ("project / limit", f"{peo['rows_per_s'] / lim['rows_per_s']:.2f} x", "target >= 0.25 x"),
        ("project / baseline", f"{peo['rows_per_s'] / base['rows_per_s']:.1f} x", "target >= 5 x"),
        ("project: all 13 assets via Dagster", f"{_n(every['rows_per_s'])} rows/s",
         f"{every['seconds']:.1f} s, {every['rows']:,} rows in {len(every['rows_per_table'])} tables"),
        (f"latency-bound first sync, {lat['people']:,} people, +{LATENCY * 1000:.0f} ms a request,"
         " `dagster asset materialize`, pages one by one",
         f"{seq['span_seconds']:.1f} s",
         f"first request to last response: {lat['sequential_vs_longest_chain']:.2f} x longest chain"
         f" ({lat['longest_chain_requests']:,} requests, {lat['longest_chain_seconds']:.1f} s); {seq['requests']:,}"
         f" requests; run {seq['run_seconds']:.1f} s"),
        ("the same, pages side by side (the defaults)", f"{side['span_seconds']:.1f} s",
         f"{lat['vs_longest_chain']:.2f} x longest chain, {lat['vs_sum']:.2f} x sum; {side['requests']:,} requests"
         f" ({lat['requests_vs_sequential']:.2f} x); run {side['run_seconds']:.1f} s; target <= 0.5 x longest"),
        ("requests: first sync", api_requests(first), f"{first['rows']:,} rows"),
        ("requests: nightly sync after 1% changed", api_requests(nightly),
         f"run {nightly['run_seconds']:.1f} s, `dagster job execute -j nightly_sync`; {nightly['changed']['people']:,} people and"
         f" {nightly['changed']['responses']:,} responses changed"),
        ("peak RSS: small load", rss(mem["small"]), "process tree of the load"),
        ("peak RSS: large load", rss(mem["large"]),
         f"{mem['ratio']:.2f} x small; target <= 1.5 x" if mem["ratio"] else "target <= 1.5 x"),
        ("start-up: definitions load", f"{start['definitions_s']:.2f} s",
         f"{start['ratio']:.2f} x `import dagster, dlt` ({start['import_dagster_dlt_s']:.2f} s),"
         f" median of {start['repeats']}; target <= 1.5 x"),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("measure", "figure", "detail")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]
    out.append("")
    for target in targets(figures):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
        value = "-" if target.value is None else f"{target.value:.2f}"
        sign = ">=" if target.kind == "min" else "<="
        out.append(f"- {target.name}: {value} (target {sign} {target.bound}): {verdict}")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    import dagster
    import dlt

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dlt": dlt.__version__,
        "dagster": dagster.__version__,
        "load_average": os.getloadavg(),
    }


def side_measures(scale: Scale, workspace: Workspace, skip_large_memory: bool) -> dict[str, Any]:
    """The measures that need no shared sandbox: the memory loads of their own, and start-up."""
    loads = memory_loads(scale, workspace, skip_large_memory)
    log("start-up")
    return {"memory_loads": loads, "startup": measure_startup(workspace, scale.repeats)}


def run(scale: Scale, workspace: Workspace, skip_large_memory: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"scale": asdict(scale), "machine": machine()}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(side_measures, scale, workspace, skip_large_memory) if scale.side_by_side else None
        with SandboxProcess(
            workspace.new("sandbox"), people=scale.people, responses=scale.responses
        ) as sandbox:
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("limit", lambda: measure_limit(sandbox, max(3, scale.repeats))),
                ("http_stack", lambda: measure_limit(sandbox, max(3, scale.repeats), client="requests")),
                ("baseline", lambda: measure_baseline(sandbox, workspace)),
                ("peoples", lambda: measure_peoples(sandbox, workspace)),
                ("all_assets", lambda: measure_all_assets(sandbox, workspace)),
                ("syncs", lambda: measure_syncs(sandbox, workspace, scale)),
            ]
            for name, step in steps:
                log(f"{name} ({scale.people:,} people)")
                figures[name] = step()
        log(f"latency-bound syncs ({scale.latency_people:,} people)")
        figures["latency"] = measure_latency_bound(workspace, scale)
        extra = side.result() if side else side_measures(scale, workspace, skip_large_memory)
    figures["memory"] = memory_figures(scale, {scale.people: figures["peoples"], **extra["memory_loads"]})
    figures["startup"] = extra["startup"]
    figures["targets"] = [{**asdict(t), "met": t.met} for t in targets(figures)]
    figures["seconds"] = time.monotonic() - started
    figures["machine"]["load_average_end"] = os.getloadavg()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=int, default=1, help="N x 100,000 people (default 1)")
    size.add_argument("--tiny", action="store_true", help="a few seconds of everything (the smoke test)")
    parser.add_argument(
        "--skip-large-memory",
        action="store_true",
        help="do not load 1,000,000 people for the memory measure (the slowest part)",
    )
    parser.add_argument(
        "--hash-email",
        action="store_true",
        help="only audience/peoples, with audience.peoples.email hashed against without, interleaved",
    )
    parser.add_argument("--pairs", type=int, default=3, help="with --hash-email: runs of each (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder of the JSON result")
    parser.add_argument("--workdir", type=Path, help="keep warehouses and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    scale = TINY if args.tiny else scale_for(args.scale)
    if args.hash_email:
        return main_hashing(scale, args)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.workdir) as root:
        figures = run(scale, Workspace(Path(root)), args.skip_large_memory)
    date = dt.date.today().isoformat()
    figures["date"] = date
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"{date}.json" if scale.name == "default" else f"{date}-{scale.name}.json")
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\nanalytics_assets benchmark, {date}, scale {scale.name} ({scale.people:,} people),"
        f" {figures['machine']['cpus']} CPUs, {figures['seconds']:.0f} s\n"
    )
    print(table(figures))
    print(f"\nFigures: {path}")
    return 0


def main_hashing(scale: Scale, args: argparse.Namespace) -> int:
    """`--hash-email`: the people load with and without the email hashed."""
    figures: dict[str, Any] = {"scale": asdict(scale), "machine": machine()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.workdir) as root:
        figures["hash_email"] = measure_hashing(scale, Workspace(Path(root)), max(args.pairs, 1))
    figures["seconds"] = time.monotonic() - started
    figures["machine"]["load_average_end"] = os.getloadavg()
    date = figures["date"] = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if scale.name == "default" else f"-{scale.name}"
    path = args.out / f"{date}-hash-email{suffix}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    load = ", ".join(f"{v:.2f}" for v in figures["machine"]["load_average"])
    print(
        f"\nanalytics_assets benchmark, hashing, {date}, scale {scale.name} ({scale.people:,} people),"
        f" {figures['machine']['cpus']} CPUs, load average at start {load}, {figures['seconds']:.0f} s\n"
    )
    print(hashing_table(figures))
    print(f"\nFigures: {path}")
    return 0
