"""Removing what an API no longer serves: neither API has a deletion feed, so a sync that read a
resource's whole list compares the keys it was served with the keys in the warehouse.

Plain dlt: `ServedKeys` adds a processing step to each resource of a `rest_api` config, and `sweep`
runs after the load with the pipeline's SQL client (DuckDB, PostgreSQL, any SQL destination).
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltResource
from dlt.sources.rest_api import RESTAPIConfig

from analytics_assets.catalog import endpoints
from analytics_assets.history import VALID_TO, stored_history
from analytics_assets.naming import extract_naming, key_fields, nested_tables, pipeline_naming

_DELETE_BATCH = 1_000


class MissingKeyError(ValueError):
    """A record arrived without (part of) its primary key: it cannot be merged, so the run stops."""

    def __init__(self, resource: str, fields: Sequence[str], record: dict[str, Any]) -> None:
        self.resource = resource
        self.fields = list(fields)
        self.sample = {k: record[k] for k in list(record)[:4]}
        super().__init__(f"a {resource} record has no {', '.join(fields)}: {self.sample}")


class KeyTypeError(TypeError):
    """A record's key is of another type than the same key before (in the warehouse, or earlier in this
    run): it cannot be merged with the others (dlt would put it in a variant column and leave the key
    null), so the run stops."""

    def __init__(self, resource: str, field: str, value: Any, found: str, before: str) -> None:
        self.resource = resource
        self.field = field
        self.value = value
        self.found = found
        self.before = before
        """What the key was before, as a clause: `the warehouse's segments.id holds whole numbers`."""
        super().__init__(f"a {resource} record has {field} {value!r} ({found}), but {before}")


_KINDS = ((bool, "a boolean"), (str, "a string"), (int, "a whole number"), (float, "a number"),
          (dict, "an object"), (list, "a list"))  # fmt: skip
# The kind of JSON value a warehouse key column of this dlt type was loaded from.
_COLUMN_KINDS = {"bigint": "a whole number", "text": "a string", "double": "a number", "bool": "a boolean"}


def _kind(value: Any) -> str:
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


def _stored_kinds(resource: str, key_columns: Sequence[str]) -> list[str | None]:
    """The kind of value each key column of the warehouse holds, from the schema dlt extracts with
    (restored from the warehouse at the start of the run); None for a column not loaded yet."""
    try:
        schema = dlt.current.source_schema()
    except CurrentSourceSchemaNotAvailable:  # outside an extraction: within the run only
        return [None] * len(key_columns)
    naming = schema.naming
    columns = (schema.tables.get(naming.normalize_table_identifier(resource)) or {}).get("columns") or {}
    return [
        _COLUMN_KINDS.get(str((columns.get(naming.normalize_identifier(c)) or {}).get("data_type")))
        for c in key_columns
    ]


def _key_hash(values: Iterable[Any]) -> int:
    # Python's string hash is 64 bits and stable within a process, which is all a run needs. A collision
    # (about 1 in 10^7 at a million keys) can only keep a deleted row one sync longer, never delete a live one.
    return hash(tuple(str(v) for v in values))


def _key_hashes(columns: Sequence[Sequence[Any]]) -> Iterator[int]:
    """`_key_hash` of every row of keys given column by column: a page or a fetch at once (a column of
    plain strings is its own `str`)."""
    texts = [c if set(map(type, c)) <= {str} else map(str, c) for c in columns]
    return map(hash, zip(*texts, strict=True))


_SAMPLE_SIZE = 5
"""How many key values served twice a run keeps to name them (the checks show up to five)."""
_WINDOW = 4_096
"""How many of the latest distinct keys are held as a set, to name repeats (under 1 MB)."""


@dataclass(frozen=True)
class Repeats:
    """Keys the API served more than once in one run."""

    count: int
    """Records beyond the first of their key (a key served three times counts 2)."""
    sample: tuple[Any, ...]
    """Up to five of those keys (a composite key as a list). Best effort: a key repeated far down a
    long list may go unnamed, the count never misses it."""


class _ResourceKeys:
    """The served keys of one resource: every key's hash (8 bytes) in the order served, and a few
    of the keys served twice, by value."""

    def __init__(self) -> None:
        self.hashes: array[int] = array("q")
        # The latest distinct keys (a set, and their order to forget the oldest): a key found there was
        # served before, so its value can be kept. Repeats come from one page, or from a record shifted
        # across a page boundary, well within the window; one repeated farther apart is still counted
        # (from all the hashes, in `repeats`), only not named.
        self.window: set[int] = set()
        self.order: deque[int] = deque()
        self.sample: list[Any] = []
        self.lock = threading.Lock()  # the pages of a child come from several threads
        self.end_unseen: str | None = None
        self.moved: str | None = None
        self._distinct: array[int] | None = None
        self._total = 0

    def add(self, hashes: list[int], columns: Sequence[Sequence[Any]]) -> None:
        """Record the keys of a page in order: `hashes[i]` is the hash of the key whose values are
        `columns[0][i]`, `columns[1][i]`, ... (kept to name it when it repeats a key of the window)."""
        with self.lock:
            if self.window.isdisjoint(hashes) and len(set(hashes)) == len(hashes):
                # No repeat (nearly every page): the window takes them all at once.
                self.window.update(hashes)
                self.order.extend(hashes)
            else:
                for i, key_hash in enumerate(hashes):
                    self._add_one(key_hash, [column[i] for column in columns])
            self._forget_oldest()
            self.hashes.extend(hashes)

    def _add_one(self, key_hash: int, values: Sequence[Any]) -> None:
        if key_hash in self.window:
            if len(self.sample) < _SAMPLE_SIZE:
                value = values[0] if len(values) == 1 else [*values]
                if value not in self.sample:
                    self.sample.append(value)
        else:
            self.window.add(key_hash)
            self.order.append(key_hash)

    def _forget_oldest(self) -> None:
        excess = len(self.order) - _WINDOW
        if excess > _WINDOW // 4:  # a long page: the window is the page's latest keys
            latest = list(self.order)[-_WINDOW:]
            self.order = deque(latest)
            self.window = set(latest)
        else:
            for _ in range(excess):
                self.window.discard(self.order.popleft())

    def distinct(self) -> array[int]:
        if self._distinct is None or len(self.hashes) != self._total:
            self._total = len(self.hashes)
            self._distinct = array("q", sorted(set(self.hashes)))
        return self._distinct


_EXACT_TYPES = {"a string": str, "a whole number": int, "a number": float, "a boolean": bool}
"""The Python type of a JSON value of each kind, as the parser makes it (no subclass)."""


class _KeyStep(ItemTransform[Any, dict[str, Any]]):
    """A resource step handing each page (a list of records) to `observe` at once and passing it on.

    Added where a `map` step of the config would be (affinity 0: after the config's own steps, before
    dlt's incremental step), it sees the same records in the same order, a page at a time.
    """

    def __init__(self, observe: Callable[[list[dict[str, Any]]], None]) -> None:
        super().__init__(lambda item: item)
        self._observe = observe

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, list):
            if item:
                self._observe(item)
        else:
            self._observe([item])
        return item


class ServedKeys:
    """The primary keys each resource was served during one run, at 8 bytes a key, the keys it was
    served more than once, and whether each whole-list read saw the end of its list.

    Its step sees every record before dlt's incremental filter drops unchanged ones (dlt runs
    processing steps before the incremental step), so a key counts as served even when its row is
    not rewritten, and a key served twice is counted even when neither record is written.
    """

    def __init__(self) -> None:
        self._resources: dict[str, _ResourceKeys] = {}
        self._parents: dict[str, str] = {}

    def _keys(self, resource: str) -> _ResourceKeys:
        return self._resources.setdefault(resource, _ResourceKeys())

    def step(self, resource: str, key_columns: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A dlt `map` step recording the key of every record of `resource`, and checking it (one
        record at a time; `observer` takes a page at once).

        A key must be set (else `MissingKeyError`) and keep one kind of value (a number stays a number):
        the kind the warehouse column holds, or, for a table not loaded yet, the kind of the run's first
        record (else `KeyTypeError`, naming the value).

        Args:
            resource: The resource name.
            key_columns: The primary key as warehouse columns; records carry the API's field names
                (camelCase), matched through the naming convention of the schema dlt extracts with.
        """
        observe = self.observer(resource, key_columns)

        def observe_one(record: dict[str, Any]) -> dict[str, Any]:
            observe([record])
            return record

        return observe_one

    def observer(self, resource: str, key_columns: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
        """What `step` does, for a page of records at once: the same checks and keys, record by record
        in order (an error names the first record at fault, and the records before it are recorded),
        with the work of a page done column by column where every key is of its kind."""
        keys = self._keys(resource)
        fields: list[str] = []
        kinds: list[tuple[str, str]] = []  # per key field: (kind, where that kind comes from)
        # The first record sets both, once (a child's pages come from several threads).
        first = threading.Lock()

        def checked(record: dict[str, Any]) -> list[Any]:
            if not fields:
                fields.extend(key_fields(record, key_columns, extract_naming()))
            values = [record.get(field) for field in fields]
            if any(value is None or value == "" for value in values):
                raise MissingKeyError(
                    resource, [f for f, v in zip(fields, values, strict=True) if v in (None, "")], record
                )
            if not kinds:
                stored = _stored_kinds(resource, key_columns)
                kinds.extend(
                    [
                        (kind, f"the warehouse's {resource}.{column} holds {kind.split(' ', 1)[1]}s")
                        if kind is not None
                        else (
                            _kind(value),
                            f"the first {resource} record of this run had {field} {value!r} ({_kind(value)})",
                        )
                        for column, field, value, kind in zip(
                            key_columns, fields, values, stored, strict=True
                        )
                    ]
                )
            for field, value, (kind, before) in zip(fields, values, kinds, strict=True):
                if _kind(value) != kind:
                    raise KeyTypeError(resource, field, value, _kind(value), before)
            return values

        def one_by_one(records: list[dict[str, Any]]) -> None:
            for record in records:
                values = checked(record)
                keys.add([_key_hash(values)], [[value] for value in values])

        def observe(records: list[dict[str, Any]]) -> None:
            if not kinds:  # the first record decides the fields and their kinds
                with first:
                    if not kinds:
                        one_by_one(records[:1])
                        records = records[1:]
            if not fields:  # no key: every record has the empty one
                one_by_one(records)
                return
            columns = [[record.get(field) for record in records] for field in fields]
            exact = [_EXACT_TYPES.get(kind) for kind, _ in kinds]
            if not all(
                expected is not None
                and set(map(type, column)) <= {expected}
                and (expected is not str or "" not in column)
                for column, expected in zip(columns, exact, strict=True)
            ):
                one_by_one(records)  # a key missing, of another kind, or of a subclass: as `step` does
                return
            keys.add(list(_key_hashes(columns)), columns)

        return observe

    def track(self, config: RESTAPIConfig, resources: Iterable[DltResource]) -> None:
        """Add the recording step to every resource built from a `rest_api` config: after the config's
        own processing steps, before dlt's incremental step. Call it before any other step is added."""
        catalog = endpoints(config)
        self._parents.update({name: e.parent for name, e in catalog.items() if e.parent})
        for resource in resources:
            resource.add_step(_KeyStep(self.observer(resource.name, catalog[resource.name].primary_key)))

    def reporter(self, resource: str) -> Callable[[str], None]:
        """A function a paginator of `resource` calls with the reason when it stops short of the end
        of its list (see `ShortPageOffsetPaginator`). The first reason is kept."""
        keys = self._keys(resource)

        def report(reason: str) -> None:
            with keys.lock:
                keys.end_unseen = keys.end_unseen or reason

        return report

    def mover(self, resource: str) -> Callable[[str], None]:
        """A function a paginator of `resource` calls with the reason when a page did not start where
        the page before it ended (see `ShortPageOffsetPaginator`). The first reason is kept."""
        keys = self._keys(resource)

        def report(reason: str) -> None:
            with keys.lock:
                keys.moved = keys.moved or reason

        return report

    def _of_lineage(self, resource: str, reason: Callable[[str, _ResourceKeys], str | None]) -> str | None:
        # A child read from part of its parents' list is part of its own list too.
        seen: set[str] = set()
        name: str | None = resource
        while name is not None and name not in seen:
            seen.add(name)
            keys = self._resources.get(name)
            if keys is not None and (found := reason(name, keys)):
                return found if name == resource else f"its parent {name}: {found}"
            name = self._parents.get(name)
        return None

    def end_unseen(self, resource: str) -> str | None:
        """Why this run did not see the end of the list of `resource` or of its parent's, or None when
        it saw every end."""
        return self._of_lineage(resource, lambda name, keys: keys.end_unseen)

    def moved(self, resource: str) -> str | None:
        """Why the list of `resource` (or of its parent) may have moved under this run's read, so that a
        key missing from it proves nothing on its own: a page that did not start where the one before
        ended, or keys served twice. None for a read that saw its list hold still."""

        def reason(name: str, keys: _ResourceKeys) -> str | None:
            if keys.moved:
                return keys.moved
            repeats = len(keys.hashes) - len(keys.distinct())
            return f"{repeats} record(s) were served twice, so others may have been skipped" if repeats else None

        return self._of_lineage(resource, reason)

    def sorted_hashes(self, resource: str) -> array[int]:
        """The distinct key hashes served for `resource`, sorted for lookups."""
        keys = self._resources.get(resource)
        return keys.distinct() if keys else array("q")

    def repeats(self, resource: str) -> Repeats:
        """The keys served more than once for `resource` in this run.

        Offset paging over data that changes during the sync serves a record twice (and may skip
        another); an API can also serve two different records under one key. Either way the merge
        keeps one row, so only this count shows it.
        """
        keys = self._resources.get(resource)
        if keys is None:
            return Repeats(0, ())
        return Repeats(len(keys.hashes) - len(keys.distinct()), tuple(keys.sample))


@dataclass(frozen=True)
class SweepResult:
    """What a sweep found for one table."""

    served: int
    """Distinct keys the API served in this run."""
    deleted: int
    """Rows removed because the API no longer serves their key."""
    missing: int
    """Keys the API served that are not in the warehouse (a row skipped while it was unchanged)."""
    skipped: bool = False
    """True when nothing was served, so nothing was removed: an empty answer is more likely a fault."""
    closed: int = 0
    """Active versions closed (history tables) because the API no longer serves their key."""
    end_unseen: str | None = None
    """Why nothing was removed although keys were served: the read did not see the end of the list
    (an API ignoring the paging parameters), so a key not served may well still exist."""

    @property
    def warning(self) -> str | None:
        """What a person should read in the run's log about this sweep, or None."""
        if self.end_unseen:
            return (
                f"deleted nothing this run: {self.end_unseen}. Rows the API may no longer serve are kept"
                " until a sync reads the whole list; check the endpoint's paging with the API's owner."
            )
        return None


def _served(served: set[int], rows: Sequence[Sequence[Any]]) -> map[bool]:
    """Whether the key of each warehouse row (its key columns' values) was served."""
    # Column by column (`zip(*rows)` over 10,000 rows took 30 times longer).
    columns = [list(map(itemgetter(i), rows)) for i in range(len(rows[0]))] if rows else []
    return map(served.__contains__, _key_hashes(columns))


def sweep(
    pipeline: dlt.Pipeline,
    table: str,
    key_columns: Sequence[str],
    served: ServedKeys,
    closed_at: datetime | None = None,
) -> SweepResult:
    """Delete the rows of `table` (and their nested rows) whose key the API did not serve in this run;
    in a history table (`history.py`), close their active versions instead (`_dlt_valid_to` = `closed_at`,
    the sync's time), keeping every version and its nested rows.

    Call it only after a run that read the resource's whole list, inside the same writer lock. When
    a paginator of the resource (or of its parent) reported that it could not see the end of its
    list, nothing is deleted or closed (`SweepResult.end_unseen`).
    """
    hashes = served.sorted_hashes(table)
    if (unseen := served.end_unseen(table)) is not None:
        # Part of a list is no list: a key missing from it proves nothing, and a repair reread would
        # meet the same wall, so nothing is deleted and nothing counted missing.
        return SweepResult(served=len(hashes), deleted=0, missing=0, end_unseen=unseen)
    naming = pipeline_naming(pipeline)  # the names dlt gave the table and its columns
    table_name = naming.normalize_table_identifier(table)
    history = stored_history(pipeline, table_name)
    with pipeline.sql_client() as client:

        def column(name: str) -> str:
            return client.escape_column_name(naming.normalize_identifier(name))

        qualified = client.make_qualified_table_name(table_name)
        columns = [column(c) for c in key_columns]
        # A history table's closed versions are the past: only the active ones are compared.
        active = f" where {column(VALID_TO)} is null" if history else ""
        stale: list[tuple[Any, ...]] = []
        present = 0
        # A set while comparing: bisecting the array costs ~17 cache misses a key (3 us), a set one. Its
        # memory is that of the set `distinct` held a moment before, which is gone by now.
        lookup = set(hashes)
        try:
            with client.execute_query(f"select {', '.join(columns)} from {qualified}{active}") as cursor:
                while rows := cursor.fetchmany(10_000):
                    for row, served_ in zip(rows, _served(lookup, rows), strict=True):
                        if served_:
                            present += 1
                        else:
                            stale.append(tuple(row))
        except DatabaseUndefinedRelation:
            return SweepResult(served=len(hashes), deleted=0, missing=len(hashes))  # nothing loaded yet
        if not hashes:
            return SweepResult(served=0, deleted=0, missing=0, skipped=bool(stale))
        if stale:
            match = " and ".join(f"{c} = %s" for c in columns)
            nested = [client.make_qualified_table_name(name) for name in nested_tables(pipeline, table_name)]
            closing = [closed_at or datetime.now(UTC)] if history else []
            with client.begin_transaction():
                for start in range(0, len(stale), _DELETE_BATCH):
                    batch = stale[start : start + _DELETE_BATCH]
                    where = " or ".join(f"({match})" for _ in batch)
                    values = [v for row in batch for v in row]
                    if history:
                        client.execute_sql(
                            f"update {qualified} set {column(VALID_TO)} = %s{active} and ({where})",
                            *closing,
                            *values,
                        )
                    else:
                        client.execute_sql(f"delete from {qualified} where {where}", *values)
                for child in [] if history else nested:
                    client.execute_sql(
                        f"delete from {child} where {column('_dlt_root_id')} not in"
                        f" (select {column('_dlt_id')} from {qualified})"
                    )
    if history:
        return SweepResult(served=len(hashes), deleted=0, missing=len(hashes) - present, closed=len(stale))
    return SweepResult(served=len(hashes), deleted=len(stale), missing=len(hashes) - present)
