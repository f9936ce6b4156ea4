"""Freshness: every asset materialized within 26 hours, with Dagster's own freshness checks.

`build_last_update_freshness_checks` gives one `freshness_check` per asset (WARN: late data is not
wrong data, but the stale-asset alert reports it); `build_sensor_for_freshness_checks` evaluates
them between runs, when one may have become overdue.

Dagster 1.13 marks both builders as superseded by `FreshnessPolicy` on the assets, evaluated by the
freshness daemon. Checks are kept on purpose: their results are asset check evaluations like every
other check here, so one alert sensor, the UI's checks tab and the tests treat them alike, while the
daemon's freshness state changes have no public query API to alert from. The warning is silenced
where the builders are called, nowhere else.
"""

import warnings
from collections.abc import Sequence
from datetime import timedelta

from dagster import (
    AssetChecksDefinition,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorReturnTypesUnion,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    sensor,
)

FRESHNESS_WINDOW = timedelta(hours=26)
"""The nightly schedule runs every 24 hours; two more hours of slack for a slow or retried night."""
FRESHNESS_CHECK_NAME = "freshness_check"
"""The name Dagster gives each check `build_last_update_freshness_checks` builds."""
FRESHNESS_PARAMS_METADATA_KEY = "dagster/freshness_params"
"""Metadata every freshness check result carries: how the alert sensor tells a staleness apart."""
FRESHNESS_SENSOR_NAME = "freshness_checks_sensor"


def build_freshness_checks(asset_keys: Sequence[AssetKey]) -> Sequence[AssetChecksDefinition]:
    """A `freshness_check` on each asset: fails once its last materialization is older than 26 hours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return build_last_update_freshness_checks(assets=list(asset_keys), lower_bound_delta=FRESHNESS_WINDOW)


def build_freshness_sensor(checks: Sequence[AssetChecksDefinition]) -> SensorDefinition:
    """The sensor that evaluates the freshness checks among `checks` between runs.

    Dagster's own freshness sensor, wrapped only to say in its description that it is on by default.
    """
    freshness = [c for c in checks if all(key.name == FRESHNESS_CHECK_NAME for key in c.check_keys)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        evaluate = build_sensor_for_freshness_checks(freshness_checks=freshness, name=FRESHNESS_SENSOR_NAME)

    @sensor(
        name=FRESHNESS_SENSOR_NAME,
        description=(
            "Evaluates each asset's freshness_check (materialized within the last 26 hours) between runs,"
            " launching a cheap check-only run when one may have become overdue. On by default: without it"
            " an asset that stops loading never turns stale, and webhook_alerts has nothing to report."
        ),
        asset_selection=AssetSelection.checks(*freshness),
        minimum_interval_seconds=600,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def freshness_checks_sensor(context: SensorEvaluationContext) -> SensorReturnTypesUnion:
        return evaluate(context)

    return freshness_checks_sensor
