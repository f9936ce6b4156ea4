"""The feedback API (seed 003) as a declarative dlt `rest_api` source.

Every resource, path, data selector, paginator and header of the seed is kept; what fails as written
is fixed (see shared api-notes): no totals, so `responses` is read with offset paging (`skip`) to the
real end of the list (`ShortPageOffsetPaginator`); the other endpoints are answered whole.
Every record has an `id` key.
"""

from __future__ import annotations

from collections.abc import Mapping

import dlt
from dlt.common.configuration import configspec
from dlt.sources import DltResource
from dlt.sources.rest_api import RESTAPIConfig
from dlt.sources.rest_api.typing import Endpoint, EndpointResource

from analytics_assets.reading.feedback.columns import COLUMNS
from analytics_assets.reading.field_rules import FieldRules
from analytics_assets.reading.odd_values import OddValues
from analytics_assets.reading.rest import ShortPageOffsetPaginator, assemble
from analytics_assets.reading.settings import SourceSettings
from analytics_assets.reading.sweep import ServedKeys
from analytics_assets.reading.transport import RequestStats, RetryPolicy, Transport

API_KEY_HEADER = "X-API-Key"
RATE_LIMIT_PER_MINUTE = 100.0
"""The API's published limit per key; past it, 429 without `Retry-After`."""
PAGE_CONCURRENCY = 4
"""Pages of `responses` in flight at once. The pacing (100 requests a minute, shared by every request)
still decides the pace of a long read; side by side pages shorten a burst under that limit, and a
window of 4 wastes at most 3 of the minute's requests past the end of the list."""
CURRENT_GENERATION_PATHS = {
    "identified_peoples": "/v1/management/contacts",
    "attribute_classes": "/v1/management/contact-attribute-keys",
}
"""Where a server of the current generation serves what the seed reads from paths it no longer has.

The platform behind the API reworked people into "contacts" (December 2024): `/v1/management/people`
and `/v1/management/attribute-classes` answer an HTML 404 page there, and these paths serve the same
records in the same `{"data": [...]}` envelope (contact ids are the former people ids). Both are
Enterprise features: without a licence they answer 403.
"""
RESPONSES_LOOKBACK_HOURS = 72
"""How far behind the newest response already loaded a nightly sync re-reads responses, to catch
updates (a response finished the next day). Updates older than this wait for the reconciliation."""


def _without_anonymous_person(response: dict) -> dict:
    """Drops `person` when it is null (an anonymous response). Loaded, a null `person` beside the
    `person__id` and `person__user_id` columns of identified responses would be a column that never holds
    a value, which dlt warns about in every load that has an anonymous response."""
    if "person" in response and response["person"] is None:
        del response["person"]
    return response


def feedback_config(
    base_url: str,
    api_key: str,
    api_key_header: str = API_KEY_HEADER,
    full_scan: bool = False,
    responses_lookback_hours: float = RESPONSES_LOOKBACK_HOURS,
    paths: Mapping[str, str] | None = None,
) -> RESTAPIConfig:
    """The `rest_api` configuration of the feedback API.

    How each resource stays equal to the API (see the README's sync table): the small lists are read
    whole, merged on `id` and swept of deleted records. `responses` come newest first: a nightly sync
    pages back only to the newest `created_at` already loaded minus `responses_lookback_hours` and
    merges what it read; a full scan reads them all and sweeps deletions.

    Args:
        base_url: The API root, without `/v1` (paths start with it).
        api_key: The key sent in the `api_key_header` header on every request.
        api_key_header: The header name of the key.
        full_scan: Read every response, ignoring the cursor (the periodic reconciliation).
        responses_lookback_hours: The look-back window of a nightly sync of responses.
        paths: Paths to read instead of the seed's, by resource (e.g. `CURRENT_GENERATION_PATHS`).
    """
    paths = paths or {}
    # row_order="desc" makes dlt stop paging at the first response older than the cursor minus the lag.
    responses_window: dict = (
        {}
        if full_scan
        else {
            "incremental": {
                "cursor_path": "createdAt",
                "row_order": "desc",
                "lag": responses_lookback_hours * 3600,
            }
        }
    )

    def single_page(name: str, path: str) -> EndpointResource:
        endpoint: Endpoint = {
            "path": paths.get(name, path),
            "data_selector": "data",
            "paginator": "single_page",
        }
        return {"name": name, "endpoint": endpoint}

    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "api_key", "name": api_key_header, "api_key": api_key, "location": "header"},
        },
        # `parallelized`: endpoints are read side by side, not one after another.
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge", "parallelized": True},
        "resources": [
            single_page("surveys", "/v1/management/surveys"),
            single_page("action_classes", "/v1/management/action-classes"),
            single_page("attribute_classes", "/v1/management/attribute-classes"),
            {
                **single_page("identified_peoples", "/v1/management/people"),
                # Attribute names are chosen by each customer: one JSON column, not one column each.
                "columns": {"attributes": {"data_type": "json"}},
            },
            {
                "name": "responses",
                # `data`, `ttc` and `variables` are keyed by question id or by the customer's own names:
                # loaded naively they would add a column per question of every survey ever made. A JSON
                # column keeps the table's shape stable and stays queryable (`data->>'$.q1'`).
                "columns": {
                    "data": {"data_type": "json"},
                    "ttc": {"data_type": "json"},
                    "variables": {"data_type": "json"},
                },
                "processing_steps": [{"map": _without_anonymous_person}],
                "endpoint": {
                    "path": "/v1/management/responses",
                    "data_selector": "data",
                    "paginator": ShortPageOffsetPaginator(offset_param="skip"),
                    **responses_window,
                },
            },
            single_page("webhooks", "/v1/webhooks"),
        ],
    }


