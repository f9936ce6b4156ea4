"""One endpoint's failure is its own: through the real `dagster` CLI and one DAGSTER_HOME, as production runs.

Each test starts from a first sync of every asset (one CLI run, shared: each test gets a copy of its
instance folder, warehouse and dlt folder), changes the data at the source, breaks endpoints, runs
the assets, and asserts that every other table equals the API, the broken ones are unchanged, the
run failed naming them, and the next clean run is exact.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from time import sleep as time_sleep

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, DagsterEventType, DagsterInstance

from analytics_assets_tests.cli import (
    dagster_home,
    last_run_events,
    materialize_command,
    run_dg_job,
    run_materialize,
    warnings_in,
)
from analytics_assets_tests.conftest import SMALL, Warehouse, make_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_e2e import REPO
from analytics_assets_tests.test_sync import (
    KEYS,
    assert_warehouse_equals_api,
    assert_warehouse_equals_api_table,
)
from analytics_sandbox import Sandbox

# Whole Dagster runs, several through the dagster CLI per test, on a shared machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ALL_TABLES = {
    "audience": ("schemas", "peoples", "accounts", "account_tags", "segments", "fields", "segment_people"),
    "feedback": (
        "surveys",
        "action_classes",
        "attribute_classes",
        "identified_peoples",
        "responses",
        "webhooks",
    ),
}
FAST_BACKOFF = {f"SOURCES__{api}__RETRY_BACKOFF_FACTOR": "0.05" for api in ("AUDIENCE", "FEEDBACK")}


@dataclass
class Cli:
    """`dagster asset materialize` and `dg launch --job`, always against the same instance (DAGSTER_HOME)."""

    home: Path

    def materialize(self, select: str = "*", *extra: str) -> subprocess.CompletedProcess[str]:
        return run_materialize(select, {"DAGSTER_HOME": str(self.home)}, *extra)

    def launch_job(self, job: str) -> subprocess.CompletedProcess[str]:
        return run_dg_job(job, {"DAGSTER_HOME": str(self.home)})

    def last_run_events(self, kind: DagsterEventType) -> set[str]:
        """The asset keys of the newest run's events of one kind, as `api/resource`."""
        return last_run_events(self.home, kind)


