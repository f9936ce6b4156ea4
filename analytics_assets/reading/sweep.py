"""Removing what an API no longer serves: neither API has a deletion feed, so a sync that read a
resource's whole list compares the keys it was served with the keys in the warehouse.

Plain dlt: `ServedKeys` adds a processing step to each resource of a `rest_api` config; `plan_sweep`
runs after the read and before the write, `apply_sweep` after the load, with the pipeline's SQL client
(DuckDB, PostgreSQL, any SQL destination).
"""

from __future__ import annotations

import json
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseTerminalException, DatabaseUndefinedRelation
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltResource
from dlt.sources.rest_api import RESTAPIConfig

from analytics_assets.reading.catalog import endpoints
from analytics_assets.reading.naming import (
    VALID_TO,
    extract_naming,
    key_fields,
    nested_tables,
    pipeline_naming,
    stored_history,
)
from analytics_assets.reading.statements import Target

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
        for name, endpoint in catalog.items():
            if endpoint.parent:
                self.relate(name, endpoint.parent)
        for resource in resources:
            resource.add_step(_KeyStep(self.observer(resource.name, catalog[resource.name].primary_key)))

    def relate(self, child: str, parent: str) -> None:
        """Read `child`'s lists from the records of `parent`: an end unseen or a move of the parent's
        list counts for the child too (`track` relates a config's resources)."""
        self._parents[child] = parent

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
            return (
                f"{repeats} record(s) were served twice, so others may have been skipped" if repeats else None
            )

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


UNCONFIRMED_TABLE = "_unconfirmed_deletions"
"""The table, in each API's dataset, of the rows a sweep kept although the API did not serve them: their
read moved under deletions or insertions, so a missing key proved nothing. The next read that sees the
end of a list holding still decides: it deletes them when it does not serve them either, and clears them. Columns: `table_name`, `key_values`
(the key as a JSON list), `missed_at` (the sync that first missed it)."""


class SweepRefusedError(RuntimeError):
    """A sync would delete (or close) more of a table's rows than the warehouse's `max_row_drop` allows."""

    def __init__(self, dataset: str, table: str, deleting: int, rows: int, limit: float) -> None:
        share = deleting / rows
        super().__init__(
            f"this sync would delete {deleting:,} of the {rows:,} rows of {dataset}.{table} ({share:.0%}), more"
            f" than max_row_drop allows ({limit:.0%}; the warehouse resource's max_row_drop,"
            f" ANALYTICS_MAX_ROW_DROP). Nothing was written: the table and its cursor are as they were. If the"
            f" API really removed them, run {dataset}/{table} once with the run config `refresh: true` (or the"
            f" job {dataset}_full_refresh) to accept the deletion."
        )


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will do to one table, decided after the read and before anything is written."""

    table: str
    key_columns: Sequence[str]
    hashes: array[int]
    """The distinct key hashes served, sorted."""
    stale: list[tuple[Any, ...]]
    """Keys of rows to delete (or close): not served by a read that proves it."""
    unconfirmed: list[tuple[Any, ...]]
    """Keys of rows kept although not served: the read moved, and no earlier read missed them too."""
    rows: int = 0
    """The table's (active) rows before the sync."""
    whole: bool = True
    """False when the read proves nothing about what is missing (end unseen, nothing served)."""
    end_unseen: str | None = None
    moved: str | None = None
    skipped: bool = False


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
    unconfirmed: int = 0
    """Rows kept although not served, because the list moved while it was read (`moved`)."""
    moved: str | None = None

    @property
    def warning(self) -> str | None:
        """What a person should read in the run's log about this sweep, or None."""
        if self.end_unseen:
            return (
                f"deleted nothing this run: {self.end_unseen}. Rows the API may no longer serve are kept"
                " until a sync reads the whole list; check the endpoint's paging with the API's owner."
            )
        if self.unconfirmed:
            return (
                f"kept {self.unconfirmed:,} row(s) the API did not serve this run, because the list changed"
                f" while it was read ({self.moved}): a record shifted past a page boundary is not a deleted"
                " one. The next sync that reads the list holding still deletes those it does not serve."
            )
        return None


def _served(served: set[int], rows: Sequence[Sequence[Any]]) -> map[bool]:
    """Whether the key of each warehouse row (its key columns' values) was served."""
    # Column by column (`zip(*rows)` over 10,000 rows took 30 times longer).
    columns = [list(map(itemgetter(i), rows)) for i in range(len(rows[0]))] if rows else []
    return map(served.__contains__, _key_hashes(columns))


