"""The alert sensor against a real local webhook receiver: one POST per problem, never on a later
tick, a receiver that fails never breaks the sensor, and no API key ever leaves in an alert. Ticked
here as the daemon ticks it, and once in a real `dagster-daemon` with runs of the `dagster` CLI."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DefaultSensorStatus,
    ExecuteInProcessResult,
    asset,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.definitions.freshness import (  # what the daemon reports
    FreshnessState,
    FreshnessStateChange,
)

from analytics_assets.definitions import defs
from analytics_assets.internals import freshness_states
from analytics_assets.watching import alert_sensors, alerts
from analytics_assets.watching.alert_sensors import INTERVAL_ENV, SENSOR_NAME, AlertCursor
from analytics_assets.watching.alerts import Alert, AlertWebhook
from analytics_assets.watching.freshness import WINDOW_ENV
from analytics_assets_tests.cli import dagster_home, start_materialize
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_e2e import REPO, stop_process_group
from analytics_sandbox import Sandbox

BASE_URL = "https://dagster.example.test"


class Receiver:
    """A webhook over real HTTP on loopback: keeps every POSTed body, answers with `status`."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append(body)
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.bodies]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    monkeypatch.setenv("ANALYTICS_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("ANALYTICS_DAGSTER_BASE_URL", BASE_URL + "/")
    monkeypatch.setattr(alerts, "BACKOFF_SECONDS", 0.01)  # the retry rule stays, without the waiting
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A persistent instance on a temporary folder (sensors need one), shared by the test's runs."""
    with instance_for_test() as dagster_instance:
        yield dagster_instance


class Sensor(logging.Handler):
    """Ticks the code location's alert sensor the way the daemon does (`evaluate_tick`), keeping its
    cursor. Also collects what the sensor logs in its ticks (`logs`)."""

    def __init__(self, instance: DagsterInstance, receiver: Receiver) -> None:
        super().__init__(logging.INFO)
        self.instance = instance
        self.receiver = receiver
        self.logs: list[logging.LogRecord] = []
        self.cursor: str | None = None
        [self.sensor] = [s for s in defs.sensors or [] if s.name == SENSOR_NAME]
        assert self.tick() == []  # a new sensor's first tick only sets its cursor

    def tick(self) -> list[dict[str, Any]]:
        """One tick; returns the payloads POSTed during it."""
        before = len(self.receiver.bodies)
        # A context manager, as the daemon's: the `warehouse` resource has a teardown (the end of a run).
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=defs, resources=defs.resources
        ) as context:
            context.log.addHandler(self)
            self.cursor = self.sensor.evaluate_tick(context).cursor
        return [json.loads(body) for body in self.receiver.bodies[before:]]

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append(record)


def run(instance: DagsterInstance, *keys: str) -> ExecuteInProcessResult:
    return materialize(*keys, instance=instance, raise_on_error=False)


def report_freshness(instance: DagsterInstance, asset: str, state: FreshnessState, at: float) -> None:
    """Record that `asset` took freshness `state` at `at`, as `dagster-daemon`'s freshness daemon does
    (the daemon itself: `test_the_daemon_alerts_on_cli_runs_once_and_not_on_another_code_location`)."""
    key = AssetKey.from_user_string(asset)
    before = freshness_states(instance, [key]).get(key)
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=key,
            new_state=state,
            previous_state=FreshnessState(before.state) if before else FreshnessState.UNKNOWN,
            state_change_timestamp=at,
        )
    )


def add_stray_response(sandbox: Sandbox, survey_id: str = "cnosuchsurvey0000000000000") -> None:
    response = next(sandbox.data.records("responses"))
    sandbox.data.add_raw_record("responses", {**response, "id": "c" + "s" * 24, "surveyId": survey_id})


def test_the_sensor_interval_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert alert_sensors.sensor_interval_seconds() == alert_sensors.INTERVAL_SECONDS == 60
    monkeypatch.setenv(INTERVAL_ENV, "5")
    assert alert_sensors.sensor_interval_seconds() == 5
    for wrong in ("0", "1.5", "soon"):
        monkeypatch.setenv(INTERVAL_ENV, wrong)
        with pytest.raises(ValueError, match=INTERVAL_ENV):
            alert_sensors.sensor_interval_seconds()


