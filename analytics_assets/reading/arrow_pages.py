"""Pages as Arrow tables where that changes nothing in the warehouse.

dlt normalizes dict rows one value at a time (inferring, coercing and parsing every timestamp with
pendulum): on the large flat endpoints that is most of a load's CPU time. dlt writes an Arrow table
to Parquet as it is, so a page of plain records is handed to dlt as one, built the way dlt's row
normalizer would have stored it:

- a column the table has: its stored type (text, bigint, double, bool, timestamp), every value
  checked to be one dlt stores in that column as it is;
- a table's first load: its columns as the row path creates them, from each column's first non-null
  value (dlt's type detections and preferred types), in the row path's order (the first record's
  fields, dlt's `_dlt_load_id` and `_dlt_id`, then each further field where its first value comes),
  with dlt's hints by name (`_dlt_id` is the row key); `_dlt_load_id` and `_dlt_id` are filled here.

A page goes to dlt as rows, unchanged, when a value is not one its column stores as it is (a string
where numbers were: drift, which the row path turns into a variant column like
`lead_score__v_text`), is nested (child tables, JSON columns), is a timestamp Arrow and pendulum
might read differently, or when a loaded table gets a new column (the row normalizer reports it:
the `new_columns` metadata). From such a page on, the rest of the read goes as rows too, so what the
row path adds comes after what the Arrow pages made, as in a read of rows only. Tables that keep
history (scd2, whose row ids hash the rows) are read as rows.

The check is one pass over each column's values in C (`set(map(type, values))`) and a regular
expression over the timestamp strings: a small part of what building the Arrow table costs, and far
less than the row normalizer it replaces (benchmarks/README.md).

Plain dlt and pyarrow, no Dagster import: a step of a `rest_api` resource (`rest.py`).
"""

from __future__ import annotations

import base64
import functools
import inspect
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, cast

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.utils import DLT_ID_LENGTH_BYTES
from dlt.common.schema import Schema, TColumnSchema
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID, TColumnDefaultHint, TTypeDetections
from dlt.common.schema.utils import (
    autodetect_sc_type,
    compile_simple_regex,
    has_default_column_prop_value,
    hint_to_column_prop,
)
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable
from dlt.extract.items_transform import ItemTransform

_NONE = type(None)
_PY_TYPES = {str: "text", int: "bigint", float: "double", bool: "bool"}
"""The JSON scalars and the type dlt's row normalizer gives a column whose first value is one."""
_ACCEPTS: dict[str, frozenset[type]] = {
    "text": frozenset({str, _NONE}),
    "timestamp": frozenset({str, _NONE}),
    "bigint": frozenset({int, _NONE}),
    "double": frozenset({float, int, _NONE}),  # dlt coerces a whole number into a double column as is
    "bool": frozenset({bool, _NONE}),
}
"""The Python types whose values dlt stores in a column of each type as they are (no variant)."""
_ARROW = {"text": pa.string(), "bigint": pa.int64(), "double": pa.float64(), "bool": pa.bool_()}
_TIMESTAMP = pa.timestamp("us", tz="UTC")
# The ISO 8601 form both pendulum (dlt's row path) and Arrow's cast read to the same instant.
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"


def _columns(rows: list[dict[str, Any]], fields: list[str]) -> Sequence[Sequence[Any]]:
    """The values of each field, row by row (None where a row lacks the field)."""
    if len(fields) > 1:
        try:  # every row has every field (nearly always): one pass in C
            return list(zip(*map(itemgetter(*fields), rows), strict=True))
        except KeyError:
            pass
    return [[row.get(field) for row in rows] for field in fields]


