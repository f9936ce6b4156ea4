"""The alert sensors: a check failing at ERROR, a failed run, a stale asset -> one webhook POST each.

Dagster's run status sensors (`run_status_sensor`, `run_failure_sensor`): each watches the runs of this
code location that end in one status, in the order they ended, and keeps its own cursor. A run is
handed to a sensor once, on the first tick after it ended, and never again; the first tick of a new
sensor only sets the cursor (no alert storm about old runs). Only runs that planned one of this code
location's assets (or their checks) alert. Sending never raises (see `AlertWebhook.send`): a receiver
that is down costs the alert, never the sensor. The webhook is the resource `alert_webhook`.

A run status sensor watches one status, and a check fails in successful and failed runs alike (one
failed endpoint does not stop the checks of the others), so the check and staleness alerts have a
sensor per status:

| sensor | alerts on |
|---|---|
| `check_failure_alerts`, `check_failure_alerts_in_failed_runs` | every failed check evaluation at ERROR severity (freshness aside), in successful resp. failed runs |
| `run_failure_alerts` | every failed run that planned one of these assets or their checks |
| `stale_asset_alerts`, `stale_asset_alerts_in_failed_runs` | every failed freshness check (an asset not materialized for 26 hours) |
"""

from collections.abc import Callable, Sequence

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventLogRecord,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    run_failure_sensor,
    run_status_sensor,
)

from analytics_assets.alerts import ASSET_STALE, CHECK_FAILED, RUN_FAILED, Alert, AlertWebhook
from analytics_assets.checks.freshness import FRESHNESS_PARAMS_METADATA_KEY

INTERVAL_SECONDS = 60
ERROR_TEXT_LIMIT = 600

_PLANNED = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


def _keys_of_run(instance: DagsterInstance, run: DagsterRun) -> set[AssetKey]:
    """The assets a run planned to materialize or check."""
    keys = set(run.asset_selection or ())
    keys |= {check_key.asset_key for check_key in run.asset_check_selection or ()}
    for record in instance.get_records_for_run(run.run_id, of_type=_PLANNED).records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event else None
        key = getattr(data, "asset_key", None)
        if isinstance(key, AssetKey):
            keys.add(key)
    return keys


def _records(instance: DagsterInstance, run_id: str, of_type: DagsterEventType) -> list[EventLogRecord]:
    return list(instance.get_records_for_run(run_id, of_type=of_type).records)


def _check_alerts(
    instance: DagsterInstance, run: DagsterRun, apis: Sequence[str], stale: bool
) -> list[Alert]:
    """Alerts for the failed checks of a run: at ERROR (`stale=False`) or freshness ones (`stale=True`)."""
    alerts = []
    for record in _records(instance, run.run_id, DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.event_log_entry.asset_check_evaluation
        if evaluation is None:
            continue
        is_freshness = FRESHNESS_PARAMS_METADATA_KEY in evaluation.metadata
        if evaluation.passed or evaluation.asset_key.path[0] not in apis or is_freshness != stale:
            continue
        if not stale and evaluation.severity != AssetCheckSeverity.ERROR:
            continue
        details = {k: v.value for k, v in evaluation.metadata.items() if k != FRESHNESS_PARAMS_METADATA_KEY}
        asset = evaluation.asset_key.to_user_string()
        summary = evaluation.description or f"{evaluation.check_name} failed"
        if stale:
            summary = f"{asset} is stale: {summary} Check the nightly schedule and the last runs of {asset}."
        alerts.append(
            Alert(
                kind=ASSET_STALE if stale else CHECK_FAILED,
                severity=evaluation.severity.value,
                summary=summary,
                run_id=run.run_id,
                asset=asset,
                check=evaluation.check_name,
                details=details,
            )
        )
    return alerts


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


def _run_failure_alert(context: RunFailureSensorContext, keys: set[AssetKey]) -> Alert:
    """The alert for a failed run: its failed steps with the first line of their error, and the
    assets it planned but did not materialize."""
    run = context.dagster_run
    failures = {
        event.step_key: step_failure_reason(event)
        for event in context.get_step_failure_events()
        if event.step_key
    }
    materialized = {
        event.asset_key
        for record in _records(context.instance, run.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        if (event := record.event_log_entry.dagster_event) is not None and event.asset_key
    }
    missed = sorted(k.to_user_string() for k in keys - materialized)
    reasons = "; ".join(f"{step}: {message}" for step, message in failures.items())
    if not reasons:  # a run that failed outside its steps (e.g. while starting): the run's own message
        reasons = _first_line(context.failure_event.message or "") or "see the run's logs"
    return Alert(
        kind=RUN_FAILED,
        severity="ERROR",
        summary=f"Run of {run.job_name} failed ({reasons}). Not updated: {', '.join(missed) or 'none'}.",
        run_id=run.run_id,
        asset=", ".join(missed) or None,
        details={"job": run.job_name, "failed_steps": failures, "not_updated": missed},
    )


_ON = "On by default. POSTs through the resource alert_webhook (ANALYTICS_ALERT_WEBHOOK_URL; logged as a warning when unset)."


def _check_sensor(
    name: str, description: str, status: DagsterRunStatus, apis: Sequence[str], stale: bool
) -> SensorDefinition:
    @run_status_sensor(
        run_status=status,
        name=name,
        description=description,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: RunStatusSensorContext, alert_webhook: AlertWebhook) -> None:
        _alert(
            context,
            alert_webhook,
            apis,
            lambda keys: _check_alerts(context.instance, context.dagster_run, apis, stale),
        )

    return _sensor


def _alert(
    context: RunStatusSensorContext,
    webhook: AlertWebhook,
    apis: Sequence[str],
    alerts_for: Callable[[set[AssetKey]], list[Alert]],
) -> None:
    """Send the alerts of one ended run, when it planned assets of `apis`. Returns nothing, so that the
    sensor goes on to the next ended run in the same tick."""
    keys = {k for k in _keys_of_run(context.instance, context.dagster_run) if k.path[0] in apis}
    if keys:
        for alert in alerts_for(keys):
            webhook.send(alert, context.log)


def build_alert_sensors(apis: Sequence[str] = ("audience", "feedback")) -> list[SensorDefinition]:
    """The alert sensors, for the assets whose key starts with one of `apis`.

    On by default: alerts exist to reach people without anyone switching something on. Without a
    webhook they log their alerts as warnings in the sensor's tick log.
    """

    @run_failure_sensor(
        name="run_failure_alerts",
        description=f"Alerts once on every failed run of these assets, naming the failed steps. {_ON}",
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def run_failure_alerts(context: RunFailureSensorContext, alert_webhook: AlertWebhook) -> None:
        _alert(context, alert_webhook, apis, lambda keys: [_run_failure_alert(context, keys)])

    checks = "Alerts once on every asset check that fails at ERROR severity (the data is wrong)"
    stale = (
        "Alerts once when an asset's freshness check fails (not materialized within 26 hours; the"
        " freshness_checks_sensor evaluates them)"
    )
    success, failure = DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE
    return [
        _check_sensor("check_failure_alerts", f"{checks}, in successful runs. {_ON}", success, apis, False),
        _check_sensor(
            "check_failure_alerts_in_failed_runs", f"{checks}, in failed runs. {_ON}", failure, apis, False
        ),
        run_failure_alerts,
        _check_sensor("stale_asset_alerts", f"{stale}, in successful runs. {_ON}", success, apis, True),
        _check_sensor(
            "stale_asset_alerts_in_failed_runs", f"{stale}, in failed runs. {_ON}", failure, apis, True
        ),
    ]
