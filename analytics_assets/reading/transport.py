"""How a source talks HTTP: the seeds' retry rule, pacing under a rate limit, every attempt observed,
responses checked before dlt reads them, and keys kept off plain-text connections.

Plain dlt and requests (no Dagster): one `Transport` per source per run, so no setting of one API
leaks into the other, and all requests of a source share its pacing.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from dlt.sources.helpers.requests import Client, Session
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, guess_json_utf
from tenacity import Retrying

from analytics_assets.internals import client_retrying
from analytics_assets.reading.prefetch import PagePrefetcher

RETRY_STATUS_CODES = (429, 500, 502, 503, 504)
"""The seeds' retry rule: these statuses are retried, every other error fails at once."""

log = logging.getLogger("analytics_assets.http")


class ApiResponseError(Exception):
    """A response the loader cannot use; the message names the API, the request and what to do."""


@dataclass(frozen=True)
class RetryPolicy:
    """The seeds' rule: 3 retries (4 attempts), exponential backoff with factor 2 (waits 2, 4, 8 s).

    Attributes:
        max_attempts: Attempts per request, the first included.
        backoff_factor: Waits are factor * 2**(retry - 1) seconds.
        max_retry_delay: Cap on one wait, including a server's `Retry-After`.
        timeout: Seconds to wait for a response before the attempt counts as failed.
    """

    max_attempts: int = 4
    backoff_factor: float = 2.0
    max_retry_delay: float = 30.0
    timeout: float = 60.0


class Pacer:
    """At most `limit` requests in any rolling `window` seconds at the API, shared by every thread of a source.

    Matches the API's own rolling window, so bursts up to the limit go out at once and a long sync
    slows down to the limit instead of meeting a 429 (the feedback API sends no `Retry-After`).
    The API counts a request when it arrives, which is some time between our send and its answer (and
    a busy machine or network stretches that time): so a request holds its place in the window from
    before it is sent until `window` seconds after its answer came. Counting sends instead let a late
    request land in the next window at the API, beside that window's own (seen as 429s on a loaded machine).
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        # A little slack for clocks: the API's window may be measured a bit longer than it says.
        self.window = window * 1.02 + 0.05
        self._answered: deque[float] = deque()
        """When the requests of the last `window` seconds were answered, oldest first."""
        self._in_flight = 0
        self._lock = threading.Lock()
        self.waited = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a place in the window for one request: wait for one, send inside, and the place stays
        taken until `window` seconds after the answer (or the error)."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._answered and now - self._answered[0] >= self.window:
                    self._answered.popleft()
                if len(self._answered) + self._in_flight < self.limit:
                    self._in_flight += 1
                    break
                # Every place taken: wait for the oldest answer to age out, or (all still in flight) a bit.
                pause = self.window - (now - self._answered[0]) if self._answered else _IN_FLIGHT_POLL
            time.sleep(pause)
            self.waited += pause
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._answered.append(time.monotonic())


_IN_FLIGHT_POLL = 0.05
"""Seconds between looks at the window while every place is held by a request still in flight."""


@dataclass
class _Attempt:
    reason: str
    at: float
    number: int


class ReadDropped(Exception):
    """A request of a read that was dropped: not sent (not an HTTP error, so never retried)."""


_KEY_REFUSED_403 = re.compile(r"api.?key|authenticat|unauthori[sz]ed|token", re.IGNORECASE)
"""A 403 whose message says this refuses the key; other 403s refuse one endpoint (a plan restriction)."""


class KeyRefusedError(Exception):
    """A request not sent: the API refused the run's key on an earlier request (`KeyRefusal`)."""

    def __init__(self, api: str, status: int, request: str) -> None:
        self.api = api
        self.status = status
        self.request = request
        super().__init__(f"{api} API refused the API key ({status}) on {request}; not requesting more")


