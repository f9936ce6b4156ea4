"""The production path end to end: `dagster dev` (webserver and daemon) as a subprocess, against the
sandbox, driven through the webserver's GraphQL API the way the UI drives it.

Two deployments: the embedded defaults (`deploy/embedded/dagster.yaml`, SQLite, DuckDB), and the production
one (`deploy/dagster.yaml`: instance on PostgreSQL, queued runs; warehouse on PostgreSQL), each with a
fresh `DAGSTER_HOME` and fresh databases. The PostgreSQL one is skipped unless
`ANALYTICS_TEST_POSTGRES_URL` names a server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import requests

from analytics_assets.definitions import defs
from analytics_assets_tests.conftest import (
    SMALL,
    Warehouse,
    fresh_postgres_database,
    make_warehouse,
    postgres_server_url,
)
from analytics_assets_tests.test_definitions import EXPECTED_KEYS
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # starts `dagster dev` and materializes through its webserver

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
ASSET_JOB = "__ASSET_JOB"  # the implicit job of all assets, which the UI's "Materialize all" launches
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0
T = TypeVar("T")


class GraphQLError(AssertionError):
    pass


@dataclass
class GraphQL:
    """The webserver's GraphQL endpoint (the API the UI uses)."""

    url: str

    def __call__(self, document: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(self.url, json={"query": document, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]


@dataclass
class Deployment:
    """A running `dagster dev` and the warehouse its runs load into."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    graphql: GraphQL
    warehouse: Warehouse
    compute_logs: Path | None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
        """Poll `probe` until it returns something, failing with the log when the process dies or time is up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"dagster dev exited ({self.process.returncode}) waiting for {what}:\n{self.log_tail()}"
                )
            try:
                found = probe()
            except (requests.ConnectionError, GraphQLError):
                found = None
            if found is not None:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f} s; dagster dev log:\n{self.log_tail()}")
            time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code server, runs): its group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    # Then whatever is left in the group: a run worker mid-step, or a dagster dev that did not stop.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def instance_settings(name: str, home: Path, stack: ExitStack) -> dict[str, str]:
    """Put the deployment's dagster.yaml into `home`; the variables it reads."""
    if name == "embedded":
        shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
        return {}
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    url = urlsplit(stack.enter_context(fresh_postgres_database(postgres_server_url(), prefix="dagster_test")))
    return {
        "DAGSTER_PG_HOST": url.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.path.lstrip("/"),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_COMPUTE_LOGS_DIR": str(home / "compute_logs"),
    }


@pytest.fixture(params=["embedded", "postgres"])
def deployment(request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path: Path) -> Iterator[Deployment]:
    """`dagster dev` on a free port with a fresh DAGSTER_HOME, pointed at the sandbox and a fresh warehouse."""
    name: str = request.param
    home = tmp_path / "dagster_home"
    home.mkdir()
    with ExitStack() as stack:
        settings = instance_settings(name, home, stack)
        warehouse = stack.enter_context(
            make_warehouse("duckdb" if name == "embedded" else "postgres", tmp_path)
        )
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SOURCES__", "ANALYTICS_", "DESTINATION__", "DAGSTER_", "DLT_"))
        }
        env = {
            **inherited,
            **sandbox.env(),
            **warehouse.env,
            **settings,
            "DAGSTER_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        log = tmp_path / "dagster_dev.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole below
            )
        stack.callback(stop_process_group, process)
        compute_logs = settings.get("DAGSTER_COMPUTE_LOGS_DIR")
        yield Deployment(
            name,
            process,
            log,
            GraphQL(f"http://127.0.0.1:{port}/graphql"),
            warehouse,
            Path(compute_logs) if compute_logs else None,
        )


# -- the GraphQL documents, as the UI sends them (trimmed to the fields used) ----------------------

LOCATION = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

INSTANCE = """
query {
  instance { info runQueuingSupported poolConfig { defaultPoolLimit } }
}
"""

REPOSITORY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        assetNodes {
          assetKey { path }
          groupName
          jobNames
          assetChecksOrError { ... on AssetChecks { checks { name } } }
        }
        schedules { name cronSchedule scheduleState { id status } }
        sensors { name sensorState { status } }
      }
    }
  }
}
"""

LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}
"""

RUN_FAILURES = """
query RunFailures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message } }
        ... on RunFailureEvent { message }
      }
    }
  }
}
"""

