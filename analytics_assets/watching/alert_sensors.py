"""The alert sensor: a check failing at ERROR, a failed run, an asset turned late -> one webhook POST each.

One plain sensor, `webhook_alerts`, walks the runs that ended since its last tick, however they were
started: the UI, a schedule, a sensor, `dagster asset materialize`, `dg launch`, the Python API
(`materialize`, `execute_in_process` on the instance). Dagster's run status sensors cannot do this: they
see only the runs whose `remote_job_origin` names their own code location, and a run started by the CLI or
the Python API records none (only `job_code_origin`, a Python pointer), so alerts never reached a cron
job's runs. `monitor_all_code_locations=True` would see them, but then reacts to every run of every code
location (writing an engine event into each) and takes five run ends a tick.

Which runs are ours: those that planned one of this code location's assets or their checks (the keys
given to `build_alert_sensor`; asset keys are unique in a deployment, so they tell ours apart in a run that
records no code location). A run that does record one (launched through a code location server) must
name this location too: another location loading the same module (a staging copy beside it) alerts its
own runs.

Each ended run of ours is handled once, in one pass: every failed check at ERROR, in successful, failed
and canceled runs alike, then the run's own failure. One sensor and one pass per run: no problem is POSTed
twice. The first tick only sets the cursor: no alert storm about old runs.

Late data has no run: `dagster-daemon` judges each asset against its `FreshnessPolicy` (`freshness.py`)
and records when it turns late (FAIL). Every tick reads those states; an asset that turned late is alerted
once (`asset_stale`, at WARN: late, not wrong), again only after it was fresh in between. Sending never
raises (see `AlertWebhook.send`): a receiver that is down costs the alert, never the sensor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventLogRecord,
    RunRecord,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from analytics_assets.internals import freshness_states, planned_check_asset_key
from analytics_assets.reading.settings import whole_number_setting
from analytics_assets.watching.alerts import ASSET_STALE, CHECK_FAILED, RUN_FAILED, Alert, AlertWebhook

SENSOR_NAME = "webhook_alerts"
INTERVAL_SECONDS = 60
INTERVAL_ENV = "ANALYTICS_ALERT_SENSOR_INTERVAL_SECONDS"
"""Overrides INTERVAL_SECONDS; read when the definitions load (a sensor's interval is part of its
definition). Not a secret, unlike everything the `alert_webhook` resource reads."""
LATE_SECONDS = 300.0
"""How long after a run's recorded end the sensor still takes it. The end is stamped by the process that
ends the run (maybe on another machine, with its own clock) a moment before it is written, so a tick may
see a run that ended before the previous tick only now."""
TICK_BUDGET_SECONDS = 20.0
"""A tick takes no further run after this long (the rest wait for the next tick). The daemon gives a tick
60 s (`DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS`); a tick cut off there keeps its old cursor, and every alert it
had sent would go out again."""
ERROR_TEXT_LIMIT = 600
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]

_PLANNED = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


def sensor_interval_seconds() -> int:
    """The sensor's minimum interval: `ANALYTICS_ALERT_SENSOR_INTERVAL_SECONDS`, else 60 s.

    A wrong value fails the definitions' load naming the variable.
    """
    return whole_number_setting(INTERVAL_ENV, INTERVAL_SECONDS, "seconds")


def _keys_of_run(instance: DagsterInstance, run: DagsterRun) -> set[AssetKey]:
    """The assets a run planned to materialize or check."""
    keys = set(run.asset_selection or ())
    keys |= {check_key.asset_key for check_key in run.asset_check_selection or ()}
    for record in instance.get_records_for_run(run.run_id, of_type=_PLANNED).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        # A planned materialization names its asset publicly; a planned check does not (`internals`).
        key = event.asset_key if event.is_asset_materialization_planned else planned_check_asset_key(event)
        if key is not None:
            keys.add(key)
    return keys


def _records(instance: DagsterInstance, run_id: str, of_type: DagsterEventType) -> list[EventLogRecord]:
    return list(instance.get_records_for_run(run_id, of_type=of_type).records)


def _check_alerts(instance: DagsterInstance, run: DagsterRun, ours: frozenset[AssetKey]) -> list[Alert]:
    """Alerts for the checks of a run on our assets that failed at ERROR."""
    alerts = []
    for record in _records(instance, run.run_id, DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.event_log_entry.asset_check_evaluation
        if evaluation is None or evaluation.passed or evaluation.asset_key not in ours:
            continue
        if evaluation.severity != AssetCheckSeverity.ERROR:
            continue
        alerts.append(
            Alert(
                kind=CHECK_FAILED,
                severity=evaluation.severity.value,
                summary=evaluation.description or f"{evaluation.check_name} failed",
                run_id=run.run_id,
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                details={k: v.value for k, v in evaluation.metadata.items()},
            )
        )
    return alerts


def _ago(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours >= 1 else f"{seconds / 60:.0f} minutes"


def late_alert(instance: DagsterInstance, key: AssetKey, since: float) -> Alert:
    """The alert for an asset that turned late at `since`: when it was last materialized, by which run."""
    asset = key.to_user_string()
    last = instance.get_latest_materialization_event(key)
    when = (
        f"last materialized {_ago(time.time() - last.timestamp)} ago"
        f" ({datetime.fromtimestamp(last.timestamp, UTC).isoformat(timespec='seconds')})"
        if last is not None
        else "never materialized"
    )
    return Alert(
        kind=ASSET_STALE,
        severity="WARN",
        summary=(
            f"{asset} is late: {when}, longer than its freshness policy allows. Check the nightly schedule"
            f" and the last runs of {asset}."
        ),
        run_id=(last.run_id or None) if last is not None else None,  # "" for a materialization without a run
        asset=asset,
        details={"late_since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")},
    )


def _late_alerts(
    instance: DagsterInstance, ours: frozenset[AssetKey], cursor: AlertCursor
) -> tuple[list[Alert], dict[str, float]]:
    """Alerts for the assets that turned late since the last tick, and the late assets to remember (by
    key, when each turned late): an asset still late since the same moment was alerted before."""
    late = {
        key.to_user_string(): (key, state.since)
        for key, state in freshness_states(instance, ours).items()
        if state.state == "FAIL"
    }
    alerts = [
        late_alert(instance, key, since)
        for name, (key, since) in sorted(late.items())
        if cursor.late.get(name) != since
    ]
    return alerts, {name: since for name, (_, since) in late.items()}


def _first_line(text: str) -> str:
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    return line[:ERROR_TEXT_LIMIT]


def step_failure_reason(event: DagsterEvent) -> str:
    """The first line of why a step failed, from the structured failure: a `Failure`'s own description
    (what the op said: the failed endpoints and what to do), else the user's exception (class and
    message) beneath Dagster's wrapper, else the event's message."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _first_line(data.user_failure_data.description)
    error = data.error
    if error is not None:
        # Dagster wraps an exception raised in user code (DagsterExecutionStepExecutionError): its
        # cause is what went wrong.
        while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
            error = error.cause
        return _first_line(error.message)
    return _first_line(event.message or "")


