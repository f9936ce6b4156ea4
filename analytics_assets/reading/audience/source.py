"""The audience API (seed 000) as a declarative dlt `rest_api` source.

Every resource, path, data selector, paginator and header of the seed is kept; what fails as written
is fixed (see shared api-notes):
- no totals: offset paging reads to the real end of a list or says it could not
  (`ShortPageOffsetPaginator`); `segments` is asked in pages like people (the public connector does),
  and the seed's one page, answered whatever the offset, is read as the whole list;
- `/accounts` returns a bare JSON array: its data selector is the root (`$`), not `[]`;
- records have natural keys, not `id` everywhere: each resource names its own primary key;
- `segment_people` is a dlt child of `segments` (`{resources.segments.id}` in the path), each row
  carries its `segment_id`, and the key is (`segment_id`, `id`): one row per membership.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dlt
from dlt.common.configuration import configspec
from dlt.sources import DltResource
from dlt.sources.rest_api import RESTAPIConfig

from analytics_assets.reading.audience.columns import COLUMNS
from analytics_assets.reading.credentials import drop_credentials
from analytics_assets.reading.field_rules import FieldRules
from analytics_assets.reading.odd_values import OddValues, name_tag
from analytics_assets.reading.rest import ShortPageOffsetPaginator, assemble
from analytics_assets.reading.settings import SourceSettings
from analytics_assets.reading.sweep import ServedKeys
from analytics_assets.reading.transport import RequestStats, RetryPolicy, Transport

API_KEY_HEADER = "api_key"
"""The seed sends the key in a header named `api_key`; configurable because tenants differ."""
REAL_KEY_HEADER = "X-Encharge-Token"
"""The header the real audience API reads its key from (its public description and its low-code
connector); the sandbox keeps the seed's."""
PAGE_CONCURRENCY = 8
"""Pages of one list in flight at once. The API has no rate limit, so the chain of `/people/all` is
what bounds a sync: 8 pages at once divide its round trips by ~8 and cost at most 7 requests past the
end of a list (measured in benchmarks/README.md)."""
ARROW_RESOURCES = ("peoples",)
"""The large flat list: its pages go to dlt as Arrow tables where that changes nothing in the
warehouse (`arrow_pages.py`), which saves most of dlt's row-by-row normalizing. Not `segment_people`:
a child's pages come one segment at a time (a few pages each), too few to join into tables large
enough to pay for dlt's cost per Arrow item (measured: a table per page extracts slower than rows)."""


LOADER_FIELDS = {"segment_people": {"segment_id": "the segment's id, copied from segments.id"}}
"""Fields of a table the loader adds to the API's records, by table, with where they come from."""


def _rename_parent_id(record: dict[str, Any]) -> dict[str, Any]:
    # dlt names a field taken from the parent `_<parent>_<field>`; the warehouse says `segment_id`. A
    # person's own field of that name keeps its value in a column of its own, named as `odd_values.py`
    # names the second of two fields that meet in one column.
    if "segment_id" in record:
        record[f"segment_id__{name_tag('segment_id')}"] = record.pop("segment_id")
    record["segment_id"] = record.pop("_segments_id")
    return record


def audience_config(
    base_url: str, api_key: str, api_key_header: str = API_KEY_HEADER, full_scan: bool = False
) -> RESTAPIConfig:
    """The `rest_api` configuration of the audience API.

    How each resource stays equal to the API (see the README's sync table): every resource reads its
    whole list on every sync (deletions are only visible that way: the API has no deletion feed), is
    merged on its key, and rows whose key was not served are swept afterwards. `peoples` also has an
    `updated_at` cursor, so that unchanged people are read but not rewritten.

    Args:
        base_url: The API root, ending in `/v1`.
        api_key: The key sent in the `api_key_header` header on every request.
        api_key_header: The header name of the key.
        full_scan: Rewrite every record, ignoring the cursor (the periodic reconciliation).
    """
    # Stopping early (sort=updatedAt&order=desc, stop at the cursor) would save requests but never see
    # a deleted person; the cursor only decides what is written.
    people_cursor: dict = {} if full_scan else {"incremental": {"cursor_path": "updatedAt"}}
    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "api_key", "name": api_key_header, "api_key": api_key, "location": "header"},
        },
        # `parallelized`: endpoints (and each segment's members) are read side by side, not one after another.
        "resource_defaults": {"write_disposition": "merge", "parallelized": True},
        "resources": [
            {
                "name": "schemas",
                "primary_key": "name",
                "endpoint": {"path": "/schemas", "data_selector": "objects", "paginator": "single_page"},
            },
            {
                "name": "peoples",
                "primary_key": "id",
                "endpoint": {
                    "path": "/people/all",
                    "data_selector": "people",
                    "paginator": ShortPageOffsetPaginator(offset_param="offset"),
                    **people_cursor,
                },
            },
            {
                "name": "accounts",
                "primary_key": "account_id",
                "endpoint": {"path": "/accounts", "data_selector": "$", "paginator": "single_page"},
                # Account payloads carry the account's own live credentials (`apiKeys`, `writeKey`,
                # `webhookSeed`): dropped by name pattern, at any depth, before dlt sees them.
                "processing_steps": [{"map": drop_credentials}],
            },
            {
                "name": "account_tags",
                "primary_key": "tag",
                "endpoint": {"path": "/tags-management", "data_selector": "tags", "paginator": "single_page"},
            },
            {
                "name": "segments",
                "primary_key": "id",
                # The condition tree is arbitrarily deep: one JSON column, not a table per level.
                "columns": {"conditions": {"data_type": "json"}},
                # The API's description lists segments as one page, but the public low-code connector
                # pages it like people: asked in pages here too, so that a paged list is read to its end;
                # an API that ignores the parameters answers its whole list again at the next offset, and
                # once more (two extra requests): that is the whole list, swept like any other.
                "endpoint": {
                    "path": "/segments",
                    "data_selector": "segments",
                    "paginator": ShortPageOffsetPaginator(offset_param="offset"),
                },
            },
            {
                "name": "fields",
                "primary_key": "name",
                "endpoint": {"path": "/fields", "data_selector": "items", "paginator": "single_page"},
            },
            {
                "name": "segment_people",
                "primary_key": ["segment_id", "id"],
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "/segments/{resources.segments.id}/people",
                    "data_selector": "people",
                    "paginator": ShortPageOffsetPaginator(offset_param="offset"),
                },
                "processing_steps": [{"map": _rename_parent_id}],
            },
        ],
    }


