"""The nightly sync, the weekly reconciliation and the full-refresh jobs.

`ANALYTICS_SCHEDULE_TIMEZONE` (an IANA name, default UTC) is read when the definitions load (by
`build_schedules`, never at import), and is not a Dagster resource: Dagster evaluates a schedule's cron
in the `execution_timezone` of its definition, which it needs before any resource exists. Kept there,
the UI shows "02:00 Europe/Paris" and the real next ticks, and Dagster's own cron handling keeps a
DST night to one run. The alternative, a cron every 15 minutes in UTC whose evaluation asks a resource
for the zone and skips all but the local 02:00 slot, would show 96 skipped ticks a day and a wrong
"next tick" in the UI, and would move the schedules' cron and zone that the tests pin.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    RunConfig,
    ScheduleDefinition,
    define_asset_job,
)

from analytics_assets.loading import tags
from analytics_assets.loading.assets import LOAD_OP, SyncConfig
from analytics_assets.reading.apis import APIS

TIMEZONE_ENV = "ANALYTICS_SCHEDULE_TIMEZONE"


def schedule_timezone() -> str:
    return os.environ.get(TIMEZONE_ENV) or "UTC"


def build_jobs(assets: Sequence[AssetsDefinition]) -> list[Any]:
    """The sync jobs: nightly (incremental), weekly reconciliation (full scan), a full refresh per API."""
    nightly = define_asset_job(
        "nightly_sync",
        selection=AssetSelection.all(),
        description="Every endpoint, incrementally: new and changed records, deletions swept where the whole list is read.",
        tags=tags.NIGHTLY,
    )
    reconciliation = define_asset_job(
        "weekly_reconciliation",
        selection=AssetSelection.all(),
        description="Every endpoint read and rewritten in full, ignoring cursors; removes whatever the API no longer serves.",
        config=RunConfig(ops={LOAD_OP: SyncConfig(full_scan=True)}),
        tags=tags.RECONCILIATION,
    )
    refreshes = [
        define_asset_job(
            f"{api.name}_full_refresh",
            selection=AssetSelection.groups(api.name),
            description=f"Drop the {api.name} tables and cursors and load everything again from scratch.",
            config=RunConfig(ops={LOAD_OP: SyncConfig(refresh=True, apis=[api.name])}),
            tags=tags.REFRESH,
        )
        for api in APIS
    ]
    return [nightly, reconciliation, *refreshes]


def build_schedules(jobs: Sequence[Any]) -> list[ScheduleDefinition]:
    """Nightly at 02:00 and weekly on Sunday at 03:00, both running by default: fresh data without a click."""
    by_name = {job.name: job for job in jobs}
    timezone = schedule_timezone()
    return [
        ScheduleDefinition(
            name="nightly_sync_schedule",
            job=by_name["nightly_sync"],
            cron_schedule="0 2 * * *",
            execution_timezone=timezone,
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"Every asset at 02:00 {timezone} (ANALYTICS_SCHEDULE_TIMEZONE). On by default.",
            tags=tags.NIGHTLY,
        ),
        ScheduleDefinition(
            name="weekly_reconciliation_schedule",
            job=by_name["weekly_reconciliation"],
            cron_schedule="0 3 * * 0",
            execution_timezone=timezone,
            default_status=DefaultScheduleStatus.RUNNING,
            description=(
                f"Every asset read in full on Sundays at 03:00 {timezone}: catches updates to old responses and"
                " deleted responses, which nightly syncs do not read. On by default."
            ),
            tags=tags.RECONCILIATION,
        ),
    ]
