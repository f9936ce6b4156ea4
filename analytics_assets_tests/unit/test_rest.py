"""`analytics_assets.reading.rest` on its own: the paginator fed hand-made pages, the way dlt's own
paginator tests do, and the path-safe parent value (no server, no Dagster)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest
from dlt.sources.rest_api.config_setup import expand_placeholders
from requests import Request, Response

from analytics_assets.reading.rest import PAGE_SIZE, PathSegment, ShortPageOffsetPaginator


def page_response(url: str = "https://api.example.com/v1/people/all?offset=0&limit=3") -> Response:
    made = Response()
    made.status_code = 200
    made.url = url
    return made


def records(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"p-{i}"} for i in range(start, start + count)]


class Paging:
    """A paginator of page size 3 over a fresh request, and the reasons it reported."""

    def __init__(self, offset_param: str = "offset") -> None:
        self.paginator = ShortPageOffsetPaginator(offset_param=offset_param, limit=3)
        self.unseen: list[str] = []
        self.moved: list[str] = []
        self.paginator.on_end_unseen = self.unseen.append
        self.paginator.on_moved = self.moved.append
        self.request = Request("GET", "https://api.example.com/v1/people/all")
        self.paginator.init_request(self.request)

    def serve(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Feed one page as dlt does and return what dlt would pass on."""
        self.paginator.update_state(page_response(), data)
        if self.paginator.has_next_page:
            self.paginator.update_request(self.request)
        return data


class FakeList:
    """An API list read through a paginator to its end, as dlt reads it: the records it serves at each
    request's offset, at most `most` a page, with `change` applied after the `after`-th page."""

    def __init__(self, items: list[dict[str, Any]], most: int = 3, honours_limit: bool = True) -> None:
        self.items = items
        self.most = most
        self.honours_limit = honours_limit
        self.offsets: list[int] = []

    def read(
        self, paging: Paging, after: int | None = None, change: Any = None, max_pages: int = 100
    ) -> list[dict[str, Any]]:
        passed: list[dict[str, Any]] = []
        while len(self.offsets) < max_pages:
            offset, limit = int(paging.request.params["offset"]), int(paging.request.params["limit"])
            self.offsets.append(offset)
            size = min(limit, self.most) if self.honours_limit else self.most
            passed += paging.serve([dict(r) for r in self.items[offset : offset + size]])
            if len(self.offsets) == after:
                change(self.items)
            if not paging.paginator.has_next_page:
                return passed
        raise AssertionError(f"no end after {max_pages} pages: {self.offsets}")


def test_the_page_size_is_the_apis_cap() -> None:
    assert ShortPageOffsetPaginator(offset_param="offset").limit == PAGE_SIZE == 100


def test_the_first_request_asks_for_offset_0_and_the_limit() -> None:
    paging = Paging(offset_param="skip")
    assert paging.request.params == {"skip": 0, "limit": 3}


def test_a_full_page_asks_for_the_next_from_its_last_record() -> None:
    paging = Paging()
    assert paging.serve(records(0, 3)) == records(0, 3)
    assert paging.paginator.has_next_page
    assert paging.request.params == {"offset": 2, "limit": 3}
    assert paging.serve(records(2, 3)) == records(3, 2)  # the overlap record is passed on once
    assert paging.request.params == {"offset": 4, "limit": 3}
    assert paging.moved == []


def test_a_list_is_read_exactly_with_one_request_per_page_and_no_extra_request() -> None:
    api = FakeList(records(0, 10), most=3)
    paging = Paging()
    assert api.read(paging) == records(0, 10)
    # 3 records a page, overlapping by one: 0-2, 2-4, 4-6, 6-8, 8-9 (short: the end, as 3 were served before).
    assert api.offsets == [0, 2, 4, 6, 8]
    assert paging.unseen == paging.moved == []


def test_an_api_serving_fewer_records_a_page_than_asked_is_read_to_its_real_end() -> None:
    # Asked for 3, the API serves 2 a page: a short page is not the end while no page was longer.
    api = FakeList(records(0, 7), most=2)
    paging = Paging()
    assert api.read(paging) == records(0, 7)
    assert api.offsets == [0, 1, 2, 3, 4, 5, 6]
    assert paging.unseen == paging.moved == []


def test_a_first_page_shorter_than_asked_costs_one_more_request() -> None:
    api = FakeList(records(0, 2), most=3)
    paging = Paging()
    assert api.read(paging) == records(0, 2)
    assert api.offsets == [0, 1]  # the second answer holds only the overlap record: shorter, so the end


def test_a_short_page_after_a_longer_one_is_the_last_one() -> None:
    paging = Paging()
    paging.serve(records(0, 3))
    assert paging.serve(records(2, 2)) == records(3, 1)
    assert not paging.paginator.has_next_page  # no request for the empty page after it
    assert paging.unseen == []