@configspec
class FeedbackSettings(SourceSettings):
    """The feedback source's settings: the shared ones (`SourceSettings`) with the feedback API's defaults,
    and its own."""

    api_key_header: str = API_KEY_HEADER
    responses_lookback_hours: float = RESPONSES_LOOKBACK_HOURS
    requests_per_minute: float | None = RATE_LIMIT_PER_MINUTE
    page_concurrency: int = PAGE_CONCURRENCY


@dlt.source(name="feedback", section="feedback", spec=FeedbackSettings)
def feedback(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    api_key_header: str = API_KEY_HEADER,
    full_scan: bool = False,
    responses_lookback_hours: float = RESPONSES_LOOKBACK_HOURS,
    requests_per_minute: float | None = RATE_LIMIT_PER_MINUTE,
    rate_window_seconds: float = 60.0,
    retry_backoff_factor: float = 2.0,
    request_timeout: float = 60.0,
    page_concurrency: int = PAGE_CONCURRENCY,
    allow_insecure_http: bool = False,
    served_keys: ServedKeys | None = None,
    request_stats: RequestStats | None = None,
    field_rules: Mapping[str, FieldRules] | None = None,
    replace_nul: bool = True,
    odd_values: OddValues | None = None,
    paths: Mapping[str, str] | None = None,
) -> list[DltResource]:
    """The feedback API. Configured as `SOURCES__FEEDBACK__BASE_URL` and `SOURCES__FEEDBACK__API_KEY`;
    every argument of `FeedbackSettings` is a setting too (`SOURCES__FEEDBACK__<ARGUMENT>`); the others
    are the loader's, per run.

    Args:
        full_scan: Read and rewrite every record, ignoring cursors.
        responses_lookback_hours: `SOURCES__FEEDBACK__RESPONSES_LOOKBACK_HOURS`, default 72.
        requests_per_minute: Pace requests to at most this many per minute (None: no pacing).
        rate_window_seconds: The rolling window of the pacing (the API's own, 60 s).
        retry_backoff_factor: Retries wait factor * 2**(retry - 1) seconds (the seeds: 2, so 2, 4, 8 s).
        request_timeout: Seconds before an attempt times out (and is retried).
        page_concurrency: Pages of one list requested at once (`SOURCES__FEEDBACK__PAGE_CONCURRENCY`; 1 reads
            them one after another; see `PAGE_CONCURRENCY`).
        allow_insecure_http: Allow a plain-http base URL beyond this machine (the key travels in clear).
        served_keys: Records the keys served, for sweeping deletions after the load.
        request_stats: Collects what the requests did (counts, retries, last URLs) for the run.
        field_rules: The fields to hash and to drop, by resource (`personal_data.PersonalData.for_api`);
            None: every field loads as served.
        replace_nul: Replace NUL in text (PostgreSQL refuses it; `odd_values.py`).
        odd_values: Collects what the run changed to make records storable (`odd_values.py`).
        paths: Paths to read instead of the seed's, by resource (the loader passes
            `CURRENT_GENERATION_PATHS` where the seed's paths are gone).
    """
    transport = Transport(
        RetryPolicy(backoff_factor=retry_backoff_factor, timeout=request_timeout),
        requests_per_minute,
        rate_window_seconds,
        request_stats or RequestStats("feedback"),
        page_concurrency,
    )
    config = feedback_config(base_url, api_key, api_key_header, full_scan, responses_lookback_hours, paths)
    return assemble(
        "feedback",
        config,
        transport,
        served_keys,
        allow_insecure_http,
        field_rules=field_rules,
        documented=COLUMNS,
        replace_nul=replace_nul,
        odd_values=odd_values,
    )