@pytest.fixture(scope="module")
def first_sync(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A first sync of every asset through the CLI, as files for each test to start from: the instance
    folder (`home_embedded`, the run in its history), the DuckDB file (`warehouse`) and dlt's folder (`dlt`).

    The sandbox generates its data from its seed, so each test's own sandbox (SMALL) serves what this
    one served: the copy is the state that test's own first run would have left. Under pytest-xdist
    (`make test`) the workers share one: the first to need it makes it while the others wait.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, above each worker's own
    root = base / "isolation_first_sync"
    with open(base / "isolation_first_sync.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its holder dies
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed making it left part of one
            root.mkdir()
            make_first_sync(root)
            (root / "done").touch()
    return root


def make_first_sync(root: Path) -> None:
    """The first sync of `first_sync` into `root`."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "ANALYTICS_", "DESTINATION__", "DAGSTER_", "DLT_"))
    }
    with Sandbox(SMALL, port=0) as sandbox, ExitStack() as stack:
        home = dagster_home("embedded", root, stack)
        warehouse = stack.enter_context(make_warehouse("duckdb", root))
        done = subprocess.run(
            materialize_command("*"),
            cwd=REPO,
            env={**inherited, **sandbox.env(), **warehouse.env, **home, **FAST_BACKOFF},
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture
def cli(
    configured: Sandbox,
    warehouse: Warehouse,
    first_sync: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """The CLI on this test's copy of the first sync: its instance, its warehouse and dlt's folder."""
    for name, value in FAST_BACKOFF.items():
        monkeypatch.setenv(name, value)
    assert warehouse.path is not None
    shutil.copytree(first_sync / "warehouse", warehouse.path.parent)
    shutil.copytree(first_sync / "dlt", warehouse.env["DLT_DATA_DIR"])
    home = tmp_path / "dagster_home"
    shutil.copytree(first_sync / "home_embedded", home)
    assert_warehouse_equals_api(warehouse, configured)  # this test's sandbox serves what was synced
    return Cli(home)


def change_everything(sandbox: Sandbox) -> None:
    """A day of changes at the source, on every kind of resource."""
    sandbox.data.update_people(7)
    sandbox.data.delete_people(3)
    sandbox.data.add_people(4)
    segment = sandbox.data.add_segment()
    sandbox.data.add_memberships(segment, 5)
    sandbox.data.add_record("fields")
    sandbox.data.add_record("surveys")
    sandbox.data.add_record("webhooks")
    sandbox.data.add_responses(3)


def table_rows(warehouse: Warehouse, table: str) -> list[str]:
    """Every row and column of a table (dlt's load ids included: a rewrite would show)."""
    return sorted(repr(row) for row in warehouse.query(f"select * from {table}"))


BROKEN = {
    # table: (path, fault): an audience endpoint answering 500, a feedback one 503, and a malformed page
    # in the middle of the people's list
    "audience.fields": ("/audience/v1/fields", {"kind": "status", "status": 500}),
    "feedback.surveys": ("/feedback/v1/management/surveys", {"kind": "status", "status": 503}),
    "audience.peoples": ("/audience/v1/people/all", {"kind": "malformed_json", "query": {"offset": "99"}}),
}


def test_failing_endpoints_hold_back_no_other(configured: Sandbox, warehouse: Warehouse, cli: Cli) -> None:
    """After the first sync, a day of changes and a nightly sync in which three endpoints of both APIs
    fail, started with the README's command (`dg launch --job nightly_sync`): every other table equals the
    API, each broken one is untouched, the run fails naming each with its request and prints no warning
    (none from the project's code, the command, or dlt about the project's schema), the UI shows just those
    as failed, and the next clean run is exact."""
    before = {table: table_rows(warehouse, table) for table in BROKEN}
    change_everything(configured)
    configured.clear_requests()
    for path, fault in BROKEN.values():
        configured.inject_fault(path, times=1000, **fault)  # type: ignore[arg-type]

    failed = cli.launch_job("nightly_sync")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert warnings_in(output) == [], output[-3000:]
    configured.clear_faults()
    for table in BROKEN:
        assert f"- {table.replace('.', '/')}: " in output  # its line in the run's failure message
        assert table_rows(warehouse, table) == before[table], f"{table}, which failed, is untouched"
    assert "audience API: audience/peoples, audience/fields failed;" in output  # the alerts quote this line
    assert "GET /audience/v1/fields" in output and "500" in output and "on all 4 attempts" in output
    assert "GET /feedback/v1/management/surveys" in output and "503" in output
    assert "malformed JSON on GET /audience/v1/people/all?" in output and "offset=99" in output
    for table in KEYS:
        if table not in BROKEN:
            assert_warehouse_equals_api_table(warehouse, configured, table)
    memberships = {(str(s), str(p)) for s, p in configured.data.memberships()}
    loaded = warehouse.query("select segment_id, id from audience.segment_people")
    assert {(str(s), str(p)) for s, p in loaded} == memberships, "members of every segment, the new one too"
    # In the UI: every asset but the failed ones materialized in the run, and the failed ones, planned by a
    # run that failed without materializing them, show as failed.
    every = {f"{api}/{r}" for api, resources in ALL_TABLES.items() for r in resources}
    broken = {table.replace(".", "/") for table in BROKEN}
    assert cli.last_run_events(DagsterEventType.ASSET_MATERIALIZATION) == every - broken
    assert broken <= cli.last_run_events(DagsterEventType.ASSET_MATERIALIZATION_PLANNED)

    assert cli.materialize().returncode == 0  # the next clean run, of every asset, is exact
    assert_warehouse_equals_api(warehouse, configured)
    assert len(configured.requests(path="/audience/v1/fields")) == 4 + 1  # the failed run's 4, the next's 1


def test_a_current_generation_server_loads_every_asset_from_the_successor_paths(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    configured.set_feedback_generation("current", licensed=True)
    instance = DagsterInstance.ephemeral()
    result = materialize(instance=instance)
    assert result.success
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        f"{a}/{r}" for a, rs in ALL_TABLES.items() for r in rs
    }
    contacts = {r["id"] for r in configured.data.records("contacts")}
    keys = {r["id"] for r in configured.data.records("contact_attribute_keys")}
    assert {r[0] for r in warehouse.query("select id from feedback.identified_peoples")} == contacts
    assert {r[0] for r in warehouse.query("select id from feedback.attribute_classes")} == keys
    served_by = {
        e.asset_key.path[-1]: e.materialization.metadata["served_by"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] == "feedback"
    }
    assert served_by["identified_peoples"] == "GET /v1/management/contacts"
    assert served_by["attribute_classes"] == "GET /v1/management/contact-attribute-keys"
    assert served_by["surveys"] == "GET /v1/management/surveys"
    said = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if "from GET /v1/management/" in e.user_message
    ]
    assert len(said) == 2, said  # once for each of the two resources
    assert "no GET /v1/management/people (404" in " ".join(said)


def test_a_current_generation_server_without_a_licence_loads_the_rest_and_pages_nobody(
    configured: Sandbox, warehouse: Warehouse, cli: Cli
) -> None:
    # The first sync read the seed's generation: the tables have rows.
    before = {t: table_rows(warehouse, f"feedback.{t}") for t in ("identified_peoples", "attribute_classes")}
    configured.set_feedback_generation("current", licensed=False)
    change_everything(configured)

    done = cli.materialize("group:feedback")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]  # a plan restriction is not an outage
    assert "Contacts are only enabled for Enterprise Edition, please upgrade." in output
    assert "not available on this plan" in output
    for table in ("surveys", "action_classes", "responses", "webhooks"):
        assert_warehouse_equals_api_table(warehouse, configured, f"feedback.{table}")
    assert before == {t: table_rows(warehouse, f"feedback.{t}") for t in before}
    with DagsterInstance.from_config(str(cli.home)) as instance:
        for resource in ("identified_peoples", "attribute_classes"):
            key = AssetCheckKey(AssetKey(["feedback", resource]), "available_on_plan")
            record = instance.get_latest_asset_check_evaluation_record(key)
            assert record is not None and record.evaluation is not None
            evaluation = record.evaluation
            assert (evaluation.passed, evaluation.severity) == (False, AssetCheckSeverity.WARN)
            assert "Enterprise Edition" in (evaluation.description or "")


def test_a_failed_blocking_check_on_segments_still_keeps_its_members_from_loading(
    configured: Sandbox, warehouse: Warehouse, cli: Cli
) -> None:
    """Through the CLI, whose executor runs a step once its inputs exist even after a failed step."""
    members = warehouse.query("select count(*) from audience.segment_people")
    configured.data.truncate("segments", 1)  # most segments vanish: row_count_drop fails at ERROR, blocking
    configured.clear_requests()

    # A refresh, as a sync refuses to delete most of a table: segments reloads, its check fails.
    refresh = json.dumps({"ops": {"analytics_load": {"config": {"refresh": True, "apis": ["audience"]}}}})
    done = cli.materialize("audience/segments,audience/segment_people", "--config-json", refresh)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert (
        "Not loading segment_people: audience/segments failed its blocking checks (row_count_drop)" in output
    )
    # Its members were read side by side with the parent; nothing of that read loaded.
    assert "Dropped what was read for audience/segment_people: nothing of it loads." in output
    assert warehouse.query("select count(*) from audience.segment_people") == members


PEOPLE_FIRST_PAGE = ("/audience/v1/people/all", {"offset": "0"})
DELAY = 10
"""Seconds the people's first page is held back: room for a loaded machine to start the other reads."""


def test_a_run_killed_while_it_reads_holds_nothing_back_and_the_next_reads_side_by_side(
    configured: Sandbox, warehouse: Warehouse, cli: Cli, tmp_path: Path
) -> None:
    """The load op reads every endpoint of both APIs side by side and writes each as soon as it is read.
    SIGKILL of the whole run while the people's first page is on its way and the feedback endpoints were
    read (their load packages wait on disk, some of them written, both API locks held): the next run of
    the same instance loads at once, and exactly, its feedback and member requests side by side with the
    people's pages."""
    change_everything(configured)
    path, query = PEOPLE_FIRST_PAGE
    configured.inject_fault(path, "latency", delay=60, query=query)
    log = tmp_path / "killed.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            materialize_command("*"),
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(cli.home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Killed once the feedback reads were answered: their load packages wait on disk.
        for _ in range(600):
            if process.poll() is not None or len(configured.requests(api="feedback")) >= 6:
                break
            time_sleep(0.1)
        assert process.poll() is None, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    configured.clear_faults()
    configured.clear_requests()
    configured.inject_fault(path, "latency", delay=DELAY, query=query)

    done = cli.materialize("*")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Waiting for the" not in output  # the dead run's locks went with it
    # Every feedback request and every member list was asked for while the people's first page was
    # still on its way (the sandbox answers it DELAY seconds after it arrived).
    first_page = next(e for e in configured.requests(path=path) if e["query"].get("offset") == "0")
    later = configured.requests(api="feedback") + configured.requests(path="/audience/v1/segments/*")
    after = {e["path"]: round(e["time"] - first_page["time"], 1) for e in later}
    assert later and max(after.values()) < DELAY, after
    assert_warehouse_equals_api(warehouse, configured)
