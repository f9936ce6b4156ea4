"""The HTTP layer: one threading server answering both APIs and the control interface.

Every API request goes through the same steps, in the order a real deployment applies them:
global latency, injected fault, authentication, rate limit, then the endpoint itself. Each one is
logged with the status sent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from . import control, generations, routes
from .faults import HTML, JSON, error_response, html_page
from .requestlog import parse_query

if TYPE_CHECKING:
    from .sandbox import Sandbox

log = logging.getLogger(__name__)

_AUTH_HEADERS = {"audience": "api_key", "feedback": "x-api-key"}
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_HTML_ERROR_TEXT = "The server is temporarily unable to service your request. Please try again later."


class _DateHeader:
    """The `Date` header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._value, self._second = formatdate(now, usegmt=True), now
        return self._value


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop its open keep-alive connections on shutdown.

    Args:
        address: (host, port) to bind.
        sandbox: The sandbox whose state the handlers serve.
    """

    daemon_threads = True
    # Handler threads block on idle keep-alive connections; `close_connections` ends them instead of
    # `server_close` waiting for them.
    block_on_close = False

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self.date = _DateHeader()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def close_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().close_request(request)

    def close_connections(self) -> None:
        """Shut every open client connection (their handler threads then end)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response is normal for a test server; anything else is a bug.
        log.debug("connection error from %s", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests (keep-alive)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, and without Nagle's delay: keep-alive clients would
    # otherwise wait ~40 ms per request for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "sandbox"
    server: SandboxHTTPServer
    raw_requestline: bytes
    header_items: list[tuple[str, str]]
    fields: dict[str, str]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are in the sandbox's request log instead."""

    def parse_request(self) -> bool:
        """Parse the request line and headers (a lean stand-in for the standard library's).

        The standard parser builds an `email.message.Message` per request, which shows at thousands
        of pages a second. This keeps its checks for what HTTP/1.x clients send and stores the
        headers as `header_items` (lowercase names, in order) and `fields` (lowercase name -> value).
        """
        self.command = ""
        self.request_version = "HTTP/1.1"
        self.close_connection = True
        self.requestline = line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {line!r}")
            return False
        self.command, self.path, self.request_version = words
        items: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(65537)
            if len(raw) > 65536 or len(items) > 100:
                self.send_error(431)
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if not colon:
                self.send_error(400, "Bad header line")
                return False
            items.append((name.strip().lower(), value.strip()))
        self.header_items = items
        self.fields = dict(items)
        connection = self.fields.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if self.fields.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- plumbing ------------------------------------------------------------------------------

    def _send(self, status: int, content_type: str, body: bytes, extra: tuple[str, ...] = ()) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"Date: {self.server.date.get()}",
            "Server: sandbox",
            *extra,
        ]
        if self.close_connection:
            head.append("Connection: close")
        head.append("\r\n")
        self.wfile.write("\r\n".join(head).encode("latin-1") + body)

    def _read_body(self) -> bytes:
        length = int(self.fields.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0) and no response at all."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _dispatch(self) -> None:
        path, _, query_string = self.path.partition("?")
        body = self._read_body()
        if path.startswith(control.PREFIX):
            try:
                status, payload = control.handle(self.server.sandbox, path, body)
            except Exception as error:
                log.exception("sandbox control failed on %s", path)
                status, payload = 500, orjson.dumps({"error": f"{type(error).__name__}: {error}"})
            self._send(status, JSON, payload)
            return
        api = routes.api_of(path)
        if api is None:
            self._send(404, HTML, html_page(404))
            return
        try:
            self._api(api, path, query_string)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox failed on %s %s", self.command, self.path)
            self._send(500, *error_response(api, 500))

    # -- the APIs ------------------------------------------------------------------------------

    def _api(self, api: str, path: str, query_string: str) -> None:
        sandbox = self.server.sandbox
        arrived = time.time()
        query = parse_query(query_string)
        headers = self.header_items
        fault = sandbox.faults.take(path, query)
        kind = fault.kind if fault is not None else None
        status: int | None

        def record(sent: int | None) -> None:
            sandbox.log.add(
                api,
                self.command,
                path,
                routes.template_of(api, path),
                query_string,
                headers,
                sent,
                kind,
                arrived,
            )

        if sandbox.latency > 0:
            sandbox.stopping.wait(sandbox.latency)
        if fault is not None:
            if fault.kind == "latency":
                sandbox.stopping.wait(fault.delay or 0)
            elif fault.kind == "reset":
                record(None)
                self._reset()
                return
            elif fault.kind == "status":
                status = fault.status or 500
                extra = () if fault.retry_after is None else (f"Retry-After: {fault.retry_after:g}",)
                record(status)
                self._send(status, *error_response(api, status), extra)
                return
            elif fault.kind == "html_error":
                status = fault.status or 200
                record(status)
                self._send(status, HTML, html_page(status if status >= 400 else 503, _HTML_ERROR_TEXT))
                return

        status, content_type, body = self._answer(api, path, query)
        if kind == "malformed_json":
            # A body cut short, as when a proxy drops the connection mid-stream.
            status, content_type, body = 200, JSON, body[: max(1, len(body) // 2)]
        record(status)
        self._send(status, content_type, body)

    def _answer(self, api: str, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        sandbox = self.server.sandbox
        key = sandbox.audience_key if api == "audience" else sandbox.feedback_key
        if self.fields.get(_AUTH_HEADERS[api]) != key:
            return (401, *error_response(api, 401))
        if not sandbox.rate_limiter.allow(api):
            message = "Too many requests" if api == "feedback" else "Rate limit exceeded"
            return (429, *error_response(api, 429, message))
        if self.command != "GET":
            return (405, *error_response(api, 405)) if api == "feedback" else (404, *error_response(api, 404))
        endpoint, segment_id = routes.resolve(api, path)
        if endpoint is None:
            return (404, *error_response(api, 404))
        if api == "feedback":
            instead = generations.gate(
                endpoint.resource, sandbox.feedback_generation, sandbox.feedback_licensed
            )
            if instead is not None:
                return instead
        paging = sandbox.paging.get(endpoint.resource, "default")
        answer = routes.serve(
            sandbox.data, api, endpoint, segment_id, query, paging, sandbox.page_max.get(endpoint.resource)
        )
        if answer[0] == 200:
            sandbox.served_page(endpoint.resource)
        return answer