class KeyRefusal:
    """Whether an API refused the key, shared by every read of that API in one run: the first 401 (or a
    403 that names the key) ends the API's other reads at their next request.

    A request for a path that another read of the run asked for and has no answer to yet waits for that
    answer first (at most `wait_seconds`): two reads of one list (a child reads its parent's list again)
    then cost one refused request, not two. Requests for other paths are never held back.
    """

    def __init__(self, wait_seconds: float = 60.0) -> None:
        self.wait_seconds = wait_seconds
        self.refused: KeyRefusedError | None = None
        self._lock = threading.Lock()
        self._answers: dict[str, threading.Event] = {}

    def before(self, api: str, path: str) -> threading.Event | None:
        """Raise `KeyRefusedError` when the key was refused. Returns the event to set once this request is
        answered, when it is the run's first request of `path`."""
        with self._lock:
            # Refused already: raise before registering this path, or the requests of this path after
            # it would wait for an answer that never comes.
            self._raise_if_refused(api)
            answered = self._answers.get(path)
            if answered is None:
                answered = self._answers[path] = threading.Event()
                return answered
        answered.wait(self.wait_seconds)
        self._raise_if_refused(api)
        return None

    def _raise_if_refused(self, api: str) -> None:
        if self.refused is not None:
            raise KeyRefusedError(api, self.refused.status, self.refused.request)

    def after(
        self, api: str, request: str, response: Response | None, answered: threading.Event | None
    ) -> None:
        """Note an answer (None: the attempt failed without one)."""
        if response is not None and (
            response.status_code == 401
            or (response.status_code == 403 and _KEY_REFUSED_403.search(response.text or ""))
        ):
            self.refused = self.refused or KeyRefusedError(api, response.status_code, request)
        if answered is not None:
            answered.set()


@dataclass
class RequestStats:
    """What one source's requests did during a run: counts per endpoint path, retries, the last request."""

    api: str
    requests: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    last: dict[str, str] = field(default_factory=dict)
    """The last URL (path and query, never headers) requested per path."""
    _failed: dict[str, _Attempt] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)
    refusal: KeyRefusal | None = field(default_factory=KeyRefusal)
    """Shared by the run's reads of this API (see `KeyRefusal`); None asks every request whatever the
    answers before (the connection test reports on each endpoint)."""

    def stop(self) -> None:
        """Send no further request: what these requests are read for was dropped (a child held back by its parent's blocking checks, `assets.py`).
        Requests already on their way finish; the next one raises `ReadDropped`."""
        self._stopped.set()

    def check_not_stopped(self, url: str) -> None:
        if self._stopped.is_set():
            raise ReadDropped(f"{self.api} API: not requesting GET {url}: the run dropped this read")

    def for_endpoint(self, path: str) -> tuple[int, int]:
        """Requests and retries of one endpoint (`/segments/{resources.segments.id}/people` matches them all)."""
        head, tail = path.split("{", 1)[0], path.rsplit("}", 1)[-1]
        paths = (
            [p for p in self.requests if p.endswith(tail) and head in p]
            if "{" in path
            else [p for p in self.requests if p.endswith(path)]
        )
        return sum(self.requests[p] for p in paths), sum(self.retries[p] for p in paths)

    def before(self, url: str) -> None:
        path = url.partition("?")[0]
        with self._lock:
            self.requests[path] += 1
            self.last[path] = url
            failed = self._failed.pop(url, None)
        if failed is not None:
            self.retries[path] += 1
            log.warning(
                f"{self.api} API: retry {failed.number} of GET {url} after {failed.reason},"
                f" waited {time.monotonic() - failed.at:.1f} s"
            )

    def after(self, url: str, reason: str | None) -> None:
        """Remember a failed attempt, so the next request of the same URL counts as its retry."""
        if reason is None:
            return
        with self._lock:
            previous = self._failed.get(url)
            self._failed[url] = _Attempt(reason, time.monotonic(), previous.number + 1 if previous else 1)


_DIGITS = bytes(ord("0") if chr(i).isdigit() and i < 128 else ord(" ") for i in range(256))
"""A table mapping each ASCII digit to `0` and any other byte to a space."""
_LONG_NUMBER = b"0" * 19
"""19 digits in a row (after `_DIGITS`): maybe an integer beyond 64 bits, which orjson reads as a float
(requests' parser as an int). 18 digits are always below 2**63. Looked for with `bytes.translate` and
`in`: a regular expression takes longer than the parse."""


class NumberText(str):
    """A JSON number no double holds (`1e400`; `NaN` and `Infinity`, which some servers write), kept as the
    text the API sent: read as a float it would be infinite, and written as null (`odd_values.py`
    stores the text)."""


def _float_or_text(text: str) -> float | NumberText:
    number = float(text)
    return NumberText(text) if math.isinf(number) else number


