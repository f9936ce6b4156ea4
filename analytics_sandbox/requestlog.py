"""The log of API requests the sandbox answered, and per-endpoint counters."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qsl

# Entries are tuples (not dicts) and repeated header sets are shared: a long benchmark keeps
# `request_log_size` entries in a few hundred bytes each.
_Entry = tuple[str, str, str, str, dict[str, str], int | None, str | None, float]


def parse_query(query: str) -> dict[str, str]:
    """A query string as a dict (the last value of a repeated parameter wins)."""
    if not query:
        return {}
    if "%" in query or "+" in query:
        return dict(parse_qsl(query, keep_blank_values=True))
    # The common case (plain `limit=100&offset=200`) without parse_qsl's decoding work.
    return dict(part.partition("=")[::2] for part in query.split("&") if part)


class RequestLog:
    """The last `size` requests, plus counters of every request since the last `clear`.

    Args:
        size: How many entries to keep.
    """

    def __init__(self, size: int) -> None:
        self._entries: deque[_Entry] = deque(maxlen=max(size, 0))
        self._counts: Counter[tuple[str, str, int | None, str | None]] = Counter()
        self._header_sets: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        api: str,
        method: str,
        path: str,
        template: str,
        query: str,
        headers: list[tuple[str, str]],
        status: int | None,
        fault: str | None,
        at: float,
    ) -> None:
        """Record one request (`template` is its endpoint, e.g. `/segments/{id}/people`)."""
        key = tuple(headers)
        with self._lock:
            shared = self._header_sets.get(key)
            if shared is None:
                if len(self._header_sets) > 1000:
                    self._header_sets.clear()
                shared = self._header_sets[key] = dict(headers)
            self._entries.append((api, method, path, query, shared, status, fault, at))
            self._counts[(api, template, status, fault)] += 1

    def entries(self, api: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Logged requests, oldest first, optionally of one API and one path.

        Args:
            api: "audience" or "feedback".
            path: Exact request path; a trailing `*` matches a prefix.
        """
        with self._lock:
            entries = list(self._entries)
        prefix = path[:-1] if path is not None and path.endswith("*") else None
        return [
            {
                "api": e[0],
                "method": e[1],
                "path": e[2],
                "query": parse_query(e[3]),
                "headers": dict(e[4]),
                "status": e[5],
                "fault": e[6],
                "time": e[7],
            }
            for e in entries
            if (api is None or e[0] == api)
            and (path is None or (e[2].startswith(prefix) if prefix is not None else e[2] == path))
        ]

    def stats(self) -> dict[str, Any]:
        """Request counts per API and endpoint, with their statuses and faults."""
        with self._lock:
            counts = list(self._counts.items())
        total = 0
        apis: dict[str, dict[str, dict[str, Any]]] = {}
        for (api, template, status, fault), n in sorted(counts, key=lambda kv: repr(kv[0])):
            total += n
            endpoint = apis.setdefault(api, {}).setdefault(
                template, {"requests": 0, "statuses": {}, "faults": {}}
            )
            endpoint["requests"] += n
            label = "reset" if status is None else str(status)
            endpoint["statuses"][label] = endpoint["statuses"].get(label, 0) + n
            if fault is not None:
                endpoint["faults"][fault] = endpoint["faults"].get(fault, 0) + n
        return {"total": total, "apis": apis}

    def clear(self) -> None:
        """Forget every logged request and counter."""
        with self._lock:
            self._entries.clear()
            self._counts.clear()
