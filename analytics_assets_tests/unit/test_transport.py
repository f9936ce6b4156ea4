"""`analytics_assets.reading.transport` on its own: pacing on a fake clock, base URL and page checks on
hand-made responses, and the session's retry rule over a fake adapter (no server, no Dagster)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse

from analytics_assets.reading import transport
from analytics_assets.reading.transport import (
    ApiResponseError,
    KeyRefusal,
    KeyRefusedError,
    Pacer,
    ReadDropped,
    RequestStats,
    RetryPolicy,
    Transport,
    check_base_url,
    expect_json,
)


@dataclass
class FakeClock:
    """Stands in for the `time` module in `transport`: sleeping moves the clock, nothing waits."""

    now: float = 1_000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(transport, "time", fake)
    return fake


def test_pacer_lets_a_burst_up_to_the_limit_go_at_once(clock: FakeClock) -> None:
    pacer = Pacer(limit=3, window=10)
    for _ in range(3):
        with pacer.slot():
            pass
    assert clock.slept == []
    assert pacer.waited == 0


def test_pacer_holds_the_request_over_the_limit_until_the_oldest_leaves_the_window(clock: FakeClock) -> None:
    pacer = Pacer(limit=2, window=10)
    with pacer.slot():
        pass
    clock.now += 4
    with pacer.slot():
        pass
    with pacer.slot():  # a third request within the window: waits for the first one to age out
        pass
    assert clock.slept == [pytest.approx(pacer.window - 4)]
    assert pacer.waited == pytest.approx(pacer.window - 4)
    assert pacer.window > 10  # slack for requests that leave just after the API's window moved


def test_pacer_does_not_wait_once_the_window_has_passed(clock: FakeClock) -> None:
    pacer = Pacer(limit=1, window=10)
    with pacer.slot():
        pass
    clock.now += pacer.window
    with pacer.slot():
        pass
    assert clock.slept == []


def test_pacer_counts_a_request_in_the_window_until_its_answer_came(clock: FakeClock) -> None:
    """The API counts a request when it arrives, somewhere between our send and its answer: a slow answer
    keeps its place, so a request sent a window after a slow one's send cannot join it at the API."""
    pacer = Pacer(limit=1, window=10)
    with pacer.slot():
        clock.now += 3  # the answer takes 3 s: the API may have counted it at any time in them
    clock.now += pacer.window - 1
    with pacer.slot():  # a window after the send, but not yet after the answer: waits the last second
        pass
    assert clock.slept == [pytest.approx(1)]


def test_pacer_holds_the_place_of_a_request_still_in_flight() -> None:
    """On the real clock: with one place, a second request goes out only after the first is answered."""
    pacer = Pacer(limit=1, window=0.01)
    order: list[str] = []
    sent, answer = threading.Event(), threading.Event()

    def first() -> None:
        with pacer.slot():
            sent.set()
            answer.wait(5)
            order.append("first answered")

    def second() -> None:
        with pacer.slot():
            order.append("second sent")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    sent.wait(5)
    threads[1].start()
    threads[1].join(timeout=0.3)
    assert order == []  # the second waits while the first is in flight
    answer.set()
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["first answered", "second sent"]


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.example.com/v1",
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000",
        "http://[::1]:8000",
    ],
)
def test_check_base_url_accepts_https_and_http_on_this_machine(base_url: str) -> None:
    check_base_url("audience", base_url, "SOURCES__AUDIENCE__BASE_URL")


def test_check_base_url_refuses_plain_http_to_another_host_naming_the_settings() -> None:
    with pytest.raises(ValueError) as raised:
        check_base_url("feedback", "http://api.example.com", "SOURCES__FEEDBACK__BASE_URL")
    message = str(raised.value)
    assert message.startswith("feedback API: base URL 'http://api.example.com' uses plain http")
    assert "SOURCES__FEEDBACK__BASE_URL" in message
    assert "SOURCES__FEEDBACK__ALLOW_INSECURE_HTTP=true" in message


def test_check_base_url_allows_plain_http_when_asked_to() -> None:
    check_base_url(
        "feedback", "http://api.example.com", "SOURCES__FEEDBACK__BASE_URL", allow_insecure_http=True
    )


@pytest.mark.parametrize("base_url", ["ftp://api.example.com", "api.example.com/v1", "https://", ""])
def test_check_base_url_refuses_what_is_not_an_http_url(base_url: str) -> None:
    # Even with insecure http allowed: these are not a place to send a key to at all.
    with pytest.raises(
        ValueError,
        match=r"audience API: base URL .* is not an http\(s\) URL; fix SOURCES__AUDIENCE__BASE_URL",
    ):
        check_base_url("audience", base_url, "SOURCES__AUDIENCE__BASE_URL", allow_insecure_http=True)


