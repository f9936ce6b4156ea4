"""Removing what an API no longer serves: neither API has a deletion feed, so a sync that read a
resource's whole list compares the keys it was served with the keys in the warehouse.

Plain dlt: `ServedKeys` adds a processing step to each resource of a `rest_api` config, and `sweep`
runs after the load with the pipeline's SQL client (DuckDB, PostgreSQL, any SQL destination).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources.rest_api import RESTAPIConfig

from analytics_assets.catalog import endpoints

_NAMING = NamingConvention()
_DELETE_BATCH = 1_000


class MissingKeyError(ValueError):
    """A record arrived without (part of) its primary key: it cannot be merged, so the run stops."""

    def __init__(self, resource: str, fields: Sequence[str], record: dict[str, Any]) -> None:
        self.resource = resource
        self.fields = list(fields)
        self.sample = {k: record[k] for k in list(record)[:4]}
        super().__init__(f"a {resource} record has no {', '.join(fields)}: {self.sample}")


def _key_hash(values: Iterable[Any]) -> int:
    # Python's string hash is 64 bits and stable within a process, which is all a run needs. A collision
    # (about 1 in 10^7 at a million keys) can only keep a deleted row one sync longer, never delete a live one.
    return hash(tuple(str(v) for v in values))


class ServedKeys:
    """The primary keys each resource was served during one run, at 8 bytes a key.

    Its step sees every record before dlt's incremental filter drops unchanged ones (dlt runs
    processing steps before the incremental step), so a key counts as served even when its row is
    not rewritten.
    """

    def __init__(self) -> None:
        self._hashes: dict[str, array[int]] = {}

    def step(self, resource: str, key_columns: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A dlt `map` step recording the key of every record of `resource`.

        Args:
            resource: The resource name.
            key_columns: The primary key as warehouse columns (snake_case); records carry the API's
                field names (camelCase), matched through dlt's naming convention.
        """
        hashes = self._hashes.setdefault(resource, array("q"))
        fields: list[str] = []

        def observe(record: dict[str, Any]) -> dict[str, Any]:
            if not fields:
                by_column = {_NAMING.normalize_identifier(name): name for name in record}
                fields.extend(by_column.get(column, column) for column in key_columns)
            values = [record.get(field) for field in fields]
            if any(value is None or value == "" for value in values):
                raise MissingKeyError(
                    resource, [f for f, v in zip(fields, values, strict=True) if v in (None, "")], record
                )
            hashes.append(_key_hash(values))
            return record

        return observe

    def track(self, config: RESTAPIConfig) -> RESTAPIConfig:
        """Add the recording step to every resource of a `rest_api` config (in place) and return it."""
        keys = {name: endpoint.primary_key for name, endpoint in endpoints(config).items()}
        for resource in config["resources"]:
            assert isinstance(resource, dict), "configs here list resources as dicts"
            name = str(resource["name"])
            resource["processing_steps"] = [
                *(resource.get("processing_steps") or []),
                {"map": self.step(name, keys[name])},
            ]
        return config

    def sorted_hashes(self, resource: str) -> array[int]:
        """The distinct key hashes served for `resource`, sorted for lookups."""
        return array("q", sorted(set(self._hashes.get(resource, ()))))


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


def _contains(sorted_hashes: array[int], value: int) -> bool:
    index = bisect_left(sorted_hashes, value)
    return index < len(sorted_hashes) and sorted_hashes[index] == value


def sweep(pipeline: dlt.Pipeline, table: str, key_columns: Sequence[str], served: ServedKeys) -> SweepResult:
    """Delete the rows of `table` (and their nested rows) whose key the API did not serve in this run.

    Call it only after a run that read the resource's whole list, inside the same writer lock.
    """
    hashes = served.sorted_hashes(table)
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(table)
        columns = [client.escape_column_name(c) for c in key_columns]
        stale: list[tuple[Any, ...]] = []
        present = 0
        try:
            with client.execute_query(f"select {', '.join(columns)} from {qualified}") as cursor:
                while rows := cursor.fetchmany(10_000):
                    for row in rows:
                        if _contains(hashes, _key_hash(row)):
                            present += 1
                        else:
                            stale.append(tuple(row))
        except DatabaseUndefinedRelation:
            return SweepResult(served=len(hashes), deleted=0, missing=len(hashes))  # nothing loaded yet
        if not hashes:
            return SweepResult(served=0, deleted=0, missing=0, skipped=bool(stale))
        if stale:
            match = " and ".join(f"{c} = %s" for c in columns)
            nested = [
                client.make_qualified_table_name(name)
                for name in pipeline.default_schema.tables
                if name.startswith(f"{table}__")
            ]
            with client.begin_transaction():
                for start in range(0, len(stale), _DELETE_BATCH):
                    batch = stale[start : start + _DELETE_BATCH]
                    where = " or ".join(f"({match})" for _ in batch)
                    client.execute_sql(
                        f"delete from {qualified} where {where}", *[v for row in batch for v in row]
                    )
                for child in nested:
                    client.execute_sql(
                        f"delete from {child} where _dlt_root_id not in (select _dlt_id from {qualified})"
                    )
    return SweepResult(served=len(hashes), deleted=len(stale), missing=len(hashes) - present)
