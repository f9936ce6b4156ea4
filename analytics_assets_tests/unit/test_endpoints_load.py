"""The load engine on its own (`endpoints_load.py`) with fake pipelines: no dlt run, no Dagster, no
server. Each endpoint is read in a thread of its own and written, one at a time, as soon as it is read
whole; the warehouse's lock is held only around restores; a child is written only after its parent and
its parent's checks, and a held-back child's read is dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from analytics_assets.loading.endpoints_load import EndpointLoad, EndpointReads, HeldBackError, write_in_turn

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
    list(write_in_turn([(engine, write)]))
    done = engine.loads
    assert written[0] == "b" and sorted(written) == ["a", "b", "c"]
    assert [load.info for load in done] == ["info a", "info b", "info c"]
    assert all(load.error is None for load in done)


def test_the_warehouse_lock_is_held_around_restores_and_never_while_reading() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    engine = EndpointReads(loads("a", "b", "c"), reads, warehouse.hold, restore_first_here=False)
    reads.finish("a", "b", "c")
    list(write_in_turn([(engine, lambda load: None)]))  # type: ignore[arg-type,return-value,list-item]
    assert warehouse.holds == 3  # one hold per restore
    assert not warehouse.read_while_held
    for load in engine.loads:
        assert load.pipeline.calls[:2] == ["drop", "restore"]  # type: ignore[attr-defined]


def test_a_failed_read_is_aborted_and_never_holds_back_the_others() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse, fail=frozenset({"b"}))
    engine = EndpointReads(loads("a", "b", "c"), reads, warehouse.hold)
    reads.finish("a", "b", "c")
    done = {load.resource: load for load in write_in_turn([(engine, lambda load: "written")])}  # type: ignore[arg-type,return-value,list-item]
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

    done = {load.resource: load for load in write_in_turn([(engine, write)])}
    assert str(done["a"].error) == "the sweep refused"
    assert done["a"].pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]
    assert done["b"].info == "written"


def parent_and_child(warehouse: Warehouse, reads: Reads) -> tuple[EndpointReads, EndpointReads]:
    """Two groups of reads, as the load op makes them: `a` (a parent) and `b` beside it, and `c`, its child,
    read in a group of its own (its own served keys) and written after `a`."""
    parents = EndpointReads(loads("a", "b"), reads, warehouse.hold)
    child = loads("c")
    child[0].after = parents.loads[0]
    return parents, EndpointReads(child, reads, warehouse.hold, restore_first_here=False)


def test_a_child_read_first_is_written_only_after_its_parent_and_its_parents_checks() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    parents, child = parent_and_child(warehouse, reads)
    for name in "abc":
        assert reads.started[name].wait(WAIT)  # the child is read side by side with its parent
    written: list[str] = []

    def write(load: EndpointLoad) -> Any:
        written.append(load.resource)
        return f"info {load.resource}"

    reads.finish("c", "b")  # the child is read whole first
    threading.Timer(0.3, reads.finish, ("a",)).start()
    order = []
    for load in write_in_turn([(parents, write), (child, write)]):
        order.append(load.resource)
        if load.resource == "a":
            assert "c" not in written  # its checks run here, before the child is written
    assert order == ["b", "a", "c"] and written == ["b", "a", "c"]
    assert child.loads[0].info == "info c" and child.loads[0].error is None


def test_a_parent_held_back_by_its_checks_drops_its_childs_read() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse)
    parents, child = parent_and_child(warehouse, reads)
    reads.finish("a", "b", "c")
    written: list[str] = []

    def write(load: EndpointLoad) -> Any:
        written.append(load.resource)
        return "written"

    for load in write_in_turn([(parents, write), (child, write)]):
        if load.resource == "a":
            load.holds_back = "a failed its blocking checks (row_count_drop)"
    dropped = child.loads[0]
    assert "c" not in written and dropped.info is None
    assert isinstance(dropped.error, HeldBackError) and "row_count_drop" in str(dropped.error)
    assert dropped.pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]  # nothing of it loads later


def test_a_failed_parent_holds_back_its_child_and_nothing_else() -> None:
    warehouse = Warehouse()
    reads = Reads(warehouse, fail=frozenset({"a"}))
    parents, child = parent_and_child(warehouse, reads)
    reads.finish("a", "b", "c")
    done = {
        load.resource: load
        for load in write_in_turn([(parents, lambda load: "written"), (child, lambda load: "written")])
    }  # type: ignore[arg-type,return-value]
    assert str(done["a"].error) == "a answered 500"
    assert isinstance(done["c"].error, HeldBackError) and done["c"].pipeline.calls[-1] == "abort"  # type: ignore[attr-defined]
    assert done["b"].info == "written"