RUN_MATERIALIZATIONS = """
query RunMaterializations($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      assetMaterializations {
        assetKey { path }
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""

START_SCHEDULE = """
mutation StartSchedule($scheduleSelector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $scheduleSelector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on PythonError { message }
  }
}
"""

STOP_SCHEDULE = """
mutation StopRunningSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on PythonError { message }
  }
}
"""

SCHEDULE = """
query Schedule($scheduleSelector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $scheduleSelector) {
    __typename
    ... on Schedule { scheduleState { status } }
  }
}
"""


def _loaded(gql: GraphQL) -> dict[str, Any] | None:
    entries = gql(LOCATION)["workspaceOrError"].get("locationEntries") or []
    entry = next((e for e in entries if e["name"] == "analytics_assets"), None)
    if entry is None or entry["loadStatus"] != "LOADED":
        return None
    location = entry["locationOrLoadError"]
    if location and location["__typename"] == "PythonError":
        pytest.fail(f"the code location failed to load: {location['message']}")
    return entry


def _expected_checks() -> set[tuple[str, str]]:
    return {(key.asset_key.to_user_string(), key.name) for key in defs.resolve_asset_graph().asset_check_keys}


def _run_failures(gql: GraphQL, run_id: str) -> str:
    events = gql(RUN_FAILURES, runId=run_id)["logsForRun"].get("events") or []
    return "\n".join(
        f"{e.get('stepKey', '')}: {(e.get('error') or {}).get('message') or e.get('message')}"
        for e in events
        if e["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}
    )


@pytest.mark.timeout(600)
def test_dagster_dev_loads_materializes_everything_and_runs_the_schedule(
    deployment: Deployment, sandbox: Sandbox
) -> None:
    gql = deployment.graphql
    began = time.monotonic()

    # 1. The code location loaded, with every asset, check, schedule and sensor of the code.
    deployment.wait_for("loaded code location", lambda: _loaded(gql), STARTUP_TIMEOUT)
    loaded = time.monotonic()
    (repository,) = gql(REPOSITORY)["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == "analytics_assets"
    nodes = repository["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == {k.to_user_string() for k in EXPECTED_KEYS}
    assert all(ASSET_JOB in n["jobNames"] for n in nodes)
    assert {n["groupName"] for n in nodes} == {"audience", "feedback"}
    checks = {
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in nodes
        for c in (n["assetChecksOrError"].get("checks") or [])
    }
    assert checks == _expected_checks()
    repo_def = defs.get_repository_def()
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert set(schedules) == {s.name for s in repo_def.schedule_defs}
    assert {s["name"] for s in repository["sensors"]} == {s.name for s in repo_def.sensor_defs}
    print(
        f"\n{deployment.name}: {len(nodes)} assets, {len(checks)} checks,"
        f" schedules {sorted(schedules)}, sensors {sorted(s['name'] for s in repository['sensors'])}"
    )

    # The instance is the one configured: runs queue for the daemon, and the production storage on
    # PostgreSQL.
    instance = gql(INSTANCE)["instance"]
    assert instance["runQueuingSupported"]
    if deployment.name == "postgres":
        for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
            assert storage in instance["info"]

    # 2. "Materialize all": the implicit asset job with every asset (and check) selected.
    selector = {"repositoryLocationName": "analytics_assets", "repositoryName": repository["name"]}
    launched = gql(
        LAUNCH,
        executionParams={
            "selector": {
                **selector,
                "pipelineName": ASSET_JOB,
                "assetSelection": [{"path": n["assetKey"]["path"]} for n in nodes],
                "assetCheckSelection": [{"assetKey": {"path": k.split("/")}, "name": c} for k, c in checks],
            },
            "mode": "default",
            "runConfigData": {},
            "executionMetadata": {"tags": []},
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished() -> str | None:
        status = gql(RUN, runId=run_id)["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    status = deployment.wait_for(f"end of run {run_id}", finished, RUN_TIMEOUT)
    assert status == "SUCCESS", f"run {run_id}: {status}\n{_run_failures(gql, run_id)}"
    print(
        f"{deployment.name}: code location loaded after {loaded - began:.0f} s,"
        f" run {run_id} succeeded {time.monotonic() - loaded:.0f} s later"
    )

    # 3. The rows landed in the warehouse, and the UI shows the same counts.
    counts = deployment.warehouse.row_counts()
    print(f"\n{deployment.name}: rows per table after the run: {counts}")
    expected = {
        f"{key.path[0]}.{key.path[1]}": (
            len(sandbox.data.memberships())
            if key.path[1] == "segment_people"
            else sandbox.data.count(key.path[1])
        )
        for key in EXPECTED_KEYS
    }
    assert counts == expected
    assert counts["audience.peoples"] == SMALL.people
    materialized = gql(RUN_MATERIALIZATIONS, runId=run_id)["runOrError"]["assetMaterializations"]
    shown = {
        ".".join(m["assetKey"]["path"]): {e["label"]: e.get("intValue") for e in m["metadataEntries"]}
        for m in materialized
    }
    assert {table: metadata.get("dagster/row_count") for table, metadata in shown.items()} == counts
    if deployment.compute_logs is not None:  # the step logs went where the instance says
        assert any(p.is_file() for p in deployment.compute_logs.rglob("*"))

    # 4. Toggle the nightly schedule (or whichever the code location has) off and on, as the UI does:
    # one that runs by default is stopped first, then started again.
    if not schedules:
        return
    name = next((n for n in sorted(schedules) if "nightly" in n), sorted(schedules)[0])
    schedule_selector = {**selector, "scheduleName": name}

    def stop() -> None:
        state_id = schedules[name]["scheduleState"]["id"]
        result = gql(STOP_SCHEDULE, id=state_id)["stopRunningSchedule"]
        assert result["__typename"] == "ScheduleStateResult", result

    def start() -> None:
        result = gql(START_SCHEDULE, scheduleSelector=schedule_selector)["startSchedule"]
        assert result["__typename"] == "ScheduleStateResult", result

    def schedule_status() -> str:
        return gql(SCHEDULE, scheduleSelector=schedule_selector)["scheduleOrError"]["scheduleState"]["status"]

    initially = schedule_status()
    if initially == "RUNNING":
        stop()
        assert schedule_status() == "STOPPED"
        start()
        assert schedule_status() == "RUNNING"
    else:
        start()
        assert schedule_status() == "RUNNING"
        stop()
        assert schedule_status() == "STOPPED"
    print(f"{deployment.name}: schedule {name} was {initially}, toggled off and on through GraphQL")