def response(
    body: str,
    status: int = 200,
    content_type: str | None = "application/json",
    url: str = "https://api.example.com/v1/people/all?offset=200&limit=100",
) -> Response:
    """A `requests.Response` as the session hands it to dlt's response hooks."""
    made = Response()
    made.status_code = status
    made._content = body.encode()
    made.url = url
    made.encoding = "utf-8"
    if content_type is not None:
        made.headers["Content-Type"] = content_type
    return made


def test_expect_json_passes_a_page_that_holds_its_data_selector() -> None:
    page = response('{"people": [{"id": "p-1"}], "meta": {}}')
    assert expect_json("audience", "people")(page) is page


def test_expect_json_passes_a_bare_array_for_the_root_selector() -> None:
    page = response('  [{"id": 1}]')
    assert expect_json("audience", "$")(page) is page


def test_expect_json_leaves_error_statuses_to_dlt() -> None:
    page = response("<html>Bad gateway</html>", status=502, content_type="text/html")
    assert expect_json("audience", "people")(page) is page


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("<html><body>Sign in</body></html>", "text/html"), ("<html></html>", "application/json"), ("{}", None)],
)
def test_expect_json_stops_on_a_page_that_is_not_json(body: str, content_type: str | None) -> None:
    with pytest.raises(ApiResponseError) as raised:
        expect_json("audience", "people")(response(body, content_type=content_type))
    message = str(raised.value)
    assert message.startswith("audience API answered GET /v1/people/all?offset=200&limit=100 with")
    assert "where JSON was expected: check the base URL" in message


def test_expect_json_stops_on_a_page_without_its_data_selector() -> None:
    # dlt would read it as an empty page: the end of the list, and the sweep would delete the rest.
    page = response('{"error": "quota exceeded", "peoples": []}', url="https://api.example.com/v1/people/all")
    with pytest.raises(ApiResponseError) as raised:
        expect_json("audience", "people")(page)
    message = str(raised.value)
    assert message.startswith("audience API answered GET /v1/people/all without its `people` field")
    assert "Nothing of this endpoint was loaded" in message
    assert "quota exceeded" in message  # the body's start, to see what the API said


def test_expect_json_stops_on_an_object_where_the_root_selector_wants_an_array() -> None:
    with pytest.raises(ApiResponseError, match=r"^feedback API answered GET /accounts with something other"):
        expect_json("feedback", "$")(response('{"accounts": []}', url="https://api.example.com/accounts"))


def test_the_retry_policy_is_the_seeds() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.backoff_factor) == (4, 2.0)
    assert set(transport.RETRY_STATUS_CODES) == {429, 500, 502, 503, 504}


class CannedAdapter:
    """Replaces the network under the session: answers each request with the next canned status."""

    def __init__(self, statuses: list[int | type[Exception]]) -> None:
        self.statuses: Iterator[int | type[Exception]] = iter(statuses)
        self.sent: list[tuple[str, float | None]] = []

    def send(self, request: PreparedRequest, *args: object, **kwargs: object) -> Response:
        timeout = kwargs.get("timeout")
        self.sent.append((str(request.url), timeout if isinstance(timeout, float | int) else None))
        status = next(self.statuses)
        if not isinstance(status, int):
            raise status("canned")
        answer = response("[]", status=status, url=str(request.url))
        answer.request = request
        return answer


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> CannedAdapter:
    adapter = CannedAdapter(request.param)
    # Under the observed adapter, which stays real: HTTPAdapter.send is what would open a socket.
    monkeypatch.setattr(
        HTTPAdapter, "send", lambda _self, request, *args, **kwargs: adapter.send(request, **kwargs)
    )
    return adapter


def quick_transport(api: str = "audience", **policy: float) -> Transport:
    retry = RetryPolicy(backoff_factor=0, timeout=7.5, **policy)  # type: ignore[arg-type]
    return Transport(retry=retry, requests_per_minute=None, rate_window_seconds=60, stats=RequestStats(api))