def test_the_alert_sensor_is_on_by_default() -> None:
    sensors = {s.name: s for s in defs.sensors or []}
    assert sensors[SENSOR_NAME].default_status == DefaultSensorStatus.RUNNING


@pytest.mark.slow
def test_a_failed_check_is_alerted_once_with_its_fields(
    configured: Sandbox, receiver: Receiver, instance: DagsterInstance
) -> None:
    sensor = Sensor(instance, receiver)
    add_stray_response(configured)
    first = next(configured.data.records("peoples"))
    configured.data.add_raw_record("peoples", {**first, "lastName": "Twice"})  # a WARN only: no alert
    checked = run(instance, "feedback/surveys", "feedback/responses")
    assert run(instance, "audience/peoples").success

    [alert] = sensor.tick()  # one alert: no run failed, the WARN check does not page
    assert {
        k: alert[k] for k in ("kind", "severity", "asset", "check", "run_id", "run_url", "asset_url")
    } == {
        "kind": "check_failed",
        "severity": "ERROR",
        "asset": "feedback/responses",
        "check": "survey_ids_exist",
        "run_id": checked.run_id,
        "run_url": f"{BASE_URL}/runs/{checked.run_id}",
        "asset_url": f"{BASE_URL}/assets/feedback/responses",
    }
    assert alert["details"] == {"orphan_rows": 1, "missing_survey_ids": ["cnosuchsurvey0000000000000"]}
    assert alert["text"].startswith(
        ":red_circle: *Check failed* [ERROR] `survey_ids_exist` on `feedback/responses`:"
    )
    assert f"<{BASE_URL}/runs/{checked.run_id}|" in alert["text"]
    assert first["id"] not in json.dumps(alert)

    assert sensor.tick() == []  # the next tick: nothing new, nothing sent


