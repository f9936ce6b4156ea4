"""`Sandbox`: both APIs served from one local HTTP server in a background thread."""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .config import FEEDBACK_GENERATIONS, SandboxConfig
from .dataset import Dataset
from .faults import Fault, FaultBook, RateLimiter
from .generate import KEY_FIELDS
from .requestlog import RequestLog
from .routes import AUDIENCE_PREFIX, FEEDBACK_PREFIX, PAGING_MODES
from .server import SandboxHTTPServer


@dataclass
class _DeletionsAfterPage:
    page: int
    keys: list[Any]
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> bool:
        """Count one page served; True once, when it is the awaited page."""
        with self.lock:
            self.served += 1
            return self.served == self.page


def check_loopback(host: str) -> None:
    """Refuse any host that is not a loopback address: the sandbox has no real security."""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError as error:
            raise ValueError(f"cannot resolve host {host!r}: {error}") from None
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    if not addresses or not all(a.is_loopback for a in addresses):
        raise ValueError(f"the sandbox only binds to loopback addresses, not {host!r}")


class Sandbox:
    """A local stand-in for both analytics APIs, with data changes, faults and a request log.

    Example:
        >>> with Sandbox(SandboxConfig(people=250)) as sb:
        ...     os.environ.update(sb.env())
        ...     sb.data.update_people(5)
        ...     sb.inject_fault("/audience/v1/people/all", "status", status=503)

    Args:
        config: Sizes and seed of the data (defaults to `SandboxConfig()`).
        host: Loopback address to bind.
        port: Port to bind; 0 picks a free one (see `url` after `start`).
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host)
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.data = Dataset(self.config)
        self.faults = FaultBook()
        self.rate_limiter = RateLimiter()
        self.log = RequestLog(self.config.request_log_size)
        self.latency = 0.0
        self.feedback_generation = self.config.feedback_generation
        self.feedback_licensed = self.config.feedback_licensed
        self.paging: dict[str, str] = {}
        self.page_max: dict[str, int] = {}
        self.deletions_after_page: dict[str, _DeletionsAfterPage] = {}
        # Set on stop: wakes requests sleeping on injected latency.
        self.stopping = threading.Event()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = SandboxHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    # -- where to reach it -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://host:port` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def audience_base_url(self) -> str:
        """Base URL of the audience API (ends in `/v1`)."""
        return self.url + AUDIENCE_PREFIX

    @property
    def feedback_base_url(self) -> str:
        """Base URL of the feedback API (its paths start with `/v1/`)."""
        return self.url + FEEDBACK_PREFIX

    @property
    def audience_key(self) -> str:
        """The key the audience API accepts (header `api_key`)."""
        return self.config.audience_key

    @property
    def feedback_key(self) -> str:
        """The key the feedback API accepts (header `X-API-Key`)."""
        return self.config.feedback_key

    def env(self) -> dict[str, str]:
        """The dlt settings that point both sources at this sandbox."""
        return {
            "SOURCES__AUDIENCE__BASE_URL": self.audience_base_url,
            "SOURCES__AUDIENCE__API_KEY": self.audience_key,
            "SOURCES__FEEDBACK__BASE_URL": self.feedback_base_url,
            "SOURCES__FEEDBACK__API_KEY": self.feedback_key,
        }

    def info(self) -> dict[str, Any]:
        """URLs, settings and config of this sandbox (JSON-ready)."""
        return {
            "url": self.url,
            "audience_base_url": self.audience_base_url,
            "feedback_base_url": self.feedback_base_url,
            "env": self.env(),
            "config": self.config.to_dict(),
            "latency": self.latency,
            "rate_limits": self.rate_limiter.limits(),
            "feedback_generation": self.feedback_generation,
            "feedback_licensed": self.feedback_licensed,
            "paging": dict(self.paging),
            "page_max": dict(self.page_max),
        }

    # -- faults, latency, rate limits ------------------------------------------------------------

    def inject_fault(
        self,
        path: str,
        kind: str,
        times: int = 1,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Make the next `times` requests matching `path` (and `query`) fail.

        Args:
            path: Full request path without query, e.g. `/audience/v1/people/all`; a trailing `*`
                matches every path with that prefix.
            kind: `status` (that status and the API's error body), `latency` (wait `delay` seconds,
                then answer normally), `reset` (TCP RST, no response), `malformed_json` (200 with a
                truncated JSON body), `html_error` (an HTML page, status 200 unless given).
            times: How many matching requests the fault hits.
            status: Status code of a `status` or `html_error` fault.
            retry_after: Seconds for a `Retry-After` header (status faults; none when omitted).
            delay: Seconds of a `latency` fault.
            query: Query parameters the request must carry, e.g. `{"offset": "200"}`.

        Returns:
            The fault as queued.
        """
        fault = Fault(path, kind, times, status, retry_after, delay, query)
        self.faults.add(fault)
        return fault.to_dict()

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self.faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        """The faults still waiting for requests."""
        return self.faults.pending()

    def set_latency(self, seconds: float) -> None:
        """Delay every API request by `seconds` (0 for none)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = float(seconds)

    def set_rate_limit(self, api: str, requests: int | None, window_seconds: float = 60.0) -> None:
        """Allow `requests` per rolling `window_seconds` on `api`, answering 429 past it; None: no limit."""
        self.rate_limiter.set(api, requests, window_seconds)

    def set_feedback_generation(self, generation: str, licensed: bool | None = None) -> dict[str, Any]:
        """Serve the feedback API as the seed describes it, or as current servers do.

        Args:
            generation: `seed`: `/v1/management/people` and `/attribute-classes` serve data (the
                contacts paths answer the API's JSON 404). `current`: those two answer the web
                framework's HTML 404 page, and `/v1/management/contacts` and
                `/v1/management/contact-attribute-keys` serve the same records in their new shapes.
            licensed: On `current`, whether those two are licensed (without the Enterprise licence
                they answer 403 `forbidden`); None keeps the current setting.

        Returns:
            `{"feedback_generation", "feedback_licensed"}` now in force.
        """
        if generation not in FEEDBACK_GENERATIONS:
            raise ValueError(f"generation must be one of {FEEDBACK_GENERATIONS}, got {generation!r}")
        if licensed is not None and not isinstance(licensed, bool):
            raise ValueError(f"licensed must be a bool, got {licensed!r}")
        self.feedback_generation = generation
        if licensed is not None:
            self.feedback_licensed = licensed
        return {"feedback_generation": self.feedback_generation, "feedback_licensed": self.feedback_licensed}

    def set_paging(self, resource: str, mode: str) -> None:
        """Change how the endpoint of `resource` pages (any list endpoint, `segment_people` too).

        Args:
            resource: A dlt resource name, e.g. `segments`.
            mode: `default` (as the Endpoints table says); `pages` (pages of at most 100, and 100
                without `limit`: an API paging a list its description calls one page); `ignore` (the
                `limit` and offset parameters are ignored: the whole list on every request);
                `ignore_first_page` (they are ignored: the first 100 records on every request).
        """
        if resource not in KEY_FIELDS:
            raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(KEY_FIELDS)}")
        if mode not in PAGING_MODES:
            raise ValueError(f"unknown paging mode {mode!r}; expected one of {', '.join(PAGING_MODES)}")
        if mode == "default":
            self.paging.pop(resource, None)
        else:
            self.paging[resource] = mode

    def set_page_max(self, resource: str, records: int | None) -> None:
        """Serve at most `records` records a page of `resource`, whatever `limit` asks, without a word:
        an API that lowered its page maximum (None: the endpoint's own maximum again)."""
        if resource not in KEY_FIELDS:
            raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(KEY_FIELDS)}")
        if records is None:
            self.page_max.pop(resource, None)
        elif records < 1:
            raise ValueError(f"records must be at least 1, got {records}")
        else:
            self.page_max[resource] = int(records)

    def delete_after_page(self, resource: str, page: int, keys: list[Any]) -> None:
        """Delete the records `keys` of `resource` right after the `page`-th page of it is served (1 is
        the first): a list that changes while a client pages through it. Once."""
        if resource not in KEY_FIELDS:
            raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(KEY_FIELDS)}")
        if page < 1:
            raise ValueError(f"page must be at least 1, got {page}")
        self.deletions_after_page[resource] = _DeletionsAfterPage(page, list(keys))

    def served_page(self, resource: str) -> None:
        """Count a page of `resource` served; run the deletions waiting for it (the server calls this)."""
        waiting = self.deletions_after_page.get(resource)
        if waiting is None or not waiting.count():
            return
        del self.deletions_after_page[resource]
        for key in waiting.keys:
            self.data.delete_record(resource, key)

    # -- request log -----------------------------------------------------------------------------

    def requests(self, api: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Logged API requests, oldest first: api, method, path, query, headers, status, fault, time.

        Args:
            api: Only this API ("audience" or "feedback").
            path: Only this exact path (a trailing `*` matches a prefix).
        """
        return self.log.entries(api, path)

    def clear_requests(self) -> None:
        """Empty the request log and its counters."""
        self.log.clear()

    def stats(self) -> dict[str, Any]:
        """Request counts per API and endpoint, with statuses and faults."""
        return self.log.stats()

    def reset(self) -> None:
        """Pristine data, no faults, latency or rate limits, an empty request log, and the feedback
        generation of the config."""
        self.data.reset()
        self.set_feedback_generation(self.config.feedback_generation, self.config.feedback_licensed)
        self.faults.clear()
        self.rate_limiter.clear()
        self.latency = 0.0
        self.paging.clear()
        self.page_max.clear()
        self.deletions_after_page.clear()
        self.log.clear()
