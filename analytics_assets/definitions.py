"""The Dagster definitions of the analytics_assets code location."""

from dagster import Definitions, in_process_executor
from dagster_dlt import DagsterDltResource

from analytics_assets.loading.assets import build_load_assets
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.apis import APIS
from analytics_assets.watching.alert_sensors import build_alert_sensor
from analytics_assets.watching.alerts import AlertWebhook
from analytics_assets.watching.checks.suite import build_asset_checks, build_gates
from analytics_assets.watching.connection import check_connection_job
from analytics_assets.watching.freshness import freshness_policy
from analytics_assets.watching.schedules import build_jobs, build_schedules
from analytics_assets.watching.sensors import new_feedback_sensor, segment_members_sensor

# One load op for every asset. The parents' blocking checks run inside it, between a parent's write and
# its children's; each asset carries the freshness policy. Both are watching's, handed down here so that
# loading never imports watching.
assets = [build_load_assets(APIS, blocking_checks=build_gates(), freshness_policy=freshness_policy())]
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
    # again (benchmarks/README.md): the multiprocess executor, its forkserver preloading
    # the definitions and what a step imports, one step of an API at a time, the DuckDB lock held only
    # where the file is opened. Each step process still took 3-6 s to start (the instance, the job) on
    # the loaded 2 cores, the forkserver imported the code location again (32-43 s there), and the two
    # API loads mostly took turns on the one DuckDB writer: the first sync of 20,000 people at +50 ms
    # ran 67.5 s from first request to last response against 52.0 s in process, in the same session.
    # The load is one op (`loading/assets.py`): every endpoint of both APIs read side by side, so no
    # check step runs between the first request of a sync and its last; measured equal to the three load
    # steps with reads ahead it replaced (benchmarks/README.md). Pools still apply to in-process steps.
    # A step starts once the outputs it needs exist, even when the step that made them failed: one
    # failed endpoint keeps none of the checks of the endpoints loaded beside it from running.
    executor=in_process_executor.configured(
        {"step_dependency_config": {"require_upstream_step_success": False}}
    ),
)
