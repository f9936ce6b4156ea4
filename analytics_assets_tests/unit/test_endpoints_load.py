"""The load engine on its own (`endpoints_load.py`, `read_ahead.py`) with fake pipelines: no dlt run, no
Dagster, no server. Each endpoint is read in a thread of its own and written, one at a time, as soon as
it is read whole; the warehouse's lock is held only around restores; a read nobody takes is dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from analytics_assets.loading.endpoints_load import EndpointLoad, EndpointReads
from analytics_assets.loading.read_ahead import ReadAhead, RunReads

WAIT = 10.0
"""Bound on every wait of these tests: a hang fails them instead of hanging the suite."""


@dataclass
class FakePipeline:
    """What the engine asks of a dlt pipeline, recorded."""

    name: str
    calls: list[str] = field(default_factory=list)

    def drop(self) -> None:
        self.calls.append("drop")

    def sync_destination(self) -> None:
        self.calls.append("restore")

    def activate(self) -> None:
        pass

    def abort_packages(self) -> None:
        self.calls.append("abort")


@dataclass
class Warehouse:
    """The warehouse lock's holds, and whether any read ran while it was held."""

    held: int = 0
    holds: int = 0
    read_while_held: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.guard:
            self.held += 1
            self.holds += 1
        try:
            yield
        finally:
            with self.guard:
                self.held -= 1


class Reads:
    """A `read` callable whose reads end when the test says so (`finish`), or fail."""

    def __init__(self, warehouse: Warehouse, fail: frozenset[str] = frozenset()) -> None:
        self.warehouse = warehouse
        self.fail = fail
        self.may_end = {name: threading.Event() for name in ("a", "b", "c")}
        self.started = {name: threading.Event() for name in ("a", "b", "c")}

    def __call__(self, load: EndpointLoad) -> None:
        self.started[load.resource].set()
        if self.warehouse.held:
            self.warehouse.read_while_held = True
        assert self.may_end[load.resource].wait(WAIT), f"{load.resource} was never let end"
        if load.resource in self.fail:
            raise RuntimeError(f"{load.resource} answered 500")

    def finish(self, *names: str) -> None:
        for name in names:
            self.may_end[name].set()


def loads(*names: str) -> list[EndpointLoad]:
    return [EndpointLoad(name, FakePipeline(name), f"/{name}") for name in names]  # type: ignore[arg-type]


def test_each_endpoint_is_written_as_soon_as_it_is_read_one_at_a_time() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    engine = EndpointReads(loads("a", "b", "c"), reads, warehouse.hold)
    for name in "abc":
        assert reads.started[name].wait(WAIT)  # all three read side by side
    written: list[str] = []
    writing = threading.Lock()

    def write(load: EndpointLoad) -> Any:
        assert writing.acquire(blocking=False), "two writes at once"
        try:
            written.append(load.resource)
            if load.resource == "b":
                reads.finish("a")  # read while b is written: written next
            return f"info {load.resource}"
        finally:
            writing.release()

    reads.finish("b")  # b ends first, so it is written first
    threading.Timer(0.2, reads.finish, ("c",)).start()
    done = engine.write_each(write)
    assert written[0] == "b" and sorted(written) == ["a", "b", "c"]
    assert [load.info for load in done] == ["info a", "info b", "info c"]
    assert all(load.error is None for load in done)


def test_the_warehouse_lock_is_held_around_restores_and_never_while_reading() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    engine = EndpointReads(loads("a", "b", "c"), reads, warehouse.hold, restore_first_here=False)
    engine.wait_restored()
    reads.finish("a", "b", "c")
    engine.write_each(lambda load: None)  # type: ignore[arg-type,return-value]
    assert warehouse.holds == 3  # one hold per restore
    assert not warehouse.read_while_held
    for load in engine.loads:
        assert load.pipeline.calls[:2] == ["drop", "restore"]  # type: ignore[attr-defined]


def test_a_failed_read_is_aborted_and_never_holds_back_the_others() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse, fail=frozenset({"b"}))
    engine = EndpointReads(loads("a", "b", "c"), reads, warehouse.hold)
    reads.finish("a", "b", "c")
    done = {load.resource: load for load in engine.write_each(lambda load: "written")}  # type: ignore[arg-type,return-value]
    assert str(done["b"].error) == "b answered 500" and done["b"].info is None
    assert done["b"].pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]
    assert done["a"].info == done["c"].info == "written"
    assert "abort" not in done["a"].pipeline.calls  # type: ignore[attr-defined]


def test_a_failed_write_is_aborted_and_the_next_endpoint_is_written() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    engine = EndpointReads(loads("a", "b"), reads, warehouse.hold)
    reads.finish("a", "b")

    def write(load: EndpointLoad) -> Any:
        if load.resource == "a":
            raise RuntimeError("the sweep refused")
        return "written"

    done = {load.resource: load for load in engine.write_each(write)}
    assert str(done["a"].error) == "the sweep refused"
    assert done["a"].pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]
    assert done["b"].info == "written"


def test_a_read_nobody_takes_is_dropped_and_nothing_of_it_is_written() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    engine = EndpointReads(loads("a", "b"), reads, warehouse.hold)
    reads.finish("a", "b")
    engine.discard()
    for load in engine.loads:
        assert load.info is None
        assert load.pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]


@dataclass
class FakeStats:
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


def test_a_runs_reads_ahead_are_taken_once_and_the_rest_dropped_when_the_run_ends() -> None:
    warehouse = Warehouse()
    run_reads = RunReads()
    assert run_reads.first_load_step() and not run_reads.first_load_step()  # one first step per run
    released: list[str] = []
    aheads = {}
    for step in ("feedback", "audience_segment_people"):
        reads = Reads(warehouse)
        reads.finish("a")
        load = type("Load", (), {"stats": FakeStats()})()
        aheads[step] = ReadAhead(
            step, load, EndpointReads(loads("a"), reads, warehouse.hold), [lambda s=step: released.append(s)]
        )
        run_reads.put(aheads[step])
    assert run_reads.take("feedback") is aheads["feedback"]
    assert run_reads.take("feedback") is None  # once
    run_reads.discard_all()  # the run ended: its child step never ran (its parent failed)
    dropped = aheads["audience_segment_people"]
    assert dropped.load.stats.stopped
    assert dropped.reads.loads[0].pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]
    assert released == ["audience_segment_people"]  # the lock held for it is let go
    assert aheads["feedback"].reads.loads[0].info is None  # the taken one is its step's to write
    run_reads.discard_all()
    assert released == ["audience_segment_people"]  # nothing twice


def test_a_read_ahead_lets_go_of_its_locks_even_when_dropping_it_fails() -> None:
    released: list[bool] = []

    class Broken:
        def discard(self) -> None:
            raise OSError("disk full")

    load = type("Load", (), {"stats": FakeStats()})()
    ahead = ReadAhead("feedback", load, Broken(), [lambda: released.append(True)])  # type: ignore[arg-type]
    with pytest.raises(OSError):
        ahead.discard()
    assert released == [True]
