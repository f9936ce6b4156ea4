"""Records as people fill them, made storable without losing a value.

Survey answers, custom person fields and contact attributes hold whatever people and scripts put
there. Four kinds of content would otherwise stop a whole endpoint or lose a value without a word:

- a lone surrogate (`"\\ud83d"`: half an emoji cut by a browser) is valid JSON but no valid UTF-8:
  dlt cannot write it. It is replaced by U+FFFD, the Unicode replacement character;
- NUL (`"\\u0000"`): PostgreSQL refuses it in text and JSON. Where the warehouse refuses it
  (`replace_nul`), it is replaced by U+FFFD too; DuckDB keeps it;
- a number no warehouse column type holds: an integer beyond 64 bits (`2**70`) or a number beyond a
  double (`1e400`, which `transport.NumberText` keeps as served). It is stored as its text, all digits
  kept (a column of numbers gets dlt's text variant beside it, `lead_score__v_text`);
- two fields whose names meet in one column (`leadScore` and `lead_score`, `Email` and `email`,
  `Company Name` and `company_name`; nested objects too: `a__b` and `a.b`): dlt would keep one value.
  The field the API documents keeps the column (`meta.country` too; else the shallowest, then the first
  name in code point order); each other gets a column of its own, named the column, `__x` and the first
  8 hex digits of the SHA-256 of its name as served (`lead_score__xa2c21153`): the same field gets the same column in every record holding both,
  on every run. Which fields meet is decided per record: a record holding only one of them keeps it in
  the column (the API's own fields are in every record, so a custom field meeting one always moves).
  A field named like one of dlt's own columns (`_dlt_id`) is renamed the same way.

Values inside a JSON column (`responses.data`) are made storable the same way; their keys are the
customer's and stay as they are, except a key that meets another only after a replacement (two keys
cut at the same emoji), which gets the same suffix.

Every change is counted per table (`OddValues`), for the asset's metadata and one line of the run's log.
The result depends on the record alone: the same record is stored the same way on every run.

Plain dlt, no Dagster import: a step of every `rest_api` resource (`rest.py`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

import orjson
from dlt.common.normalizers.naming import NamingConvention
from dlt.extract.items_transform import ItemTransform

from analytics_assets.reading.naming import extract_field_naming
from analytics_assets.reading.transport import NumberText

LONE_SURROGATE = "lone surrogate replaced"
NUL = "NUL replaced"
NUMBER_AS_TEXT = "number stored as text"
RENAMED = "field given its own column"
KINDS = (LONE_SURROGATE, NUL, NUMBER_AS_TEXT, RENAMED)
"""What the step changes, as counted (`OddValues.counts`) and named in the asset's metadata."""

REPLACEMENT = "\ufffd"
INT64 = range(-(2**63), 2**63)
"""The integers every warehouse's `bigint` holds."""
DLT_COLUMNS = frozenset(
    {
        "_dlt_id",
        "_dlt_load_id",
        "_dlt_parent_id",
        "_dlt_list_idx",
        "_dlt_root_id",
        "_dlt_valid_from",
        "_dlt_valid_to",
    }
)
"""dlt's own columns (`snake_case`): a field loaded into one would overwrite dlt's value."""
_EMPTY_KEY = "_empty"
"""The column dlt's relational normalizer gives an empty or blank field name."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONG_NUMBER = b"0" * 19
_DIGITS = bytes(ord("0") if chr(i).isdigit() and i < 128 else ord(" ") for i in range(256))
_TEXT_VARIANT = "v_text"
"""dlt's name for a column's text variant (`<column>__v_text`)."""
_FLAT = frozenset({str, int, float, bool, type(None)})


def name_tag(name: str) -> str:
    """The suffix that sets a field's own column apart: `x` and 8 hex digits of the SHA-256 of its name as
    served (a letter first: naming conventions prefix an identifier that starts with a digit)."""
    return "x" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


class OddValues:
    """What the steps of one run changed to make records storable, per table: counts by kind, and the
    columns fields were given. Shared by every resource of a run (threads too)."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = {}
        self._renamed: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, table: str, counts: Counter[str], renamed: dict[str, str]) -> None:
        with self._lock:
            self._counts.setdefault(table, Counter()).update(counts)
            self._renamed.setdefault(table, {}).update(renamed)

    def counts(self, table: str) -> dict[str, int]:
        """Values changed in `table` this run, by kind (`KINDS`; kinds that did not happen left out)."""
        with self._lock:
            counted = self._counts.get(table) or Counter()
            return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def renamed(self, table: str) -> dict[str, str]:
        """The fields of `table` given a column of their own this run: the field (dots for nesting) and
        its column."""
        with self._lock:
            return dict(sorted((self._renamed.get(table) or {}).items()))

    def summary(self, table: str) -> str | None:
        """One line saying what was changed in `table` this run, or None when nothing was."""
        counts = self.counts(table)
        if not counts:
            return None
        said = ", ".join(f"{n} {kind}" for kind, n in counts.items() if kind != RENAMED)
        renamed = self.renamed(table)
        if renamed:
            fields = ", ".join(f"{field!r} -> {column}" for field, column in list(renamed.items())[:10])
            said = ", ".join(filter(None, [said, f"fields given their own column: {fields}"]))
        return (
            f"{table}: records held values the warehouse cannot store as served; loaded them all, with {said}"
            " (see the README's table of odd values)."
        )


