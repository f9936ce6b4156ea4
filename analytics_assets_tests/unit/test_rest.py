"""`analytics_assets.rest` on its own: the paginator fed hand-made pages, the way dlt's own
paginator tests do, and the path-safe parent value (no server, no Dagster)."""

from __future__ import annotations

from typing import Any

import pytest
from dlt.sources.rest_api.config_setup import expand_placeholders
from requests import Request, Response

from analytics_assets.rest import PAGE_SIZE, PathSegment, ShortPageOffsetPaginator


def page_response(url: str = "https://api.example.com/v1/people/all?offset=0&limit=3") -> Response:
    made = Response()
    made.status_code = 200
    made.url = url
    return made


def records(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"p-{i}"} for i in range(start, start + count)]


class Paging:
    """A paginator of page size 3 over a fresh request, and the reasons it reported an unseen end."""

    def __init__(self, offset_param: str = "offset") -> None:
        self.paginator = ShortPageOffsetPaginator(offset_param=offset_param, limit=3)
        self.unseen: list[str] = []
        self.paginator.on_end_unseen = self.unseen.append
        self.request = Request("GET", "https://api.example.com/v1/people/all")
        self.paginator.init_request(self.request)

    def serve(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Feed one page as dlt does and return what dlt would pass on."""
        self.paginator.update_state(page_response(), data)
        if self.paginator.has_next_page:
            self.paginator.update_request(self.request)
        return data


def test_the_page_size_is_the_apis_cap() -> None:
    assert ShortPageOffsetPaginator(offset_param="offset").limit == PAGE_SIZE == 100


def test_the_first_request_asks_for_offset_0_and_the_limit() -> None:
    paging = Paging(offset_param="skip")
    assert paging.request.params == {"skip": 0, "limit": 3}


def test_a_full_page_asks_for_the_next() -> None:
    paging = Paging()
    assert paging.serve(records(0, 3)) == records(0, 3)
    assert paging.paginator.has_next_page
    assert paging.request.params == {"offset": 3, "limit": 3}
    paging.serve(records(3, 3))
    assert paging.request.params == {"offset": 6, "limit": 3}


def test_a_short_page_is_the_last_one() -> None:
    paging = Paging()
    paging.serve(records(0, 3))
    assert paging.serve(records(3, 2)) == records(3, 2)
    assert not paging.paginator.has_next_page  # no request for the empty page after it
    assert paging.unseen == []


def test_an_empty_page_ends_the_list() -> None:
    paging = Paging()
    paging.serve(records(0, 3))
    paging.serve([])
    assert not paging.paginator.has_next_page
    assert paging.unseen == []


def test_a_repeated_full_page_stops_and_reports_the_end_unseen() -> None:
    # An API that ignores offset and limit answers the same first page every time.
    paging = Paging()
    paging.serve(records(0, 3))
    repeat = paging.serve(records(0, 3))
    assert not paging.paginator.has_next_page
    assert repeat == []  # its records were passed on with the page before
    assert len(paging.unseen) == 1
    assert paging.unseen[0].startswith("GET /v1/people/all answered the same 3 records at offset=3")
    assert "ignores the paging parameters (limit, offset)" in paging.unseen[0]
    assert "the end of the list was never seen" in paging.unseen[0]


def test_a_long_first_page_repeated_was_the_whole_list() -> None:
    # An API ignoring the limit too answers its whole list at once: the end was seen.
    paging = Paging()
    paging.serve(records(0, 5))
    assert paging.request.params == {"offset": 5, "limit": 3}  # past all five records, no overlap
    assert paging.serve(records(0, 5)) == []
    assert not paging.paginator.has_next_page
    assert paging.unseen == []


def test_a_long_page_moves_the_offset_past_its_records() -> None:
    paging = Paging()
    paging.serve(records(0, 4))  # the API ignores only the limit
    paging.serve(records(4, 4))
    assert paging.request.params == {"offset": 8, "limit": 3}
    assert paging.paginator.has_next_page


def test_pages_that_share_records_but_not_their_ends_continue() -> None:
    # A record shifted across a page boundary (data changing during the sync) is no repeat of the page.
    paging = Paging()
    paging.serve(records(0, 3))
    paging.serve(records(2, 3))
    assert paging.paginator.has_next_page
    assert paging.unseen == []


def test_a_new_request_forgets_the_previous_page() -> None:
    # dlt reuses a paginator for each parent record: the same first page under another parent is no repeat.
    paging = Paging()
    paging.serve(records(0, 2))
    paging.paginator.init_request(Request("GET", "https://api.example.com/v1/segments/2/people"))
    paging.serve(records(0, 3))
    assert paging.paginator.has_next_page
    assert paging.unseen == []


def test_a_repeat_without_a_listener_just_stops() -> None:
    paginator = ShortPageOffsetPaginator(offset_param="offset", limit=3)
    paginator.init_request(Request("GET", "https://api.example.com/v1/people/all"))
    paginator.update_state(page_response(), records(0, 3))
    paginator.update_state(page_response(), records(0, 3))
    assert not paginator.has_next_page


@pytest.mark.parametrize(
    ("value", "in_path"),
    [
        ("seg-1", "seg-1"),
        ("1/../accounts", "1%2F..%2Faccounts"),
        ("a b?c=d#e", "a%20b%3Fc%3Dd%23e"),
        ("ünï", "%C3%BCn%C3%AF"),
    ],
)
def test_a_path_segment_is_encoded_in_a_path_and_unchanged_elsewhere(value: str, in_path: str) -> None:
    segment = PathSegment(value)
    # How rest_api fills a child's path from its parent's record.
    path = expand_placeholders("/segments/{resources.segments.id}/people", {"resources.segments.id": segment})
    assert path == f"/segments/{in_path}/people"
    assert f"/segments/{segment}/people" == f"/segments/{in_path}/people"
    assert segment == value  # loaded unchanged
    assert str(segment) == value