@pytest.mark.parametrize("canned", [[503, 429, 200]], indirect=True)
def test_the_session_retries_the_seeds_statuses_and_counts_each_retry(canned: CannedAdapter) -> None:
    source = quick_transport()
    answer = source.session().get("https://api.example.com/v1/people/all?offset=0&limit=100")
    assert answer.status_code == 200
    assert len(canned.sent) == 3
    assert all(timeout == 7.5 for _, timeout in canned.sent)  # dlt's send() passes none: the policy's applies
    assert source.stats.requests["/v1/people/all"] == 3
    assert source.stats.retries["/v1/people/all"] == 2
    assert source.stats.for_endpoint("/people/all") == (3, 2)
    assert source.stats.last["/v1/people/all"] == "/v1/people/all?offset=0&limit=100"


@pytest.mark.parametrize("canned", [[500, 500, 500, 500, 200]], indirect=True)
def test_the_session_gives_up_after_max_attempts(canned: CannedAdapter) -> None:
    answer = quick_transport().session().get("https://api.example.com/v1/people/all")
    assert answer.status_code == 500  # the RESTClient raises for it, after its response hooks
    assert len(canned.sent) == 4


@pytest.mark.parametrize("canned", [[404, 200]], indirect=True)
def test_the_session_does_not_retry_other_errors(canned: CannedAdapter) -> None:
    source = quick_transport()
    assert source.session().get("https://api.example.com/v1/nothing").status_code == 404
    assert len(canned.sent) == 1
    assert source.stats.retries["/v1/nothing"] == 0


@pytest.mark.parametrize("canned", [[requests.ConnectionError, 200]], indirect=True)
def test_the_session_retries_a_connection_error(canned: CannedAdapter) -> None:
    source = quick_transport()
    assert source.session().get("https://api.example.com/v1/people/all").status_code == 200
    assert source.stats.retries["/v1/people/all"] == 1


@pytest.mark.parametrize("canned", [[200] * 3], indirect=True)
def test_the_session_paces_requests_under_a_rate_limit(canned: CannedAdapter, clock: FakeClock) -> None:
    source = Transport(
        retry=RetryPolicy(backoff_factor=0),
        requests_per_minute=60,
        rate_window_seconds=2,  # 2 requests per 2-second window
        stats=RequestStats("feedback"),
    )
    session = source.session()
    for _ in range(3):
        session.get("https://api.example.com/surveys")
    assert len(clock.slept) == 1  # the third request waited for the window, on the fake clock


def parsed_both_ways(body: bytes, encoding: str | None) -> tuple[object, object]:
    """A page's body read by the session's responses (`_JsonResponse`) and by requests' own."""
    answers = []
    for kind in (transport._JsonResponse, Response):
        made = kind()
        made.status_code = 200
        made._content = body
        made.encoding = encoding
        try:
            answers.append(made.json())
        except requests.JSONDecodeError as error:
            answers.append(type(error))
    return answers[0], answers[1]


@pytest.mark.parametrize("encoding", ["utf-8", None])
@pytest.mark.parametrize(
    "body",
    [
        '{"people": [{"id": "p-1", "score": 21.1, "ok": true, "n": null, "tags": ["a", "ü"]}]}'.encode(),
        b'{"id": 123456789012345678901234567890, "small": -9223372036854775809}',  # beyond 64 bits
        b'{"text": "\\ud800"}',  # a lone surrogate
        b'{"name": "Jos\xe9"}',  # not UTF-8: requests replaces the byte
        b"\xef\xbb\xbf" + b'{"id": 1}',  # a byte order mark
        b'{"id": 1, "id": 2}',
        b"<html>not json</html>",
    ],
)
def test_the_sessions_responses_read_json_as_requests_does(body: bytes, encoding: str | None) -> None:
    ours, theirs = parsed_both_ways(body, encoding)
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # an int stays an int, a float a float


@pytest.mark.parametrize("encoding", ["utf-8", None])
def test_a_number_beyond_a_double_is_kept_as_the_text_served(encoding: str | None) -> None:
    # requests' parser reads 1e400 as infinity, which dlt writes as null: the text keeps every digit.
    ours, _ = parsed_both_ways(b'{"ratio": NaN, "big": 1e400, "small": 1e-400, "x": 2.5}', encoding)
    assert ours == {"ratio": "NaN", "big": "1e400", "small": 0.0, "x": 2.5}
    assert type(ours["big"]) is transport.NumberText and type(ours["ratio"]) is transport.NumberText


