"""Hashing and dropping named fields of an API's records before dlt sees them.

A field is a path of names (`("attributes", "email")`: the `email` of the object `attributes`); a list
met on the way is walked into, item by item (`notes.text`: the `text` of every note). What the fields
are comes from the settings (`personal_data.py`); this module only applies them.

A hashed value is the hex HMAC-SHA256 of its text under the key: the same value gives the same hash in
every table and every run, and nobody without the key can tell which address a hash stands for by
hashing a list of addresses. `null` stays `null` (it says nothing about anybody).

Plain dlt, no Dagster import: a step of a `rest_api` resource (`rest.py`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.exceptions import PipelineStateNotAvailable, SourceSectionNotAvailable
from dlt.extract.items_transform import ItemTransform

Path = tuple[str, ...]
FORM_STATE = "personal_data"
"""The key, in a resource's dlt state, of the form its last load wrote the fields in (`FieldRules.form`)."""
_BLOCK = 64  # SHA-256's block size: HMAC pads the key to it


class Hasher:
    """Keyed hashes (HMAC-SHA256, RFC 2104) of values, as 64 lowercase hex digits.

    HMAC's two keyed SHA-256 states are computed once and copied for each value: a value costs two
    state copies instead of `hmac.digest`'s key setup each time (under half the time, measured).
    The key itself is not kept, and never shown (`repr`).
    """

    def __init__(self, key: str) -> None:
        raw = key.encode()
        if len(raw) > _BLOCK:
            raw = hashlib.sha256(raw).digest()
        padded = raw.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def __repr__(self) -> str:
        return "Hasher(<secret key>)"

    def digest(self, data: bytes) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def hash(self, value: Any) -> str:
        """The hash of a JSON value: a string's own text, another value's compact JSON (keys sorted).

        Hashed before the value is made storable (`odd_values.py`): a lone surrogate (half an emoji) has
        no UTF-8 form, so its surrogate-escaped bytes are hashed, the same on every run."""
        if isinstance(value, str):
            return self.digest(value.encode("utf-8", "surrogatepass"))
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return self.digest(text.encode("utf-8", "surrogatepass"))

    def hash_all(self, texts: Iterable[str]) -> dict[str, str]:
        """The hash of each string, by string: the loop a column's values go through (no call per value)."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        result = {}
        for text in texts:
            inner = inner_copy()
            inner.update(text.encode("utf-8", "surrogatepass"))
            outer = outer_copy()
            outer.update(inner.digest())
            result[text] = outer.hexdigest()
        return result

    def fingerprint(self) -> str:
        """A short mark of the key, to tell a run whether the key changed since the last load (the hash of
        a fixed text: it says no more about the key than any hashed value does)."""
        return self.digest(b"analytics_assets: which ANALYTICS_HASH_KEY")[:16]


@dataclass(frozen=True)
class FieldRules:
    """The fields of one resource's records to hash and to drop.

    Attributes:
        hashed: The paths to hash.
        excluded: The paths to drop.
        hasher: Hashes the values (None when nothing is hashed).
    """

    hashed: tuple[Path, ...] = ()
    excluded: tuple[Path, ...] = ()
    hasher: Hasher | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.hashed or self.excluded)

    def form(self) -> dict[str, Any]:
        """What a load with these rules writes the fields as: stored in the resource's dlt state, so that
        the next run can tell whether the rows it finds were written the same way."""
        return {
            "hashed": sorted(".".join(p) for p in self.hashed),
            "excluded": sorted(".".join(p) for p in self.excluded),
            "key": self.hasher.fingerprint() if self.hashed and self.hasher else None,
        }


def _containers(value: Any, path: Path) -> Iterable[dict[str, Any]]:
    """The objects holding the last name of `path` under `value`, walking into lists on the way."""
    if isinstance(value, list):
        for item in value:
            yield from _containers(item, path)
    elif isinstance(value, dict):
        if len(path) == 1:
            yield value
        elif path[0] in value:
            yield from _containers(value[path[0]], path[1:])


def apply(rules: FieldRules, rows: list[dict[str, Any]]) -> None:
    """Drop and hash the fields of `rules` in `rows`, in place.

    A top-level field is hashed a column at a time: its distinct strings in one loop (`Hasher.hash_all`),
    then written back; a nested one, or a value of another type, one at a time.
    """
    for path in rules.excluded:
        if len(path) == 1:
            name = path[0]
            for row in rows:
                row.pop(name, None)
        else:
            for container in _containers(rows, path):
                container.pop(path[-1], None)
    hasher = rules.hasher
    if hasher is None:
        return
    for path in rules.hashed:
        name = path[-1]
        if len(path) == 1:
            values = [row.get(name) for row in rows]
            by_text = hasher.hash_all({v for v in values if type(v) is str})
            for row, value in zip(rows, values, strict=True):
                if value is not None:
                    row[name] = by_text[value] if type(value) is str else hasher.hash(value)
        else:
            for container in _containers(rows, path):
                if container.get(name) is not None:
                    container[name] = hasher.hash(container[name])


class FieldStep(ItemTransform[Any, dict[str, Any]]):
    """A resource step hashing and dropping the fields of `rules` in each page, and noting in the
    resource's dlt state the form the page's rows are written in (`FORM_STATE`).

    Added right after the config's own processing steps (affinity 0), before the step recording the
    served keys and before dlt's incremental step: every later step, the keys recorded for the sweep and
    the checks, history's versions and the Arrow pages see only hashes, and never a dropped field.

    The form is noted on the first page, before dlt's incremental step drops unchanged records: a run
    that writes no row still records that the rows from now on are written this way.
    """

    def __init__(self, rules: FieldRules, record_form: bool = True) -> None:
        super().__init__(lambda item: item)
        self.rules = rules
        self._record_form = record_form
        self._resource: str | None = None
        self._lock = threading.Lock()

    def bind(self, pipe: Any) -> FieldStep:
        self._resource = pipe.name
        return self

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if self._record_form:
            self._note_form()
        if isinstance(item, list):
            if self.rules:
                apply(self.rules, [row for row in item if isinstance(row, dict)])
        elif isinstance(item, dict) and self.rules:
            apply(self.rules, [item])
        return item

    def _note_form(self) -> None:
        with self._lock:
            if not self._record_form:
                return
            self._record_form = False
        if self._resource is None:
            return  # not bound to a resource's pipe
        try:
            resources = dlt.current.source_state().get("resources") or {}
        except (SourceSectionNotAvailable, PipelineStateNotAvailable):
            return  # outside a pipeline's extract: nothing to note
        before = (resources.get(self._resource) or {}).get(FORM_STATE)
        form = self.rules.form()
        # Read first, written only when it changes: a table that never had rules keeps its state as it was.
        if before != form and (self.rules or before is not None):
            dlt.current.resource_state(self._resource)[FORM_STATE] = form
