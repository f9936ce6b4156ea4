"""The Dagster assets: each endpoint is an asset, loaded by `@dlt_assets` ops (one per API, plus one
per child resource), each endpoint on its own (`endpoints_load.py`), kept equal to the API by merges,
cursors and sweeps (see `sweep.py`)."""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dlt
from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DagsterEventType,
    DagsterLogManager,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableSchema,
)
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltSource
from pydantic import Field

from analytics_assets.loading.columns import COLUMN_SCHEMA, with_descriptions
from analytics_assets.loading.endpoints_load import EndpointLoad, EndpointReads
from analytics_assets.loading.errors import error_response, explain, server_message
from analytics_assets.loading.read_ahead import ReadAhead
from analytics_assets.loading.tags import CHILD_PATH, UNAVAILABLE
from analytics_assets.loading.translator import ApiTranslator
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.apis import APIS, Api
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.history import (
    apply_history,
    check_switch,
    history_metadata,
    keeps_history,
    refresh_current_view,
)
from analytics_assets.reading.naming import pipeline_naming
from analytics_assets.reading.settings import source_setting
from analytics_assets.reading.sweep import (
    ServedKeys,
    SweepPlan,
    SweepRefusedError,
    SweepResult,
    apply_sweep,
    plan_sweep,
)
from analytics_assets.reading.transport import KeyRefusal, RequestStats


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


def configured_source(api: Api, synced_at: datetime | None = None, **options: Any) -> DltSource:
    """The API's dlt source with its settings resolved from the environment or `.dlt/*.toml`, its
    history tables (`ANALYTICS_HISTORY`) versioned at `synced_at`.

    Raises:
        Failure: A setting is missing; the message names the variable to set.
    """
    try:
        source = api.source(**options)
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
    keys = {name: e.primary_key for name, e in api.catalog.items()}
    return apply_history(source, api.name, keys, synced_at)


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
    for endpoint in api.catalog.values():
        name = f"{api.name}_{endpoint.resource}" if endpoint.parent else api.name
        groups[name] = (*groups.get(name, ()), endpoint.resource)
    return groups


def _select(source: DltSource, load: str, resources: tuple[str, ...]) -> DltSource:
    # Each op's pipeline has its own name, and so its own dlt schema and state, in the API's dataset.
    selected = source.with_resources(*resources)
    return selected if load == source.name else selected.clone(with_name=load)


def build_api_assets(api: Api) -> list[AssetsDefinition]:
    """The assets of one API: `<api>/<resource>` for every resource of its source."""
    catalog = api.catalog
    translator = ApiTranslator(api=api.name, endpoints=catalog)
    return [
        _build_load_assets(api, load, resources, catalog, translator)
        for load, resources in _load_groups(api).items()
    ]


