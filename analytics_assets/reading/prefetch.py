"""Pages side by side: the next pages of an offset-paged list requested while dlt reads the current one.

Offset paging knows every page's offset before it asks, but dlt's `RESTClient.paginate` sends a
request only once the previous page is processed, so a list of P pages costs P round trips one after
another. `PagePrefetcher` wraps the source's session `send` (above dlt's retrying send, so every
request keeps the seeds' retry rule and every attempt still goes through the pacing and the stats of
`transport.py`). When dlt asks for page k of a list, the next pages k+1 .. k+N-1 are already on their
way in a thread pool; dlt receives each page from its own request, in page order, and its paginator
decides as before where the list ends (a short page, an empty one, the whole list repeated). Nothing else changes: rows,
the end of a list and the "end not seen" report are exactly those of a sequential read. The next offsets
are guessed from the last step the paginator took (`ShortPageOffsetPaginator` moves by what a page held,
less a one-record overlap), not from `limit`: an API serving fewer records a page than asked is read
side by side too.

What it costs: requests past the end of a list, at most one window (N-1) per list read. The window
opens with the list: one page at a time for its first 4 pages, then one more page in flight for every
4 pages read, up to N. Requests past the end are so never more than a quarter of a list's pages
(short lists, like a segment's members, are read one page at a time), and a long list runs at N
pages at once after its first ~4N pages. When dlt asks for an offset that was not predicted (the API
changed its page size mid-list), the guesses are dropped and made again from the new step; after
`_MAX_MISSES` such drops the rest of that list is read one page at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests import PreparedRequest, Response

Send = Callable[..., Response]

_PAGES_PER_STEP = 4
"""The window grows by one page for every this many pages of a list read (see the module's docstring)."""
_MAX_MISSES = 2
"""Wrong guesses of a list's next offsets before the rest of it is read one page at a time."""
_MAX_LISTS = 256
"""Lists whose paging state is kept (least recently read dropped first): a dropped list only loses
its guesses, its next page is then read as a first page."""


@dataclass
class _List:
    """One read of one list: the last offset asked for and the pages requested ahead of it."""

    last: int
    pages: int = 1
    step: int | None = None
    """How far apart the list's last two offsets were: the page size the API really serves (less the
    paginator's one-record overlap), which may be less than the `limit` asked for."""
    misses: int = 0
    sequential: bool = False
    ahead: dict[int, Future[Response]] = field(default_factory=dict)

    def drop_guesses(self) -> None:
        for future in self.ahead.values():
            future.cancel()  # a request already sent finishes; its answer is dropped
        self.ahead.clear()


def _paging(query: str, offset_params: Collection[str], limit_param: str) -> tuple[str, int, int] | None:
    """(offset parameter, offset, limit) of a paged request's query, or None for any other request."""
    offset_name, offset, limit = None, None, None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name in offset_params and value.isdigit():
            offset_name, offset = name, int(value)
        elif name == limit_param and value.isdigit():
            limit = int(value)
    if offset_name is None or offset is None or not limit:
        return None
    return offset_name, offset, limit


def _with_offset(url: str, name: str, offset: int) -> str:
    parts = urlsplit(url)
    query = "&".join(f"{name}={offset}" if p.partition("=")[0] == name else p for p in parts.query.split("&"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _list_key(request: PreparedRequest, name: str) -> str:
    # The list a request belongs to: its method and URL without the offset (a child's path names its parent).
    return f"{request.method} {_with_offset(request.url or '', name, -1)}"


class PagePrefetcher:
    """Wraps a session's `send` so that up to `concurrency` pages of one list are requested at once.

    Args:
        send: The session's (retrying) `send`.
        concurrency: Pages of one list in flight at most (1: no prefetch, a plain sequential read).
        offset_params: Query parameters that carry a page's offset (`offset`, `skip`).
        limit_param: The query parameter of the page size.
    """

    def __init__(
        self, send: Send, concurrency: int, offset_params: Collection[str], limit_param: str = "limit"
    ) -> None:
        self._send = send
        self.concurrency = max(int(concurrency), 1)
        self._offset_params = frozenset(offset_params)
        self._limit_param = limit_param
        self._lists: OrderedDict[str, _List] = OrderedDict()
        self._lock = threading.Lock()
        # Several lists are read at once (endpoints and segments side by side): room for a window each
        # of a few of them; a page whose turn comes before a worker took it is sent by its reader.
        self._pool = (
            ThreadPoolExecutor(max_workers=min(4 * (self.concurrency - 1), 24), thread_name_prefix="page")
            if self.concurrency > 1
            else None
        )

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Send `request`, or hand over the answer of its page requested ahead; request the next pages."""
        if self._pool is None:
            return self._send(request, **kwargs)
        paging = _paging(urlsplit(request.url or "").query, self._offset_params, self._limit_param)
        if paging is None:
            return self._send(request, **kwargs)
        name, offset, _limit = paging
        key = _list_key(request, name)
        with self._lock:
            state = self._lists.get(key)
            if state is None or offset <= state.last:
                # A new read of this list (its first page, or the list read again): old guesses go.
                if state is not None:
                    state.drop_guesses()
                self._lists[key] = _List(last=offset)
                self._lists.move_to_end(key)
                while len(self._lists) > _MAX_LISTS:
                    self._lists.popitem(last=False)[1].drop_guesses()
                future = None
            else:
                self._lists.move_to_end(key)
                future = state.ahead.pop(offset, None)
                if future is None and state.ahead:
                    # The paginator moved by another step than guessed (the API changed its page size
                    # mid-list): the guesses go; a list that keeps doing so is read one page at a time.
                    state.drop_guesses()
                    state.misses += 1
                    state.sequential = state.misses > _MAX_MISSES
                state.step = offset - state.last
                state.last = offset
                state.pages += 1
                if not state.sequential:
                    window = min(1 + (state.pages - 1) // _PAGES_PER_STEP, self.concurrency)
                    for i in range(1, window):
                        ahead = offset + i * state.step
                        if ahead not in state.ahead:
                            copy = request.copy()
                            copy.url = _with_offset(request.url or "", name, ahead)
                            state.ahead[ahead] = self._pool.submit(self._send, copy, **kwargs)
        if future is not None and not future.cancel():
            return future.result()  # sent already: its answer, or the error its retries ended in
        return self._send(request, **kwargs)  # not predicted, or not yet taken by a worker: sent here
