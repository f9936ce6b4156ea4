"""The Dagster definitions of the analytics_assets code location."""

from dagster import Definitions
from dagster_dlt import DagsterDltResource

from analytics_assets.apis import APIS
from analytics_assets.assets import build_api_assets

defs = Definitions(
    assets=[build_api_assets(api) for api in APIS],
    resources={"dlt": DagsterDltResource()},
)
