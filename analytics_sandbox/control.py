"""The `/_control` interface: the Sandbox and Dataset methods, called over HTTP with JSON.

`POST /_control/<operation>` calls `Sandbox.<operation>` and `POST /_control/data/<operation>` calls
`Dataset.<operation>`, with the JSON object of the body as keyword arguments; the answer is
`{"result": ...}`. There is no second implementation of any operation here, only this dispatch.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import orjson

SANDBOX_OPERATIONS = frozenset(
    {
        "info",
        "inject_fault",
        "clear_faults",
        "pending_faults",
        "set_latency",
        "set_rate_limit",
        "set_feedback_generation",
        "set_paging",
        "set_page_max",
        "delete_after_page",
        "requests",
        "clear_requests",
        "stats",
        "reset",
    }
)
DATA_OPERATIONS = frozenset(
    {
        "records",
        "memberships",
        "count",
        "record",
        "segment_members",
        "update_people",
        "add_people",
        "delete_people",
        "patch_record",
        "add_raw_record",
        "add_memberships",
        "remove_memberships",
        "add_segment",
        "delete_segment",
        "hide_segment",
        "add_responses",
        "update_responses",
        "add_record",
        "update_record",
        "delete_record",
        "truncate",
        "reset",
    }
)
PREFIX = "/_control/"


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": message})


def handle(sandbox: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """(status, JSON body) of a control request.

    Args:
        sandbox: The `Sandbox` (its `data` attribute is the `Dataset`).
        path: The request path, starting with `/_control/`.
        body: The request body: a JSON object of keyword arguments, or empty.
    """
    name = path[len(PREFIX) :]
    if name == "health":
        return 200, orjson.dumps({"ok": True})
    if name.startswith("data/"):
        target, operation, allowed = sandbox.data, name[len("data/") :], DATA_OPERATIONS
    else:
        target, operation, allowed = sandbox, name, SANDBOX_OPERATIONS
    if operation not in allowed:
        return _error(404, f"unknown control operation {name!r}")
    try:
        kwargs = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as error:
        return _error(400, f"body is not JSON: {error}")
    if not isinstance(kwargs, dict):
        return _error(400, "body must be a JSON object of keyword arguments")
    method = getattr(target, operation)
    try:
        inspect.signature(method).bind(**kwargs)
    except TypeError as error:
        return _error(400, f"{name}: {error}")
    try:
        result = method(**kwargs)
        if isinstance(result, Iterator):
            result = list(result)
    except KeyError as error:
        return _error(404, str(error.args[0]) if error.args else "not found")
    except (TypeError, ValueError) as error:
        return _error(400, str(error))
    return 200, orjson.dumps({"result": result})