class _Record:
    """Makes one record storable, counting what it changes."""

    def __init__(
        self,
        naming: NamingConvention,
        breaks_paths: bool,
        json_columns: frozenset[str],
        documented: frozenset[str],
        replace_nul: bool,
        names: dict[str, str],
    ) -> None:
        self.naming = naming
        self.breaks_paths = breaks_paths
        self.json_columns = json_columns
        self.documented = documented
        self.replace_nul = replace_nul
        self.names = names
        self.counts: Counter[str] = Counter()
        self.renamed: dict[str, str] = {}

    # -- values --

    def text(self, value: str) -> str:
        if value.isascii() and not (self.replace_nul and "\x00" in value):
            return value
        if _SURROGATE.search(value):
            value = _SURROGATE.sub(REPLACEMENT, value)
            self.counts[LONE_SURROGATE] += 1
        if self.replace_nul and "\x00" in value:
            value = value.replace("\x00", REPLACEMENT)
            self.counts[NUL] += 1
        return value

    def value(self, value: Any, in_json: bool) -> Any:
        """The value made storable. A number no column type holds becomes its text: plain text inside a
        JSON column, a `NumberText` elsewhere, which `columns` moves into the field's text variant."""
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is int:
            if value in INT64:
                return value
            self.counts[NUMBER_AS_TEXT] += 1
            return str(value) if in_json else NumberText(value)
        if kind is dict:
            return self.object(value, in_json)
        if kind is list:
            return [self.value(v, in_json) for v in value]
        if kind is NumberText:
            self.counts[NUMBER_AS_TEXT] += 1
            return str(value) if in_json else value
        if isinstance(value, str):  # a str the loader made (a path-safe parent id), unchanged when storable
            return self.text(value)
        return value

    def object(self, value: dict[str, Any], in_json: bool, root: bool = False) -> dict[str, Any]:
        """The object with storable keys and values. Two keys that meet only once replaced stay apart."""
        result: dict[str, Any] = {}
        for key, item in value.items():
            storable = self.text(key)
            if storable != key and (storable in value or storable in result):
                storable = f"{storable}__{name_tag(key)}"
            inside = in_json or (root and self.name(storable) in self.json_columns)
            result[storable] = self.value(item, inside)
        return result

    # -- columns --

    def name(self, key: str) -> str:
        name = self.names.get(key)
        if name is None:
            if not key or key.isspace():
                name = _EMPTY_KEY
            elif self.breaks_paths:
                name = self.naming.normalize_path(key)
            else:
                name = self.naming.normalize_identifier(key)
            self.names[key] = name
        return name

    def leaves(
        self, row: dict[str, Any], path: tuple[str, ...] = (), served: tuple[str, ...] = ()
    ) -> Iterable[tuple[str, dict[str, Any], str, tuple[str, ...], tuple[str, ...]]]:
        """Where dlt's relational normalizer puts each field of a row it flattens (a root row, or an
        object in a list): (its column, the object holding it, its name, the columns' path to that
        object, the served names on the way)."""
        for key, value in row.items():
            name = self.name(key)
            column = self.naming.shorten_fragments(*path, name) if path else name
            if type(value) is dict and column not in self.json_columns:
                yield from self.leaves(value, (*path, name), (*served, key))
            else:
                yield column, row, key, path, served

    def _column(self, path: tuple[str, ...], key: str) -> str:
        name = self.name(key)
        return self.naming.shorten_fragments(*path, name) if path else name

    def columns(self, row: dict[str, Any], root: bool) -> None:
        """Give each field of a flattened row a column of its own (see the module), then the rows of the
        lists it holds (their child tables)."""
        for _, holder, key, path, served in list(self.leaves(row)):
            value = holder[key]
            if type(value) is NumberText:
                # dlt would read the text back into the field's numeric column (and fail, or lose digits):
                # into the column dlt gives the field's text values instead.
                holder[f"{self.name(key)}__{_TEXT_VARIANT}"] = str(holder.pop(key))
            elif type(value) is list and (not key or key.isspace()):
                # dlt names a list's table after its field: a blank name would send its rows into the
                # parent's own table. Named like dlt names a blank field's column.
                new_key = _EMPTY_KEY if _EMPTY_KEY not in holder else f"{_EMPTY_KEY}__{name_tag(key)}"
                holder[new_key] = holder.pop(key)
                self.renamed[".".join((*served, key))] = self._column(path, new_key)
                self.counts[RENAMED] += 1
        for _ in range(8):  # a renamed field may meet another: look again (once more at most, in practice)
            by_column: dict[str, list[tuple[dict[str, Any], str, tuple[str, ...], tuple[str, ...]]]] = {}
            for column, holder, key, path, served in self.leaves(row):
                by_column.setdefault(column, []).append((holder, key, path, served))
            meeting = {c: f for c, f in by_column.items() if len(f) > 1 or c in DLT_COLUMNS}
            if not meeting:
                break
            for column, fields in meeting.items():
                # The documented field first, then the shallowest, then by name: the same order whatever
                # the record's order of fields.
                fields.sort(
                    key=lambda f: (
                        not (root and ".".join((*f[3], f[1])) in self.documented),
                        len(f[3]),
                        f[3],
                        f[1],
                    )
                )
                for holder, key, path, served in fields[0 if column in DLT_COLUMNS else 1 :]:
                    new_key = f"{self.name(key).lstrip('_')}__{name_tag(key)}"
                    holder[new_key] = holder.pop(key)
                    self.renamed[".".join((*served, key))] = self._column(path, new_key)
                    self.counts[RENAMED] += 1
        for _, holder, key, _, _ in list(self.leaves(row)):
            value = holder[key]
            if type(value) is list:
                self._list_rows(value)

    def _list_rows(self, items: list[Any]) -> None:
        for i, item in enumerate(items):
            if (
                type(item) is NumberText
            ):  # a list's numbers go to its table's `value` column: its text variant
                items[i] = {f"value__{_TEXT_VARIANT}": str(item)}
            elif type(item) is dict:
                self.columns(item, root=False)
            elif type(item) is list:
                self._list_rows(item)


