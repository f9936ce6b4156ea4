"""The connection test (`check_connection`): one small request per endpoint, against the sandbox."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, instance_for_test, serialize_value

from analytics_assets.definitions import defs
from analytics_assets_tests.conftest import SMALL, Warehouse
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # runs the check_connection job in process, and `make check-connection`

REPO = Path(__file__).resolve().parents[1]
UNLICENSED = "Contacts are only enabled for Enterprise Edition, please upgrade."
# One request per endpoint, `limit=1` where paged; segment_people asks for the first listed segment.
SEED_REQUESTS = [
    ("/audience/v1/schemas", {}),
    ("/audience/v1/people/all", {"limit": "1"}),
    ("/audience/v1/accounts", {}),
    ("/audience/v1/tags-management", {}),
    ("/audience/v1/segments", {"limit": "1"}),  # paged like people (its connector pages it)
    ("/audience/v1/fields", {}),
    ("/audience/v1/segments/1001/people", {"limit": "1"}),
    ("/feedback/v1/management/surveys", {}),
    ("/feedback/v1/management/action-classes", {}),
    ("/feedback/v1/management/attribute-classes", {}),
    ("/feedback/v1/management/people", {}),
    ("/feedback/v1/management/responses", {"limit": "1"}),
    ("/feedback/v1/webhooks", {}),
]


@dataclass
class Checked:
    """A run of the connection test: its result, everything it logged, and its table."""

    result: ExecuteInProcessResult
    text: str
    """Every event and log entry of the run, serialized: what the UI and the run log can show."""
    metadata: dict[str, Any]

    @property
    def table(self) -> str:
        return str(self.metadata["endpoints"].value)

    def row(self, endpoint: str) -> list[str]:
        line = next(line for line in self.table.splitlines() if line.startswith(f"| {endpoint} |"))
        return [cell.strip() for cell in line.strip("|").split(" | ")]


def check(instance: DagsterInstance) -> Checked:
    result = defs.resolve_job_def("check_connection").execute_in_process(
        instance=instance, raise_on_error=False
    )
    entries = instance.all_logs(result.run_id)
    text = "\n".join(serialize_value(entry) for entry in entries)
    if result.success:
        [output] = [e for e in result.all_node_events if e.is_successful_output]
        metadata = dict(output.step_output_data.metadata)
    else:
        [failure] = [e for e in result.all_node_events if e.is_step_failure]
        metadata = dict(failure.step_failure_data.user_failure_data.metadata)  # type: ignore[union-attr]
    return Checked(result, text, metadata)


def failure_message(checked: Checked) -> str:
    [failure] = [e for e in checked.result.all_node_events if e.is_step_failure]
    return str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]


def served(sandbox: Sandbox) -> list[tuple[str, dict[str, str]]]:
    return [(r["path"], r["query"]) for r in sandbox.requests()]


def test_all_green_on_the_seed_generation(configured: Sandbox, warehouse: Warehouse) -> None:
    configured.clear_requests()
    with instance_for_test() as instance:
        checked = check(instance)
    assert checked.result.success
    assert (checked.metadata["usable"].value, checked.metadata["failed"].value) == (13, 0)
    assert checked.row("audience/peoples") == [
        "audience/peoples",
        "GET /people/all?limit=1 -> 200",
        "yes",
        "yes",
        "yes",
        "-",
        "ok",
        "",
    ]
    assert checked.row("feedback/identified_peoples")[5] == "seed"
    assert checked.row("feedback/attribute_classes")[5] == "seed"
    assert "Connection test, one request per endpoint" in checked.text
    # Nothing else was asked, nothing was loaded: no warehouse, no cursor.
    assert served(configured) == SEED_REQUESTS
    assert warehouse.path is not None and not warehouse.path.exists()


@pytest.mark.parametrize("sandbox", [replace(SMALL, feedback_generation="current")], indirect=True)
def test_the_current_generation_licensed(configured: Sandbox) -> None:
    configured.clear_requests()
    with instance_for_test() as instance:
        checked = check(instance)
    assert checked.result.success and checked.metadata["failed"].value == 0
    people = checked.row("feedback/identified_peoples")
    assert people[1] == "GET /v1/management/people -> 404, GET /v1/management/contacts -> 200"
    assert people[5] == "current" and people[4] == "yes"
    keys = checked.row("feedback/attribute_classes")
    assert keys[1].endswith("GET /v1/management/contact-attribute-keys -> 200") and keys[5] == "current"
    assert ("/feedback/v1/management/contacts", {}) in served(configured)


@pytest.mark.parametrize(
    "sandbox", [replace(SMALL, feedback_generation="current", feedback_licensed=False)], indirect=True
)
def test_the_current_generation_unlicensed_is_a_warning(configured: Sandbox) -> None:
    with instance_for_test() as instance:
        checked = check(instance)
        warnings = [
            e.user_message
            for e in instance.all_logs(checked.result.run_id)
            if e.level == 30 and e.user_message
        ]
    assert checked.result.success  # a plan restriction is not an outage
    assert checked.metadata["unavailable on this plan"].value == 2 and checked.metadata["failed"].value == 0
    for endpoint in ("feedback/identified_peoples", "feedback/attribute_classes"):
        row = checked.row(endpoint)
        assert row[5] == "unavailable on this plan" and UNLICENSED in row[6]
        assert any(w.startswith(endpoint) and UNLICENSED in w for w in warnings)
    assert checked.row("feedback/responses")[6] == "ok"


def test_a_wrong_key_fails_naming_the_variable_and_never_prints_the_key(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience_key, feedback_key = "wrong-audience-key-7Qx2", "wrong-feedback-key-9Zr4"
    monkeypatch.setenv("SOURCES__AUDIENCE__API_KEY", audience_key)
    monkeypatch.setenv("SOURCES__FEEDBACK__API_KEY", feedback_key)
    with instance_for_test() as instance:
        checked = check(instance)
    assert not checked.result.success
    message = failure_message(checked)
    assert message.startswith("Connection test failed: 13 endpoint(s) cannot be loaded.")
    assert "- audience/segments: the API refused the key (401) on GET /segments" in message
    assert "- audience/segment_people: not checked: audience/segments failed" in message
    assert "set SOURCES__AUDIENCE__API_KEY to a valid key" in message
    assert "SOURCES__AUDIENCE__API_KEY_HEADER=X-Encharge-Token" in message
    assert "set SOURCES__FEEDBACK__API_KEY to a valid key" in message
    assert checked.row("audience/fields")[3] == "NO"
    # The sandbox did get the keys (in their header); nothing the run shows contains them.
    assert {r["headers"].get("api_key") for r in configured.requests(api="audience")} == {audience_key}
    for key in (audience_key, feedback_key, configured.audience_key, configured.feedback_key):
        assert key not in checked.text and key not in message


def test_an_endpoint_answering_an_html_404_names_it_and_the_base_url_setting(configured: Sandbox) -> None:
    configured.inject_fault("/audience/v1/fields", "html_error", status=404)
    with instance_for_test() as instance:
        checked = check(instance)
    assert not checked.result.success
    message = failure_message(checked)
    assert message.startswith("Connection test failed: 1 endpoint(s) cannot be loaded.")
    assert "- audience/fields: GET /fields does not exist on this server (404, an HTML page)" in message
    assert (
        f"check SOURCES__AUDIENCE__BASE_URL (now '{configured.audience_base_url}', ending in /v1)" in message
    )
    assert checked.metadata["usable"].value == 12


def test_missing_and_refused_settings_are_named_before_any_request(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCES__FEEDBACK__API_KEY")
    monkeypatch.setenv("SOURCES__AUDIENCE__BASE_URL", "http://api.example.com/v1")
    configured.clear_requests()
    with instance_for_test() as instance:
        checked = check(instance)
    message = failure_message(checked)
    assert message.startswith("Connection test failed: 2 endpoint(s) cannot be loaded.")
    assert "- audience API (every endpoint): not checked: audience API: base URL" in message
    assert "SOURCES__AUDIENCE__ALLOW_INSECURE_HTTP=true" in message
    assert (
        "- feedback API (every endpoint): not checked: feedback API: set SOURCES__FEEDBACK__API_KEY"
        in message
    )
    assert configured.requests() == []


def test_personal_data_settings_a_load_would_refuse_fail_the_test(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashed fields without `ANALYTICS_HASH_KEY` fail every load before any request: the connection test,
    run before the first sync, says so too, besides its table of endpoints (all reachable here)."""
    monkeypatch.setenv("ANALYTICS_HASHED_FIELDS", "audience.peoples.email")
    monkeypatch.delenv("ANALYTICS_HASH_KEY", raising=False)
    with instance_for_test() as instance:
        checked = check(instance)
    message = failure_message(checked)
    assert (checked.metadata["usable"].value, checked.metadata["failed"].value) == (13, 0)
    assert message.startswith("Personal data settings: ANALYTICS_HASHED_FIELDS lists fields to hash, but")
    assert "ANALYTICS_HASH_KEY is not set" in message


def test_make_check_connection_fails_on_a_refused_key(sandbox: Sandbox, tmp_path: Path) -> None:
    """`make check-connection`: the real `dagster job execute` of the job, a failing exit status."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "embedded" / "dagster.yaml").read_text())
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_", "DESTINATION__"))
    }
    env.update(sandbox.env(), DAGSTER_HOME=str(home), ANALYTICS_DUCKDB_PATH=str(tmp_path / "w.duckdb"))
    env["SOURCES__FEEDBACK__API_KEY"] = "refused-feedback-key-3Kd8"
    done = subprocess.run(
        ["make", "--no-print-directory", "check-connection"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Connection test failed: 6 endpoint(s) cannot be loaded." in out
    assert "set SOURCES__FEEDBACK__API_KEY to a valid key" in out
    assert "refused-feedback-key-3Kd8" not in out and sandbox.audience_key not in out
    assert "audience/peoples             GET /people/all?limit=1 -> 200" in out  # the table in the run log
    assert not (tmp_path / "w.duckdb").exists()
