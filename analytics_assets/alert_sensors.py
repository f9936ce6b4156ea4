"""The alert sensors: a check failing at ERROR, a failed run, a stale asset -> one webhook POST each.

Each sensor walks the runs of this code location's assets as they end, in the order they ended, and
keeps in its cursor the event-log storage id of the last run end it handled (one per run status):
a failure is alerted once, on the first tick after its run ended, and never again. The first tick of
a new sensor only sets the cursor (no alert storm about old runs). Sending never raises (see
`alerts.send_alert`): a receiver that is down costs the alert, never the sensor.

| sensor | alerts on |
|---|---|
| `check_failure_alerts` | every failed check evaluation at ERROR severity (freshness aside) |
| `run_failure_alerts` | every failed run that planned one of these assets or their checks |
| `stale_asset_alerts` | every failed freshness check (an asset not materialized for 26 hours) |
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    EventLogRecord,
    RunStatusChangeRecordsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from analytics_assets.alerts import ASSET_STALE, CHECK_FAILED, RUN_FAILED, Alert, send_alert
from analytics_assets.checks.freshness import FRESHNESS_PARAMS_METADATA_KEY

INTERVAL_SECONDS = 60
RUNS_PER_TICK = 50
"""Run ends handled per tick at most; the rest wait for the next tick (the cursor says where)."""
TICK_BUDGET_SECONDS = 40.0
"""Stop sending and leave the rest to the next tick past this (a sensor tick times out at 60 s)."""
ERROR_TEXT_LIMIT = 600

_PLANNED = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


@dataclass(frozen=True)
class _RunEnd:
    storage_id: int
    status: DagsterEventType
    run_id: str


def _run_ends(
    instance: DagsterInstance, cursor: dict[str, int], statuses: Sequence[DagsterEventType]
) -> tuple[list[_RunEnd], bool]:
    """Run ends after the cursor, oldest first, and whether this is the sensor's first look (the
    cursor is then set to the newest run end, with nothing returned)."""
    first_look = False
    ends: list[_RunEnd] = []
    limits: list[int] = []
    for status in statuses:
        after = cursor.get(status.value)
        if after is None:
            newest = instance.fetch_run_status_changes(status, limit=1).records
            cursor[status.value] = newest[0].storage_id if newest else 0
            first_look = True
            continue
        records = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=status, after_storage_id=after),  # type: ignore[arg-type]
            limit=RUNS_PER_TICK,
            ascending=True,
        ).records
        ends += [_RunEnd(r.storage_id, status, r.run_id) for r in records]
        if len(records) == RUNS_PER_TICK:  # more are waiting: nothing past the last one fetched yet
            limits.append(records[-1].storage_id)
    ceiling = min(limits, default=None)
    ends = sorted((e for e in ends if ceiling is None or e.storage_id <= ceiling), key=lambda e: e.storage_id)
    return ends, first_look


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
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        evaluation = event.asset_check_evaluation_data
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


def _run_failure_alert(instance: DagsterInstance, run: DagsterRun, keys: set[AssetKey]) -> Alert:
    """The alert for a failed run: its failed steps with the first line of their error, and the
    assets it planned but did not materialize."""
    failures = {}
    for record in _records(instance, run.run_id, DagsterEventType.STEP_FAILURE):
        event = record.event_log_entry.dagster_event
        error = event.step_failure_data.error if event else None
        if event is not None and event.step_key:
            message = _first_line(error.message if error else record.event_log_entry.message)
            if error and error.cls_name:  # "dagster._core...Failure: text" -> "text"
                head, _, rest = message.partition(": ")
                message = rest if rest and head.split(".")[-1] == error.cls_name else message
            failures[event.step_key] = message
    materialized = {
        event.asset_key
        for record in _records(instance, run.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        if (event := record.event_log_entry.dagster_event) is not None and event.asset_key
    }
    missed = sorted(k.to_user_string() for k in keys - materialized)
    reasons = "; ".join(f"{step}: {message}" for step, message in failures.items()) or "see the run's logs"
    return Alert(
        kind=RUN_FAILED,
        severity="ERROR",
        summary=f"Run of {run.job_name} failed ({reasons}). Not updated: {', '.join(missed) or 'none'}.",
        run_id=run.run_id,
        asset=", ".join(missed) or None,
        details={"job": run.job_name, "failed_steps": failures, "not_updated": missed},
    )


def _alert_sensor(
    name: str,
    description: str,
    statuses: Sequence[DagsterEventType],
    alerts_for: Callable[[DagsterInstance, DagsterRun, set[AssetKey]], list[Alert]],
    apis: Sequence[str],
) -> SensorDefinition:

    @sensor(
        name=name,
        description=description,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: SensorEvaluationContext) -> SkipReason:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        ends, first_look = _run_ends(context.instance, cursor, statuses)
        started, sent, handled = time.monotonic(), 0, 0
        for end in ends:
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                break
            run = context.instance.get_run_by_id(end.run_id)
            keys = {k for k in _keys_of_run(context.instance, run) if k.path[0] in apis} if run else set()
            if run is not None and keys:
                for alert in alerts_for(context.instance, run, keys):
                    send_alert(alert, context.log)
                    sent += 1
            # Past this run end for good, whatever the webhook said: one failure, one alert.
            cursor[end.status.value] = end.storage_id
            context.update_cursor(json.dumps(cursor, sort_keys=True))
            handled += 1
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if first_look:
            return SkipReason("First tick: watching runs that end from now on.")
        return SkipReason(f"{handled} ended runs looked at, {sent} alerts.")

    return _sensor


def build_alert_sensors(apis: Sequence[str] = ("audience", "feedback")) -> list[SensorDefinition]:
    """The three alert sensors, for the assets whose key starts with one of `apis`.

    On by default: alerts exist to reach people without anyone switching something on. Without
    `ANALYTICS_ALERT_WEBHOOK_URL` they log their alerts as warnings in the sensor's tick log.
    """
    both = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
    on = "On by default. POSTs to ANALYTICS_ALERT_WEBHOOK_URL (logged as a warning when unset)."
    return [
        _alert_sensor(
            "check_failure_alerts",
            f"Alerts once on every asset check that fails at ERROR severity (the data is wrong). {on}",
            both,
            lambda instance, run, keys: _check_alerts(instance, run, apis, stale=False),
            apis,
        ),
        _alert_sensor(
            "run_failure_alerts",
            f"Alerts once on every failed run of these assets, naming the failed steps. {on}",
            (DagsterEventType.RUN_FAILURE,),
            lambda instance, run, keys: [_run_failure_alert(instance, run, keys)],
            apis,
        ),
        _alert_sensor(
            "stale_asset_alerts",
            "Alerts once when an asset's freshness check fails (not materialized within 26 hours; the"
            f" freshness_checks_sensor evaluates them). {on}",
            both,
            lambda instance, run, keys: _check_alerts(instance, run, apis, stale=True),
            apis,
        ),
    ]