def _run_failure_alert(instance: DagsterInstance, run: DagsterRun, keys: set[AssetKey]) -> Alert:
    """The alert for a failed run: its failed steps with the first line of their error, and the
    assets it planned but did not materialize."""
    failures = {
        event.step_key: step_failure_reason(event)
        for record in _records(instance, run.run_id, DagsterEventType.STEP_FAILURE)
        if (event := record.event_log_entry.dagster_event) is not None and event.step_key
    }
    materialized = {
        event.asset_key
        for record in _records(instance, run.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        if (event := record.event_log_entry.dagster_event) is not None and event.asset_key
    }
    missed = sorted(k.to_user_string() for k in keys - materialized)
    reasons = "; ".join(f"{step}: {message}" for step, message in failures.items())
    if not reasons:  # a run that failed outside its steps (e.g. while starting): the run's own message
        ends = _records(instance, run.run_id, DagsterEventType.RUN_FAILURE)
        message = ends[-1].event_log_entry.message if ends else ""
        reasons = _first_line(message or "") or "see the run's logs"
    return Alert(
        kind=RUN_FAILED,
        severity="ERROR",
        summary=f"Run of {run.job_name} failed ({reasons}). Not updated: {', '.join(missed) or 'none'}.",
        run_id=run.run_id,
        asset=", ".join(missed) or None,
        details={"job": run.job_name, "failed_steps": failures, "not_updated": missed},
    )


def run_alerts(instance: DagsterInstance, run: DagsterRun, ours: frozenset[AssetKey]) -> list[Alert]:
    """Every alert of one ended run: none unless it planned one of `ours`; its failed checks, then its
    failure."""
    keys = _keys_of_run(instance, run) & ours
    if not keys:
        return []
    alerts = _check_alerts(instance, run, ours)
    if run.status == DagsterRunStatus.FAILURE:
        alerts.append(_run_failure_alert(instance, run, keys))
    return alerts


def launched_elsewhere(run: DagsterRun, context: SensorEvaluationContext) -> bool:
    """Whether the run was launched through another code location than the sensor's.

    A run launched through a code location server (the UI, a schedule, a sensor) records that location
    in `remote_job_origin`; one started by the CLI or the Python API records none, and is not "elsewhere".
    """
    origin, here = run.remote_job_origin, context.code_location_origin
    if origin is None or here is None:
        return False
    repository = origin.repository_origin
    if repository.code_location_origin.location_name != here.location_name:
        return True
    return context.repository_name is not None and repository.repository_name != context.repository_name


@dataclass
class AlertCursor:
    """Where the sensor stands: runs that ended before `since` are done with (handled, or older than
    the sensor); `seen` holds the runs handled since then, by id, with their end; `late` the assets
    alerted as late, with when each turned late.

    A run's record is updated when it ends and again whenever a tag is added (a retry, a user): the
    sensor asks for the runs updated after `since` and keeps those that ended after it and are not in
    `seen`, so each run is handled once.
    """

    since: float
    seen: dict[str, float] = field(default_factory=dict)
    late: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"since": self.since, "seen": self.seen, "late": self.late}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> AlertCursor | None:
        """The cursor, or None for a first tick (no cursor, or one this sensor did not write)."""
        try:
            data = json.loads(text or "")
            late = {str(k): float(v) for k, v in data.get("late", {}).items()}
            return cls(float(data["since"]), {str(k): float(v) for k, v in data["seen"].items()}, late)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _end(record: RunRecord) -> float:
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()


