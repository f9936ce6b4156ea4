"""Loading each endpoint of an API on its own: one failing endpoint never holds back the others.

Every endpoint has a dlt pipeline of its own (`<api>_<resource>`), so its cursor, schema and load
package are its own: a failed endpoint commits nothing, and its table and cursor stay as they were.
All endpoints of an op are read side by side (`EndpointReads`: a thread each, sharing the source's
session, retry rule and pacing); each endpoint read whole is normalized and loaded as soon as it is, one
at a time, as the embedded warehouse takes one writer at a time. The reads of a later step can start in
an earlier one (`read_ahead.py`): reading only extracts into the pipeline's local load package.

Plain dlt, no Dagster import: the op in `assets.py` reports on what this returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
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
    """The endpoints of one op, each read in a thread of its own from the moment this is made; `write_each`
    then writes each one read whole as soon as it is, one at a time.

    Each endpoint's pipeline is restored from the warehouse before it is read, in its reading thread,
    one thread at a time (`WAREHOUSE_TURN`), side by side with the reads already going; the first in the
    calling thread when `restore_first_here` (see below). `wait_restored` tells when none of them will
    open the warehouse again: reading never does.

    Args:
        loads: The endpoints of the op.
        read: Extracts one endpoint into a load package of its pipeline; raises when it cannot be read,
            or sets `unavailable`.
        hold: Holds the warehouse's lock around each restore: the step holds it already (and this joins
            its hold); a read started ahead for a later step holds it only while it restores, never from
            one step to the next (the lock order in `locks.py`).
        restore_first_here: Restore the first pipeline before any thread starts (the first reads of a
            process); reads started ahead, later, need not wait for it.
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
        self._reads = [
            pool.submit(_read, load, restored)
            for load, restored in zip(self.loads, self._restored, strict=True)
        ]
        pool.shutdown(wait=False)  # the threads end with their reads

    def wait_restored(self) -> None:
        """Return once every pipeline was restored (or failed to be): from then on, only writes open the
        warehouse."""
        for restored in self._restored:
            restored.wait()

    def write_each(self, write: Callable[[EndpointLoad], LoadInfo]) -> list[EndpointLoad]:
        """Write every endpoint read whole, each as soon as it is, in the calling thread, one at a time.

        Args:
            write: Normalizes and loads one extracted endpoint.
        """
        for done in as_completed(self._reads):
            load = done.result()
            if load.error is None and load.unavailable is None:
                load.pipeline.activate()
                try:
                    with WAREHOUSE_TURN:
                        load.info = write(load)
                    continue
                except Exception as error:
                    load.error = error
            self._abort(load)  # a half-read list is never loaded later
        return self.loads

    @staticmethod
    def _abort(load: EndpointLoad) -> None:
        # Aborting a package that was normalized already loads its abort (it opens the warehouse): one
        # thread at a time, and never at the cost of the endpoints still to write.
        try:
            with WAREHOUSE_TURN:
                load.pipeline.abort_packages()
        except Exception as error:
            load.error = load.error or error

    def discard(self) -> None:
        """Wait for the reads to end and drop what they extracted: nothing of it is ever loaded."""
        for done in as_completed(self._reads):
            load = done.result()
            load.pipeline.activate()
            self._abort(load)
