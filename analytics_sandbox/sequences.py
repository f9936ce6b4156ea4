"""Ordered index sequences with O(log n) positional access.

An endpoint serves "position p of the current order". With a million generated records and a few
deletions or updates on top, the order is a range with holes, possibly followed by a short list of
moved records, possibly reversed or truncated. These small classes compose that without ever
materialising the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class IndexSequence(Protocol):
    """A read-only ordered sequence of record indices."""

    def __len__(self) -> int: ...

    def slice(self, start: int, stop: int) -> list[int]:
        """Indices at positions [start, stop) (clipped to the sequence)."""
        ...


class RangeWithHoles:
    """`range(size)` without the indices in `holes`.

    Args:
        size: The range is [0, size).
        holes: Sorted, distinct indices in [0, size) to leave out.
    """

    def __init__(self, size: int, holes: Sequence[int]) -> None:
        self._size = size
        self._holes = holes

    def __len__(self) -> int:
        return self._size - len(self._holes)

    def _nth(self, k: int) -> tuple[int, int]:
        """(value, number of holes below it) of the k-th (0-based) kept index."""
        holes = self._holes
        # The k-th kept value is k + j, where j = the number of holes below it = the number of holes
        # with holes[j] - j <= k (holes[j] - j is non-decreasing, so this is a binary search).
        lo, hi = 0, len(holes)
        while lo < hi:
            mid = (lo + hi) // 2
            if holes[mid] - mid <= k:
                lo = mid + 1
            else:
                hi = mid
        return k + lo, lo

    def slice(self, start: int, stop: int) -> list[int]:
        start, stop = max(start, 0), min(stop, len(self))
        if start >= stop:
            return []
        value, j = self._nth(start)
        holes, n_holes = self._holes, len(self._holes)
        out: list[int] = []
        missing = stop - start
        while missing:
            # Take the run of kept values up to the next hole in one go.
            run = missing if j == n_holes else min(holes[j] - value, missing)
            out.extend(range(value, value + run))
            missing -= run
            value += run + 1
            j += 1
        return out


class ListSequence:
    """A plain list of indices."""

    def __init__(self, items: Sequence[int]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def slice(self, start: int, stop: int) -> list[int]:
        return list(self._items[max(start, 0) : max(stop, 0)])


class Concat:
    """`first` followed by `second`."""

    def __init__(self, first: IndexSequence, second: IndexSequence) -> None:
        self._first, self._second = first, second
        self._split = len(first)

    def __len__(self) -> int:
        return self._split + len(self._second)

    def slice(self, start: int, stop: int) -> list[int]:
        split = self._split
        out = self._first.slice(start, min(stop, split)) if start < split else []
        if stop > split:
            out.extend(self._second.slice(max(start - split, 0), stop - split))
        return out


class Reversed:
    """`inner` in reverse order."""

    def __init__(self, inner: IndexSequence) -> None:
        self._inner = inner

    def __len__(self) -> int:
        return len(self._inner)

    def slice(self, start: int, stop: int) -> list[int]:
        n = len(self._inner)
        start, stop = max(start, 0), min(stop, n)
        if start >= stop:
            return []
        out = self._inner.slice(n - stop, n - start)
        out.reverse()
        return out


class Head:
    """The first `keep` items of `inner` (a silently truncated endpoint)."""

    def __init__(self, inner: IndexSequence, keep: int) -> None:
        self._inner = inner
        self._len = min(len(inner), keep)

    def __len__(self) -> int:
        return self._len

    def slice(self, start: int, stop: int) -> list[int]:
        return self._inner.slice(start, min(stop, self._len))


class Affine:
    """`inner` with every item j mapped to (a + j*b) mod n (the members of a generated segment)."""

    def __init__(self, inner: IndexSequence, a: int, b: int, n: int) -> None:
        self._inner, self._a, self._b, self._n = inner, a, b, n

    def __len__(self) -> int:
        return len(self._inner)

    def slice(self, start: int, stop: int) -> list[int]:
        a, b, n = self._a, self._b, self._n
        return [(a + j * b) % n for j in self._inner.slice(start, stop)]