def test_the_session_builds_its_responses_to_read_json_fast() -> None:
    session = quick_transport().session()
    adapter = session.get_adapter("https://api.example.com")
    assert isinstance(adapter, HTTPAdapter)
    request = requests.Request("GET", "https://api.example.com/v1/people/all").prepare()
    raw = HTTPResponse(
        body=io.BytesIO(b'{"people": []}'),
        status=200,
        headers={"Content-Type": "application/json"},
        preload_content=False,
    )
    built = adapter.build_response(request, raw)
    assert isinstance(built, transport._JsonResponse)
    assert built.json() == {"people": []}


def test_the_sessions_responses_are_built_as_requests_builds_its_own() -> None:
    """The observed adapter makes its `_JsonResponse` the way requests' `HTTPAdapter.build_response`
    makes a `Response`: an upgrade of requests that sets more (or other) fields fails here."""
    adapter = quick_transport().session().get_adapter("https://api.example.com")
    request = requests.Request("GET", "https://api.example.com/v1/people/all?offset=0&limit=100").prepare()

    def raw() -> HTTPResponse:
        headers = {"Content-Type": "application/json; charset=latin-1"}
        return HTTPResponse(body=io.BytesIO(b"[]"), status=201, reason="Created", headers=headers)

    ours, theirs = adapter.build_response(request, raw()), HTTPAdapter.build_response(adapter, request, raw())
    assert type(theirs) is Response
    fields = {**vars(theirs), "raw": None}
    assert {**vars(ours), "raw": None} == fields
    assert (ours.status_code, ours.encoding, ours.reason, ours.url) == (
        201,
        "latin-1",
        "Created",
        request.url,
    )


def test_the_session_reads_the_proxy_settings_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    session = quick_transport().session()
    plain = requests.Session()

    def settings(s: requests.Session, url: str) -> dict[str, object]:
        return s.merge_environment_settings(url, {}, None, None, None)

    for url in ("https://api.example.com/v1/people/all?offset=0", "https://internal.example.com/v1/x"):
        assert settings(session, url) == settings(plain, url)
        assert settings(session, url) == settings(plain, url)  # the second time from the first's answer
    proxies = settings(session, "https://api.example.com/v1")["proxies"]
    assert isinstance(proxies, dict) and proxies["https"] == "http://proxy.example.com:3128"
    proxies = settings(session, "https://internal.example.com/v1")["proxies"]
    assert isinstance(proxies, dict) and "https" not in proxies  # NO_PROXY
    # A request's own settings are merged as requests does.
    assert session.merge_environment_settings(
        "https://api.example.com/v1", {"https": "http://other:1"}, None, False, None
    ) == plain.merge_environment_settings(
        "https://api.example.com/v1", {"https": "http://other:1"}, None, False, None
    )


@pytest.mark.parametrize("canned", [[200, 200]], indirect=True)
def test_a_stopped_source_sends_no_further_request(canned: CannedAdapter) -> None:
    """What a dropped read does (a child held back by its parent's checks, `assets.py`): it ends at its next request, which is never
    sent nor retried."""
    source = quick_transport()
    session = source.session()
    assert session.get("https://api.example.com/v1/people/all?offset=0&limit=100").status_code == 200
    source.stats.stop()
    with pytest.raises(ReadDropped, match="audience API: not requesting GET /v1/people/all"):
        session.get("https://api.example.com/v1/people/all?offset=100&limit=100")
    assert len(canned.sent) == 1
    assert source.stats.requests["/v1/people/all"] == 1


def test_once_a_key_is_refused_no_request_waits_for_an_answer_that_never_comes() -> None:
    """After a 401, a path nobody asked for yet is refused at once, and so is a second request of it
    (it must not wait for the first, which was never sent)."""
    refusal = KeyRefusal(wait_seconds=30)
    answered = refusal.before("audience", "/audience/v1/fields")
    refused = Response()
    refused.status_code = 401
    refusal.after("audience", "GET /audience/v1/fields", refused, answered)
    started = time.monotonic()
    for _ in range(2):  # a read and a child's read of the same list
        with pytest.raises(KeyRefusedError):
            refusal.before("audience", "/audience/v1/segments")
    assert time.monotonic() - started < 5  # not the 30 s bound


def test_a_second_request_of_a_path_waits_for_the_first_ones_answer() -> None:
    refusal = KeyRefusal(wait_seconds=30)
    first = refusal.before("audience", "/audience/v1/segments")
    assert first is not None
    ok = Response()
    ok.status_code = 200
    threading.Timer(0.2, refusal.after, ("audience", "GET /audience/v1/segments", ok, first)).start()
    assert refusal.before("audience", "/audience/v1/segments") is None  # waited, then goes on
    assert first.is_set()
