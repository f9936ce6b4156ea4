"""The Dagster definitions of the analytics_assets code location."""

from dagster import Definitions
from dagster_dlt import DagsterDltResource

from analytics_assets.apis import APIS
from analytics_assets.assets import build_api_assets

defs = Definitions(
    assets=[assets for api in APIS for assets in build_api_assets(api)],
    resources={"dlt": DagsterDltResource()},
)
