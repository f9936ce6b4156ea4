"""The fault-injection suite: what the APIs do at 3 a.m., and what the load does about it.

Each test asserts the run's outcome, the attempts the sandbox saw, and the warehouse afterwards.
Backoff is shortened (SOURCES__<API>__RETRY_BACKOFF_FACTOR) so the suite stays fast; the rules
(which statuses are retried, how many attempts) are the seeds'.
"""

import os
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest
from dagster import ExecuteInProcessResult

from analytics_assets.reading.apis import AUDIENCE
from analytics_assets.reading.feedback.source import PAGE_CONCURRENCY as FEEDBACK_PAGE_CONCURRENCY
from analytics_assets.reading.rest import PathSegment
from analytics_assets_tests.cli import INSTANCES, dagster_home, materialize_command, start_materialize
from analytics_assets_tests.conftest import SMALL, Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_sync import assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox, some through the dagster CLI

PEOPLE = "/audience/v1/people/all"
RESPONSES = "/feedback/v1/management/responses"
AUDIENCE_RESOURCES = tuple(AUDIENCE.catalog)  # every endpoint of the audience API
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for api in ("AUDIENCE", "FEEDBACK"):
        monkeypatch.setenv(f"SOURCES__{api}__RETRY_BACKOFF_FACTOR", "0.05")


def attempts(sandbox: Sandbox, path: str, **query: str) -> int:
    return sum(
        1 for r in sandbox.requests(path=path) if all(r["query"].get(k) == v for k, v in query.items())
    )


