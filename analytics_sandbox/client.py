"""`SandboxClient`: drive a sandbox running in another process through its `/_control` routes.

`call(operation, **kwargs)` calls any `Sandbox.<operation>` and `data_call` any `Dataset.<operation>`
(one HTTP request each, to the single implementation in the server process); the few operations the
benchmarks use have methods of their own.
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import orjson

from .dataset import IdsOrCount


class SandboxControlError(RuntimeError):
    """The control interface answered with an unexpected status."""


class _Control:
    """HTTP/JSON transport to `/_control`."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        self.url = url.rstrip("/")
        self._host, self._port, self._timeout = parts.hostname, parts.port or 80, timeout

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        # A connection per call: no proxy settings from the environment, nothing left open.
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def call(self, operation: str, **kwargs: Any) -> Any:
        status, payload = self.request("POST", f"/_control/{operation}", orjson.dumps(kwargs))
        answer = orjson.loads(payload) if payload else {}
        if status == 200:
            return answer.get("result")
        message = answer.get("error", payload.decode(errors="replace"))
        if status == 404:
            raise KeyError(message)
        if status == 400:
            raise ValueError(message)
        raise SandboxControlError(f"{operation}: HTTP {status}: {message}")


class RemoteDataset:
    """The `Dataset` changes the benchmarks make, on a sandbox in another process."""

    def __init__(self, control: _Control) -> None:
        self._control = control

    def update_people(self, ids_or_count: IdsOrCount) -> list[Any]:
        """Change people (ids, or how many of the oldest); returns their ids."""
        return list(self._control.call("data/update_people", ids_or_count=_wire(ids_or_count)))

    def update_responses(self, ids_or_count: IdsOrCount, recent: bool = True) -> list[Any]:
        """Change responses (ids, or how many, the newest when `recent`); returns their ids."""
        return list(
            self._control.call("data/update_responses", ids_or_count=_wire(ids_or_count), recent=recent)
        )


def _wire(ids_or_count: IdsOrCount) -> Any:
    return ids_or_count if isinstance(ids_or_count, int | str) else list(ids_or_count)


class SandboxClient:
    """Control a sandbox running in another process (e.g. `python -m analytics_sandbox`).

    Args:
        url: The sandbox's `http://host:port`.
        timeout: Seconds to wait for each control call.
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self._control = _Control(url, timeout)
        self.url = self._control.url
        self.data = RemoteDataset(self._control)

    def call(self, operation: str, **kwargs: Any) -> Any:
        """`Sandbox.<operation>(**kwargs)` in the sandbox's process; its result, as JSON."""
        return self._control.call(operation, **kwargs)

    def data_call(self, operation: str, **kwargs: Any) -> Any:
        """`Sandbox.data.<operation>(**kwargs)` in the sandbox's process; its result, as JSON."""
        return self._control.call(f"data/{operation}", **kwargs)

    def health(self) -> bool:
        """Whether the sandbox answers `GET /_control/health`."""
        try:
            status, payload = self._control.request("GET", "/_control/health")
        except OSError:
            return False
        return status == 200 and orjson.loads(payload).get("ok") is True

    def set_latency(self, seconds: float) -> None:
        """Delay every API response by `seconds`."""
        self._control.call("set_latency", seconds=seconds)

    def requests(self, api: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Logged API requests, oldest first."""
        return list(self._control.call("requests", api=api, path=path))

    def clear_requests(self) -> None:
        """Empty the request log and its counters."""
        self._control.call("clear_requests")

    def stats(self) -> dict[str, Any]:
        """Request counts per API and endpoint."""
        result: dict[str, Any] = self._control.call("stats")
        return result