class _Load:
    """One run of one op: each endpoint loaded on its own (`endpoints_load.py`), then swept and reported."""

    def __init__(
        self,
        log: DagsterLogManager,
        api: Api,
        catalog: Mapping[str, Endpoint],
        config: SyncConfig,
        warehouse: WarehouseResource,
        refusal: KeyRefusal | None = None,
    ) -> None:
        self.log = log
        """The log of the step it works for (a read ahead starts in an earlier step: see `read_ahead.py`)."""
        self.api = api
        self.file_format = warehouse.loader_file_format()
        self.max_row_drop = warehouse.max_row_drop_share()
        self.catalog = catalog
        self.full_scan = config.full_scan or config.refresh
        self.refresh = config.refresh
        # One refusal per API per run: a refused key ends the reads of every step of that API.
        self.stats = RequestStats(api.name, refusal=refusal or KeyRefusal())
        self.served = ServedKeys()
        self.synced_at = datetime.now(UTC)
        """The sync's time: history tables open and close versions at it."""
        # One source serves every endpoint of the run, so that they share one session, retry rule and pacing.
        self._source = configured_source(
            api, self.synced_at, full_scan=self.full_scan, served_keys=self.served, request_stats=self.stats
        )

    def source(self, load: EndpointLoad) -> DltSource:
        """The endpoint alone, named like its pipeline (its own dlt schema), from the path it is read at."""
        source = self._source
        if load.path != self.catalog[load.resource].path:
            source = configured_source(
                self.api,
                self.synced_at,
                full_scan=self.full_scan,
                served_keys=self.served,
                request_stats=self.stats,
                paths={load.resource: load.path},
            )
        return source.with_resources(load.resource).clone(with_name=load.pipeline.pipeline_name)

    def extract(self, load: EndpointLoad) -> None:
        check_switch(load.pipeline, self.api.name, load.resource, self.refresh)
        load.pipeline.extract(
            self.source(load),
            refresh="drop_resources" if self.refresh else None,
            loader_file_format=self.file_format,
        )

    def read(self, load: EndpointLoad) -> None:
        """Extract one endpoint; where the server no longer has its seed path, from its successor."""
        try:
            self.extract(load)
            return
        except Exception as error:
            gone = error_response(error)
            successor = self.api.successor_paths.get(load.resource)
            if successor is None or gone is None or gone.status_code != 404:
                raise
        load.pipeline.abort_packages()
        load.notes.append(
            f"{self.api.name} API: this server has no GET {load.path} (404: the API's current generation);"
            f" loading {self.api.name}/{load.resource} from GET {successor}."
        )
        load.path = successor
        try:
            self.extract(load)
        except Exception as error:
            refused = error_response(error)
            if refused is None or refused.status_code != 403:
                raise
            load.unavailable = (
                f"{self.api.name} API answered 403 on GET {successor}: {server_message(refused)}"
                f" {self.api.name}/{load.resource} is not available on this plan; its table stays as it was."
            )

    def sweeps(self, resource: str) -> bool:
        """Whether this run's read of `resource` is of its whole list, so that it sweeps."""
        return self.full_scan or not self.catalog[resource].stops_early  # a nightly window waits

    def plan(self, pipeline: dlt.Pipeline, resource: str, served: ServedKeys) -> SweepPlan:
        """What the sweep after this write deletes; raises `SweepRefusedError` (nothing gets written)
        above the warehouse's `max_row_drop`. A refresh deletes nothing: it drops the table and loads
        what was served (the way to accept a mass deletion)."""
        key = self.catalog[resource].primary_key
        if self.refresh:
            return SweepPlan(resource, key, served.sorted_hashes(resource), [], [])
        return plan_sweep(pipeline, resource, key, served, self.max_row_drop)

    def write(self, load: EndpointLoad) -> LoadInfo:
        if not load.unavailable and self.sweeps(load.resource):
            load.sweep_plan = self.plan(load.pipeline, load.resource, self.served)
        # normalize() and load() rather than run(): run() would sync with the warehouse again, which on a
        # first load (no dataset yet) wipes the package just extracted.
        load.pipeline.normalize()
        info = load.pipeline.load()
        info.raise_on_failed_jobs()
        if keeps_history(self.api.name, load.resource):
            refresh_current_view(load.pipeline, load.resource)
        return info

    def failure(self, load: EndpointLoad) -> str:
        """One line naming the endpoint, the request and the reason, for the run's failure message."""
        assert load.error is not None
        base_url = source_setting(self.api.name, "base_url") or "(unset)"
        message = explain(self.api, load.error, self.stats, self.catalog, base_url)
        return f"{self.api.name}/{load.resource}: {message or f'{type(load.error).__name__}: {load.error}'}"

    def schema_changes(self, load: EndpointLoad) -> list[str]:
        """Columns this run added to an existing table: new fields, or variants of a drifting type."""
        trace = load.pipeline.last_trace
        load_info = trace.last_load_info if trace else None
        added: list[str] = []
        for package in load_info.load_packages if load_info else []:
            table = package.schema_update.get(load.resource)
            # A new table's first update lists every column, dlt's `_dlt_id` too; a later one only the new ones.
            if table and "_dlt_id" not in table.get("columns", {}):
                added.extend(str(c) for c in table.get("columns", {}))
        if added:
            self.log.warning(f"{self.api.name}.{load.resource} has new columns this run: {', '.join(added)}")
        return added

    def sweep(self, load: EndpointLoad) -> SweepResult | None:
        """Remove the rows the API no longer serves, as planned before the write (`sweep.plan_sweep`).

        A served key missing from the warehouse means offset paging skipped a row while the API changed
        under it, and the cursor would keep it out: the resource is then read and rewritten in full.
        """
        resource, pipeline = load.resource, load.pipeline
        if load.sweep_plan is None:
            return None  # a nightly read of a window: deletions wait for the reconciliation
        result = apply_sweep(pipeline, load.sweep_plan, self.synced_at)
        log = self.log
        if result.warning:
            log.warning(f"{self.api.name} API, {resource}: {result.warning}")
        elif result.skipped:
            log.warning(
                f"{self.api.name} API served no {resource} this run; kept the warehouse rows. If the source"
                " is really empty, run a refresh (run config `refresh: true`)."
            )
        elif result.missing and self.catalog[resource].cursor and not self.full_scan:
            log.warning(
                f"{result.missing} {resource} served by the {self.api.name} API are missing from the warehouse"
                " (offset paging shifted while the API changed); reading and rewriting all of them."
            )
            repair = ServedKeys()
            source = configured_source(
                self.api, self.synced_at, full_scan=True, served_keys=repair, request_stats=self.stats
            ).with_resources(resource)
            pipeline.extract(
                source.clone(with_name=pipeline.pipeline_name), loader_file_format=self.file_format
            )
            try:
                plan = self.plan(pipeline, resource, repair)
            except SweepRefusedError:
                pipeline.abort_packages()
                raise
            pipeline.normalize()
            pipeline.load().raise_on_failed_jobs()
            result = apply_sweep(pipeline, plan, self.synced_at)
        return result

    def described(self, metadata: Mapping[str, Any], load: EndpointLoad) -> dict[str, Any]:
        """dlt's materialization metadata with the column descriptions of the endpoint's documented fields."""
        result = dict(metadata)
        schema = result.get(COLUMN_SCHEMA)
        if isinstance(schema, TableSchema):
            descriptions = self.api.columns.get(load.resource, {})
            result[COLUMN_SCHEMA] = with_descriptions(schema, descriptions, pipeline_naming(load.pipeline))
        return result

    def metadata(self, load: EndpointLoad, swept: SweepResult | None) -> dict[str, Any]:
        sync = "refresh" if self.refresh else "full scan" if self.full_scan else "nightly"
        repeats = self.served.repeats(load.resource)  # read by the `primary_key_unique` check
        metadata: dict[str, Any] = {
            "dagster/row_count": MetadataValue.int(_row_count(load.pipeline, load.resource)),
            "sync": MetadataValue.text(sync),
            "served_by": MetadataValue.text(f"GET {load.path}"),
            "keys_served_twice": MetadataValue.int(repeats.count),
            "keys_served_twice_sample": MetadataValue.json(list(repeats.sample)),
        }
        if swept is not None:
            metadata["keys_served"] = MetadataValue.int(swept.served)
            metadata["rows_deleted"] = MetadataValue.int(swept.deleted)
            metadata["rows_unconfirmed"] = MetadataValue.int(swept.unconfirmed)
        metadata.update(
            history_metadata(load.pipeline, self.api.name, load.resource, swept.closed if swept else None)
        )
        requests, retries = self.stats.for_endpoint(load.path)
        metadata["requests"] = MetadataValue.int(requests)
        metadata["retries"] = MetadataValue.int(retries)
        if load.unavailable:
            metadata[UNAVAILABLE] = MetadataValue.text(load.unavailable)
        else:
            metadata["new_columns"] = MetadataValue.json(self.schema_changes(load))
        return metadata


