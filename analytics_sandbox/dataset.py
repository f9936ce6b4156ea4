"""The data both APIs serve: generated records, the changes applied to them, and expectations.

Tests change the data between two loads through the mutation methods, then compare the warehouse
with `records()` / `count()`, which list exactly what the API serves at that moment.
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from .clock import MonotonicClock
from .config import SandboxConfig
from .generate import FIRST_SEGMENT_ID, GENERATED_UNTIL_MS, KEY_FIELDS, SMALL_RESOURCES, Generator, Record
from .generations import PROJECTIONS, VIEWS
from .ids import mix64
from .sequences import Head, IndexSequence, ListSequence, Reversed
from .tables import BigTable, Membership

RESOURCES = tuple(KEY_FIELDS) + tuple(VIEWS)
Projection = Callable[[Record], Record]
IdsOrCount = int | Sequence[Any]
# `update_responses(n, recent=True)` draws from the newest responses: the first page of the API.
RECENT_RESPONSES = 100
_CHUNK = 1000


def _count(ids_or_count: IdsOrCount) -> int | None:
    """The count when `ids_or_count` is one, else None (it is a list of keys)."""
    if isinstance(ids_or_count, bool):
        raise TypeError("expected a count or a list of keys, got a bool")
    return ids_or_count if isinstance(ids_or_count, int) else None


def _keys(ids_or_count: IdsOrCount) -> list[Any]:
    """`ids_or_count` as a list of keys (a lone string is one key)."""
    if isinstance(ids_or_count, int):
        raise TypeError("expected a list of keys")
    return [ids_or_count] if isinstance(ids_or_count, str) else list(ids_or_count)


def _same(record: Record) -> Record:
    return record


def _copy(record: Any) -> Any:
    """A deep copy of JSON data (callers must not be able to change the served records)."""
    try:
        return orjson.loads(orjson.dumps(record))
    except TypeError:  # what orjson cannot write (`odd_records.py`)
        return copy.deepcopy(record)


class Dataset:
    """Everything the sandbox serves, and the methods that change it. Thread-safe.

    Resource names are the dlt resource names (see `RESOURCES`). Keys are the natural key of each
    resource: `id` (numbers for segments), `name` for schemas and fields, `accountId` for accounts,
    `tag` for account tags. `contacts` and `contact_attribute_keys` (the current feedback servers'
    endpoints) are views of `identified_peoples` and `attribute_classes`: the same records (same ids)
    in the new shapes; a change through either name shows in both (see `generations`).

    Args:
        config: Sizes and seed of the generated data.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.generator = Generator(config)
        # Never reset: timestamps handed out stay strictly increasing across `reset()` too.
        self._clock = MonotonicClock(GENERATED_UNTIL_MS)
        self._lock = threading.RLock()
        self.version = 0
        self._build()

    def _build(self) -> None:
        gen, cfg = self.generator, self.config
        self._people = BigTable(cfg.people, gen.people, gen.people_ids.uuid_index)
        self._responses = BigTable(
            cfg.responses, lambda indices: [gen.response(i) for i in indices], gen.response_ids.cuid_index
        )
        self._small: dict[str, list[Record]] = {
            r: [gen.small(r, k) for k in range(getattr(cfg, r))] for r in SMALL_RESOURCES
        }
        self._next_small = {r: getattr(cfg, r) for r in SMALL_RESOURCES}
        self._small_keep: dict[str, int | None] = {}
        self._memberships = {
            FIRST_SEGMENT_ID + s: Membership(*gen.segment_members(s), cfg.people) for s in range(cfg.segments)
        }
        self._segment_keep: int | None = None
        self._member_cache: dict[int, IndexSequence] = {}
        self._ops = 0

    # -- bookkeeping ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        self._member_cache.clear()

    def _op(self) -> tuple[random.Random, int]:
        """A deterministic random source and a sequence number for the next mutation."""
        self._ops += 1
        return random.Random(mix64(self.config.seed ^ (self._ops << 24))), self._ops

    @staticmethod
    def _check(resource: str) -> str:
        """The resource holding the records of `resource` (itself, or the base of a view)."""
        if resource not in KEY_FIELDS and resource not in VIEWS:
            raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(RESOURCES)}")
        return VIEWS.get(resource, resource)

    @staticmethod
    def _view(resource: str) -> Projection:
        """How records of `resource` are shown (the identity for a resource that is not a view)."""
        return PROJECTIONS.get(resource, _same)

    def _table(self, resource: str) -> BigTable:
        return self._responses if resource == "responses" else self._people

    def _served_small(self, resource: str) -> list[Record]:
        keep = self._small_keep.get(resource)
        items = self._small[resource]
        return items if keep is None else items[:keep]

    def _listed_segment_ids(self) -> list[int]:
        return [r["id"] for r in self._served_small("segments") if isinstance(r.get("id"), int)]

    def _members(self, segment_id: int) -> IndexSequence | None:
        """Served members of a segment; None when the segment is unknown (404)."""
        seq = self._member_cache.get(segment_id)
        if seq is None:
            membership = self._memberships.get(segment_id)
            if membership is not None:
                seq = membership.members(self._people.deleted)
            elif any(r.get("id") == segment_id for r in self._small["segments"]):
                seq = ListSequence([])  # a hand-made segment record: it exists, with nobody in it
            else:
                return None
            if self._segment_keep is not None:
                seq = Head(seq, self._segment_keep)
            self._member_cache[segment_id] = seq
        return seq

    def _sequence(self, resource: str, sort: str = "createdAt", order: str = "asc") -> IndexSequence:
        table = self._table(resource)
        seq = table.by_update() if sort == "updatedAt" else table.by_creation()
        # Responses are served newest first; people in the order asked for.
        if (resource == "responses") != (order == "desc"):
            seq = Reversed(seq)
        return seq if table.keep is None else Head(seq, table.keep)

    def _segment_membership(self, segment_id: int) -> Membership:
        membership = self._memberships.get(segment_id)
        if membership is None:
            raise KeyError(f"no segment {segment_id!r} with members")
        return membership

    def _pick(
        self, resource: str, seq: IndexSequence, ids_or_count: IdsOrCount, rng: random.Random
    ) -> list[int]:
        """Indices of the given ids, or of `n` served records drawn deterministically from `seq`."""
        count = _count(ids_or_count)
        if count is not None:
            n = min(max(count, 0), len(seq))
            return [seq.slice(p, p + 1)[0] for p in sorted(rng.sample(range(len(seq)), n))]
        table = self._table(resource)
        indices = []
        for key in _keys(ids_or_count):
            i = table.find(key)
            if i is None:
                raise KeyError(f"{resource}: no record with id {key!r}")
            indices.append(i)
        return indices

    def _find_small(self, resource: str, key: Any) -> int:
        field = KEY_FIELDS[resource]
        for position, record in enumerate(self._small[resource]):
            if record.get(field) == key:
                return position
        raise KeyError(f"{resource}: no record with {field} {key!r}")

    # -- serving -----------------------------------------------------------------------------

    def page(
        self,
        resource: str,
        offset: int = 0,
        limit: int | None = None,
        *,
        sort: str = "createdAt",
        order: str = "asc",
        segment_id: int | None = None,
    ) -> list[Record] | None:
        """The records one request gets, in API order (None: no such segment).

        The returned records are shared with the dataset: serialise them, don't change them.
        """
        view, resource = self._view(resource), self._check(resource)
        stop = None if limit is None else offset + limit
        with self._lock:
            if resource in SMALL_RESOURCES:
                items = self._served_small(resource)[offset:stop]
                return items if view is _same else [view(r) for r in items]
            if resource == "segment_people":
                seq = self._members(segment_id) if segment_id is not None else None
                if seq is None:
                    return None
                table = self._people
            else:
                seq, table = self._sequence(resource, sort, order), self._table(resource)
            return table.records_at(seq.slice(offset, len(seq) if stop is None else stop))

    # -- expectations ------------------------------------------------------------------------

    def records(self, resource: str, limit: int | None = None) -> Iterator[Any]:
        """The records the API serves now, in API order (copies).

        For `segment_people` the items are `(segment_id, person)` pairs, over the segments listed by
        `/segments` (a loader reaches members through that list). The order is fixed when this is
        called; large resources are then read in chunks, so a change to a record made while
        iterating may show up, as it would through the API.

        Args:
            resource: A dlt resource name.
            limit: Stop after this many items.
        """
        view, resource = self._view(resource), self._check(resource)
        parts: list[tuple[int | None, IndexSequence | None]]
        with self._lock:  # the order is taken now; the records are read as the iteration goes
            if resource in SMALL_RESOURCES:
                items = [view(_copy(r)) for r in self._served_small(resource)]
                return iter(items if limit is None else items[:limit])
            if resource == "segment_people":
                parts = [(sid, self._members(sid)) for sid in self._listed_segment_ids()]
            else:
                parts = [(None, self._sequence(resource))]
        return self._iterate(self._table(resource), parts, limit)

    def _iterate(
        self, table: BigTable, parts: list[tuple[int | None, IndexSequence | None]], limit: int | None
    ) -> Iterator[Any]:
        remaining = limit if limit is not None else -1
        for segment_id, seq in parts:
            if seq is None:
                continue
            for start in range(0, len(seq), _CHUNK):
                with self._lock:
                    chunk = [_copy(r) for r in table.records_at(seq.slice(start, start + _CHUNK))]
                for record in chunk:
                    if remaining == 0:
                        return
                    remaining -= 1
                    yield record if segment_id is None else (segment_id, record)

    def memberships(self) -> list[tuple[int, Any]]:
        """(segment id, person id) of every served membership, in API order."""
        return [(sid, person.get("id")) for sid, person in self.records("segment_people")]

    def count(self, resource: str) -> int:
        """How many records the API serves now (segment_people: over the listed segments)."""
        resource = self._check(resource)
        with self._lock:
            if resource in SMALL_RESOURCES:
                return len(self._served_small(resource))
            if resource == "segment_people":
                return sum(len(self._members(sid) or ()) for sid in self._listed_segment_ids())
            return len(self._sequence(resource))

    def record(self, resource: str, key: Any) -> Record | None:
        """The served record with this key (a copy), or None."""
        view, resource = self._view(resource), self._check(resource)
        with self._lock:
            if resource in SMALL_RESOURCES:
                try:
                    return view(_copy(self._small[resource][self._find_small(resource, key)]))
                except KeyError:
                    return None
            table = self._table(resource)
            i = table.find(key)
            return None if i is None else _copy(table.record(i))

    def segment_members(self, segment_id: int) -> list[Any]:
        """Person ids `/segments/{segment_id}/people` serves, in order."""
        with self._lock:
            seq = self._members(segment_id)
            if seq is None:
                raise KeyError(f"no segment {segment_id!r}")
            return [r.get("id") for r in self._people.records_at(seq.slice(0, len(seq)))]

    # -- people --------------------------------------------------------------------------------

    def update_people(self, ids_or_count: IdsOrCount) -> list[Any]:
        """Change lastName, leadScore and plan of some people and bump their updatedAt.

        Args:
            ids_or_count: Person ids, or a count n of existing people picked deterministically.

        Returns:
            The ids of the changed people.
        """
        with self._lock:
            rng, n = self._op()
            changed = []
            for i in self._pick("peoples", self._people.by_creation(), ids_or_count, rng):
                record = {**self._people.record(i), **self.generator.person_edit(i, n)}
                if "firstName" in record:
                    record["name"] = f"{record['firstName']} {record['lastName']}"
                record["updatedAt"] = self._clock.next_iso()
                self._people.store(i, record)
                self._people.touch(i)
                changed.append(record.get("id"))
            self._changed()
            return changed

    def add_people(self, n: int) -> list[Any]:
        """Add `n` people, newer than everything; returns their ids."""
        with self._lock:
            added = []
            for _ in range(n):
                record = self.generator.person(self._people.total, self._clock.next_ms())
                self._people.append(record)
                added.append(record["id"])
            self._changed()
            return added

    def delete_people(self, ids_or_count: IdsOrCount) -> list[Any]:
        """Delete people (they leave `/people/all` and every segment); returns their ids."""
        with self._lock:
            rng, _ = self._op()
            indices = self._pick("peoples", self._people.by_creation(), ids_or_count, rng)
            ids = [self._people.record(i).get("id") for i in indices]
            for i in indices:
                self._people.delete(i)
            self._changed()
            return ids

    # -- segments and memberships ----------------------------------------------------------------

    def add_segment(self) -> int:
        """Add a segment with generated members; returns its id."""
        with self._lock:
            k = self._next_small["segments"]
            self._next_small["segments"] += 1
            record = self.generator.small("segments", k)
            taken = set(self._memberships).union(
                r["id"] for r in self._small["segments"] if isinstance(r.get("id"), int)
            )
            if record["id"] in taken:
                record["id"] = max(taken) + 1
            self._small["segments"].append(record)
            self._memberships[record["id"]] = Membership(
                *self.generator.segment_members(k), self.config.people
            )
            self._changed()
            return int(record["id"])

    def delete_segment(self, segment_id: int) -> None:
        """Delete a segment: it leaves `/segments` and its people path answers 404."""
        with self._lock:
            listed = [r for r in self._small["segments"] if r.get("id") != segment_id]
            if len(listed) == len(self._small["segments"]) and segment_id not in self._memberships:
                raise KeyError(f"no segment {segment_id!r}")
            self._small["segments"] = listed
            self._memberships.pop(segment_id, None)
            self._changed()

    def hide_segment(self, segment_id: int) -> None:
        """Drop a segment from `/segments` but keep serving its people (memberships of no segment)."""
        with self._lock:
            del self._small["segments"][self._find_small("segments", segment_id)]
            self._changed()

    def add_memberships(self, segment_id: int, ids_or_count: IdsOrCount) -> list[Any]:
        """Put people into a segment (after its current members).

        Args:
            segment_id: The segment.
            ids_or_count: Person ids, or a count n of existing people not yet in it, picked
                deterministically.

        Returns:
            The ids of the people that were not members before.
        """
        with self._lock:
            membership = self._segment_membership(segment_id)
            rng, _ = self._op()
            count = _count(ids_or_count)
            if count is not None:
                candidates = self._non_members(membership, count, rng)
            else:
                candidates = self._pick("peoples", self._people.by_creation(), ids_or_count, rng)
            added = [i for i in candidates if membership.add(i)]
            self._changed()
            return [r.get("id") for r in self._people.records_at(added)]

    def _non_members(self, membership: Membership, n: int, rng: random.Random) -> list[int]:
        """Up to `n` served people outside `membership`, scanning from a random start (wrapping)."""
        seq = self._people.by_creation()
        total = len(seq)
        start = rng.randrange(total) if total else 0
        found: list[int] = []
        for low, high in ((start, total), (0, start)):
            for chunk in range(low, high, _CHUNK):
                for i in seq.slice(chunk, min(chunk + _CHUNK, high)):
                    if len(found) == n:
                        return found
                    if not membership.contains(i):
                        found.append(i)
        return found

    def remove_memberships(self, segment_id: int, ids_or_count: IdsOrCount) -> list[Any]:
        """Take people out of a segment (they stay in `/people/all`); returns the removed ids."""
        with self._lock:
            membership = self._segment_membership(segment_id)
            rng, _ = self._op()
            members = self._members(segment_id) or ListSequence([])
            count = _count(ids_or_count)
            if count is not None:
                n = min(max(count, 0), len(members))
                candidates = [members.slice(p, p + 1)[0] for p in sorted(rng.sample(range(len(members)), n))]
            else:
                candidates = self._pick("peoples", self._people.by_creation(), ids_or_count, rng)
            removed = [i for i in candidates if membership.remove(i)]
            self._changed()
            return [r.get("id") for r in self._people.records_at(removed)]

    # -- responses -----------------------------------------------------------------------------

    def add_responses(self, n: int) -> list[Any]:
        """Add `n` responses, the newest of all; returns their ids."""
        with self._lock:
            added = []
            for _ in range(n):
                record = self.generator.response(self._responses.total, self._clock.next_ms())
                self._responses.append(record)
                added.append(record["id"])
            self._changed()
            return added

    def update_responses(self, ids_or_count: IdsOrCount, recent: bool = True) -> list[Any]:
        """Finish responses and change an answer: updatedAt moves, createdAt (their place) does not.

        Args:
            ids_or_count: Response ids, or a count n of responses picked deterministically.
            recent: With a count, pick among the newest `max(n, 100)` responses (the first page).

        Returns:
            The ids of the changed responses.
        """
        with self._lock:
            rng, n = self._op()
            seq: IndexSequence = Reversed(self._responses.by_creation())
            count = _count(ids_or_count)
            if recent and count is not None:
                seq = Head(seq, max(count, RECENT_RESPONSES))
            changed = []
            for i in self._pick("responses", seq, ids_or_count, rng):
                record = self._responses.record(i)
                record = {**record, **self.generator.response_edit(record, n)}
                record["updatedAt"] = self._clock.next_iso()
                self._responses.store(i, record)
                changed.append(record.get("id"))
            self._changed()
            return changed

    # -- any resource --------------------------------------------------------------------------

    def patch_record(
        self,
        resource: str,
        key: Any,
        set_fields: dict[str, Any] | None = None,
        remove_fields: Sequence[str] | None = None,
    ) -> Record:
        """Change a record raw: set or remove any field (type drift, new fields, a missing key...).

        updatedAt is bumped when the record has one, unless `set_fields` or `remove_fields` names it.
        `peoples` and `segment_people` are the same records. With `sort=updatedAt`, a patched person
        sorts by the order of changes, even when its updatedAt was set by hand.

        Returns:
            The new record.
        """
        view, resource = self._view(resource), self._check(resource)
        set_fields, remove_fields = dict(set_fields or {}), list(remove_fields or [])
        with self._lock:
            if resource in SMALL_RESOURCES:
                position = self._find_small(resource, key)
                new = self._patched(self._small[resource][position], set_fields, remove_fields)
                self._small[resource][position] = new
                if resource == "segments" and new.get("id") != key and key in self._memberships:
                    # A segment whose id changes keeps its members under the new id (if it has one).
                    membership = self._memberships.pop(key)
                    if isinstance(new.get("id"), int):
                        self._memberships[new["id"]] = membership
            else:
                table = self._table(resource)
                i = table.find(key)
                if i is None:
                    raise KeyError(f"{resource}: no record with id {key!r}")
                new = self._patched(table.record(i), set_fields, remove_fields)
                table.store(i, new)
                if table is self._people:
                    table.touch(i)
            self._changed()
            return view(_copy(new))

    def _patched(self, old: Record, set_fields: dict[str, Any], remove_fields: list[str]) -> Record:
        new = {**old, **set_fields}
        for field in remove_fields:
            new.pop(field, None)
        if "updatedAt" in old and "updatedAt" not in set_fields and "updatedAt" not in remove_fields:
            new["updatedAt"] = self._clock.next_iso()
        return new

    def add_raw_record(self, resource: str, record: Record) -> Any:
        """Append a record exactly as given (a duplicate id, no key, odd types...).

        People go last (newest createdAt), responses first (newest); small resources at the end.
        A raw segment has no members. Returns the record's key value (None when it has none).
        """
        resource = self._check(resource)
        if resource == "segment_people":
            raise ValueError("add a person to 'peoples', then put it in a segment with add_memberships")
        record = _copy(record)
        with self._lock:
            if resource in SMALL_RESOURCES:
                self._small[resource].append(record)
            else:
                self._table(resource).append(record)
            self._changed()
            return record.get(KEY_FIELDS[resource])

    def add_record(self, resource: str) -> Any:
        """Add one generated record (newest); returns its key."""
        resource = self._check(resource)
        if resource == "peoples":
            return self.add_people(1)[0]
        if resource == "responses":
            return self.add_responses(1)[0]
        if resource == "segments":
            return self.add_segment()
        if resource == "segment_people":
            raise ValueError("use add_memberships for segment_people")
        with self._lock:
            k = self._next_small[resource]
            self._next_small[resource] += 1
            record = self.generator.small(resource, k, self._clock.next_ms())
            self._small[resource].append(record)
            self._changed()
            return record[KEY_FIELDS[resource]]

    def update_record(self, resource: str, key: Any) -> Record:
        """Change one record the way the real API would (and bump updatedAt); returns it."""
        view, resource = self._view(resource), self._check(resource)
        if resource in ("peoples", "segment_people"):
            self.update_people([key])
            return self.record("peoples", key) or {}
        if resource == "responses":
            self.update_responses([key])
            return self.record("responses", key) or {}
        with self._lock:
            _, n = self._op()
            position = self._find_small(resource, key)
            old = self._small[resource][position]
            new = {**old, **self.generator.small_edit(resource, old, n)}
            if "updatedAt" in old:
                new["updatedAt"] = self._clock.next_iso()
            self._small[resource][position] = new
            self._changed()
            return view(_copy(new))

    def delete_record(self, resource: str, key: Any) -> None:
        """Delete one record (segments: like `delete_segment`)."""
        resource = self._check(resource)
        if resource in ("peoples", "segment_people"):
            self.delete_people([key])
            return
        if resource == "segments":
            self.delete_segment(key)
            return
        with self._lock:
            if resource == "responses":
                i = self._responses.find(key)
                if i is None:
                    raise KeyError(f"responses: no record with id {key!r}")
                self._responses.delete(i)
            else:
                del self._small[resource][self._find_small(resource, key)]
            self._changed()

    def truncate(self, resource: str, keep: int | None) -> None:
        """Serve only the first `keep` records of a resource (per segment for segment_people).

        The endpoint says nothing about it: a silently truncated result. `keep=None` undoes it.
        """
        resource = self._check(resource)
        with self._lock:
            if resource in SMALL_RESOURCES:
                self._small_keep[resource] = keep
            elif resource == "segment_people":
                self._segment_keep = keep
            else:
                self._table(resource).keep = keep
                self._table(resource).changed()
            self._changed()

    def reset(self) -> None:
        """Back to the pristine generated data (timestamps handed out later stay newer)."""
        with self._lock:
            self._build()
            self._changed()