class _JsonResponse(Response):
    """A response whose `json()` parses UTF-8 bytes with orjson: a third of the time of the parser
    requests uses, and the same values.

    Only where requests would read the body as UTF-8 too (the charset says so, or none is given and the
    bytes are UTF-8 JSON: RFC 8259) and no number may be too long for orjson; anything orjson refuses
    (invalid UTF-8, lone surrogates, NaN, huge exponents) goes to requests' own parser, which decides
    and raises its own error; there a number beyond a double is kept as its text (`NumberText`).
    """

    def json(self, **kwargs: Any) -> Any:
        content = self.content
        encoding = (self.encoding or "").lower().replace("_", "-")
        if (
            not kwargs
            and content
            and (
                encoding in ("utf-8", "utf8")
                or (not encoding and len(content) > 3 and guess_json_utf(content) == "utf-8")
            )
            and _LONG_NUMBER not in content.translate(_DIGITS)
        ):
            try:
                return orjson.loads(content)
            except orjson.JSONDecodeError:
                pass
        if not kwargs:
            return super().json(parse_float=_float_or_text, parse_constant=NumberText)
        return super().json(**kwargs)


class _ObservedAdapter(HTTPAdapter):
    """Sees every attempt (retries included): paces it, bounds it in time, counts it, remembers why it failed."""

    def __init__(self, stats: RequestStats, pacer: Pacer | None, timeout: float) -> None:
        super().__init__(pool_maxsize=32)  # endpoints, segments and pages side by side
        self.stats = stats
        self.pacer = pacer
        self.timeout = timeout

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        # dlt's RESTClient calls Session.send(), which skips the session's default timeout: without this
        # a server that stops answering would hold the nightly load forever.
        if not args and kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        parts = urlsplit(request.url or "")
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        self.stats.check_not_stopped(url)  # a dropped read ends at its next request, not at the list's end
        refusal = self.stats.refusal
        answered = refusal.before(self.stats.api, parts.path) if refusal is not None else None
        response: Response | None = None
        try:
            with self.pacer.slot() if self.pacer else nullcontext():
                self.stats.before(url)
                try:
                    response = super().send(request, *args, **kwargs)
                except Exception as error:
                    self.stats.after(url, type(error).__name__)
                    raise
        finally:
            if refusal is not None:  # the requests waiting for this answer go on
                refusal.after(self.stats.api, f"GET {url}", response, answered)
        retried = response.status_code in RETRY_STATUS_CODES
        self.stats.after(url, f"HTTP {response.status_code}" if retried else None)
        return response

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        """A `_JsonResponse` (parsed by dlt's REST client on every page), made as requests' own
        `HTTPAdapter.build_response` makes its `Response`: the hook requests keeps for subclasses, whose
        default offers no way to choose the class."""
        response = _JsonResponse()
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url  # type: ignore[assignment]
        extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self  # type: ignore[attr-defined]
        return response


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(api: str, base_url: str, setting: str, allow_insecure_http: bool = False) -> None:
    """Refuse a base URL the key must not travel to: not http(s), or plain http beyond this machine.

    Raises:
        ValueError: With the setting to change.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{api} API: base URL {base_url!r} is not an http(s) URL; fix {setting}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
        raise ValueError(
            f"{api} API: base URL {base_url!r} uses plain http to {parts.hostname}, so the API key would"
            f" travel in clear text. Use https in {setting}, or set"
            f" {setting.removesuffix('BASE_URL')}ALLOW_INSECURE_HTTP=true if you really mean it."
        )


def expect_json(api: str, data_selector: str) -> Callable[..., Response]:
    """A dlt `response_actions` hook: the page is JSON and holds `data_selector`, or the run stops.

    dlt reads a page without its data selector as an empty page, which would end paging early and look
    like a complete list. The check is textual (the body is parsed once, by dlt).
    """
    key = None if data_selector == "$" else re.compile(rf'"{re.escape(data_selector)}"\s*:')

    def check(response: Response, *args: Any, **kwargs: Any) -> Response:
        if response.status_code >= 400:
            return response  # dlt raises the HTTP error itself, with its status
        parts = urlsplit(response.url)
        request = f"GET {parts.path}" + (f"?{parts.query}" if parts.query else "")
        content_type = response.headers.get("Content-Type", "")
        body = response.text.lstrip()
        if "json" not in content_type or body.startswith("<"):
            raise ApiResponseError(
                f"{api} API answered {request} with {content_type or 'no content type'}"
                f" (an HTML page?) where JSON was expected: check the base URL, or whether the API is down."
            )
        if key is not None and not key.search(body):
            raise ApiResponseError(
                f"{api} API answered {request} without its `{data_selector}` field: the response format changed"
                f" or the API returned an error with status 200. Nothing of this endpoint was loaded; body starts"
                f" {body[:120]!r}."
            )
        if key is None and not body.startswith("["):
            raise ApiResponseError(f"{api} API answered {request} with something other than a JSON array.")
        return response

    return check


class ApiSession(Session):
    """The session of one source for one run, handed to dlt's REST client: dlt's `Session` (its
    `User-Agent` and default timeout), with dlt's retrying send, the observed adapter under it, and the
    pages of offset-paged lists requested ahead above it.

    Args:
        retrying: dlt's retry rule, applied to each request on its own (`internals.client_retrying`).
        adapter: The adapter every attempt goes through (`http://` and `https://`).
        timeout: Seconds before an attempt times out.
        page_concurrency: Pages of one offset-paged list in flight at once (see `prefetch.py`).
        offset_params: The query parameters that carry a page's offset.
    """

    def __init__(
        self,
        retrying: Retrying,
        adapter: HTTPAdapter,
        timeout: float,
        page_concurrency: int = 1,
        offset_params: Collection[str] = (),
    ) -> None:
        super().__init__(timeout=timeout, raise_for_status=False)  # dlt's RESTClient raises, after its hooks
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._send_retried = retrying.wraps(super().send)
        # Above the retrying send: each page requested ahead is retried on its own.
        self._prefetcher = (
            PagePrefetcher(self._send_retried, page_concurrency, offset_params)
            if page_concurrency > 1 and offset_params
            else None
        )
        self._environment: dict[tuple[str, str, bool], dict[str, Any]] = {}
        self._environment_lock = threading.Lock()

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        if self._prefetcher is not None:
            return self._prefetcher.send(request, **kwargs)
        return self._send_retried(request, **kwargs)

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """requests' answer, read once per scheme and host: dlt asks before every request, and requests
        reads the whole environment each time (a tenth of a page's time). The answer (proxies,
        `no_proxy`, `REQUESTS_CA_BUNDLE`) depends on nothing else when the request brings no settings of
        its own, and the environment does not change during a run."""
        if proxies or stream is not None or verify is not None or cert is not None or not url:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc, proxies is None)  # None takes no proxies from the environment
        with self._environment_lock:
            settings = self._environment.get(origin)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            with self._environment_lock:
                self._environment[origin] = settings
        # A copy each time: the caller adds its own arguments to it.
        proxies = settings["proxies"]
        return {**settings, "proxies": dict(proxies) if proxies is not None else None}


@dataclass
class Transport:
    """The HTTP side of one source for one run: a session with retries, pacing and observation."""

    retry: RetryPolicy
    requests_per_minute: float | None
    rate_window_seconds: float
    stats: RequestStats
    page_concurrency: int = 1
    """Pages of one offset-paged list requested at once (see `prefetch.py`); 1 reads them one by one."""

    def session(self, offset_params: Collection[str] = ()) -> ApiSession:
        """A session for dlt's RESTClient: dlt's retry rule, with the observed adapter under it.

        Args:
            offset_params: The query parameters that carry a page's offset: requests with one of them
                (and a `limit`) are paged, and up to `page_concurrency` of their pages go out at once.
        """
        client = Client(
            request_timeout=self.retry.timeout,
            raise_for_status=False,
            status_codes=RETRY_STATUS_CODES,
            request_max_attempts=self.retry.max_attempts,
            request_backoff_factor=self.retry.backoff_factor,
            request_max_retry_delay=self.retry.max_retry_delay,
            respect_retry_after_header=True,
        )
        pacer = None
        if self.requests_per_minute:
            limit = max(int(self.requests_per_minute * self.rate_window_seconds / 60), 1)
            pacer = Pacer(limit, self.rate_window_seconds)
        return ApiSession(
            client_retrying(client),
            _ObservedAdapter(self.stats, pacer, self.retry.timeout),
            self.retry.timeout,
            self.page_concurrency,
            offset_params,
        )