def _dlt_ids(n: int, size: int = DLT_ID_LENGTH_BYTES) -> pa.Array:
    """`n` values of `_dlt_id` as dlt makes them (`generate_dlt_ids`: `size` random bytes in standard
    base64 without its padding), made at once instead of one by one: the bytes of each id, zero bytes
    up to a multiple of 3, encode on their own, and the characters before the zeros' are those of the
    id's bytes alone (base64 pads with zero bits)."""
    block = -(-size // 3) * 3
    chars = -(-size * 4 // 3)  # the characters of `size` bytes, without padding
    random = secrets.token_bytes(size * n)
    blocks = bytearray(block * n)
    for i in range(size):  # byte i of every id: one strided copy in C each
        blocks[i::block] = random[i::size]
    width = block // 3 * 4
    offsets = pa.array(range(0, width * n + 1, width), pa.int32()).buffers()[1]
    encoded = pa.StringArray.from_buffers(n, offsets, pa.py_buffer(base64.b64encode(blocks)))
    return pc.utf8_slice_codeunits(encoded, 0, chars)


def _first(values: Sequence[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _default_hints(schema: Schema, name: str) -> dict[TColumnDefaultHint, bool]:
    """Whether each of the schema's default hints matches the column `name`, in the schema's order.

    From the schema's public settings, compiled as dlt compiles them (the row normalizer asks the
    schema's compiled copy of the same settings, which dlt keeps private).
    """
    hints = schema.settings.get("default_hints") or {}
    return {
        hint: any(compile_simple_regex(regex).search(name) for regex in regexes)
        for hint, regexes in hints.items()
    }


def _type_detections(schema: Schema) -> list[TTypeDetections]:
    """The type detections the row normalizer applies to a new column's first value (`iso_timestamp`):
    the schema's settings, else its normalizers' (where dlt's row normalizer looks, in that order)."""
    detections = schema.settings.get("detections")
    if detections:
        return list(detections)
    legacy = schema.to_dict(bump_version=False)["normalizers"].get("detections") or []
    return cast(list[TTypeDetections], list(legacy))


def _row_path_column(schema: Schema, name: str, data_type: str) -> TColumnSchema:
    """The column dlt's row normalizer creates for a first value of `data_type`: its nullability and
    the schema's default hints by name (`_dlt_id` is unique and the row key), merged with the hints
    the resource gave the column before (a primary key is not nullable)."""
    hints = _default_hints(schema, name)
    column: TColumnSchema = {
        "name": name,
        "data_type": data_type,  # type: ignore[typeddict-item]
        "nullable": not hints.get("not_null", False),
    }
    for hint, value in hints.items():
        if hint != "not_null":
            prop = hint_to_column_prop(hint)
            if not has_default_column_prop_value(prop, value):
                column[prop] = value  # type: ignore[literal-required]
    return column


class _Page:
    """One page of plain records as an Arrow table with the columns the row path would give it.

    Args:
        rows: The page's records.
        schema: The schema dlt extracts with (the warehouse's, plus what this read added).
        table: The resource's table.
        load_id: The load package's id (`_dlt_load_id`).
        key: The primary key's columns (not nullable).
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        schema: Schema,
        table: str,
        load_id: str,
        key: frozenset[str],
        names: dict[str, str],
    ) -> None:
        self.rows = rows
        self.key = key
        self.schema = schema
        self.table_name = table
        self.load_id = load_id
        self.names = names
        self.columns = (schema.tables.get(table) or {}).get("columns") or {}
        self.new_table = C_DLT_ID not in self.columns
        """Nothing was loaded or extracted into this table yet: the page creates its columns."""
        self.created: dict[str, TColumnSchema] = {}

    def _name(self, field: str) -> str:
        name = self.names.get(field)
        if name is None:
            name = self.names[field] = self.schema.naming.normalize_identifier(field)
        return name

    def table(self) -> pa.Table | None:
        """The Arrow table, or None when the page must go as rows."""
        rows = self.rows
        # A new table's fields in order of first appearance (dicts keep their keys' order).
        fields = list({f: None for row in rows for f in row} if self.new_table else set().union(*rows))
        columns = _columns(rows, fields)
        names: set[str] = set()
        arrays: dict[str, pa.Array] = {}
        timestamps: list[str] = []
        for field, values in zip(fields, columns, strict=True):
            if not field or field.isspace() or "__" in field:
                # A blank name (the row path's column `_empty`), or one dlt's row path breaks at `__`
                # (`a__b` is the field `b` of `a`): the row path names its column.
                return None
            name = self._name(field)
            if name in names or name.startswith("_dlt"):
                return None  # two fields in one column, or one of dlt's own: the row path decides
            names.add(name)
            column = self.columns.get(name) or {}
            data_type = column.get("data_type")
            if data_type is None:
                first = _first(values)
                if first is None:
                    continue  # null only: the row path creates no column either
                if not self.new_table:
                    # A new column of a loaded table goes as rows, whose normalizer reports it to the
                    # run (the `new_columns` metadata); Arrow columns are added during extract, unreported.
                    return None
                kind = type(first)
                if kind not in _PY_TYPES:
                    return None  # nested, or a subclass dlt may treat otherwise
                data_type = (
                    self.schema.get_preferred_type(name)
                    or autodetect_sc_type(_type_detections(self.schema), kind, first)
                    or _PY_TYPES[kind]
                )
                # Hints the resource gave the column before (a primary key) stay, as in the row path.
                self.created[field] = {**_row_path_column(self.schema, name, data_type), **column}  # type: ignore[typeddict-item]
            accepts = _ACCEPTS.get(data_type)
            if accepts is None or not set(map(type, values)) <= accepts:
                return None
            try:
                if data_type == "timestamp":
                    arrays[name] = pa.array(values, pa.string())
                    timestamps.append(name)
                else:
                    arrays[name] = pa.array(values, _ARROW[data_type])
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                return None
        if timestamps:
            # One check of every timestamp string of the page (a call per column costs more than it checks).
            strings = pa.concat_arrays([arrays[name] for name in timestamps])
            if pc.all(pc.match_substring_regex(strings, _ISO)).as_py() is False:
                return None
            try:
                arrays.update({name: arrays[name].cast(_TIMESTAMP) for name in timestamps})
            except pa.ArrowInvalid:
                return None
        if self.created:
            self._create_columns()
        arrays[C_DLT_LOAD_ID] = pa.array([self.load_id] * len(rows), pa.string())
        arrays[C_DLT_ID] = _dlt_ids(len(rows))
        # In the table's order, as nullable as the columns (dlt reorders a table, and warns about
        # every difference in nullability, otherwise).
        order = [name for name in self.columns if name in arrays]
        fields_ = [
            pa.field(
                name,
                arrays[name].type,
                nullable=name not in self.key and self.columns[name].get("nullable", True),
            )
            for name in order
        ]
        return pa.Table.from_arrays([arrays[name] for name in order], schema=pa.schema(fields_))

    def _create_columns(self) -> None:
        """Add the page's columns to the table as the row path would: the columns of the first row in
        its order, dlt's `_dlt_load_id` and `_dlt_id`, then the others in the order of their first
        values (row by row)."""
        first_row = [f for f, v in self.rows[0].items() if v is not None and f in self.created]
        rest = self._first_appearance([f for f in self.created if f not in first_row])
        columns = [self.created[f] for f in first_row]
        columns += [_row_path_column(self.schema, name, "text") for name in (C_DLT_LOAD_ID, C_DLT_ID)]
        columns += [self.created[f] for f in rest]
        self.schema.update_table(
            {"name": self.table_name, "columns": {str(c.get("name")): c for c in columns}},
            normalize_identifiers=False,
        )
        self.columns = self.schema.tables[self.table_name]["columns"]

    def _first_appearance(self, fields: list[str]) -> list[str]:
        """`fields` in the order the row path meets their first non-null values (row by row)."""
        seen: dict[str, None] = {}
        wanted = set(fields)
        for row in self.rows:
            for field, value in row.items():
                if value is not None and field in wanted:
                    seen.setdefault(field)
            if len(seen) == len(wanted):
                break
        return list(seen)


BATCH_ROWS = 5_000
"""Rows per Arrow table: dlt computes a table's schema for every Arrow item it extracts (about 6 ms,
as much as normalizing 200 rows), so pages are joined into tables of this many rows (50 pages)."""


def batched_pages(gen: Any, rows: int = BATCH_ROWS) -> Any:
    """A resource's generator (function) whose pages are joined into lists of at least `rows` records.

    Every step after it (processing steps, dlt's incremental step, `ArrowPages`) sees the same records
    in the same order, in fewer, longer lists; paging itself (requests, the end of a list) is untouched.
    """

    def _batches(pages: Iterator[Any]) -> Iterator[Any]:
        batch: list[Any] = []
        for page in pages:
            if not isinstance(page, list):
                yield from ([batch, page] if batch else [page])
                batch = []
                continue
            batch.extend(page)
            if len(batch) >= rows:
                yield batch
                batch = []
        if batch:
            yield batch

    if inspect.isgenerator(gen):
        return _batches(gen)

    @functools.wraps(gen)
    def _wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from _batches(gen(*args, **kwargs))

    return _wrapper


class ArrowPages(ItemTransform[Any, dict[str, Any]]):
    """A resource step handing each page of plain records to dlt as an Arrow table (see the module).

    Placed after dlt's incremental step (whose cursor and state stay those of rows) and every
    processing step (credentials dropped, keys recorded for the sweep, parent fields renamed).

    Args:
        resource: The resource (its table in the source's schema).
        primary_key: The resource's primary key, as the API names its fields.
        history: Whether the resource's table keeps history: called per read, as history mode is
            switched on after the resource is built.
    """

    placement_affinity = 1.05  # after the incremental step (1), before dlt's item limit (1.1)

    def __init__(self, resource: str, primary_key: Sequence[str], history: Callable[[], bool]) -> None:
        super().__init__(lambda item: item)
        self.resource = resource
        self.primary_key = tuple(primary_key)
        self.history = history
        self.rows_only = False
        """Set when a page went as rows: the rest of the read goes as rows too (see the module)."""
        self._lock = threading.Lock()  # a child's pages come from several threads
        self._names: dict[str, str] = {}  # field -> column, as dlt's naming convention says
        self.arrow_pages = 0
        self.row_pages = 0

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if not isinstance(item, list) or not item:
            return item
        table = None if self.rows_only else self._table(item)
        if table is None:
            self.rows_only = True
            self.row_pages += 1
            return item
        self.arrow_pages += 1
        return table

    def _table(self, rows: list[Any]) -> pa.Table | None:
        if self.history() or not all(type(row) is dict for row in rows):
            return None
        try:
            schema = dlt.current.source_schema()
            load_id = dlt.current.load_package_state()["load_id"]
        except (CurrentSourceSchemaNotAvailable, CurrentLoadPackageStateNotAvailable):
            return None
        with self._lock:  # a page may add columns to the schema: one page at a time
            if self.rows_only:
                return None
            key = frozenset(schema.naming.normalize_identifier(k) for k in self.primary_key)
            return _Page(rows, schema, self.resource, load_id, key, self._names).table()