def _tick(context: SensorEvaluationContext, webhook: AlertWebhook, ours: frozenset[AssetKey]) -> SkipReason:
    """One tick: send the alerts of every run that ended since the last one, and of every asset that
    turned late; move the cursor on.

    Returns a SkipReason saying what it did (the sensor requests no runs). A run whose event log cannot
    be read is logged and tried again on the next ticks (while it ended less than LATE_SECONDS ago); it
    never fails the tick, which would keep the old cursor and send this tick's alerts again.
    """
    now = time.time()
    cursor = AlertCursor.from_json(context.cursor)
    if cursor is None:
        context.update_cursor(AlertCursor(since=now).to_json())
        return SkipReason("First tick: alerts on the runs that end from now on.")
    records = context.instance.get_run_records(
        filters=RunsFilter(statuses=ENDED, updated_after=datetime.fromtimestamp(cursor.since - 1, UTC))
    )
    pending = sorted(
        (r for r in records if _end(r) >= cursor.since and r.dagster_run.run_id not in cursor.seen), key=_end
    )
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    held_back: float | None = None
    handled = sent = 0
    for index, record in enumerate(pending):
        if index and time.monotonic() > deadline:  # at least one run a tick, so that it moves on
            held_back = _end(record)  # this run and the later ones: the next tick
            break
        run = record.dagster_run
        try:
            alerts = [] if launched_elsewhere(run, context) else run_alerts(context.instance, run, ours)
        except Exception:
            context.log.exception(f"Could not read run {run.run_id}; trying again on the next tick")
            continue
        for alert in alerts:
            sent += webhook.send(alert, context.log)
        cursor.seen[run.run_id] = _end(record)
        handled += 1
    since = now - LATE_SECONDS if held_back is None else min(now - LATE_SECONDS, held_back)
    since = max(cursor.since, since)
    seen = {run_id: end for run_id, end in cursor.seen.items() if end >= since}
    late_alerts, late = _late_alerts(context.instance, ours, cursor)
    for alert in late_alerts:
        sent += webhook.send(alert, context.log)
    context.update_cursor(AlertCursor(since, seen, late).to_json())
    return SkipReason(
        f"{handled} ended run(s) looked at, {len(late)} asset(s) late, {sent} alert(s) delivered."
    )


def build_alert_sensor(
    assets: Sequence[AssetsDefinition], interval_seconds: int | None = None
) -> SensorDefinition:
    """The alert sensor for `assets` (and their checks), ticking every `interval_seconds` (default:
    `sensor_interval_seconds()`).

    On by default: alerts exist to reach people without anyone switching something on. Without a
    webhook it logs its alerts as warnings in its tick log.
    """
    ours: frozenset[AssetKey] = frozenset(key for asset in assets for key in asset.keys)

    @sensor(
        name=SENSOR_NAME,
        description=(
            "Alerts once per problem in every run of these assets, however started (UI, schedule, sensor,"
            " dagster CLI, Python API): a check failing at ERROR, a failed run (its failed steps, the"
            " assets not updated); and once when an asset turns late under its freshness policy."
            " On by default. POSTs through the resource alert_webhook (ANALYTICS_ALERT_WEBHOOK_URL;"
            " logged as a warning when unset)."
        ),
        minimum_interval_seconds=interval_seconds or sensor_interval_seconds(),
        default_status=DefaultSensorStatus.RUNNING,
    )
    def webhook_alerts(context: SensorEvaluationContext, alert_webhook: AlertWebhook) -> SkipReason:
        return _tick(context, alert_webhook, ours)

    return webhook_alerts
