"""The Dagster definitions of the analytics_assets code location."""

from dagster import Definitions, in_process_executor
from dagster_dlt import DagsterDltResource

from analytics_assets.loading.assets import build_api_assets
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.apis import APIS
from analytics_assets.watching.alert_sensors import build_alert_sensor
from analytics_assets.watching.alerts import AlertWebhook
from analytics_assets.watching.checks.freshness import build_freshness_sensor
from analytics_assets.watching.checks.suite import build_asset_checks
from analytics_assets.watching.connection import check_connection_job
from analytics_assets.watching.schedules import build_jobs, build_schedules
from analytics_assets.watching.sensors import new_feedback_sensor, segment_members_sensor

assets = [assets for api in APIS for assets in build_api_assets(api)]
jobs = build_jobs(assets)
asset_checks = build_asset_checks(assets)

defs = Definitions(
    assets=assets,
    asset_checks=asset_checks,
    jobs=[*jobs, check_connection_job],
    schedules=build_schedules(jobs),
    sensors=[
        new_feedback_sensor,
        segment_members_sensor,
        build_freshness_sensor(asset_checks),
        build_alert_sensor(assets),
    ],
    # The settings of ours, on the UI's Resources page; each is read from its environment variable when a
    # run or tick uses it (see `settings.resource_setting`), never when the definitions load.
    resources={
        "dlt": DagsterDltResource(),
        "warehouse": WarehouseResource(),
        "alert_webhook": AlertWebhook(),
    },
    # Every step of a run in the run's own process: a step process costs more than it saves. Measured
    # again (README, "Performance"): the multiprocess executor, its forkserver preloading
    # the definitions and what a step imports, one step of an API at a time, the DuckDB lock held only
    # where the file is opened. Each step process still took 3-6 s to start (the instance, the job) on
    # the loaded 2 cores, the forkserver imported the code location again (32-43 s there), and the two
    # API loads mostly took turns on the one DuckDB writer: the first sync of 20,000 people at +50 ms
    # ran 67.5 s from first request to last response against 52.0 s in process, in the same session.
    # In process, the steps on the way to a child's load run first (`tags.CHILD_PATH`): no check runs
    # between the loads of a sync; and the first load step starts reading every other load step's
    # endpoints (`read_ahead.py`): the steps take turns, their requests do not (`make bench`: 0.70 x ->
    # 0.41 x the longest chain of requests for the first sync at +50 ms, README "Performance").
    # Pools still apply to in-process steps.
    # A step starts once the outputs it needs exist, even when the step that made them failed: one
    # failed endpoint keeps only its own checks (and children) from running, not those of the endpoints
    # loaded beside it. Child ops check their parent's blocking checks themselves (`assets.py`).
    executor=in_process_executor.configured(
        {"step_dependency_config": {"require_upstream_step_success": False}}
    ),
)
