"""Loading each endpoint of an API on its own: one failing endpoint never holds back the others.

Every endpoint has a dlt pipeline of its own (`<api>_<resource>`), so its cursor, schema and load
package are its own: a failed endpoint commits nothing, and its table and cursor stay as they were.
All endpoints of an op are read side by side (a thread each, sharing the source's session, retry rule
and pacing); each endpoint read whole is normalized and loaded as soon as it is, one at a time, as the
embedded warehouse takes one writer at a time.

Plain dlt, no Dagster import: the op in `assets.py` reports on what this returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import dlt
from dlt.common.pipeline import LoadInfo


@dataclass
class EndpointLoad:
    """One endpoint's load within a run: its pipeline, the path that served it, and how it ended."""

    resource: str
    pipeline: dlt.Pipeline
    path: str
    """The API path read (a successor path where the server no longer has the seed's)."""
    info: LoadInfo | None = None
    error: BaseException | None = None
    unavailable: str | None = None
    """Why the API's plan does not offer this endpoint: not a failure, and nothing changed."""


_WAREHOUSE_TURN = threading.Lock()
"""One thread of the process at a time opens the warehouse: DuckDB, asked by two threads at once to open
one file, can refuse the second ("Unique file handle conflict: ... already attached"; seen under load
in the reading threads' `sync_destination`). The API requests stay side by side."""


def fresh_pipeline(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """The pipeline with its local state dropped and restored from the warehouse.

    Local state can only be stale (another machine loaded since) or hold a failed run's package; the
    warehouse holds the truth (dagster-dlt's own runs assume the same).
    """
    pipeline.drop()
    with _WAREHOUSE_TURN:
        pipeline.sync_destination()
    return pipeline


def load_side_by_side(
    loads: Sequence[EndpointLoad],
    read: Callable[[EndpointLoad], None],
    write: Callable[[EndpointLoad], LoadInfo],
) -> None:
    """Read every endpoint at once; write each one read whole as soon as it is, one at a time.

    Each endpoint's pipeline is restored from the warehouse in its reading thread and each write runs in
    the calling thread while the other endpoints are still being read: a short list is in the warehouse
    while a long one still pages, and no fixed cost of a pipeline adds up behind another.

    Args:
        loads: The endpoints of this op.
        read: Extracts one endpoint into a load package of its pipeline; raises when it cannot be read,
            or sets `unavailable`.
        write: Normalizes and loads one extracted endpoint.
    """

    def _read(load: EndpointLoad) -> EndpointLoad:
        load.pipeline.activate()  # dlt's contexts are per thread: this thread works for this pipeline
        try:
            if load.error is not None:
                return load
            if load is not loads[0]:
                fresh_pipeline(load.pipeline)
            read(load)
        except Exception as error:  # kept for the report; the other endpoints go on
            load.error = error
        return load

    # dlt imports modules on first use (pyarrow, the destination's client), and threads importing a module
    # at once can see it half-initialized: the first pipeline is restored here, before any thread starts.
    import dlt.common.libs.pyarrow  # noqa: F401

    if loads:
        try:
            fresh_pipeline(loads[0].pipeline)
        except Exception as error:
            loads[0].error = error

    with ThreadPoolExecutor(max_workers=max(len(loads), 1), thread_name_prefix="endpoint") as pool:
        for done in as_completed([pool.submit(_read, load) for load in loads]):
            load = done.result()
            if load.error is None and load.unavailable is None:
                load.pipeline.activate()
                try:
                    with _WAREHOUSE_TURN:
                        load.info = write(load)
                    continue
                except Exception as error:
                    load.error = error
            load.pipeline.drop_pending_packages()  # a half-read list is never loaded later
