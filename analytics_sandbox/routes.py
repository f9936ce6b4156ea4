"""The endpoints of both APIs: paths, envelopes, paging parameters and their validation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from .dataset import Dataset
from .faults import JSON, error_response

AUDIENCE_PREFIX = "/audience/v1"
FEEDBACK_PREFIX = "/feedback"
MAX_LIMIT = 100
# Without `limit`, a paginated endpoint answers pages of 50: a client that forgets to send `limit=100`
# but stops on a page shorter than 100 stops after the first page, and a test notices.
DEFAULT_PAGE_SIZE = 50
SORTS = ("createdAt", "updatedAt")
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint.

    Attributes:
        resource: The dlt resource it feeds.
        envelope: The key holding the list; None for a bare array at the root.
        paginated: Whether it pages by default (the others return everything unless asked).
        template: The path pattern, for counters.
    """

    resource: str
    envelope: str | None
    paginated: bool
    template: str


AUDIENCE_ENDPOINTS = {
    "/schemas": Endpoint("schemas", "objects", False, "/schemas"),
    "/people/all": Endpoint("peoples", "people", True, "/people/all"),
    "/accounts": Endpoint("accounts", None, False, "/accounts"),
    "/tags-management": Endpoint("account_tags", "tags", False, "/tags-management"),
    "/segments": Endpoint("segments", "segments", False, "/segments"),
    "/fields": Endpoint("fields", "items", False, "/fields"),
}
SEGMENT_PEOPLE = Endpoint("segment_people", "people", True, "/segments/{id}/people")
FEEDBACK_ENDPOINTS = {
    path: Endpoint(resource, "data", resource == "responses", path)
    for path, resource in (
        ("/v1/management/surveys", "surveys"),
        ("/v1/management/action-classes", "action_classes"),
        ("/v1/management/attribute-classes", "attribute_classes"),
        ("/v1/management/people", "identified_peoples"),
        ("/v1/management/responses", "responses"),
        ("/v1/webhooks", "webhooks"),
        # The current servers' successors of `people` and `attribute-classes` (see `generations`).
        ("/v1/management/contacts", "contacts"),
        ("/v1/management/contact-attribute-keys", "contact_attribute_keys"),
    )
}
OFFSET_PARAM = {"audience": "offset", "feedback": "skip"}
PAGING_MODES = ("default", "pages", "ignore", "ignore_first_page")
"""How an endpoint pages (`Sandbox.set_paging`): as documented above (an endpoint that does not page
answers its whole list whatever `limit` and the offset say, like the seed's one-page `/segments`); in
pages of at most 100 (100 without `limit`: the public connector's paged `/segments`); ignoring `limit`
and the offset, answering the whole list every time; or ignoring them and answering the first 100 every
time."""
UNKNOWN = "(unknown)"


class BadRequest(ValueError):
    """A query parameter the API would reject with 400."""


def api_of(path: str) -> str | None:
    """Which API a request path belongs to, or None."""
    if path == AUDIENCE_PREFIX or path.startswith(AUDIENCE_PREFIX + "/"):
        return "audience"
    if path == FEEDBACK_PREFIX or path.startswith(FEEDBACK_PREFIX + "/"):
        return "feedback"
    return None


def resolve(api: str, path: str) -> tuple[Endpoint | None, int | None]:
    """(endpoint, segment id) of a request path of `api`; endpoint None for an unknown path."""
    if api == "feedback":
        return FEEDBACK_ENDPOINTS.get(path[len(FEEDBACK_PREFIX) :]), None
    sub = path[len(AUDIENCE_PREFIX) :]
    endpoint = AUDIENCE_ENDPOINTS.get(sub)
    if endpoint is not None:
        return endpoint, None
    parts = sub.split("/")
    if len(parts) == 4 and parts[1] == "segments" and parts[3] == "people" and parts[2].isdigit():
        return SEGMENT_PEOPLE, int(parts[2])
    return None, None


def template_of(api: str, path: str) -> str:
    """The endpoint pattern of a path, for counters (unknown paths share one bucket)."""
    endpoint, _ = resolve(api, path)
    return endpoint.template if endpoint is not None else UNKNOWN


def _int_param(query: dict[str, str], name: str, minimum: int) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, got {number}")
    return number


def serve(
    dataset: Dataset,
    api: str,
    endpoint: Endpoint,
    segment_id: int | None,
    query: dict[str, str],
    paging: str = "default",
    page_max: int | None = None,
) -> tuple[int, str, bytes]:
    """(status, content type, body) of an authorised request to a known endpoint.

    Args:
        paging: One of `PAGING_MODES`.
        page_max: At most this many records a page, whatever `limit` asks (`Sandbox.set_page_max`).
    """
    try:
        limit = _int_param(query, "limit", 1)
        offset = _int_param(query, OFFSET_PARAM[api], 0) or 0
        sort, order = "createdAt", "asc"
        if endpoint.resource == "peoples":  # the only endpoint with a choice of order
            sort, order = query.get("sort", sort), query.get("order", order)
            if sort not in SORTS or order not in ORDERS:
                raise BadRequest(f"sort must be one of {SORTS} and order one of {ORDERS}")
    except BadRequest as error:
        return (400, *error_response(api, 400, str(error)))
    if paging == "default" and not endpoint.paginated:
        paging = "ignore"  # one page, as the seed describes it: the whole list whatever the query says
    if paging in ("ignore", "ignore_first_page"):
        offset, limit = 0, None if paging == "ignore" else MAX_LIMIT
    elif limit is not None:
        limit = min(limit, MAX_LIMIT)  # silently, like the real APIs
    elif endpoint.paginated:
        limit = DEFAULT_PAGE_SIZE
    elif paging == "pages":
        limit = MAX_LIMIT
    if page_max is not None:
        limit = page_max if limit is None else min(limit, page_max)
    records = dataset.page(endpoint.resource, offset, limit, sort=sort, order=order, segment_id=segment_id)
    if records is None:
        return (404, *error_response(api, 404))
    return 200, JSON, json_body(records if endpoint.envelope is None else {endpoint.envelope: records})


def json_body(value: Any) -> bytes:
    """JSON as the APIs write it. orjson refuses what some records hold (a lone surrogate, an integer
    beyond 64 bits, `odd_records.py`): those pages are written by the standard library, which escapes
    the surrogate as `\\ud83d` and writes every digit."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
