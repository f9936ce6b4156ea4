"""The Dagster definitions of the analytics_assets code location."""

from dagster import Definitions
from dagster_dlt import DagsterDltResource

from analytics_assets.apis import APIS
from analytics_assets.assets import build_api_assets
from analytics_assets.audience.automation import segment_members_sensor
from analytics_assets.feedback.sensors import new_feedback_sensor
from analytics_assets.schedules import build_jobs, build_schedules

assets = [assets for api in APIS for assets in build_api_assets(api)]
jobs = build_jobs(assets)

defs = Definitions(
    assets=assets,
    jobs=jobs,
    schedules=build_schedules(jobs),
    sensors=[new_feedback_sensor, segment_members_sensor],
    resources={"dlt": DagsterDltResource()},
)
