"""The Dagster assets: each endpoint is an asset, all of them loaded by one op (`analytics_load`, a
`@multi_asset` that can be subset) that reads every selected endpoint of both APIs side by side and writes
each as soon as it is read (`endpoints_load.py`), kept equal to the API by merges, cursors and sweeps (see
`sweep.py`). A child (`segment_people`) is written only after its parent was written and passed its
blocking checks, which the op evaluates itself (`Gate`)."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    DagsterLogManager,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    TableSchema,
    multi_asset,
)
from dagster_dlt import DagsterDltResource, build_dlt_asset_specs
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.pipeline import LoadInfo
from dlt.sources import DltSource
from pydantic import Field

from analytics_assets.loading.columns import COLUMN_SCHEMA, with_descriptions
from analytics_assets.loading.destinations import warehouse_failure
from analytics_assets.loading.endpoints_load import (
    WAREHOUSE_TURN,
    EndpointLoad,
    EndpointReads,
    HeldBackError,
    write_in_turn,
)
from analytics_assets.loading.errors import error_response, explain, server_message
from analytics_assets.loading.tables import endpoint_pipeline_name, row_count
from analytics_assets.loading.tags import UNAVAILABLE
from analytics_assets.loading.translator import ApiTranslator
from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.reading.apis import Api
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.history import (
    apply_history,
    check_switch,
    history_metadata,
    keeps_history,
    refresh_current_view,
)
from analytics_assets.reading.naming import pipeline_naming
from analytics_assets.reading.odd_values import OddValues
from analytics_assets.reading.personal_data import (
    PersonalData,
    PersonalDataSettingError,
    change_warning,
    form_change,
    personal_data,
    stored_form,
)
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

LOAD_OP = "analytics_load"
"""The one op that loads every asset (the step key in a run, the `ops:` key of its run config)."""


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
    apis: list[str] = Field(
        default=[],
        description=(
            "The APIs full_scan and refresh apply to (audience, feedback); empty: every API the run loads."
            " The endpoints of the other APIs sync nightly."
        ),
    )

    def of(self, api: str) -> tuple[bool, bool]:
        """(full_scan, refresh) for the endpoints of `api`."""
        if self.apis and api not in self.apis:
            return False, False
        return self.full_scan or self.refresh, self.refresh


def configured_source(
    api: Api, synced_at: datetime | None, privacy: PersonalData, capabilities: Any = None, **options: Any
) -> DltSource:
    """The API's dlt source with its settings resolved from the environment or `.dlt/*.toml`, its
    history tables (`ANALYTICS_HISTORY`) versioned at `synced_at`, its personal data hashed and
    excluded as `privacy` says (`personal_data.py`, read once per run); `capabilities` are the
    destination's (dlt's), for the SQL history mode hands dlt.

    Raises:
        Failure: A setting is missing; the message names the variable to set.
    """
    try:
        source = api.source(**options, field_rules=privacy.for_api(api))
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
    return apply_history(source, api.name, keys, synced_at, capabilities)


@dataclass(frozen=True)
class Gate:
    """The blocking checks of a parent asset, evaluated in the load op right after the parent is written
    and before its children are: one failing at ERROR keeps them out of the run.

    Built by `watching.checks` and passed in by `definitions.py` (`build_load_assets(blocking_checks=...)`):
    the checks are watching's, and loading never imports watching (the arrows point down).

    Attributes:
        specs: The checks' specs, made `check_specs` of the load op (blocking).
        evaluate: Evaluates the selected checks over the written parent's pipeline (its dataset); the op
            holds the API's and the warehouse's locks, and opens the warehouse one thread at a time.
    """

    specs: Sequence[AssetCheckSpec]
    evaluate: Callable[[AssetExecutionContext, WarehouseResource, dlt.Pipeline], Iterable[AssetCheckResult]]


class _Load:
    """One API's part of one run of the load op (a child's apart): each endpoint loaded on its own
    (`endpoints_load.py`), then swept and reported."""

    def __init__(
        self,
        log: DagsterLogManager,
        api: Api,
        catalog: Mapping[str, Endpoint],
        config: SyncConfig,
        warehouse: WarehouseResource,
        privacy: PersonalData,
        refusal: KeyRefusal | None = None,
    ) -> None:
        self.log = log
        self.api = api
        self.privacy = privacy
        self.form_changes: dict[str, str] = {}
        """What changed in how each table's fields are written since its last load (`form_change`)."""
        self.warehouse = warehouse
        self.file_format = warehouse.loader_file_format()
        self.max_row_drop = warehouse.max_row_drop_share()
        self.catalog = catalog
        self.full_scan, self.refresh = config.of(api.name)
        # One refusal per API per run: a refused key ends the reads of every endpoint of that API.
        self.stats = RequestStats(api.name, refusal=refusal or KeyRefusal())
        self.served = ServedKeys()
        self.odd_values = OddValues()
        """What this run changed to make records storable, per table (`odd_values.py`)."""
        self.replace_nul = warehouse.refuses_nul()
        self.synced_at = datetime.now(UTC)
        """The sync's time: history tables open and close versions at it."""
        self.capabilities = warehouse.capabilities()
        # One source serves every endpoint of the run, so that they share one session, retry rule and pacing.
        self._source = configured_source(
            api,
            self.synced_at,
            privacy,
            self.capabilities,
            full_scan=self.full_scan,
            served_keys=self.served,
            request_stats=self.stats,
            replace_nul=self.replace_nul,
            odd_values=self.odd_values,
        )

    def source(self, load: EndpointLoad) -> DltSource:
        """The endpoint alone, named like its pipeline (its own dlt schema), from the path it is read at."""
        source = self._source
        if load.path != self.catalog[load.resource].path:
            source = configured_source(
                self.api,
                self.synced_at,
                self.privacy,
                self.capabilities,
                full_scan=self.full_scan,
                served_keys=self.served,
                request_stats=self.stats,
                replace_nul=self.replace_nul,
                odd_values=self.odd_values,
                paths={load.resource: load.path},
            )
        return source.with_resources(load.resource).clone(with_name=load.pipeline.pipeline_name)

    def extract(self, load: EndpointLoad) -> None:
        check_switch(load.pipeline, self.api.name, load.resource, self.refresh)
        self.check_form(load)
        load.pipeline.extract(
            self.source(load),
            refresh="drop_resources" if self.refresh else None,
            loader_file_format=self.file_format,
        )

    def check_form(self, load: EndpointLoad) -> None:
        """Note how this run writes the table's fields differently from its last load (a refresh rewrites
        every row: nothing to say); raises `PersonalDataSwitchError` when that touches its key."""
        if self.refresh:
            return
        resource = load.resource
        change = form_change(
            self.api.name,
            resource,
            stored_form(load.pipeline, resource),
            self.privacy.rules(self.api.name, resource),
            self.catalog[resource].primary_key,
        )
        if change:
            self.form_changes[resource] = change

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
        return self.commit(load.pipeline, load.resource)

    def commit(self, pipeline: dlt.Pipeline, resource: str) -> LoadInfo:
        """Normalize and load what was extracted for `resource`; a history table's current view follows.

        normalize() and load() rather than run(): run() would sync with the warehouse again, which on a
        first load (no dataset yet) wipes the package just extracted.
        """
        pipeline.normalize()
        info = pipeline.load()
        info.raise_on_failed_jobs()
        if keeps_history(self.api.name, resource):
            refresh_current_view(pipeline, resource)  # a view binds the columns it was created with
        return info

    def failure(self, load: EndpointLoad) -> str:
        """One line naming the endpoint, the request and the reason, for the run's failure message."""
        assert load.error is not None
        base_url = source_setting(self.api.name, "base_url") or "(unset)"
        message = explain(self.api, load.error, self.stats, self.catalog, base_url)
        if message is None:  # not the API's doing: perhaps the warehouse's (a full disk, a lost connection)
            where, secret = self.warehouse.describe(load.pipeline)
            message = warehouse_failure(load.error, self.warehouse.destination_name(), where, secret)
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
                self.api,
                self.synced_at,
                self.privacy,
                self.capabilities,
                full_scan=True,
                served_keys=repair,
                request_stats=self.stats,
                replace_nul=self.replace_nul,  # what it changes was counted by the read before
            ).with_resources(resource)
            pipeline.extract(
                source.clone(with_name=pipeline.pipeline_name), loader_file_format=self.file_format
            )
            try:
                plan = self.plan(pipeline, resource, repair)
            except SweepRefusedError:
                pipeline.abort_packages()
                raise
            self.commit(pipeline, resource)
            result = apply_sweep(pipeline, plan, self.synced_at)
        return result

    def described(self, metadata: Mapping[str, Any], load: EndpointLoad) -> dict[str, Any]:
        """dlt's materialization metadata with the column descriptions of the endpoint's documented fields
        (a hashed one says so)."""
        result = dict(metadata)
        schema = result.get(COLUMN_SCHEMA)
        if isinstance(schema, TableSchema):
            descriptions = self.privacy.describe(
                self.api.name, load.resource, self.api.columns.get(load.resource, {})
            )
            result[COLUMN_SCHEMA] = with_descriptions(schema, descriptions, pipeline_naming(load.pipeline))
        return result

    def metadata(self, load: EndpointLoad, swept: SweepResult | None) -> dict[str, Any]:
        sync = "refresh" if self.refresh else "full scan" if self.full_scan else "nightly"
        repeats = self.served.repeats(load.resource)  # read by the `primary_key_unique` check
        metadata: dict[str, Any] = {
            "dagster/row_count": MetadataValue.int(row_count(load.pipeline, load.resource)),
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
            metadata.update(self.odd_values_metadata(load.resource))
        return metadata

    def odd_values_metadata(self, resource: str) -> dict[str, Any]:
        """What this run changed in the table's records to store them (`odd_values.py`), said once in the
        log when anything was."""
        counts = self.odd_values.counts(resource)
        summary = self.odd_values.summary(resource)
        if summary:
            self.log.warning(f"{self.api.name}.{summary}")
        return {
            "values_made_storable": MetadataValue.int(sum(counts.values())),
            "values_made_storable_by_kind": MetadataValue.json(counts),
            "fields_renamed": MetadataValue.json(self.odd_values.renamed(resource)),
        }


def _start_reads(
    context: AssetExecutionContext,
    run: _Load,
    resources: list[str],
    warehouse: WarehouseResource,
    first: bool,
    after: Mapping[str, EndpointLoad] | None = None,
) -> EndpointReads:
    """Start reading the endpoints `resources` of the load `run`, each into a pipeline of its own.

    Args:
        first: The op's first reads: the first pipeline is restored before any thread starts.
        after: The endpoint each child is written after (its parent's, read in the same op).
    """
    name = run.api.name
    pipelines = {r: warehouse.pipeline(endpoint_pipeline_name(name, r), name) for r in resources}
    warehouse.check_reachable(next(iter(pipelines.values())))  # down: before any API request
    # Paged lists first: their pipelines are restored first (one at a time), so the longest chains of
    # requests start first (seen: `/people/all` started 1.1 s into a run, behind four one-page endpoints).
    paged_first = sorted(resources, key=lambda r: run.catalog[r].limit_param is None)
    loads = [
        EndpointLoad(r, pipelines[r], run.catalog[r].path, after=(after or {}).get(r)) for r in paged_first
    ]
    return EndpointReads(loads, run.read, lambda: warehouse.lock(context), restore_first_here=first)


_DAGSTER_DLT_METADATA = "dagster_dlt/"


def _specs(api: Api, freshness_policy: FreshnessPolicy | None) -> list[AssetSpec]:
    """The assets of one API, `<api>/<resource>` for every resource of its source, as `@dlt_assets` makes
    them (dagster-dlt's translator protocol)."""
    translator = ApiTranslator(api=api.name, endpoints=api.catalog, freshness_policy=freshness_policy)
    specs = build_dlt_asset_specs(
        dlt_source=api.spec_source(),
        dlt_pipeline=dlt.pipeline(pipeline_name=api.name, dataset_name=api.name),
        dagster_dlt_translator=translator,
    )
    # dagster-dlt keeps its source, pipeline and translator in each spec's metadata for `@dlt_assets`,
    # which the UI shows as "[DltSource] (unserializable)". The load op builds its own per run.
    return [
        spec.replace_attributes(
            metadata={k: v for k, v in spec.metadata.items() if not k.startswith(_DAGSTER_DLT_METADATA)}
        )
        for spec in specs
    ]


def _failure_message(failed: Mapping[str, list[str]], loaded: int, lines: list[str]) -> str:
    # The first line names the failed assets, per API: alerts quote it.
    apis = "; ".join(f"{api} API: {', '.join(assets)} failed" for api, assets in failed.items() if assets)
    return (
        f"{apis}; the other {loaded} endpoint(s) of this op loaded and committed. A failed endpoint keeps"
        f" its table and cursor as they were.\n- " + "\n- ".join(lines)
    )


def build_load_assets(
    apis: Sequence[Api],
    blocking_checks: Mapping[AssetKey, Gate] | None = None,
    freshness_policy: FreshnessPolicy | None = None,
) -> AssetsDefinition:
    """The one load op of every asset of `apis` (`LOAD_OP`), which runs the blocking checks of the parents
    itself (`blocking_checks`, by parent asset); every asset carries `freshness_policy`."""
    gates = dict(blocking_checks or {})
    specs = [spec for api in apis for spec in _specs(api, freshness_policy)]

    @multi_asset(
        name=LOAD_OP,
        specs=specs,
        check_specs=[spec for gate in gates.values() for spec in gate.specs],
        can_subset=True,
        description=(
            "Every selected endpoint of both APIs, read side by side and written each as soon as it is read;"
            " a child only after its parent was written and passed its blocking checks."
        ),
    )
    def _assets(
        context: AssetExecutionContext,
        dlt: DagsterDltResource,
        warehouse: WarehouseResource,
        config: SyncConfig,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        unknown = sorted(set(config.apis) - {api.name for api in apis})
        if unknown:
            raise Failure(
                description=f"Run config `apis` names no API of this code location: {', '.join(unknown)}."
            )
        try:  # before any request: a field meant to stay out must not load because of a typo
            privacy = personal_data()
        except PersonalDataSettingError as error:
            raise Failure(description=str(error)) from None
        selected = {
            api.name: [r for r in api.catalog if AssetKey([api.name, r]) in context.selected_asset_keys]
            for api in apis
        }
        loading = [api for api in apis if selected[api.name]]
        failed: dict[str, list[str]] = {api.name: [] for api in loading}
        lines: list[str] = []
        loaded = 0
        runs: list[_Load] = []
        form_changes: dict[str, list[str]] = {}  # by API: tables written differently from this run on
        with ExitStack() as stack:
            # The lock order of `locks.py`: the API locks in the order of `APIS` (audience, then feedback),
            # each waited for within the bound, then the warehouse's.
            for api in loading:
                stack.enter_context(warehouse.api_lock(api.name, context))
            stack.enter_context(warehouse.lock(context))
            groups: list[tuple[EndpointReads, _Load]] = []
            for api in loading:
                names = selected[api.name]
                try:
                    run = _Load(context.log, api, api.catalog, config, warehouse, privacy)
                    # A child's read reads its parent's list again (dlt's transformer): its served keys are
                    # its own, or the parent's would count every key twice and the child's sweep would
                    # prove nothing. One key refusal per API still.
                    children = [r for r in names if api.catalog[r].parent]
                    child_run = (
                        _Load(context.log, api, api.catalog, config, warehouse, privacy, run.stats.refusal)
                        if children
                        else None
                    )
                except Failure as error:  # the API is not configured: only its own endpoints fail
                    failed[api.name].extend(f"{api.name}/{r}" for r in names)
                    lines.append(f"{api.name} API: {error.description}")
                    continue
                top = [r for r in names if r not in children]
                if top:
                    groups.append((_start_reads(context, run, top, warehouse, first=not groups), run))
                    runs.append(run)
                if child_run is not None:
                    parents = {load.resource: load for load in groups[-1][0].loads} if top else {}
                    after = {r: p for r in children if (p := parents.get(api.catalog[r].parent or ""))}
                    reads = _start_reads(
                        context, child_run, children, warehouse, first=not groups, after=after
                    )
                    groups.append((reads, child_run))
                    runs.append(child_run)
            owner = {id(load): run for reads, run in groups for load in reads.loads}
            for endpoint in write_in_turn([(reads, run.write) for reads, run in groups]):
                run = owner[id(endpoint)]
                key = AssetKey([run.api.name, endpoint.resource])
                for note in endpoint.notes:
                    context.log.info(note)
                if endpoint.error is not None:
                    failed[run.api.name].append(key.to_user_string())
                    if isinstance(endpoint.error, HeldBackError):
                        context.log.info(
                            f"Dropped what was read for {key.to_user_string()}: nothing of it loads."
                        )
                        lines.append(
                            f"{key.to_user_string()}: Not loading {endpoint.resource}: {endpoint.error}"
                        )
                    else:
                        lines.append(run.failure(endpoint))
                    continue
                # The sweep and the row count open the warehouse while other endpoints' threads may still
                # restore their pipelines: one thread at a time.
                with WAREHOUSE_TURN:
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
                loaded += 1
                if endpoint.resource in run.form_changes:
                    form_changes.setdefault(run.api.name, []).append(run.form_changes[endpoint.resource])
                yield MaterializeResult(asset_key=key, metadata=metadata)
                gate = gates.get(key)
                if gate is None:
                    continue
                # Its blocking checks, now: its children are written after them, or not at all.
                with WAREHOUSE_TURN:
                    results = list(gate.evaluate(context, warehouse, endpoint.pipeline))
                yield from results
                blocked = sorted(
                    str(r.check_name)
                    for r in results
                    if not r.passed and r.severity == AssetCheckSeverity.ERROR
                )
                if blocked:
                    endpoint.holds_back = (
                        f"{key.to_user_string()} failed its blocking checks ({', '.join(blocked)}) in this"
                        " run, and its rows would feed them."
                    )
                    for child in runs:
                        if child.api is run.api and child is not run:
                            child.stats.stop()  # a child's long list ends at its next request
        if form_changes:  # once per run, for every table loaded in the new form
            context.log.warning(change_warning(form_changes))
        if any(failed.values()):
            raise Failure(
                description=_failure_message(failed, loaded, lines),
                metadata={
                    "failed_assets": [a for assets in failed.values() for a in assets],
                    "requests": sum(sum(run.stats.requests.values()) for run in runs),
                    "retries": sum(sum(run.stats.retries.values()) for run in runs),
                },
            )

    return _assets


__all__ = ["LOAD_OP", "Gate", "SyncConfig", "build_load_assets", "configured_source"]
