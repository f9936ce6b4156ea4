"""`analytics_assets.internals`: one contract test per hook, on small real dlt, tenacity and Dagster
objects, so that an upgrade changing what a hook relies on fails here within seconds (and not, silently,
in a load). Where a test also asserts that no public route answers yet, its failure says the hook can go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from analytics_assets.arrow_pages import batched_pages
from analytics_assets.internals import replace_generator

# replace_generator


def _pages() -> Iterator[list[dict[str, int]]]:
    yield [{"n": 1}, {"n": 2}]
    yield [{"n": 3}]
    yield [{"n": 4}, {"n": 5}]


def _read(resource: Any) -> tuple[list[Any], list[int]]:
    """The rows `resource` yields, and the size of every item its last step was handed."""
    sizes: list[int] = []
    resource.add_step(lambda item, meta=None: (sizes.append(len(item)), item)[1])
    return list(resource), sizes


def test_replace_generator_wraps_what_a_resource_generates_under_its_steps() -> None:
    """As `rest.assemble` uses it: a resource built with an incremental argument and a step of its own,
    its generator replaced by `batched_pages`, then parallelized: every step sees the joined pages."""

    @dlt.resource
    def pages(n: Any = dlt.sources.incremental("n")) -> Iterator[list[dict[str, int]]]:  # noqa: B008 (dlt's idiom)
        yield from _pages()

    resource = pages().add_map(lambda row: {**row, "mapped": True})
    replace_generator(resource, lambda gen: batched_pages(gen, rows=3))
    resource.parallelize()
    rows, sizes = _read(resource)
    assert [row["n"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["mapped"] for row in rows)  # the resource's own step still runs, after the join
    assert sizes == [3, 2]  # pages joined to at least 3 rows, the partial last batch handed over


def test_replace_generator_wraps_a_bound_generator() -> None:
    """A resource made from a generator object (its pipe's generating step is the generator itself)."""
    resource = dlt.resource(_pages(), name="pages")
    replace_generator(resource, lambda gen: batched_pages(gen, rows=10))
    rows, sizes = _read(resource)
    assert len(rows) == 5
    assert sizes == [5]