def _key_text(row: Sequence[Any]) -> str:
    return json.dumps([str(v) for v in row])


class _Table:
    """The SQL names of one table of a pipeline's dataset, through dlt's naming convention."""

    def __init__(self, pipeline: dlt.Pipeline, client: Any, table: str) -> None:
        self.naming = pipeline_naming(pipeline)  # the names dlt gave the table and its columns
        self.client = client
        self.target = Target.of(client)  # statements written once, sent in the destination's SQL
        self.name = self.naming.normalize_table_identifier(table)
        self.qualified = self.target.table(self.name)
        # The schema says so already before the load that turns a table into history mode adds the column.
        self.history = stored_history(pipeline, self.name) and self._has_column(VALID_TO)
        # A history table's closed versions are the past: only the active ones are compared.
        self.active = f" where {self.column(VALID_TO)} is null" if self.history else ""

    def column(self, name: str) -> str:
        return self.target.column(self.naming.normalize_identifier(name))

    def sql(self, statement: str) -> str:
        return self.target.sql(statement)

    def _has_column(self, name: str) -> bool:
        try:
            self.client.execute_sql(self.sql(f"select {self.column(name)} from {self.qualified} where 1 = 0"))
        except DatabaseUndefinedRelation:
            return True  # no table yet: nothing to compare either way
        except DatabaseTerminalException:
            return False
        return True

    def scan(self, key_columns: Sequence[str], lookup: set[int]) -> tuple[int, list[tuple[Any, ...]]]:
        """(rows whose key is in `lookup`, keys of the others) over the active rows.

        Raises:
            DatabaseUndefinedRelation: Nothing was loaded into the table yet.
        """
        columns = ", ".join(self.column(c) for c in key_columns)
        present, absent = 0, []
        with self.client.execute_query(
            self.sql(f"select {columns} from {self.qualified}{self.active}")
        ) as cursor:
            while rows := cursor.fetchmany(10_000):
                found, missed = partition(lookup, rows)
                present += found
                absent += missed
        return present, absent


def _keep_unconfirmed(
    client: Any, table: str, keys: Sequence[Sequence[Any]], missed_at: datetime, exists: bool
) -> None:
    """Replace the unconfirmed keys of `table` by `keys` (inside the caller's transaction, so `exists`,
    whether the table of unconfirmed keys exists, is asked before: a failed query would end it)."""
    target = Target.of(client)
    qualified = target.table(UNCONFIRMED_TABLE)
    if keys:
        # `text`, not `varchar`: MySQL wants a length for a varchar, and a key may be long
        client.execute_sql(
            target.sql(
                f"create table if not exists {qualified}"
                " (table_name text, key_values text, missed_at timestamp with time zone)"
            )
        )
    elif not exists:
        return
    client.execute_sql(target.sql(f"delete from {qualified} where table_name = ?"), table)
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        values = ", ".join("(?, ?, ?)" for _ in batch)
        params = [v for key in batch for v in (table, _key_text(key), missed_at)]
        client.execute_sql(target.sql(f"insert into {qualified} values {values}"), *params)


def _exists(client: Any, table: str) -> bool:
    target = Target.of(client)
    try:
        client.execute_sql(target.sql(f"select 1 from {target.table(table)} limit 1"))
    except DatabaseUndefinedRelation:
        return False
    return True


def plan_sweep(
    pipeline: dlt.Pipeline, table: str, key_columns: Sequence[str], served: ServedKeys, max_drop: float = 1.0
) -> SweepPlan:
    """Decide, after a read of the whole list of `table` and before it is written, which rows a sweep
    deletes (`decide`), from the table's keys in the warehouse.

    Raises:
        SweepRefusedError: More than `max_drop` of the table's rows would go: the caller writes nothing.
    """
    hashes = served.sorted_hashes(table)
    if (unseen := served.end_unseen(table)) is not None:
        # Part of a list is no list: the table is not even read.
        return SweepPlan(table, key_columns, hashes, [], [], whole=False, end_unseen=unseen)
    with pipeline.sql_client() as client:
        try:
            present, absent = _Table(pipeline, client, table).scan(key_columns, set(hashes))
        except DatabaseUndefinedRelation:
            return SweepPlan(table, key_columns, hashes, [], [])  # nothing loaded yet
    return decide(pipeline.dataset_name, table, key_columns, served, present, absent, max_drop)


