"""Loading each endpoint of an API on its own: one failing endpoint never holds back the others.

Every endpoint has a dlt pipeline of its own (`<api>_<resource>`), so its cursor, schema and load
package are its own: a failed endpoint commits nothing, and its table and cursor stay as they were.
All endpoints of the load op are read side by side (`EndpointReads`, one per `assets._Load`: a thread
each, sharing the source's session, retry rule and pacing); each endpoint read whole is normalized and
loaded as soon as it is, one at a time, as the embedded warehouse takes one writer at a time
(`write_in_turn`). A child (`segment_people`) is read from the start too, but written only after its
parent was written and let through by its blocking checks: reading only extracts into the pipeline's
local load package, which is dropped when the parent holds it back.

Plain dlt, no Dagster import: the op in `assets.py` reports on what this returns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import dlt
from dlt.common.pipeline import LoadInfo

from analytics_assets.reading.sweep import SweepPlan


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
    sweep_plan: SweepPlan | None = None
    """What the sweep after the write deletes (`sweep.plan_sweep`), made before the write."""
    notes: list[str] = field(default_factory=list)
    """What its read has to tell the step's log (e.g. the path it was read at instead of the seed's)."""
    after: EndpointLoad | None = None
    """The endpoint read in the same op that this one is written after (a child's parent): see
    `write_in_turn`."""
    holds_back: str | None = None
    """Set by the op on a written parent whose blocking checks failed: why its children are not written."""


class HeldBackError(Exception):
    """A child not written: its parent failed, or its blocking checks held its children back."""


WAREHOUSE_TURN = threading.Lock()
"""One thread of the process at a time opens the warehouse: DuckDB, asked by two threads at once to open
one file, can refuse the second ("Unique file handle conflict: ... already attached"; seen under load
in the reading threads' `sync_destination`). The API requests stay side by side."""


Hold = Callable[[], AbstractContextManager[object]]
"""Holds the warehouse's one-writer lock for a block (`WarehouseResource.lock`, bounded)."""


def fresh_pipeline(pipeline: dlt.Pipeline, hold: Hold) -> dlt.Pipeline:
    """The pipeline with its local state dropped and restored from the warehouse, under `hold`.

    Local state can only be stale (another machine loaded since) or hold a failed run's package; the
    warehouse holds the truth (dagster-dlt's own runs assume the same).
    """
    pipeline.drop()
    with hold(), WAREHOUSE_TURN:
        pipeline.sync_destination()
    return pipeline


class EndpointReads:
    """Endpoints of the op, each read in a thread of its own from the moment this is made; `write_in_turn`
    then writes each one read whole as soon as it is, one at a time.

    Each endpoint's pipeline is restored from the warehouse before it is read, in its reading thread,
    one thread at a time (`WAREHOUSE_TURN`), side by side with the reads already going; the first in the
    calling thread when `restore_first_here` (see below). Reading never opens the warehouse.

    Args:
        loads: The endpoints of the op.
        read: Extracts one endpoint into a load package of its pipeline; raises when it cannot be read,
            or sets `unavailable`.
        hold: Holds the warehouse's lock around each restore: the op holds it already (and this joins
            its hold, `locks.RunHolds`).
        restore_first_here: Restore the first pipeline before any thread starts (the first reads of a
            process); the op's later groups of reads need not wait for it.
    """

    def __init__(
        self,
        loads: Sequence[EndpointLoad],
        read: Callable[[EndpointLoad], None],
        hold: Hold,
        restore_first_here: bool = True,
    ) -> None:
        self.loads = list(loads)
        self._restored = [threading.Event() for _ in self.loads]
        # dlt imports modules on first use (pyarrow, the destination's client), and threads importing a
        # module at once can see it half-initialized: the first pipeline is restored here, before any
        # thread starts.
        import dlt.common.libs.pyarrow  # noqa: F401

        if self.loads and restore_first_here:
            try:
                fresh_pipeline(self.loads[0].pipeline, hold)
            except Exception as error:
                self.loads[0].error = error
            self._restored[0].set()

        def _read(load: EndpointLoad, restored: threading.Event) -> EndpointLoad:
            load.pipeline.activate()  # dlt's contexts are per thread: this thread works for this pipeline
            try:  # errors are kept for the report; the other endpoints go on
                if load.error is None and not restored.is_set():
                    fresh_pipeline(load.pipeline, hold)
            except Exception as error:
                load.error = error
            finally:
                restored.set()  # reading never opens the warehouse
            if load.error is None:
                try:
                    read(load)
                except Exception as error:
                    load.error = error
            return load

        pool = ThreadPoolExecutor(max_workers=max(len(self.loads), 1), thread_name_prefix="endpoint")
        # Each endpoint's read, in the order of `loads`: done once it was read (or failed).
        self.futures = [
            pool.submit(_read, load, restored)
            for load, restored in zip(self.loads, self._restored, strict=True)
        ]
        pool.shutdown(wait=False)  # the threads end with their reads


def _write_one(load: EndpointLoad, write: Callable[[EndpointLoad], LoadInfo]) -> None:
    if load.error is None and load.unavailable is None:
        load.pipeline.activate()
        try:
            with WAREHOUSE_TURN:
                load.info = write(load)
            return
        except Exception as error:
            load.error = error
    _abort(load)  # a half-read list is never loaded later


def _abort(load: EndpointLoad) -> None:
    # Aborting a package that was normalized already loads its abort (it opens the warehouse): one
    # thread at a time, and never at the cost of the endpoints still to write.
    load.pipeline.activate()
    try:
        with WAREHOUSE_TURN:
            load.pipeline.abort_packages()
    except Exception as error:
        load.error = load.error or error


Writer = Callable[[EndpointLoad], LoadInfo]


def write_in_turn(groups: Sequence[tuple[EndpointReads, Writer]]) -> Iterator[EndpointLoad]:
    """Write the endpoints of several groups of reads, each as soon as it is read whole, one at a time in
    the calling thread, and yield each once it was written or failed.

    An endpoint with `after` (a child) is written only once that one (its parent) was yielded, and only
    if it was written and the caller did not set its `holds_back` before asking for the next endpoint (the
    op evaluates the parent's blocking checks there); else the child's read is dropped (nothing of it is
    ever loaded) and it fails with a `HeldBackError`.

    Args:
        groups: Each group of reads with the write of its endpoints (`assets._Load.write`).
    """
    pending: dict[Future[EndpointLoad], Writer] = {}
    for reads, write in groups:
        for future in reads.futures:
            pending[future] = write
    ready: deque[tuple[EndpointLoad, Writer]] = deque()
    waiting: dict[int, list[tuple[EndpointLoad, Writer]]] = {}  # id(parent) -> its children read already
    yielded: set[int] = set()
    while pending or ready:
        if not ready:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in finished:
                load, write = future.result(), pending.pop(future)
                if load.after is not None and id(load.after) not in yielded:
                    waiting.setdefault(id(load.after), []).append((load, write))
                else:
                    ready.append((load, write))
            continue
        load, write = ready.popleft()
        parent = load.after
        if parent is not None and load.error is None:
            if parent.error is not None:
                load.error = HeldBackError(f"its parent {parent.resource} was not loaded in this run")
            elif parent.holds_back is not None:
                load.error = HeldBackError(parent.holds_back)
        _write_one(load, write)
        yielded.add(id(load))
        yield load
        ready.extend(waiting.pop(id(load), []))
    for children in waiting.values():  # a parent that was never read (it failed before its read started)
        for load, _ in children:
            load.error = load.error or HeldBackError("its parent was not read in this run")
            _abort(load)
            yield load
