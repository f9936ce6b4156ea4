"""The few places the project relies on how dlt and Dagster work inside, where they offer no public way.

Each hook says what it relies on and why nothing public does the job; each has a contract test in
`analytics_assets_tests/unit/test_internals.py`, on small real objects, that fails within seconds
when an upgrade changes what the hook relies on. Everything else uses public APIs only: a new reach
into a library belongs here, with its test.

No Dagster import at run time: the reading layer (`rest.py`, `transport.py`) is plain dlt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from dlt.sources import DltResource
from dlt.sources.helpers.requests import Client
from tenacity import Retrying

if TYPE_CHECKING:
    from dagster import AssetKey, DagsterEvent, DagsterInstance


def replace_generator(resource: DltResource, wrap: Callable[[Any], Any]) -> None:
    """Replace a built resource's data generator (the first step of its pipe) by `wrap(generator)`.

    Relies on `DltResource._pipe` (the resource's `Pipe`), its `gen` (the generating step: a generator
    function, or a generator once bound) and `Pipe.replace_gen`: what dlt's own public
    `DltResource.parallelize()` does to wrap the generator.

    No public route: `rest_api_resources` builds the generator of each endpoint itself, and a resource's
    public steps (`add_step`, `add_map`, `add_yield_map`, `add_filter`) see one item at a time with no
    call at the end of the data, so none can join items (`arrow_pages.batched_pages` joins pages, and
    must hand over its last, partial batch when the pages end).
    """
    pipe = resource._pipe
    pipe.replace_gen(wrap(pipe.gen))


def client_retrying(client: Client) -> Retrying:
    """The retry dlt's `Client` puts around the `send` of the sessions it makes: the statuses, exceptions,
    attempts, backoff and `Retry-After` handling given to `Client(...)`.

    Relies on `Client.session` wrapping the session's `send` with tenacity's `Retrying.wraps`, which
    leaves the `Retrying` on the wrapper as `retry` (tenacity's public attribute of a wrapped function).

    No public route: `Client` takes no session of its own to wrap (it makes dlt's `Session` itself), and
    dlt builds the `Retrying` in a private function. Taking it from a `Client` keeps dlt's retry rule
    (which exceptions count, waiting on `Retry-After`, handing back the last response once the attempts
    run out) instead of writing it again.
    """
    retrying = getattr(client.session.send, "retry", None)
    if not isinstance(retrying, Retrying):
        raise TypeError(
            f"dlt's Client no longer wraps its session's send with a tenacity Retrying ({client.session.send!r})"
        )
    return retrying


def planned_check_asset_key(event: DagsterEvent) -> AssetKey | None:
    """The asset an `ASSET_CHECK_EVALUATION_PLANNED` event plans to check.

    Relies on `DagsterEvent.asset_check_planned_data` (an `AssetCheckEvaluationPlanned`, with its
    `asset_key`): the property Dagster's own run storage reads the planned check from.

    No public route: the public `DagsterEvent.asset_key` (and `EventLogRecord.asset_key`) answers
    materializations and their planned events, and None for a planned check; a run that checks without
    materializing (a checks-only job) may carry no `asset_check_selection`, so the planned events are
    all that names its assets.
    """
    return event.asset_check_planned_data.asset_key


class FreshnessState(NamedTuple):
    """An asset's freshness as `dagster-daemon` last judged it: `state` is `PASS`, `WARN`, `FAIL`, `UNKNOWN`
    (never materialized) or `NOT_APPLICABLE` (no policy); `since` is when it took that state (a Unix
    timestamp)."""

    state: str
    since: float


def freshness_states(instance: DagsterInstance, keys: Iterable[AssetKey]) -> dict[AssetKey, FreshnessState]:
    """The freshness state the daemon last recorded for each of `keys` (an asset it has not judged yet is
    missing).

    Relies on `DagsterInstance.get_freshness_state_records` (what the daemon and the UI's asset health
    read: one `FreshnessStateRecord` per asset, with `freshness_state` and `updated_at`), on SQLite and
    PostgreSQL storage alike.

    No public route: the daemon records each change as a `FRESHNESS_STATE_CHANGE` event without a run,
    which no public query of the instance returns (`fetch_materializations` and the like take other
    event types; `get_event_records` is deprecated), and Dagster's OSS alerting has no freshness
    trigger.
    """
    records = instance.get_freshness_state_records(list(keys))
    return {
        key: FreshnessState(str(record.freshness_state.value), record.updated_at.timestamp())
        for key, record in records.items()
    }