def failure_message(result: ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None
    return error.message


def peoples_metadata(result: ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "peoples"]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.mark.parametrize(
    ("fault", "expected_attempts"),
    [
        ({"kind": "status", "status": 503, "times": 2}, 3),
        ({"kind": "status", "status": 429, "retry_after": 1}, 2),
        ({"kind": "reset"}, 2),
    ],
    ids=["503-twice", "429-retry-after", "connection-reset"],
)
def test_transient_faults_are_retried_and_the_data_is_exact(
    configured: Sandbox, warehouse: Warehouse, fault: dict, expected_attempts: int
) -> None:
    configured.inject_fault(PEOPLE, query={"offset": "99"}, **fault)
    result = materialize("audience/peoples")
    assert result.success
    assert attempts(configured, PEOPLE, offset="99") == expected_attempts
    assert peoples_metadata(result)["retries"] == expected_attempts - 1
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")


def test_429_without_retry_after_is_retried(configured: Sandbox, warehouse: Warehouse) -> None:
    configured.inject_fault(RESPONSES, "status", status=429, query={"skip": "99"})
    assert materialize("feedback/responses").success
    assert attempts(configured, RESPONSES, skip="99") == 2
    assert_warehouse_equals_api_table(warehouse, configured, "feedback.responses")


def test_a_response_slower_than_the_timeout_is_retried(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__AUDIENCE__REQUEST_TIMEOUT", "1")
    configured.inject_fault(PEOPLE, "latency", delay=3, query={"offset": "198"})
    assert materialize("audience/peoples").success
    # The slow answer is logged once its handler wakes up, after the run may have finished.
    deadline = time.monotonic() + 10
    while attempts(configured, PEOPLE, offset="198") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert attempts(configured, PEOPLE, offset="198") == 2
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")


def test_500_on_every_attempt_fails_after_four_and_changes_nothing(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    assert materialize("audience/peoples").success
    before = sorted(warehouse.query("select id, last_name, updated_at from audience.peoples"))
    loads = warehouse.query("select count(*) from audience._dlt_loads")
    configured.data.update_people(5)
    configured.clear_requests()
    configured.inject_fault(PEOPLE, "status", status=500, times=5, query={"offset": "99"})

    result = materialize("audience/peoples", raise_on_error=False)
    assert not result.success
    assert attempts(configured, PEOPLE, offset="99") == 4
    message = failure_message(result)
    assert "500" in message and "GET /audience/v1/people/all?" in message and "offset=99" in message
    assert sorted(warehouse.query("select id, last_name, updated_at from audience.peoples")) == before
    assert warehouse.query("select count(*) from audience._dlt_loads") == loads  # no load, no cursor moved

    configured.clear_faults()
    assert materialize("audience/peoples").success
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")


@pytest.mark.parametrize("status", [501, 404])
def test_other_statuses_fail_at_once_with_a_clear_message(
    configured: Sandbox, warehouse: Warehouse, status: int
) -> None:
    configured.inject_fault(PEOPLE, "status", status=status, query={"offset": "99"})
    result = materialize("audience/peoples", raise_on_error=False)
    assert not result.success
    assert attempts(configured, PEOPLE, offset="99") == 1
    message = failure_message(result)
    assert "audience API" in message and f"{status}" in message and "offset=99" in message
    if status == 404:
        assert "SOURCES__AUDIENCE__BASE_URL" in message
    assert warehouse.tables("audience") == set()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("malformed_json", "malformed JSON"), ("html_error", "HTML page")],
)
def test_a_broken_middle_page_fails_naming_the_endpoint(
    configured: Sandbox, warehouse: Warehouse, kind: str, expected: str
) -> None:
    configured.inject_fault(RESPONSES, kind, query={"skip": "99"})
    result = materialize("feedback/responses", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert expected in message and "feedback API" in message
    assert "GET /feedback/v1/management/responses?" in message and "skip=99" in message
    assert warehouse.tables("feedback") == set()  # nothing half-done


def test_a_page_without_its_data_selector_is_not_taken_for_the_end(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    """dlt reads a page without `people` as empty: paging would stop and the sweep would delete the rest."""
    assert materialize("audience/peoples").success
    configured.inject_fault(
        PEOPLE, "status", status=200, query={"offset": "99"}
    )  # the error body, status 200
    result = materialize("audience/peoples", raise_on_error=False)
    assert not result.success
    assert "without its `people` field" in failure_message(result)
    assert warehouse.query("select count(*) from audience.peoples")[0][0] == SMALL.people


def test_a_record_without_its_key_stops_the_run_clearly(configured: Sandbox, warehouse: Warehouse) -> None:
    configured.data.add_raw_record("webhooks", {"name": "no id", "url": "https://hooks.example/x"})
    result = materialize("feedback/webhooks", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "webhooks record on GET /feedback/v1/webhooks has no id" in message
    assert warehouse.tables("feedback") == set()


def test_type_drift_and_new_fields_load_and_show(configured: Sandbox, warehouse: Warehouse) -> None:
    assert materialize("audience/peoples").success
    [drifted, extended] = [r["id"] for r in configured.data.records("peoples", limit=2)]
    configured.data.patch_record("peoples", drifted, set_fields={"leadScore": "high"})
    configured.data.patch_record("peoples", extended, set_fields={"favoriteColor": "teal"})
    result = materialize("audience/peoples")
    assert result.success
    rows = dict(
        warehouse.query(
            "select id, lead_score__v_text from audience.peoples where lead_score__v_text is not null"
        )
    )
    assert rows == {drifted: "high"}
    assert warehouse.query(f"select favorite_color from audience.peoples where id = '{extended}'") == [
        ("teal",)
    ]
    assert set(peoples_metadata(result)["new_columns"]) == {"lead_score__v_text", "favorite_color"}


def test_a_plain_http_base_url_beyond_this_machine_is_refused(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__AUDIENCE__BASE_URL", "http://api.example.com/v1")
    result = materialize("audience/peoples", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "clear text" in message and "SOURCES__AUDIENCE__BASE_URL" in message
    assert "SOURCES__AUDIENCE__ALLOW_INSECURE_HTTP" in message


def test_a_parent_value_cannot_change_the_child_path(configured: Sandbox, warehouse: Warehouse) -> None:
    # A text segment id stops the run before its members are requested (see the test below); were it
    # requested, dlt's unquoted formatting of the path would be percent-encoded by `PathSegment`.
    configured.data.add_raw_record("segments", {"id": "1/../../accounts", "name": "sneaky"})
    materialize("audience/segment_people", raise_on_error=False)
    paths = [r["path"] for r in configured.requests(api="audience")]
    assert "/audience/v1/accounts" not in paths
    assert all(".." not in path for path in paths)
    assert "/segments/{id}/people".format(id=PathSegment("1/../../accounts?x#y")) == (
        "/segments/1%2F..%2F..%2Faccounts%3Fx%23y/people"
    )


HOSTILE = "1/../people/all?limit=1#x"


def snapshot(warehouse: Warehouse) -> list[list[tuple]]:
    return [
        warehouse.query(f"select * from audience.{table} order by 1, 2")
        for table in ("segments", "segment_people", "_dlt_loads")
    ]


@pytest.mark.parametrize("hostile", [HOSTILE, "1002"])
def test_a_segment_id_sent_as_text_fails_naming_it_and_changes_nothing(
    configured: Sandbox, warehouse: Warehouse, hostile: str
) -> None:
    selection = ("audience/segments", "audience/segment_people")
    assert materialize(*selection).success
    before = snapshot(warehouse)
    configured.data.add_raw_record("segments", {"id": hostile, "name": "odd", "objectName": "people"})
    configured.data.add_segment()  # numeric ones after it too
    result = materialize(*selection, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "audience API: a segments record on GET /audience/v1/segments?" in message
    assert f"has id {hostile!r} (a string), but the warehouse's segments.id holds whole numbers" in message
    assert "run a refresh of audience/segments" in message
    assert snapshot(warehouse) == before


def test_a_key_changing_type_within_one_run_fails_naming_both(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    configured.data.add_raw_record("segments", {"id": HOSTILE, "name": "odd", "objectName": "people"})
    result = materialize("audience/segments", raise_on_error=False)  # a new warehouse: no column yet
    assert not result.success
    message = failure_message(result)
    first = next(iter(configured.data.records("segments")))["id"]
    assert (
        f"a segments record on GET /audience/v1/segments?offset=0&limit=100 has id {HOSTILE!r} (a string),"
        f" but the first segments record of this run had id {first} (a whole number)"
    ) in message
    assert warehouse.tables("audience") == set()


def test_a_key_type_the_api_uses_from_the_start_loads(configured: Sandbox, warehouse: Warehouse) -> None:
    """Text ids from the first load on are the API's type, not a change: loaded (the `seed_columns`
    check of accounts says so when the seed expects numbers)."""
    for segment in list(configured.data.records("segments")):
        configured.data.patch_record("segments", segment["id"], set_fields={"id": f"s{segment['id']}"})
    assert materialize("audience/segments").success
    assert {r[0] for r in warehouse.query("select id from audience.segments")} == {
        r["id"] for r in configured.data.records("segments")
    }


@pytest.mark.parametrize("sandbox", [replace(SMALL, responses=5_000)], indirect=True)
def test_pacing_keeps_a_long_sync_under_the_rate_limit(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured.set_rate_limit("feedback", 20, 2.0)
    monkeypatch.setenv("SOURCES__FEEDBACK__REQUESTS_PER_MINUTE", "600")  # 20 per 2 s, like the API
    monkeypatch.setenv("SOURCES__FEEDBACK__RATE_WINDOW_SECONDS", "2")
    assert materialize("feedback/responses").success
    statuses = [r["status"] for r in configured.requests(api="feedback")]
    assert 429 not in statuses
    # 51 pages (5 s at the API's pace), each once, and (pages side by side) at most one window past the end.
    skips = [int(r["query"]["skip"]) for r in configured.requests(path=RESPONSES)]
    # Pages overlap by one record: 0, 99, ..., 4,950 (the short last page).
    assert sorted(s for s in skips if s <= 4_950) == list(range(0, 4_951, 99))
    assert len([s for s in skips if s > 4_950]) <= FEEDBACK_PAGE_CONCURRENCY - 1
    assert warehouse.query("select count(*) from feedback.responses")[0][0] == 5_000

    # Without pacing, the same API answers 429 within the first seconds.
    monkeypatch.setenv("SOURCES__FEEDBACK__REQUESTS_PER_MINUTE", "0")
    configured.clear_requests()
    full_scan = {"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["feedback"]}}}}
    materialize("feedback/responses", raise_on_error=False, run_config=full_scan)
    assert 429 in [r["status"] for r in configured.requests(api="feedback")]


ONE_ASSET = {"audience": "audience/peoples", "feedback": "feedback/webhooks"}
SECRETS = {api: f"sk-live-{api}-7f3a9c1e5b" for api in ONE_ASSET}


def _files_containing(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_refused_key_stops_its_apis_reads_at_once(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every audience asset read side by side (segment_people too, asking for /segments again):
    # each path asked once, then nothing more.
    monkeypatch.setenv("SOURCES__AUDIENCE__API_KEY", "sk-wrong-audience-key")
    failed = materialize(*(f"audience/{r}" for r in AUDIENCE_RESOURCES), raise_on_error=False)
    assert not failed.success
    seen = configured.requests(api="audience")
    paths = [r["path"] for r in seen]
    assert len(paths) == len(set(paths)), f"a path requested twice: {paths}"
    assert {r["status"] for r in seen} == {401}
    assert len(seen) <= 6  # the six top-level paths read side by side; no page, no child, no path twice
    messages = [str(e.event_specific_data.error) for e in failed.all_events if e.is_step_failure]  # type: ignore[union-attr]
    assert any(
        "audience API refused the API key (401)" in m and "SOURCES__AUDIENCE__API_KEY" in m for m in messages
    )
    assert warehouse.query(
        "select count(*) from information_schema.tables where table_schema = 'audience'"
    ) == [(0,)]


@pytest.mark.parametrize("right", [True, False], ids=["right-key", "wrong-key"])
def test_the_key_never_leaks_and_a_wrong_one_is_named(right: bool, tmp_path: Path) -> None:
    """Through the real CLI, in a successful and a failing run of one asset of each API (one run for
    both: each API's key is its own secret): the key is in its header and nowhere else."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "embedded" / "dagster.yaml").read_text())
    config = replace(SMALL, **{f"{api}_key": secret for api, secret in SECRETS.items()}) if right else SMALL
    with Sandbox(config, port=0) as sandbox:
        env = {
            **os.environ,
            **sandbox.env(),
            **{f"SOURCES__{api.upper()}__API_KEY": secret for api, secret in SECRETS.items()},
            "DAGSTER_HOME": str(home),
            "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "DLT_DATA_DIR": str(tmp_path / "dlt"),
        }
        command = materialize_command(",".join(ONE_ASSET.values()))
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
        seen = {api: sandbox.requests(api=api) for api in SECRETS}
    output = done.stdout + done.stderr
    if right:
        assert done.returncode == 0, output[-2000:]
    else:
        assert done.returncode != 0
    for api, secret in SECRETS.items():
        assert seen[api] and all(secret in r["headers"].values() for r in seen[api]), api
        assert all(secret not in r["path"] and secret not in str(r["query"]) for r in seen[api]), api
        if not right:
            assert f"{api} API refused the API key (401)" in output
            assert f"SOURCES__{api.upper()}__API_KEY" in output
        assert secret not in output, api
        # Event log, compute logs, run storage, the DuckDB file, dlt's folder: nowhere.
        assert _files_containing(tmp_path, secret.encode()) == [], api


@pytest.mark.timeout(900)
@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("sandbox", [replace(SMALL, people=5_000)], indirect=True)
def test_a_load_killed_mid_way_never_blocks_the_next_run_and_it_gives_exact_data(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path, instance: str
) -> None:
    """SIGKILL of a real CLI run half-way through its pages, then the same command on the same instance."""
    assert materialize("audience/peoples").success  # a first load, so the killed run is a nightly sync
    configured.data.update_people(50)
    configured.data.delete_people(5)
    configured.clear_requests()
    configured.set_latency(0.1)  # 50 pages of at least 0.1 s each: the kill lands mid-load

    with ExitStack() as stack:
        home = dagster_home(instance, tmp_path, stack)
        killed = start_materialize("audience/peoples", home, tmp_path / "killed.log")
        try:
            deadline = time.monotonic() + 300
            while len(configured.requests(path=PEOPLE)) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)  # the run and its step processes, as the OOM killer would
            killed.wait()
            killed_at = time.monotonic()
        assert 20 <= len(configured.requests(path=PEOPLE)) < 50  # killed before the last of its 50 pages

        configured.set_latency(0)
        configured.clear_requests()  # the next run starts at offset 0; the killed one's last was far beyond

        def next_run_loading() -> bool:
            return attempts(configured, PEOPLE, offset="0") > 0

        rerun = start_materialize("audience/peoples", home, tmp_path / "rerun.log")
        try:
            while not next_run_loading() and rerun.poll() is None and time.monotonic() - killed_at < 60:
                time.sleep(0.1)
            started_loading = time.monotonic() - killed_at
            print(f"\n{instance}: the next run's first request {started_loading:.1f} s after the kill")
            assert next_run_loading(), "the next run did not start loading within 60 s"
            assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        finally:
            if rerun.poll() is None:
                os.killpg(rerun.pid, signal.SIGKILL)
                rerun.wait()
    assert "Waiting for the audience API" not in (tmp_path / "rerun.log").read_text()
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")
    assert warehouse.query("select count(*) - count(distinct id) from audience.peoples") == [(0,)]


def test_an_unreachable_warehouse_is_named_before_any_request(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL warehouse on a port nothing listens on (bound, then closed: refused at once).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv(
        "DESTINATION__POSTGRES__CREDENTIALS", f"postgresql://loader:pw-9d2e7c41@127.0.0.1:{port}/warehouse"
    )
    result = materialize("audience/peoples", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "warehouse could not be reached" in message
    assert f"postgres at 127.0.0.1:{port}/warehouse" in message
    assert "DESTINATION__POSTGRES__CREDENTIALS" in message
    assert "pw-9d2e7c41" not in message
    assert "OperationalError" not in message
    assert configured.requests() == []