def _start_reads(
    context: AssetExecutionContext,
    run: _Load,
    resources: list[str],
    warehouse: WarehouseResource,
    ahead: bool = False,
) -> EndpointReads:
    """Start reading the endpoints `resources` of the load `run`, each into a pipeline of its own.

    Only the holder of the API's lock touches its dlt pipelines: creating one writes into its local
    folder, which the holder's run may be dropping and restoring (seen: "Directory not empty").
    """
    name = run.api.name
    pipelines = {r: warehouse.pipeline(f"{name}_{r}", name) for r in resources}
    warehouse.check_reachable(next(iter(pipelines.values())))  # down: before any API request
    # Paged lists first: their pipelines are restored first (one at a time), so the longest chains of
    # requests start first (seen: `/people/all` started 1.1 s into a run, behind four one-page endpoints).
    paged_first = sorted(resources, key=lambda r: run.catalog[r].limit_param is None)
    loads = [EndpointLoad(r, pipelines[r], run.catalog[r].path) for r in paged_first]
    return EndpointReads(loads, run.read, lambda: warehouse.lock(context), restore_first_here=not ahead)


def _planned_assets(context: AssetExecutionContext) -> set[AssetKey]:
    """The assets this run materializes, in any of its steps.

    Read from the run's `ASSET_MATERIALIZATION_PLANNED` events, which Dagster logs for every asset of
    the run's plan when it creates the run. The run's `asset_selection` says only what a subset chose:
    a whole job's run carries none (None, or an empty set when run in process).
    """
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {key for record in records if (key := record.asset_key) is not None}


