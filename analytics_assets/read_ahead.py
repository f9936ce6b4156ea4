"""Reads ahead: the first load step of a run starts reading the endpoints of the run's later load steps.

The steps of a run execute one after another in the run's process (`definitions.py`), so the feedback
API's load used to wait for the audience load, and a child's (`segment_people`) for its parent's load
and checks: a sync took the sum of its reads. Reading is not writing, though. A read extracts into the
local load package of its endpoint's pipeline, and nothing of it reaches the warehouse until the step it
was read for writes it, in that step's turn, after whatever the step waits for (a child's parent's
blocking checks). So the first load step starts every later load step's reads at once; each later step
takes its reads (`take`) and writes them. A step that does not use its reads (its parent's checks
failed, it was skipped, the run ended first) drops them (`ReadAhead.discard`, `discard_run`): nothing
extracted is ever loaded later, and a failed or killed run leaves only local files that the next run
drops when it restores its pipelines.

Locks (the order in `locks.py`): reads ahead hold their API's lock for the run from their start until
the step they were read for holds it itself (`locks.hold_for_run`); they only try it: when another run
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

from analytics_assets.endpoints_load import EndpointReads
from analytics_assets.locks import Release


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


_RUNS: dict[str, dict[str, ReadAhead]] = {}
"""Run id -> step -> its reads ahead, for the runs whose first load step started in this process."""
_GUARD = threading.Lock()


def first_load_step(run_id: str) -> bool:
    """True once per run: for the first of its load steps, which starts the reads of the others."""
    with _GUARD:
        if run_id in _RUNS:
            return False
        _RUNS[run_id] = {}
        return True


def put(run_id: str, ahead: ReadAhead) -> None:
    with _GUARD:
        _RUNS.setdefault(run_id, {})[ahead.step] = ahead


def take(run_id: str, step: str) -> ReadAhead | None:
    """The reads started ahead for `step` of this run, if any (once)."""
    with _GUARD:
        return _RUNS.get(run_id, {}).pop(step, None)


def discard_run(run_id: str) -> None:
    """At the end of a run: drop the reads no step took, and forget the run."""
    with _GUARD:
        left = list(_RUNS.pop(run_id, {}).values())
    for ahead in left:
        ahead.discard()