def test_page_sizes_are_shared_by_the_copies_dlt_makes_of_a_paginator() -> None:
    # dlt deep-copies the paginator for each list it reads (one per parent record of a child).
    paging = Paging()
    copy = deepcopy(paging.paginator)
    paging.serve(records(0, 3))
    copy.init_request(Request("GET", "https://api.example.com/v1/segments/2/people"))
    copy.update_state(page_response(), records(0, 2))
    assert not copy.has_next_page  # 2 < the 3 a page the other list was served


def test_an_empty_page_ends_the_list() -> None:
    paging = Paging()
    paging.serve([])
    assert not paging.paginator.has_next_page
    assert paging.unseen == paging.moved == []


def test_an_empty_page_where_the_overlap_record_should_be_is_a_move() -> None:
    # Asked from the last record served, an API that answers nothing lost that record and maybe more.
    paging = Paging()
    paging.serve(records(0, 3))
    paging.serve([])
    assert not paging.paginator.has_next_page
    assert paging.unseen == []
    assert paging.moved == [
        "GET /v1/people/all at offset=2 answered no record where the page before ended: the list changed"
        " while it was read"
    ]


def test_records_deleted_before_the_offset_during_a_read_are_reported_as_a_move() -> None:
    # Two records at the head deleted after the second page: every later offset shifts by two, so a
    # record is never served (the overlap catches the other). The read says the list moved, so no
    # sweep trusts it alone.
    api = FakeList(records(0, 12), most=3)
    paging = Paging()
    passed = api.read(paging, after=2, change=lambda items: items.__delitem__(slice(0, 2)))
    assert len(paging.moved) == 1
    assert "at offset=4 did not start with the record the page before ended with" in paging.moved[0]
    assert {r["id"] for r in records(0, 12)} - {r["id"] for r in passed} == {"p-5"}


def test_records_inserted_at_the_head_during_a_read_are_reported_as_a_move() -> None:
    api = FakeList(records(0, 9), most=3)
    paging = Paging()
    passed = api.read(paging, after=1, change=lambda items: items.insert(0, {"id": "new"}))
    assert paging.moved and {r["id"] for r in passed} >= {r["id"] for r in records(0, 9)}


def test_a_repeated_full_page_is_asked_once_more_then_reported_as_the_end_unseen() -> None:
    # An API that ignores offset and limit answers the same first page every time.
    paging = Paging()
    paging.serve(records(0, 3))
    assert paging.serve(records(0, 3)) == []  # its records were passed on with the page before
    assert paging.paginator.has_next_page and paging.request.params == {"offset": 2, "limit": 3}
    assert paging.serve(records(0, 3)) == []
    assert not paging.paginator.has_next_page
    assert len(paging.unseen) == 1
    assert paging.unseen[0].startswith(
        "GET /v1/people/all at offset=2 answered the same records as the page before, asked twice (3 records)"
    )
    assert "ignores the paging parameters (limit, offset)" in paging.unseen[0]
    assert "the end of the list was never seen" in paging.unseen[0]


def test_a_page_served_twice_by_accident_costs_one_request_and_nothing_else() -> None:
    paging = Paging()
    paging.serve(records(0, 3))
    assert paging.serve(records(0, 3)) == []
    assert paging.serve(records(2, 3)) == records(3, 2)  # the real page at that offset
    assert paging.paginator.has_next_page and paging.request.params == {"offset": 4, "limit": 3}
    assert paging.unseen == paging.moved == []


@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_first_page_of_other_than_the_limit_answered_whatever_the_offset_is_the_whole_list(
    size: int,
) -> None:
    # An API that does not page (the seed's /segments) answers its whole list to every request: fewer
    # records than the limit, or more (it ignores the limit too). The end was seen.
    paging = Paging()
    paging.serve(records(0, size))
    assert paging.serve(records(0, size)) == []
    assert paging.serve(records(0, size)) == []
    assert not paging.paginator.has_next_page
    assert paging.unseen == paging.moved == []


def test_an_api_ignoring_only_the_limit_is_read_without_repeats() -> None:
    api = FakeList(records(0, 8), most=4, honours_limit=False)
    paging = Paging()
    assert api.read(paging) == records(0, 8)
    assert api.offsets == [0, 3, 6]
    assert paging.moved == []


def test_a_new_request_forgets_the_previous_page() -> None:
    # dlt reuses a paginator for each parent record: the same first page under another parent is no repeat.
    paging = Paging()
    paging.serve(records(0, 2))
    paging.paginator.init_request(Request("GET", "https://api.example.com/v1/segments/2/people"))
    paging.serve(records(0, 3))
    assert paging.paginator.has_next_page
    assert paging.unseen == paging.moved == []


def test_a_repeat_without_a_listener_just_stops() -> None:
    paginator = ShortPageOffsetPaginator(offset_param="offset", limit=3)
    paginator.init_request(Request("GET", "https://api.example.com/v1/people/all"))
    for _ in range(3):
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