def _read_later_steps(
    context: AssetExecutionContext, warehouse: WarehouseResource, current: str, current_run: _Load
) -> list[ReadAhead]:
    """Start the reads of the run's other load steps now, for them to write in their turn (`read_ahead.py`).

    Only where the run executes its steps in this process (steps in processes of their own could not
    take them), never for a refresh (it drops its tables first: it reads in its own turn), and only for
    an API whose lock no other run holds. A read ahead is a head start, never a failure of this step.
    """
    started: list[ReadAhead] = []
    try:
        if "in_process" not in context.job_def.executor_def.name:
            return []
        steps = context.run.step_keys_to_execute
        in_run = _planned_assets(context)
        # A step's config is the run's, else the job's default (a scheduled `weekly_reconciliation` run
        # carries no config of its own: its full scan is the job's default).
        given, default = context.run.run_config.get("ops"), (context.job_def.run_config or {}).get("ops")
        ops_config: Mapping[str, Any] = {
            **(default if isinstance(default, Mapping) else {}),
            **(given if isinstance(given, Mapping) else {}),
        }
    except Exception as error:  # the run's plan read another way by a later Dagster: no head start
        context.log.warning(
            f"Not reading ahead ({type(error).__name__}: {error}); each step reads in its turn."
        )
        return []
    refusals = {current_run.api.name: current_run.stats.refusal or KeyRefusal()}
    for api in APIS:
        for step, resources in _load_groups(api).items():
            selected = [r for r in resources if AssetKey([api.name, r]) in in_run]
            if step == current or not selected or (steps is not None and step not in steps):
                continue
            config = SyncConfig(**ops_config.get(step, {}).get("config", {}))
            if config.refresh:
                continue
            # Only tried: this step holds its own API's lock, and waits for no other (`locks.py`).
            api_hold = warehouse.hold_api_lock(api.name, context, wait=False)
            if api_hold is None:
                context.log.info(f"Not reading {step} ahead: another run holds the {api.name} API's lock.")
                continue
            releases = [api_hold]
            try:
                refusal = refusals.setdefault(api.name, KeyRefusal())
                run = _Load(context.log, api, api.catalog, config, warehouse, refusal)
                reads = _start_reads(context, run, selected, warehouse, ahead=True)
            except Exception as error:
                for release in releases:
                    release()
                context.log.warning(
                    f"Not reading {step} ahead ({type(error).__name__}: {error}); it reads in its turn."
                )
                continue
            started.append(ReadAhead(step, run, reads, releases))
            warehouse.reads_ahead.put(started[-1])
            context.log.info(
                f"Reading {', '.join(f'{api.name}/{r}' for r in selected)} ahead for step {step}."
            )
    return started


