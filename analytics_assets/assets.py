"""The Dagster assets: each endpoint is an asset, loaded by `@dlt_assets` ops (one per API, plus one
per child resource), kept equal to the API by merges, cursors and sweeps (see `sweep.py`)."""

from collections.abc import Iterator, Mapping
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltSource
from pydantic import Field

from analytics_assets.apis import Api
from analytics_assets.catalog import Endpoint, endpoints
from analytics_assets.errors import explain
from analytics_assets.settings import source_setting
from analytics_assets.sweep import ServedKeys, SweepResult, sweep
from analytics_assets.translator import ApiTranslator
from analytics_assets.transport import RequestStats
from analytics_assets.warehouse import loader_file_format, warehouse_lock, warehouse_pipeline


class SyncConfig(Config):
    """How a run syncs. The nightly schedule uses the defaults; set these in the Launchpad to repair."""

    full_scan: bool = Field(
        default=False,
        description=(
            "Read every record of the selected endpoints and rewrite it, ignoring cursors, then remove what the"
            " API no longer serves (the weekly reconciliation)."
        ),
    )
    refresh: bool = Field(
        default=False,
        description="Drop the selected tables and their cursors first, then load them from scratch.",
    )


def configured_source(api: Api, **options: Any) -> DltSource:
    """The API's dlt source with its settings resolved from the environment or `.dlt/*.toml`.

    Raises:
        Failure: A setting is missing; the message names the variable to set.
    """
    try:
        return api.source(**options)
    except ValueError as error:  # a base URL the key must not travel to
        raise Failure(description=str(error)) from None
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
        try:
            rows = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(table)}")
        except DatabaseUndefinedRelation:
            return 0  # the endpoint has served nothing yet, so dlt created no table
    assert rows, "count(*) returns a row"
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
    catalog = endpoints(api.spec_config())
    translator = ApiTranslator(api=api.name, endpoints=catalog)
    return [
        _build_load_assets(api, load, resources, catalog, translator)
        for load, resources in _load_groups(api).items()
    ]


