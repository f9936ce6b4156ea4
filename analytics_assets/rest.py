"""dlt pieces both REST sources share: paging, retries, and fields that never reach the warehouse.

Plain dlt, no Dagster import: the sources built from these run in a bare dlt pipeline too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from requests import Response, Session

PAGE_SIZE = 100
"""Both APIs cap a page at 100 records (the seeds' `limit`)."""

RETRY_STATUS_CODES = (429, 500, 502, 503, 504)
"""The seeds' retry rule: these statuses are retried, every other error fails at once."""


class ShortPageOffsetPaginator(OffsetPaginator):
    """Offset paging for APIs that return no total.

    dlt's `OffsetPaginator` needs a `total` field (neither API has one) or pages until an empty page.
    A page with fewer than `limit` records is already the last one, so this paginator stops there and
    saves the request for the empty page.
    """

    def __init__(self, offset_param: str, limit: int = PAGE_SIZE, limit_param: str = "limit") -> None:
        super().__init__(
            limit=limit,
            offset_param=offset_param,
            limit_param=limit_param,
            total_path=None,
            stop_after_empty_page=True,
        )

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        if data is not None and len(data) < self.limit:
            self._has_next_page = False


def retrying_session(
    max_attempts: int = 4,
    backoff_factor: float = 2.0,
    max_retry_delay: float = 60.0,
    timeout: float = 60.0,
) -> Session:
    """A requests session of the source's own, with the seeds' retry rule.

    dlt's default session is process-global and retries every 5xx; a session per source keeps one
    API's settings from changing the other's.

    Args:
        max_attempts: Attempts per request, the first included (the seeds: 3 retries, so 4).
        backoff_factor: Exponential backoff factor; waits are factor * 2**(retry - 1) seconds.
        max_retry_delay: Cap on one wait, including a server's `Retry-After`.
        timeout: Seconds to wait for a response before the attempt counts as failed.
    """
    client = Client(
        request_timeout=timeout,
        raise_for_status=False,  # dlt's RESTClient raises itself, after its response hooks
        status_codes=RETRY_STATUS_CODES,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        respect_retry_after_header=True,
    )
    return client.session


def drop_fields(fields: Iterable[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A dlt `map` step that removes fields which must not reach the warehouse (e.g. credentials)."""
    dropped = frozenset(fields)

    def _drop(record: dict[str, Any]) -> dict[str, Any]:
        for field in dropped.intersection(record):
            del record[field]
        return record

    return _drop
