"""State of the large resources: generated records plus an overlay of changes.

Neither class locks: `Dataset` serialises every access with its own lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .sequences import Affine, Concat, IndexSequence, ListSequence, RangeWithHoles

Record = dict[str, Any]


class BigTable:
    """A resource of generated records (people, responses) with changes layered on top.

    Record `i` for `i < base` is generated on demand unless it was replaced; records appended later
    (added or raw ones) take the next indices. Indices follow createdAt order.

    Args:
        base: Number of generated records.
        generate: Computes the generated records at some indices (in that order).
        index_of_id: Turns a generated id back into its index (None when it is not a generated id).
    """

    def __init__(
        self,
        base: int,
        generate: Callable[[Iterable[int]], list[Record]],
        index_of_id: Callable[[object], int | None],
    ) -> None:
        self.base = base
        self._generate = generate
        self._index_of_id = index_of_id
        self.replaced: dict[int, Record] = {}
        self.appended: list[Record] = []
        self.deleted: set[int] = set()
        # Insertion order is the order of updatedAt bumps: moving a key to the end is a bump.
        self.touched: dict[int, None] = {}
        self.keep: int | None = None
        self._cache: dict[str, Any] = {}

    @property
    def total(self) -> int:
        """Number of indices ever used (deleted ones included)."""
        return self.base + len(self.appended)

    def changed(self) -> None:
        """Drop the cached orders; call after every change."""
        self._cache.clear()

    def alive(self, i: int) -> bool:
        """Whether index `i` holds a served record."""
        return 0 <= i < self.total and i not in self.deleted

    def records_at(self, indices: Sequence[int]) -> list[Record]:
        """The current records at `indices`, generating the untouched ones in one batch."""
        base, replaced, appended = self.base, self.replaced, self.appended
        if not replaced and (not indices or max(indices) < base):
            return self._generate(indices)  # the common case: untouched generated records
        generated = iter(self._generate([i for i in indices if i < base and i not in replaced]))
        return [
            replaced[i] if i in replaced else appended[i - base] if i >= base else next(generated)
            for i in indices
        ]

    def record(self, i: int) -> Record:
        """The current record at index `i`."""
        return self.records_at((i,))[0]

    def store(self, i: int, record: Record) -> None:
        """Replace the record at index `i`."""
        if i < self.base:
            self.replaced[i] = record
        else:
            self.appended[i - self.base] = record
        self.changed()

    def append(self, record: Record) -> int:
        """Add a record after all others (newest createdAt); returns its index."""
        self.appended.append(record)
        self.touch(self.total - 1)
        return self.total - 1

    def touch(self, i: int) -> None:
        """Record that index `i` got the newest updatedAt."""
        self.touched.pop(i, None)
        self.touched[i] = None
        self.changed()

    def delete(self, i: int) -> None:
        """Stop serving index `i`."""
        self.deleted.add(i)
        self.changed()

    def find(self, key: object, field: str = "id") -> int | None:
        """The index of the served record whose `field` equals `key`, or None."""
        i = self._index_of_id(key)
        if i is not None and self.alive(i) and self.record(i).get(field) == key:
            return i
        # Changed, duplicated or hand-made ids are only in the overlay.
        for j, record in self.replaced.items():
            if record.get(field) == key and j not in self.deleted:
                return j
        for k, record in enumerate(self.appended):
            if record.get(field) == key and self.base + k not in self.deleted:
                return self.base + k
        return None

    def by_creation(self) -> IndexSequence:
        """Served indices, oldest createdAt first."""
        seq = self._cache.get("created")
        if seq is None:
            seq = self._cache["created"] = RangeWithHoles(self.total, sorted(self.deleted))
        return seq

    def by_update(self) -> IndexSequence:
        """Served indices, oldest updatedAt first.

        Generated updatedAt grows with the index; every later bump is newer than all of them. So the
        order is: the never-bumped generated records by index, then the bumped ones by bump order.
        """
        seq = self._cache.get("updated")
        if seq is None:
            deleted, touched = self.deleted, self.touched
            holes = sorted(i for i in deleted.union(touched) if i < self.base)
            tail = [i for i in touched if i not in deleted]
            seq = self._cache["updated"] = Concat(RangeWithHoles(self.base, holes), ListSequence(tail))
        return seq


class Membership:
    """The people of one segment: generated members, minus removals, plus additions.

    Generated member j (0 <= j < m) is person (a + j*b) mod n; b is coprime with n, so the
    position of a person is recovered with the modular inverse of b.

    Args:
        a: Offset of the generated members.
        b: Stride of the generated members (coprime with n).
        m: Number of generated members.
        n: Number of generated people.
    """

    def __init__(self, a: int, b: int, m: int, n: int) -> None:
        self.a, self.b, self.m, self.n = a, b, m, n
        self._b_inverse = pow(b, -1, n) if n > 1 else 0
        self.removed: set[int] = set()  # positions of generated members taken out
        self.added: dict[int, None] = {}  # people put in later, in order
        self.keep: int | None = None

    def position(self, person: int) -> int | None:
        """The generated position of `person` in this segment, or None."""
        if person >= self.n or self.n == 0:
            return None
        j = ((person - self.a) * self._b_inverse) % self.n
        return j if j < self.m else None

    def contains(self, person: int) -> bool:
        """Whether `person` is a member (ignoring deletions of people)."""
        if person in self.added:
            return True
        j = self.position(person)
        return j is not None and j not in self.removed

    def add(self, person: int) -> bool:
        """Make `person` a member; False when it already is one."""
        if self.contains(person):
            return False
        self.added[person] = None
        return True

    def remove(self, person: int) -> bool:
        """Take `person` out; False when it was not a member."""
        if person in self.added:
            del self.added[person]
            return True
        j = self.position(person)
        if j is None or j in self.removed:
            return False
        self.removed.add(j)
        return True

    def members(self, deleted: set[int]) -> IndexSequence:
        """Served member indices: generated ones by position, then added ones; deleted people left out."""
        holes = set(self.removed)
        if len(deleted) < self.m:
            for person in deleted:
                j = self.position(person)
                if j is not None:
                    holes.add(j)
        else:
            a, b, n = self.a, self.b, self.n
            holes.update(j for j in range(self.m) if (a + j * b) % n in deleted)
        generated = Affine(RangeWithHoles(self.m, sorted(holes)), self.a, self.b, self.n)
        return Concat(generated, ListSequence([p for p in self.added if p not in deleted]))