@configspec
class AudienceSettings(SourceSettings):
    """The audience source's settings: the shared ones (`SourceSettings`) with the audience API's defaults,
    and its own."""

    api_key_header: str = API_KEY_HEADER
    page_concurrency: int = PAGE_CONCURRENCY
    arrow_pages: bool = True


@dlt.source(name="audience", section="audience", spec=AudienceSettings)
def audience(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    api_key_header: str = API_KEY_HEADER,
    full_scan: bool = False,
    requests_per_minute: float | None = None,
    rate_window_seconds: float = 60.0,
    retry_backoff_factor: float = 2.0,
    request_timeout: float = 60.0,
    page_concurrency: int = PAGE_CONCURRENCY,
    allow_insecure_http: bool = False,
    arrow_pages: bool = True,
    served_keys: ServedKeys | None = None,
    request_stats: RequestStats | None = None,
    field_rules: Mapping[str, FieldRules] | None = None,
    replace_nul: bool = True,
    odd_values: OddValues | None = None,
) -> list[DltResource]:
    """The audience API. Configured as `SOURCES__AUDIENCE__BASE_URL` and `SOURCES__AUDIENCE__API_KEY`;
    every argument of `AudienceSettings` is a setting too (`SOURCES__AUDIENCE__<ARGUMENT>`); the others
    are the loader's, per run.

    Args:
        full_scan: Rewrite every record, ignoring cursors.
        requests_per_minute: Pace requests to at most this many per minute (None: no pacing).
        rate_window_seconds: The rolling window of the pacing (the API's own, 60 s).
        retry_backoff_factor: Retries wait factor * 2**(retry - 1) seconds (the seeds: 2, so 2, 4, 8 s).
        request_timeout: Seconds before an attempt times out (and is retried).
        page_concurrency: Pages of one list requested at once (`SOURCES__AUDIENCE__PAGE_CONCURRENCY`; 1 reads
            them one after another; see `PAGE_CONCURRENCY`).
        allow_insecure_http: Allow a plain-http base URL beyond this machine (the key travels in clear).
        arrow_pages: Hand the pages of `ARROW_RESOURCES` to dlt as Arrow tables where possible
            (`SOURCES__AUDIENCE__ARROW_PAGES=false`: every page as rows; the warehouse is the same).
        served_keys: Records the keys served, for sweeping deletions after the load.
        request_stats: Collects what the requests did (counts, retries, last URLs) for the run.
        field_rules: The fields to hash and to drop, by resource (`personal_data.PersonalData.for_api`);
            None: every field loads as served.
        replace_nul: Replace NUL in text (PostgreSQL refuses it; `odd_values.py`).
        odd_values: Collects what the run changed to make records storable (`odd_values.py`).
    """
    transport = Transport(
        RetryPolicy(backoff_factor=retry_backoff_factor, timeout=request_timeout),
        requests_per_minute,
        rate_window_seconds,
        request_stats or RequestStats("audience"),
        page_concurrency,
    )
    config = audience_config(base_url, api_key, api_key_header, full_scan)
    return assemble(
        "audience",
        config,
        transport,
        served_keys,
        allow_insecure_http,
        arrow_resources=ARROW_RESOURCES if arrow_pages else (),
        field_rules=field_rules,
        documented=COLUMNS,
        replace_nul=replace_nul,
        odd_values=odd_values,
    )