class _Load:
    """One run of one op: the dlt load, then the sweep of what the API no longer serves."""

    def __init__(
        self,
        context: AssetExecutionContext,
        api: Api,
        name: str,
        catalog: Mapping[str, Endpoint],
        config: SyncConfig,
    ) -> None:
        self.context = context
        self.api = api
        self.name = name
        self.catalog = catalog
        self.full_scan = config.full_scan or config.refresh
        self.refresh = config.refresh
        self.pipeline = warehouse_pipeline(name, dataset=api.name)
        self.stats = RequestStats(api.name)

    def source(self, resources: tuple[str, ...], served: ServedKeys, full_scan: bool) -> DltSource:
        source = configured_source(
            self.api, full_scan=full_scan, served_keys=served, request_stats=self.stats
        )
        return _select(source, self.name, resources)

    def failure(self, error: Exception) -> Failure | None:
        """A Failure naming the API, the request and what to do, or None for a failure of another kind."""
        base_url = source_setting(self.api.name, "base_url") or "(unset)"
        message = explain(self.api.name, error, self.stats, self.catalog, base_url)
        if message is None:
            return None
        return Failure(
            description=message,
            metadata={
                "api": self.api.name,
                "requests": sum(self.stats.requests.values()),
                "retries": sum(self.stats.retries.values()),
            },
        )

    def schema_changes(self, resource: str) -> list[str]:
        """Columns this run added to an existing table: new fields, or variants of a drifting type."""
        trace = self.pipeline.last_trace
        load_info = trace.last_load_info if trace else None
        added: list[str] = []
        for package in load_info.load_packages if load_info else []:
            table = package.schema_update.get(resource)
            # A new table's first update lists every column, dlt's `_dlt_id` too; a later one only the new ones.
            if table and "_dlt_id" not in table.get("columns", {}):
                added.extend(str(c) for c in table.get("columns", {}))
        if added:
            self.context.log.warning(
                f"{self.api.name}.{resource} has new columns this run: {', '.join(added)}"
            )
        return added

    def sweep(self, resource: str, served: ServedKeys) -> SweepResult | None:
        """Remove the rows the API no longer serves, when this run read the resource's whole list.

        A served key missing from the warehouse means offset paging skipped a row while the API changed
        under it, and the cursor would keep it out: the resource is then read and rewritten in full.
        """
        endpoint = self.catalog[resource]
        if endpoint.stops_early and not self.full_scan:
            return None  # a nightly read of a window: deletions wait for the reconciliation
        result = sweep(self.pipeline, resource, endpoint.primary_key, served)
        log = self.context.log
        if result.warning:
            log.warning(f"{self.api.name} API, {resource}: {result.warning}")
        elif result.skipped:
            log.warning(
                f"{self.api.name} API served no {resource} this run; kept the warehouse rows. If the source"
                " is really empty, run a refresh (run config `refresh: true`)."
            )
        elif result.missing and endpoint.cursor and not self.full_scan:
            log.warning(
                f"{result.missing} {resource} served by the {self.api.name} API are missing from the warehouse"
                " (offset paging shifted while the API changed); reading and rewriting all of them."
            )
            repair = ServedKeys()
            self.pipeline.run(
                self.source((resource,), repair, full_scan=True), loader_file_format=loader_file_format()
            )
            result = sweep(self.pipeline, resource, endpoint.primary_key, repair)
        return result

    def metadata(self, resource: str, swept: SweepResult | None, served: ServedKeys) -> dict[str, Any]:
        sync = "refresh" if self.refresh else "full scan" if self.full_scan else "nightly"
        repeats = served.repeats(resource)  # read by the `primary_key_unique` check
        metadata: dict[str, Any] = {
            "dagster/row_count": MetadataValue.int(_row_count(self.pipeline, resource)),
            "sync": MetadataValue.text(sync),
            "keys_served_twice": MetadataValue.int(repeats.count),
            "keys_served_twice_sample": MetadataValue.json(list(repeats.sample)),
        }
        if swept is not None:
            metadata["keys_served"] = MetadataValue.int(swept.served)
            metadata["rows_deleted"] = MetadataValue.int(swept.deleted)
        requests, retries = self.stats.for_endpoint(self.catalog[resource].path)
        metadata["requests"] = MetadataValue.int(requests)
        metadata["retries"] = MetadataValue.int(retries)
        metadata["new_columns"] = MetadataValue.json(self.schema_changes(resource))
        return metadata


def _build_load_assets(
    api: Api,
    load: str,
    resources: tuple[str, ...],
    catalog: Mapping[str, Endpoint],
    translator: ApiTranslator,
) -> AssetsDefinition:
    @dlt_assets(
        dlt_source=_select(api.spec_source(), load, resources),
        dlt_pipeline=dlt.pipeline(pipeline_name=load, dataset_name=api.name),
        name=load,
        dagster_dlt_translator=translator,
        # One pool per API: runs that load the same API take turns (limits in dagster.yaml).
        pool=f"{api.name}_api",
    )
    def _assets(
        context: AssetExecutionContext, dlt: DagsterDltResource, config: SyncConfig
    ) -> Iterator[MaterializeResult | AssetMaterialization]:
        run = _Load(context, api, load, catalog, config)
        served = ServedKeys()
        source = run.source(resources, served, full_scan=run.full_scan)
        with warehouse_lock(context.log):
            try:
                results = list(
                    dlt.run(
                        context=context,
                        dlt_source=source,
                        dlt_pipeline=run.pipeline,
                        loader_file_format=loader_file_format(),
                        refresh="drop_resources" if run.refresh else None,
                    )
                )
            except Exception as error:
                failure = run.failure(error)
                if failure is None:
                    raise
                raise failure from error
            for result in results:
                assert result.asset_key is not None
                resource = result.asset_key.path[-1]
                swept = run.sweep(resource, served)
                metadata: dict[str, Any] = {
                    **(result.metadata or {}),
                    **run.metadata(resource, swept, served),
                }
                yield result._replace(metadata=metadata)

    return _assets


__all__ = ["SyncConfig", "build_api_assets", "configured_source"]
