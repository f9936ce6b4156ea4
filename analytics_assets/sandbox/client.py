"""`SandboxClient`: drive a sandbox running in another process through its `/_control` routes.

The methods mirror `Sandbox` and `Sandbox.data` (same names, same arguments), so a test or a
benchmark reads the same against a local `Sandbox` and a remote one. Each call is one HTTP request
to the single implementation in the server process.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Sequence
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
    """The methods of `Dataset`, called on a sandbox in another process (see `Dataset` for details)."""

    def __init__(self, control: _Control) -> None:
        self._control = control

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return self._control.call(f"data/{operation}", **kwargs)

    def records(self, resource: str, limit: int | None = None) -> Iterator[Any]:
        """The served records, in API order (segment_people: `(segment_id, person)` pairs).

        Everything travels in one response: meant for small scales.
        """
        items = self._call("records", resource=resource, limit=limit)
        if resource == "segment_people":
            return iter([(sid, person) for sid, person in items])
        return iter(items)

    def memberships(self) -> list[tuple[int, Any]]:
        """(segment id, person id) of every served membership."""
        return [(sid, pid) for sid, pid in self._call("memberships")]

    def count(self, resource: str) -> int:
        """How many records the API serves now."""
        return int(self._call("count", resource=resource))

    def record(self, resource: str, key: Any) -> dict[str, Any] | None:
        """The served record with this key, or None."""
        result: dict[str, Any] | None = self._call("record", resource=resource, key=key)
        return result

    def segment_members(self, segment_id: int) -> list[Any]:
        """Person ids a segment serves, in order."""
        return list(self._call("segment_members", segment_id=segment_id))

    def update_people(self, ids_or_count: IdsOrCount) -> list[Any]:
        """Change some people and bump their updatedAt; returns their ids."""
        return list(self._call("update_people", ids_or_count=_wire(ids_or_count)))

    def add_people(self, n: int) -> list[Any]:
        """Add `n` people (newest); returns their ids."""
        return list(self._call("add_people", n=n))

    def delete_people(self, ids_or_count: IdsOrCount) -> list[Any]:
        """Delete people; returns their ids."""
        return list(self._call("delete_people", ids_or_count=_wire(ids_or_count)))

    def patch_record(
        self,
        resource: str,
        key: Any,
        set_fields: dict[str, Any] | None = None,
        remove_fields: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Set or remove any fields of one record; returns the new record."""
        result: dict[str, Any] = self._call(
            "patch_record",
            resource=resource,
            key=key,
            set_fields=set_fields,
            remove_fields=list(remove_fields) if remove_fields is not None else None,
        )
        return result

    def add_raw_record(self, resource: str, record: dict[str, Any]) -> Any:
        """Append a record exactly as given; returns its key value."""
        return self._call("add_raw_record", resource=resource, record=record)

    def add_memberships(self, segment_id: int, ids_or_count: IdsOrCount) -> list[Any]:
        """Put people into a segment; returns the ids added."""
        return list(self._call("add_memberships", segment_id=segment_id, ids_or_count=_wire(ids_or_count)))

    def remove_memberships(self, segment_id: int, ids_or_count: IdsOrCount) -> list[Any]:
        """Take people out of a segment; returns the ids removed."""
        return list(self._call("remove_memberships", segment_id=segment_id, ids_or_count=_wire(ids_or_count)))

    def add_segment(self) -> int:
        """Add a segment with generated members; returns its id."""
        return int(self._call("add_segment"))

    def delete_segment(self, segment_id: int) -> None:
        """Delete a segment (its people path then answers 404)."""
        self._call("delete_segment", segment_id=segment_id)

    def hide_segment(self, segment_id: int) -> None:
        """Drop a segment from `/segments` but keep serving its people."""
        self._call("hide_segment", segment_id=segment_id)

    def add_responses(self, n: int) -> list[Any]:
        """Add `n` responses (newest); returns their ids."""
        return list(self._call("add_responses", n=n))

    def update_responses(self, ids_or_count: IdsOrCount, recent: bool = True) -> list[Any]:
        """Finish responses and bump their updatedAt; returns their ids."""
        return list(self._call("update_responses", ids_or_count=_wire(ids_or_count), recent=recent))

    def add_record(self, resource: str) -> Any:
        """Add one generated record; returns its key."""
        return self._call("add_record", resource=resource)

    def update_record(self, resource: str, key: Any) -> dict[str, Any]:
        """Change one record; returns it."""
        result: dict[str, Any] = self._call("update_record", resource=resource, key=key)
        return result

    def delete_record(self, resource: str, key: Any) -> None:
        """Delete one record."""
        self._call("delete_record", resource=resource, key=key)

    def truncate(self, resource: str, keep: int | None) -> None:
        """Serve only the first `keep` records of a resource (None undoes it)."""
        self._call("truncate", resource=resource, keep=keep)

    def reset(self) -> None:
        """Back to the pristine generated data."""
        self._call("reset")


def _wire(ids_or_count: IdsOrCount) -> Any:
    return ids_or_count if isinstance(ids_or_count, int | str) else list(ids_or_count)


class SandboxClient:
    """Control a sandbox running in another process (e.g. `python -m analytics_assets.sandbox`).

    Args:
        url: The sandbox's `http://host:port`.
        timeout: Seconds to wait for each control call.
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self._control = _Control(url, timeout)
        self.url = self._control.url
        self.data = RemoteDataset(self._control)

    def health(self) -> bool:
        """Whether the sandbox answers `GET /_control/health`."""
        try:
            status, payload = self._control.request("GET", "/_control/health")
        except OSError:
            return False
        return status == 200 and orjson.loads(payload).get("ok") is True

    def info(self) -> dict[str, Any]:
        """URLs, settings and config of the sandbox."""
        result: dict[str, Any] = self._control.call("info")
        return result

    def env(self) -> dict[str, str]:
        """The dlt settings that point both sources at the sandbox."""
        return dict(self.info()["env"])

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
        """Make the next `times` requests matching `path` fail (see `Sandbox.inject_fault`)."""
        result: dict[str, Any] = self._control.call(
            "inject_fault",
            path=path,
            kind=kind,
            times=times,
            status=status,
            retry_after=retry_after,
            delay=delay,
            query=query,
        )
        return result

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._control.call("clear_faults")

    def pending_faults(self) -> list[dict[str, Any]]:
        """The faults still waiting for requests."""
        return list(self._control.call("pending_faults"))

    def set_latency(self, seconds: float) -> None:
        """Delay every API request by `seconds`."""
        self._control.call("set_latency", seconds=seconds)

    def set_rate_limit(self, api: str, requests: int | None, window_seconds: float = 60.0) -> None:
        """Rolling-window rate limit on one API (None lifts it)."""
        self._control.call("set_rate_limit", api=api, requests=requests, window_seconds=window_seconds)

    def set_feedback_generation(self, generation: str, licensed: bool | None = None) -> dict[str, Any]:
        """Serve the feedback API's `seed` or `current` generation (see `Sandbox.set_feedback_generation`)."""
        result: dict[str, Any] = self._control.call(
            "set_feedback_generation", generation=generation, licensed=licensed
        )
        return result

    def set_paging(self, resource: str, mode: str) -> None:
        """How the endpoint of `resource` pages: default, pages, ignore or ignore_first_page."""
        self._control.call("set_paging", resource=resource, mode=mode)

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

    def reset(self) -> None:
        """Pristine data, no faults, latency or rate limits, an empty request log."""
        self._control.call("reset")
