"""Injected faults, the rolling-window rate limiter, and the error bodies of both APIs."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

import orjson

FAULT_KINDS = ("status", "latency", "reset", "malformed_json", "html_error")
APIS = ("audience", "feedback")

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"

AUDIENCE_UNAUTHORIZED = "User not logged in: Unauthorized request: no authentication given"
# The feedback API's error codes (its `{"code", "message", "details"}` envelope).
FEEDBACK_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def html_page(status: int, text: str | None = None) -> bytes:
    """An HTML error page like the ones web servers and proxies answer with."""
    title = f"{status} {_reason(status)}"
    body = text or _reason(status)
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
        f"<body><center><h1>{title}</h1></center><p>{body}</p><hr><center>nginx</center></body></html>\n"
    ).encode()


def error_response(api: str, status: int, message: str | None = None) -> tuple[str, bytes]:
    """(content type, body) of an error of `api` with this status, as the real API writes it.

    The audience API answers `{"error": {"message"}}`, and an HTML page for an unknown path (404);
    the feedback API answers `{"code", "message", "details"}` for everything.
    """
    if api == "audience":
        if status == 404:
            return HTML, html_page(404, message or "The requested URL was not found on this server.")
        text = message or (AUDIENCE_UNAUTHORIZED if status == 401 else _reason(status))
        return JSON, orjson.dumps({"error": {"message": text}})
    code = FEEDBACK_CODES.get(status, "internal_server_error" if status >= 500 else "bad_request")
    text = message or ("Not authenticated" if status == 401 else _reason(status))
    return JSON, orjson.dumps({"code": code, "message": text, "details": {}})


@dataclass
class Fault:
    """A fault waiting for its next `times` matching requests.

    Attributes:
        path: Request path without query; a trailing `*` matches every path with that prefix.
        kind: One of `FAULT_KINDS`.
        times: Matching requests still to hit.
        status: Status of a `status` fault (required) or an `html_error` fault (default 200).
        retry_after: Seconds sent in a `Retry-After` header (status faults), when given.
        delay: Seconds a `latency` fault waits before answering normally.
        query: Query parameters a request must have (a subset match), e.g. `{"offset": "200"}`.
    """

    path: str
    kind: str
    times: int = 1
    status: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    query: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs status=")
        if self.kind == "latency" and self.delay is None:
            raise ValueError("a latency fault needs delay=")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"bad status {self.status}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.query is not None:
            self.query = {str(k): str(v) for k, v in self.query.items()}

    def matches(self, path: str, query: dict[str, str]) -> bool:
        """Whether a request hits this fault."""
        if self.path.endswith("*"):
            if not path.startswith(self.path[:-1]):
                return False
        elif path != self.path:
            return False
        return self.query is None or all(query.get(k) == v for k, v in self.query.items())

    def to_dict(self) -> dict[str, Any]:
        """The fault as a JSON-ready dict."""
        return asdict(self)


class FaultBook:
    """The pending faults, consumed one matching request at a time (thread-safe)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Queue a fault; earlier faults on the same requests fire first."""
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str, query: dict[str, str]) -> Fault | None:
        """The first fault a request hits (counted down), or None."""
        if not self._faults:  # the common case, without the lock
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, query):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The faults still waiting, with their remaining counts."""
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()


class RateLimiter:
    """A rolling-window request limit per API; only the requests let through count."""

    def __init__(self) -> None:
        self._limits: dict[str, tuple[int, float]] = {}
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def set(self, api: str, requests: int | None, window_seconds: float = 60.0) -> None:
        """Allow `requests` per `window_seconds` on `api`; `requests=None` lifts the limit."""
        if api not in APIS:
            raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")
        with self._lock:
            self._seen[api] = deque()
            if requests is None:
                self._limits.pop(api, None)
            elif requests < 0 or window_seconds <= 0:
                raise ValueError("requests must be >= 0 and window_seconds > 0")
            else:
                self._limits[api] = (requests, float(window_seconds))

    def allow(self, api: str) -> bool:
        """Count a request of `api`; False when it is over the limit."""
        limit = self._limits.get(api)
        if limit is None:
            return True
        requests, window = limit
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(api, deque())
            while seen and seen[0] <= now - window:
                seen.popleft()
            if len(seen) >= requests:
                return False
            seen.append(now)
            return True

    def limits(self) -> dict[str, dict[str, float]]:
        """The limits in force, per API."""
        with self._lock:
            return {api: {"requests": r, "window_seconds": w} for api, (r, w) in self._limits.items()}

    def clear(self) -> None:
        """Lift every limit."""
        with self._lock:
            self._limits.clear()
            self._seen.clear()