def decide(
    dataset: str,
    table: str,
    key_columns: Sequence[str],
    served: ServedKeys,
    present: int,
    absent: list[tuple[Any, ...]],
    max_drop: float = 1.0,
) -> SweepPlan:
    """Which rows of a table a read deletes, given what it served and the table's rows (`present` of
    them served, the keys of the `absent` ones): the rule, apart from the warehouse.

    - A read that did not see the end of its list (or of its parent's) proves nothing: nothing goes.
    - A read that served nothing deletes nothing (more likely a fault than an emptied API).
    - A read of a list that moved under it (`ServedKeys.moved`: a page that did not start where the one
      before ended, keys served twice) may have skipped live records: nothing goes; the rows it missed
      are remembered as unconfirmed (`UNCONFIRMED_TABLE`) until a read that holds still decides.
    - A read that saw the end of a list that held still deletes every row it did not serve.

    Raises:
        SweepRefusedError: More than `max_drop` of the table's rows would go: the caller writes nothing.
    """
    hashes = served.sorted_hashes(table)
    if (unseen := served.end_unseen(table)) is not None:
        return SweepPlan(table, key_columns, hashes, [], [], whole=False, end_unseen=unseen)
    rows = present + len(absent)
    if not hashes:
        return SweepPlan(table, key_columns, hashes, [], [], rows, whole=False, skipped=bool(absent))
    moved = served.moved(table) if absent else None  # what a move costs: rows missed that may live
    stale, unconfirmed = ([], absent) if moved else (absent, [])
    if len(stale) > max_drop * rows:
        raise SweepRefusedError(dataset, table, len(stale), rows, max_drop)
    return SweepPlan(table, key_columns, hashes, stale, unconfirmed, rows, moved=moved)


def partition(lookup: set[int], rows: Sequence[Sequence[Any]]) -> tuple[int, list[tuple[Any, ...]]]:
    """(how many of `rows`, each the key values of a table row, have their key hash in `lookup`, the
    keys of the others)."""
    absent = [tuple(row) for row, found in zip(rows, _served(lookup, rows), strict=True) if not found]
    return len(rows) - len(absent), absent


def apply_sweep(pipeline: dlt.Pipeline, plan: SweepPlan, closed_at: datetime | None = None) -> SweepResult:
    """After the load: delete the rows of `plan.stale` (and their nested rows), or in a history table
    (`history.py`) close their active versions (`_dlt_valid_to` = `closed_at`, the sync's time), keeping
    every version; remember `plan.unconfirmed` for the next whole read. Inside the same writer lock as
    the load."""
    served = len(plan.hashes)
    if not plan.whole:
        return SweepResult(served, 0, 0, skipped=plan.skipped, end_unseen=plan.end_unseen)
    with pipeline.sql_client() as client:
        names = _Table(pipeline, client, plan.table)
        try:
            present, _ = names.scan(plan.key_columns, set(plan.hashes))
        except DatabaseUndefinedRelation:
            return SweepResult(served, 0, served)
        closing = closed_at or datetime.now(UTC)
        exists = _exists(client, UNCONFIRMED_TABLE)
        with client.begin_transaction():
            _delete(pipeline, client, names, plan, closing)
            _keep_unconfirmed(client, names.name, plan.unconfirmed, closing, exists)
    deleted, closed = (0, len(plan.stale)) if names.history else (len(plan.stale), 0)
    return SweepResult(
        served,
        deleted,
        served - present,
        closed=closed,
        unconfirmed=len(plan.unconfirmed),
        moved=plan.moved,
    )


def _delete(pipeline: dlt.Pipeline, client: Any, names: _Table, plan: SweepPlan, closing: datetime) -> None:
    if not plan.stale:
        return
    match = " and ".join(f"{names.column(c)} = ?" for c in plan.key_columns)
    for start in range(0, len(plan.stale), _DELETE_BATCH):
        batch = plan.stale[start : start + _DELETE_BATCH]
        where = " or ".join(f"({match})" for _ in batch)
        values = [v for row in batch for v in row]
        if names.history:
            client.execute_sql(
                names.sql(
                    f"update {names.qualified} set {names.column(VALID_TO)} = ?{names.active} and ({where})"
                ),
                closing,
                *values,
            )
        else:
            client.execute_sql(names.sql(f"delete from {names.qualified} where {where}"), *values)
    if not names.history:
        for nested in nested_tables(pipeline, names.name):
            client.execute_sql(
                names.sql(
                    f"delete from {names.target.table(nested)} where {names.column('_dlt_root_id')}"
                    f" not in (select {names.column('_dlt_id')} from {names.qualified})"
                )
            )
