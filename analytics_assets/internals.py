"""The few places the project relies on how dlt and Dagster work inside, where they offer no public way.

Each hook says what it relies on and why nothing public does the job; each has a contract test in
`analytics_assets_tests/unit/test_internals.py`, on small real objects, that fails within seconds
when an upgrade changes what the hook relies on. Everything else uses public APIs only: a new reach
into a library belongs here, with its test.

No Dagster import at run time: the reading layer (`rest.py`, `transport.py`) is plain dlt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlt.sources import DltResource


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