@pytest.mark.slow
def test_a_failed_run_is_alerted_once_naming_what_did_not_load(
    configured: Sandbox, receiver: Receiver, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor = Sensor(instance, receiver)
    monkeypatch.setenv("SOURCES__AUDIENCE__API_KEY", "revoked-audience-key")
    failed = run(instance, "audience/accounts")
    assert not failed.success

    [alert] = sensor.tick()  # the run failure alone: the checks did not run
    assert (alert["kind"], alert["severity"], alert["asset"]) == ("run_failed", "ERROR", "audience/accounts")
    assert (alert["run_id"], alert["run_url"]) == (failed.run_id, f"{BASE_URL}/runs/{failed.run_id}")
    assert alert["check"] is None
    assert list(alert["details"]["failed_steps"]) == ["analytics_load"]
    assert alert["details"]["not_updated"] == ["audience/accounts"]
    assert alert["text"].startswith(
        ":x: *Run failed* [ERROR] `audience/accounts`: Run of __ASSET_JOB failed (analytics_load: audience API"
    )

    assert sensor.tick() == []
    instance.add_run_tags(failed.run_id, {"note": "looked at"})  # updates the run's record again
    assert sensor.tick() == []  # still alerted once

    monkeypatch.setenv("SOURCES__AUDIENCE__API_KEY", configured.audience_key)
    assert run(instance, "audience/accounts").success
    assert sensor.tick() == []  # a success is no news


@pytest.mark.slow
def test_a_run_with_one_failed_endpoint_alerts_naming_only_that_asset(
    configured: Sandbox, receiver: Receiver, instance: DagsterInstance
) -> None:
    sensor = Sensor(instance, receiver)
    configured.inject_fault("/audience/v1/fields", "status", status=404)
    failed = run(instance, "audience/accounts", "audience/fields")
    assert not failed.success
    assert {e.asset_key.to_user_string() for e in failed.get_asset_materialization_events()} == {
        "audience/accounts"
    }

    [alert] = sensor.tick()
    assert (alert["kind"], alert["asset"]) == ("run_failed", "audience/fields")
    assert alert["details"]["not_updated"] == ["audience/fields"]
    assert "audience/fields failed; the other 1 endpoint(s) of this op loaded and committed" in alert["text"]


@pytest.mark.slow
def test_a_check_failing_in_a_failed_run_is_alerted_once(
    configured: Sandbox, receiver: Receiver, instance: DagsterInstance
) -> None:
    """A blocking check failing at ERROR fails its run: the check alert still goes out, once."""
    sensor = Sensor(instance, receiver)
    assert run(instance, "audience/segments").success
    configured.data.truncate("segments", 1)  # two of three segments vanish: row_count_drop, blocking
    # A refresh loads the one left (a sync would refuse to delete two thirds of the table).
    refresh = {"ops": {"analytics_load": {"config": {"refresh": True, "apis": ["audience"]}}}}
    failed = materialize(
        "audience/segments",
        "audience/segment_people",
        instance=instance,
        raise_on_error=False,
        run_config=refresh,
    )
    assert not failed.success

    [alert, run_alert] = sensor.tick()  # the check, then the run: two problems, one POST each
    assert (alert["kind"], alert["severity"], alert["asset"], alert["check"], alert["run_id"]) == (
        "check_failed",
        "ERROR",
        "audience/segments",
        "row_count_drop",
        failed.run_id,
    )
    assert run_alert["kind"] == "run_failed"
    assert run_alert["details"]["not_updated"] == ["audience/segment_people"]
    assert sensor.tick() == []


def test_an_asset_that_turns_late_is_alerted_once_each_time(
    receiver: Receiver, instance: DagsterInstance
) -> None:
    sensor = Sensor(instance, receiver)
    instance.report_runless_asset_event(AssetMaterialization("feedback/webhooks"))  # the daemon test: a run's
    report_freshness(instance, "feedback/webhooks", FreshnessState.PASS, time.time() - 60)
    report_freshness(instance, "feedback/surveys", FreshnessState.UNKNOWN, time.time() - 60)  # never loaded
    assert sensor.tick() == []

    report_freshness(instance, "feedback/webhooks", FreshnessState.FAIL, time.time())
    [alert] = sensor.tick()
    assert (alert["kind"], alert["asset"], alert["check"]) == ("asset_stale", "feedback/webhooks", None)
    assert alert["severity"] == "WARN"  # late, not wrong: alerted all the same
    assert alert["run_url"] is None  # a materialization reported without a run
    assert alert["asset_url"] == f"{BASE_URL}/assets/feedback/webhooks"
    assert "feedback/webhooks is late: last materialized" in alert["summary"]
    assert sensor.tick() == []  # still late since the same moment: said once

    report_freshness(instance, "feedback/webhooks", FreshnessState.PASS, time.time())
    assert sensor.tick() == []
    report_freshness(instance, "feedback/webhooks", FreshnessState.FAIL, time.time() + 1)
    [again] = sensor.tick()  # fresh in between, late again: a new alert
    assert again["asset"] == "feedback/webhooks"


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["answers 500", "is not listening"])
def test_a_receiver_that_fails_never_breaks_a_sensor(
    outage: str,
    configured: Sandbox,
    receiver: Receiver,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sensor = Sensor(instance, receiver)
    add_stray_response(configured)
    assert run(instance, "feedback/surveys", "feedback/responses").success
    if outage == "answers 500":
        receiver.status = 500
    else:
        monkeypatch.setenv("ANALYTICS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hooks/alerts")  # discard port

    sent = sensor.tick()  # returns normally
    attempts = alerts.ATTEMPTS if outage == "answers 500" else 0
    assert len(sent) == attempts  # the same alert, retried
    assert len({json.dumps(p, sort_keys=True) for p in sent}) <= 1
    logged = [(r.levelno, r.getMessage()) for r in sensor.logs]
    retries = [m for level, m in logged if level == logging.WARNING and "Alert POST attempt" in m]
    assert len(retries) == alerts.ATTEMPTS
    assert any(level == logging.ERROR and "Alert not delivered" in m for level, m in logged)
    assert "hooks/alerts" not in " ".join(m for _, m in logged)  # the webhook URL is a secret of its own

    receiver.status = 200
    monkeypatch.setenv("ANALYTICS_ALERT_WEBHOOK_URL", receiver.url)
    assert sensor.tick() == []  # past that failure for good: no repeat


@pytest.mark.slow
def test_no_api_key_appears_in_any_alert(
    configured: Sandbox, receiver: Receiver, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor = Sensor(instance, receiver)
    # The feedback key turns up in the data (a survey id), and in a URL someone pasted it into.
    add_stray_response(configured, survey_id=configured.feedback_key)
    assert run(instance, "feedback/surveys", "feedback/responses").success
    monkeypatch.setenv("SOURCES__AUDIENCE__BASE_URL", f"{configured.url}/{configured.audience_key}/v1")
    assert not run(instance, "audience/fields").success

    monkeypatch.setattr(alert_sensors, "TICK_BUDGET_SECONDS", 0.0)  # one run a tick, the other waits
    sent = sensor.tick() + sensor.tick()
    assert [p["kind"] for p in sent] == ["check_failed", "run_failed"]
    assert sensor.tick() == []
    raw = b"".join(receiver.bodies)
    for key in (configured.audience_key, configured.feedback_key):
        assert key.encode() not in raw
    assert sent[0]["details"]["missing_survey_ids"] == ["[redacted]"]


def test_without_a_webhook_alerts_are_logged_as_warnings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("ANALYTICS_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("SOURCES__FEEDBACK__API_KEY", "fb-live-0123456789")
    alert = Alert(kind="check_failed", severity="ERROR", summary="key fb-live-0123456789 in a message")
    with caplog.at_level(logging.WARNING):
        assert AlertWebhook().send(alert, logging.getLogger("test")) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "ANALYTICS_ALERT_WEBHOOK_URL is not set" in record.message
    assert "key [redacted] in a message" in record.message and "fb-live" not in record.message


@pytest.mark.slow
def test_runs_of_other_assets_are_not_alerted(receiver: Receiver, instance: DagsterInstance) -> None:
    """A failed run on the same instance whose assets are not this code location's (its key starts like
    ours, through the Python API's `materialize`): no alert."""

    @asset(key=["audiences", "stray"])
    def stray() -> None:
        raise RuntimeError("a neighbour's failure")

    sensor = Sensor(instance, receiver)
    assert not dagster.materialize([stray], instance=instance, raise_on_error=False).success
    assert sensor.tick() == []


OTHER_CODE_LOCATION = """
from dagster import Definitions, asset


@asset(key=["audiences", "stray"])
def stray() -> None:
    raise RuntimeError("a failure of another code location")


defs = Definitions(assets=[stray])
"""


def poll(condition: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    """Wait for `condition()` to return something true, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s; daemon log:\n{log.read_text()[-4000:]}")
        time.sleep(1)
    return found


def sensor_cursor(instance: DagsterInstance) -> AlertCursor | None:
    """The alert sensor's cursor as the daemon stored it (None before its first tick)."""
    for state in instance.all_instigator_state():
        if state.name == SENSOR_NAME and state.instigator_data is not None:
            return AlertCursor.from_json(getattr(state.instigator_data, "cursor", None))
    return None


def ticks_after(instance: DagsterInstance, timestamp: float) -> int:
    """How many ticks of the alert sensor the daemon started after `timestamp`."""
    [state] = [s for s in instance.all_instigator_state() if s.name == SENSOR_NAME]
    return len(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=timestamp))


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_daemon_alerts_on_cli_runs_once_and_not_on_another_code_location(
    configured: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    """A real `dagster-daemon` on the instance cron jobs and `dagster asset materialize` use: a CLI run
    with a check failing at ERROR and a CLI run with a failed endpoint alert once each; so does the run
    a sensor of the code location launches through the daemon (`segment_members_after_segments`, after
    the CLI run loaded the segments); a failing run of another code location on the instance, and runs
    that ended before the sensor's first tick, alert nothing. With a freshness window of one minute, the
    daemon's freshness daemon finds the three assets loaded late a minute on, and each is alerted once;
    the assets that never loaded (the failed endpoint among them) are not late."""
    with ExitStack() as stack:
        env = {
            **dagster_home("embedded", tmp_path, stack),
            INTERVAL_ENV: "2",
            WINDOW_ENV: "1",
            "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
        instance = stack.enter_context(DagsterInstance.from_config(env["DAGSTER_HOME"]))
        # A failed run that ended before the sensor's first tick: never alerted.
        configured.inject_fault("/audience/v1/fields", "status", status=404)
        old = materialize("audience/fields", instance=instance, raise_on_error=False)
        assert not old.success

        log = tmp_path / "daemon.log"
        with open(log, "wb") as out:
            daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the code server and launched runs too
            )
        stack.callback(stop_process_group, daemon)
        started = time.monotonic()
        poll(lambda: sensor_cursor(instance), 120, "first tick of the alert sensor", log)

        add_stray_response(configured)  # survey_ids_exist fails at ERROR; the run succeeds
        configured.inject_fault("/audience/v1/fields", "status", status=404)  # this endpoint fails
        configured.inject_fault("/audience/v1/segments/*", "status", times=1000, status=404)  # members
        other = tmp_path / "other_location.py"
        other.write_text(OTHER_CODE_LOCATION)
        runs = {
            "feedback": start_materialize(
                "feedback/surveys,feedback/responses", env, tmp_path / "feedback.log"
            ),
            "audience": start_materialize(
                "audience/segments,audience/fields", env, tmp_path / "audience.log"
            ),
        }
        with open(tmp_path / "other.log", "wb") as out:
            runs["other"] = subprocess.Popen(
                [sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(other), "--select", "*"],
                cwd=tmp_path,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        codes = {name: process.wait(timeout=300) for name, process in runs.items()}
        logs = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in runs}
        assert codes == {"feedback": 0, "audience": 1, "other": 1}, logs

        def all_seen() -> bool:
            """Six alerts arrived, no run is going on, and the sensor looked at every run that ended."""
            if len(receiver.bodies) < 6:
                return False
            records = instance.get_run_records()
            cursor = sensor_cursor(instance)
            return cursor is not None and all(
                r.dagster_run.is_finished and r.dagster_run.run_id in {*cursor.seen, old.run_id}
                for r in records
            )

        poll(all_seen, 180, "alerts of every run and of the late assets", log)
        elapsed = f"{time.monotonic() - started:.0f} s from the daemon's start"
        seen_at = time.time()
        poll(lambda: ticks_after(instance, seen_at) >= 2, 60, "two more ticks", log)  # no repeat

        by_assets = {
            frozenset(k.to_user_string() for k in r.dagster_run.asset_selection or ()): r.dagster_run
            for r in instance.get_run_records()
        }
        launched = by_assets[frozenset({"audience/segment_people"})]
        assert launched.remote_job_origin is not None  # launched through the code location, by its sensor
        assert by_assets[frozenset({"audiences/stray"})].is_failure  # looked at (all_seen), not alerted
        sent = sorted(receiver.payloads(), key=lambda p: (p["kind"], p["asset"]))
        feedback_run = by_assets[frozenset({"feedback/surveys", "feedback/responses"})].run_id
        audience_run = by_assets[frozenset({"audience/segments", "audience/fields"})].run_id
        late = [p for p in sent if p["kind"] == "asset_stale"]
        assert [(p["asset"], p["run_id"], p["severity"]) for p in late] == [
            ("audience/segments", audience_run, "WARN"),
            ("feedback/responses", feedback_run, "WARN"),
            ("feedback/surveys", feedback_run, "WARN"),
        ], elapsed
        sent = [p for p in sent if p["kind"] != "asset_stale"]
        assert [(p["kind"], p["asset"], p["check"], p["run_id"]) for p in sent] == [
            (
                "check_failed",
                "feedback/responses",
                "survey_ids_exist",
                by_assets[frozenset({"feedback/surveys", "feedback/responses"})].run_id,
            ),
            (
                "run_failed",
                "audience/fields",
                None,
                by_assets[frozenset({"audience/segments", "audience/fields"})].run_id,
            ),
            ("run_failed", "audience/segment_people", None, launched.run_id),
        ], elapsed
        assert "audience/fields failed" in sent[1]["text"]
        assert sent[2]["details"]["not_updated"] == ["audience/segment_people"]