def _blocking_failures(context: AssetExecutionContext, parent: AssetKey) -> list[str]:
    """The blocking checks of `parent` that failed at ERROR in this run.

    The code location's executor starts a step once the outputs it needs exist, even when the step
    that made them failed (so one failed endpoint holds back none of the others); a failed blocking check
    then no longer stops its children on its own, so a child op asks before it loads.
    """
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records
    return sorted(
        evaluation.check_name
        for record in records
        if (evaluation := record.event_log_entry.asset_check_evaluation) is not None
        and evaluation.asset_key == parent
        and evaluation.blocking
        and not evaluation.passed
        and evaluation.severity == AssetCheckSeverity.ERROR
    )


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
        op_tags=CHILD_PATH if load != api.name else None,  # a child's load: next after its parent's checks
    )
    def _assets(
        context: AssetExecutionContext,
        dlt: DagsterDltResource,
        warehouse: WarehouseResource,
        config: SyncConfig,
    ) -> Iterator[MaterializeResult]:
        selected = [r for r in resources if AssetKey([api.name, r]) in context.selected_asset_keys]
        ahead = warehouse.reads_ahead.take(load)
        for parent in {p for r in selected if (p := catalog[r].parent)}:
            if failed := _blocking_failures(context, AssetKey([api.name, parent])):
                if ahead is not None:
                    ahead.discard()
                    context.log.info(
                        f"Dropped what was read ahead for {', '.join(selected)}: nothing of it loads."
                    )
                raise Failure(
                    description=(
                        f"Not loading {', '.join(selected)}: {api.name}/{parent} failed its blocking checks"
                        f" ({', '.join(failed)}) in this run, and its rows would feed them."
                    )
                )
        # Runs of one API take turns; then the warehouse's writer (the lock order of `locks.py`).
        with warehouse.api_lock(api.name, context), warehouse.lock(context):
            if ahead is not None:
                ahead.release()  # the step holds the locks itself now
                run, reads = ahead.load, ahead.reads
                run.log = context.log
                context.log.info(f"{', '.join(selected)}: read ahead since the run's first load step.")
            else:
                run = _Load(context.log, api, catalog, config, warehouse)
                reads = _start_reads(context, run, selected, warehouse)
            later = (
                _read_later_steps(context, warehouse, load, run)
                if warehouse.reads_ahead.first_load_step()
                else []
            )
            loads = reads.write_each(run.write)
            for started in later:  # what follows opens the warehouse outside `WAREHOUSE_TURN`
                started.reads.wait_restored()
            for note in (note for endpoint in loads for note in endpoint.notes):
                context.log.info(note)
            failures = []
            for endpoint in loads:
                if endpoint.error is not None:
                    failures.append(run.failure(endpoint))
                    continue
                swept = None if endpoint.unavailable else run.sweep(endpoint)
                metadata = run.metadata(endpoint, swept)
                if endpoint.info is not None:
                    resource = run.source(endpoint).resources[endpoint.resource]
                    metadata = {
                        **run.described(
                            dlt.extract_resource_metadata(
                                context, resource, endpoint.info, endpoint.pipeline
                            ),
                            endpoint,
                        ),
                        **metadata,
                    }
                else:
                    context.log.warning(endpoint.unavailable)
                yield MaterializeResult(asset_key=AssetKey([api.name, endpoint.resource]), metadata=metadata)
        if failures:
            failed = [f"{api.name}/{e.resource}" for e in loads if e.error is not None]
            raise Failure(
                # The first line names the failed assets: alerts quote it.
                description=(
                    f"{api.name} API: {', '.join(failed)} failed; the other {len(loads) - len(failed)}"
                    f" endpoint(s) of this op loaded and committed. A failed endpoint keeps its table and"
                    f" cursor as they were.\n- " + "\n- ".join(failures)
                ),
                metadata={
                    "api": api.name,
                    "failed_assets": failed,
                    "requests": sum(run.stats.requests.values()),
                    "retries": sum(run.stats.retries.values()),
                },
            )

    return _assets


__all__ = ["SyncConfig", "build_api_assets", "configured_source"]
