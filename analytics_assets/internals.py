"""The few places the project relies on how dlt and Dagster work inside, where they offer no public way.

Each hook says what it relies on and why nothing public does the job; each has a contract test in
`analytics_assets_tests/unit/test_internals.py`, on small real objects, that fails within seconds
when an upgrade changes what the hook relies on. Everything else uses public APIs only: a new reach
into a library belongs here, with its test.

No Dagster import at run time: the reading layer (`rest.py`, `transport.py`) is plain dlt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlt.sources import DltResource
from dlt.sources.helpers.requests import Client
from tenacity import Retrying

if TYPE_CHECKING:
    from dagster import AssetKey, DagsterEvent


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
