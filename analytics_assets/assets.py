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


def _load_groups(api: Api) -> dict[str, tuple[str, ...]]:
    """The resources of an API by the op (and dlt pipeline) that loads them.

    Top-level resources load together in one op named for the API. A child resource gets an op of its
    own, downstream of its parent's, so that a blocking check on the parent keeps a bad parent from
    feeding it (within one op, Dagster cannot stop half of the outputs).
    """
    groups: dict[str, tuple[str, ...]] = {api.name: ()}
    for endpoint in endpoints(api.spec_config()).values():
        name = f"{api.name}_{endpoint.resource}" if endpoint.parent else api.name
        groups[name] = (*groups.get(name, ()), endpoint.resource)
    return groups


def _select(source: DltSource, load: str, resources: tuple[str, ...]) -> DltSource:
    # Each op's pipeline has its own name, and so its own dlt schema and state, in the API's dataset.
    selected = source.with_resources(*resources)
    return selected if load == source.name else selected.clone(with_name=load)


def build_api_assets(api: Api) -> list[AssetsDefinition]:
    """The assets of one API: `<api>/<resource>` for every resource of its source."""
    translator = ApiTranslator(api=api.name, endpoints=endpoints(api.spec_config()))
    return [
        _build_load_assets(api, load, resources, translator) for load, resources in _load_groups(api).items()
    ]


def _build_load_assets(
    api: Api, load: str, resources: tuple[str, ...], translator: ApiTranslator
) -> AssetsDefinition:
    @dlt_assets(
        dlt_source=_select(api.spec_source(), load, resources),
        dlt_pipeline=dlt.pipeline(pipeline_name=load, dataset_name=api.name),
        name=load,
        dagster_dlt_translator=translator,
        # One pool per API: runs that load the same API take turns (limits in dagster.yaml).
        pool=f"{api.name}_api",
    )
    def _assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[MaterializeResult]:
        source = _select(configured_source(api), load, resources)
        pipeline = warehouse_pipeline(load, dataset=api.name)
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
