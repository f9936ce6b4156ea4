"""One `@dlt_assets` multi-asset per API: every endpoint is an asset, loaded by one dlt pipeline run."""

from collections.abc import Iterator

import dlt
from dagster import AssetExecutionContext, AssetsDefinition, Failure, MaterializeResult, MetadataValue
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.sources import DltSource

from analytics_assets.apis import Api
from analytics_assets.catalog import endpoints
from analytics_assets.translator import ApiTranslator
from analytics_assets.warehouse import loader_file_format, warehouse_lock, warehouse_pipeline


def configured_source(api: Api) -> DltSource:
    """The API's dlt source with its settings resolved from the environment or `.dlt/*.toml`.

    Raises:
        Failure: A setting is missing; the message names the variable to set.
    """
    try:
        return api.source()
    except ConfigFieldMissingException as error:
        missing = ", ".join(api.env_var(name) for name in error.fields)
        raise Failure(
            description=(
                f"The {api.name} API is not configured: set {missing} in the environment "
                f"(or the same keys under [sources.{api.name}] in .dlt/config.toml / .dlt/secrets.toml)."
            )
        ) from None


def _row_count(pipeline: dlt.Pipeline, table: str) -> int:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(table)}")
    return int(rows[0][0])


def build_api_assets(api: Api) -> AssetsDefinition:
    """The assets of one API: `<api>/<resource>` for every resource of its source."""

    @dlt_assets(
        dlt_source=api.spec_source(),
        dlt_pipeline=dlt.pipeline(pipeline_name=api.name, dataset_name=api.name),
        name=f"{api.name}_api",
        dagster_dlt_translator=ApiTranslator(api=api.name, endpoints=endpoints(api.spec_config())),
        pool=f"{api.name}_api",
    )
    def _assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[MaterializeResult]:
        source = configured_source(api)
        pipeline = warehouse_pipeline(api.name)
        with warehouse_lock(context.log):
            results = dlt.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                loader_file_format=loader_file_format(),
            )
            for result in results:
                assert result.asset_key is not None
                row_count = MetadataValue.int(_row_count(pipeline, result.asset_key.path[-1]))
                yield result._replace(metadata={**(result.metadata or {}), "dagster/row_count": row_count})

    return _assets