def _dumps_default(value: Any) -> Any:
    if isinstance(value, NumberText):
        raise TypeError("a number kept as text")
    if isinstance(value, str):
        return str(value)
    raise TypeError(type(value).__name__)


def _values_storable(rows: list[Any], replace_nul: bool) -> bool:
    """Whether every value of the page is storable as it is, in one pass in C: orjson refuses lone
    surrogates and integers beyond 64 bits, hands `NumberText` to its default, and writes NUL as an escape;
    an integer of 19 digits or more (maybe beyond a signed 64-bit one) is looked for in the text."""
    try:
        text = orjson.dumps(rows, default=_dumps_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except TypeError:
        return False
    return not (replace_nul and b"\\u0000" in text) and _LONG_NUMBER not in text.translate(_DIGITS)


class OddValuesStep(ItemTransform[Any, dict[str, Any]]):
    """A resource step making every record of a page storable (see the module), counting the changes in
    `report`.

    Added first, right after the config's own processing steps: every later step (hashing, the served
    keys, dlt's incremental step, Arrow pages) sees storable records.

    Args:
        resource: The resource (its table).
        json_columns: The fields loaded as one JSON column each (their insides are not flattened).
        documented: The fields the API documents (dots for nesting, `meta.country`): each keeps its
            column when another meets it.
        replace_nul: Replace NUL (the warehouse refuses it).
        report: Collects what was changed, for the run (None: changed, not reported).
    """

    def __init__(
        self,
        resource: str,
        json_columns: Collection[str] = (),
        documented: Collection[str] = (),
        replace_nul: bool = True,
        report: OddValues | None = None,
    ) -> None:
        super().__init__(lambda item: item)
        self.resource = resource
        self._json_fields = tuple(json_columns)
        self.documented = frozenset(documented)
        self.replace_nul = replace_nul
        self.report = report
        self._naming: NamingConvention | None = None
        self._breaks_paths = True
        self._json_columns: frozenset[str] = frozenset()
        self._names: dict[str, str] = {}  # field name -> its column under the naming (a cache)

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, dict):
            return self._page([item])[0]
        if isinstance(item, list) and item:
            return self._page(item)
        return item

    def _page(self, rows: list[Any]) -> list[Any]:
        if self._naming is None:
            self._naming, self._breaks_paths = extract_field_naming()
            self._json_columns = frozenset(self._naming.normalize_path(f) for f in self._json_fields)
        record = _Record(
            self._naming,
            self._breaks_paths,
            self._json_columns,
            self.documented,
            self.replace_nul,
            self._names,
        )
        if not _values_storable(rows, self.replace_nul):
            rows[:] = [record.object(row, False, root=True) if type(row) is dict else row for row in rows]
        keys: set[str] = set().union(*(row for row in rows if type(row) is dict))
        plain = len({record.name(k) for k in keys}) == len(keys) and not any(
            record.name(k) in DLT_COLUMNS for k in keys
        )
        for row in rows:
            # Columns are looked at per record only where they may meet: nested objects and lists, or
            # names that meet somewhere in the page.
            if type(row) is dict and (not plain or not _FLAT.issuperset(map(type, row.values()))):
                record.columns(row, root=True)
        if self.report is not None and (record.counts or record.renamed):
            self.report.add(self.resource, record.counts, record.renamed)
        return rows
