"""`analytics_assets.reading.prefetch` on its own: a fake `send` that answers at once and records what it was
asked, driven the way dlt's paginator asks for pages (no server)."""

from __future__ import annotations

import threading
from typing import Any

from requests import PreparedRequest, Request, Response

from analytics_assets.reading.prefetch import PagePrefetcher

URL = "https://api.example.com/v1/people/all"


class FakeSend:
    """Answers every request at once; records the offsets asked for, in order."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, request: PreparedRequest, **kwargs: Any) -> Response:
        offset = int(dict(p.split("=") for p in (request.url or "").split("?")[1].split("&"))["offset"])
        with self._lock:
            self.offsets.append(offset)
        answer = Response()
        answer.status_code = 200
        answer.url = request.url or ""
        answer._content = str(offset).encode()
        return answer


def page(offset: int) -> PreparedRequest:
    return Request("GET", URL, params={"offset": offset, "limit": 100}).prepare()


def read(prefetcher: PagePrefetcher, offsets: list[int]) -> list[int]:
    """Ask for each page in turn, as the paginator does; the offsets each answer came from."""
    return [int(prefetcher.send(page(o)).content) for o in offsets]


def test_pages_ahead_follow_the_step_the_paginator_takes_not_the_limit() -> None:
    # The API serves 50 records a page where 100 are asked: the paginator moves by 49 (one record overlap).
    send = FakeSend()
    prefetcher = PagePrefetcher(send, concurrency=4, offset_params=["offset"])
    wanted = list(range(0, 49 * 20, 49))
    assert read(prefetcher, wanted) == wanted  # each page its own answer, in order
    asked = set(send.offsets)
    assert asked >= set(wanted)
    assert all(o % 49 == 0 for o in asked), sorted(asked)  # no guess at a multiple of the limit
    assert len(send.offsets) == len(asked), "no page asked twice"


def test_a_list_whose_step_keeps_changing_is_read_one_page_at_a_time() -> None:
    send = FakeSend()
    prefetcher = PagePrefetcher(send, concurrency=4, offset_params=["offset"])
    offsets, at = [], 0
    for i in range(30):
        offsets.append(at)
        at += 97 if i % 2 else 99  # never the same step twice: every guess is wrong
    assert read(prefetcher, offsets) == offsets
    wasted = len(send.offsets) - len(set(offsets))
    assert wasted <= 3 * 3, "at most a window of wrong guesses per miss, and a few misses"
