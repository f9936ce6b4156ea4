"""Reads ahead: the first load step of a run starts reading the endpoints of the run's later load steps.

The steps of a run execute one after another in the run's process (`definitions.py`), so the feedback
API's load used to wait for the audience load, and a child's (`segment_people`) for its parent's load
and checks: a sync took the sum of its reads. Reading is not writing, though. A read extracts into the
local load package of its endpoint's pipeline, and nothing of it reaches the warehouse until the step it
was read for writes it, in that step's turn, after whatever the step waits for (a child's parent's
blocking checks). So the first load step starts every later load step's reads at once; each later step
takes its reads (`take`) and writes them. A step that does not use its reads (its parent's checks
failed, it was skipped, the run ended first) drops them (`ReadAhead.discard`, `RunReads.discard_all`): nothing
extracted is ever loaded later, and a failed or killed run leaves only local files that the next run
drops when it restores its pipelines.

Locks (the order in `locks.py`): reads ahead hold their API's lock for the run from their start until
the step they were read for holds it itself (`locks.RunHolds`); they only try it: when another run
holds it, that step reads when it runs, as before. They hold the warehouse's lock only while they restore
their pipelines, never from one step to the next: a read that no step takes (its parent failed) keeps
no other run from writing.

Plain Python: `assets.py` decides what to read ahead and for which step.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analytics_assets.loading.endpoints_load import EndpointReads
from analytics_assets.loading.locks import Release


@dataclass
class ReadAhead:
    """The reads started for one later step of a run, and the API lock they hold for it."""

    step: str
    load: Any
    """The step's own state of the load (`assets._Load`): its source, request stats (`stats`), served keys."""
    reads: EndpointReads
    releases: Sequence[Release] = field(default_factory=list)

    def release(self) -> None:
        """Let go of the locks held for the step (it holds its own by then)."""
        for release in self.releases:
            release()

    def discard(self) -> None:
        """Stop the reads at their next request, drop what they extracted, let go of the locks."""
        try:
            self.load.stats.stop()  # a long list (a reconciliation of responses, paced) ends now
            self.reads.discard()
        finally:
            self.release()


class RunReads:
    """The reads started ahead in one run, by the step they were read for.

    One object per run, living as long as the run: the warehouse resource's (`WarehouseResource`, copied
    by Dagster for each run; its teardown calls `discard_all`), never a module-level registry.
    """

    def __init__(self) -> None:
        self._started = False
        self._ahead: dict[str, ReadAhead] = {}
        self._guard = threading.Lock()

    def first_load_step(self) -> bool:
        """True once per run: for the first of its load steps, which starts the reads of the others."""
        with self._guard:
            first, self._started = not self._started, True
            return first

    def put(self, ahead: ReadAhead) -> None:
        with self._guard:
            self._ahead[ahead.step] = ahead

    def take(self, step: str) -> ReadAhead | None:
        """The reads started ahead for `step` of this run, if any (once)."""
        with self._guard:
            return self._ahead.pop(step, None)

    def discard_all(self) -> None:
        """At the end of the run: drop the reads no step took."""
        with self._guard:
            left, self._ahead = list(self._ahead.values()), {}
        for ahead in left:
            ahead.discard()
