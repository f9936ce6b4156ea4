"""Freshness: each asset is expected to be materialized within 26 hours, as a Dagster `FreshnessPolicy`.

The policy sits on every asset (`definitions.py` hands it to the load op's specs), so the asset catalog
shows each asset fresh or late at a glance. `dagster-daemon` evaluates it (its freshness daemon, every
30 s) from the asset's last materialization alone: a run in which one endpoint failed leaves every other
asset fresh, and only the failed one turns late once its window runs out. `webhook_alerts` reports an
asset that turns late (`alert_sensors.py`), once, so late data reaches the webhook like any other
problem.

A policy rather than freshness checks: checks are evaluated by runs (a check op depending on every
asset, or a sensor launching check-only runs), and a run in which one endpoint failed marked every
asset's freshness check failed; the policy needs no run and judges each asset on its own.
"""

from __future__ import annotations

from datetime import timedelta

from dagster import FreshnessPolicy

from analytics_assets.reading.settings import whole_number_setting

FRESHNESS_WINDOW = timedelta(hours=26)
"""The nightly schedule runs every 24 hours; two more hours of slack for a slow or retried night."""
WINDOW_ENV = "ANALYTICS_FRESHNESS_WINDOW_MINUTES"
"""Overrides FRESHNESS_WINDOW, in minutes (1 or more); read when the definitions load (the policy is part
of each asset's definition). For a schedule of your own that runs less often than nightly."""


def freshness_window() -> timedelta:
    """How long after its last materialization an asset turns late: `ANALYTICS_FRESHNESS_WINDOW_MINUTES`,
    else 26 hours.

    A wrong value fails the definitions' load naming the variable.
    """
    default = int(FRESHNESS_WINDOW.total_seconds() // 60)
    return timedelta(minutes=whole_number_setting(WINDOW_ENV, default, "minutes"))


def freshness_policy() -> FreshnessPolicy:
    """The policy every asset carries: materialized within `freshness_window()`, else late (FAIL)."""
    return FreshnessPolicy.time_window(fail_window=freshness_window())
