"""The two generations of the feedback API: the seed's and the current servers' ("contacts").

The survey platform behind the feedback API reworked people into contacts (December 2024): on a
current server `/v1/management/people` and `/v1/management/attribute-classes` answer the web
framework's HTML 404 page, and `/v1/management/contacts` and `/v1/management/contact-attribute-keys`
serve the same things in new shapes, as an Enterprise feature (403 without a licence).

The sandbox keeps one set of records: contacts are the identified people (same ids, as on a migrated
server) and contact attribute keys are the attribute classes, each seen through a projection. A
change to either name changes both views, so a test can change data once and compare the warehouse
with whichever endpoint served it.
"""

from __future__ import annotations

import re
from typing import Any

from .faults import HTML, error_response

Record = dict[str, Any]

# View resource -> the resource holding its records.
VIEWS = {"contacts": "identified_peoples", "contact_attribute_keys": "attribute_classes"}
# Seed resources a current server no longer serves (their paths answer the framework's 404 page).
REMOVED = frozenset(VIEWS.values())
UNLICENSED_MESSAGE = "Contacts are only enabled for Enterprise Edition, please upgrade."
# Attribute keys the platform creates in every workspace ("default") and the unique ones among them.
_DEFAULT_KEYS = ("userId", "email", "firstName", "lastName")
_UNIQUE_KEYS = ("userId", "email")


def _timestamps(record: Record) -> Record:
    """id, createdAt and updatedAt of a record, those it has (a raw record may lack any)."""
    return {field: record[field] for field in ("id", "createdAt", "updatedAt") if field in record}


def contact(person: Record) -> Record:
    """An identified person as `/v1/management/contacts` serves it."""
    return {**_timestamps(person), "workspaceId": person.get("workspaceId", person.get("environmentId"))}


def contact_attribute_key(attribute_class: Record) -> Record:
    """An attribute class as `/v1/management/contact-attribute-keys` serves it."""
    key = attribute_class.get("key", attribute_class.get("name"))
    kind = attribute_class.get("type")
    default = kind in ("automatic", "default") or key in _DEFAULT_KEYS
    return {
        **_timestamps(attribute_class),
        "isUnique": key in _UNIQUE_KEYS,
        "key": key,
        "name": _title(key) if isinstance(key, str) else None,
        "description": attribute_class.get("description"),
        "type": "default" if default else "custom",
        "dataType": "number" if isinstance(key, str) and key.startswith("seats") else "string",
        "workspaceId": attribute_class.get("workspaceId", attribute_class.get("environmentId")),
    }


def _title(key: str) -> str:
    """A display name from a camelCase key: `firstName` -> `First Name`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key[:1].upper() + key[1:])


PROJECTIONS = {"contacts": contact, "contact_attribute_keys": contact_attribute_key}


def framework_404() -> tuple[str, bytes]:
    """(content type, body) of the web framework's own 404 page (not the API's JSON error)."""
    return HTML, (
        b'<!DOCTYPE html><html><head><meta charset="utf-8"/><title>404: This page could not be found'
        b'</title></head><body><div id="__next"><h1>404</h1><h2>This page could not be found.</h2>'
        b"</div></body></html>"
    )


def gate(resource: str, generation: str, licensed: bool) -> tuple[int, str, bytes] | None:
    """The answer a generation gives instead of the data of `resource`, or None to serve it.

    Args:
        resource: The resource of the requested endpoint.
        generation: `seed` or `current`.
        licensed: Whether a current server has the Enterprise licence.
    """
    if generation == "seed":
        # The contacts paths did not exist yet: the API's own JSON 404, as for any unknown path.
        return (404, *error_response("feedback", 404)) if resource in VIEWS else None
    if resource in REMOVED:
        return (404, *framework_404())
    if resource in VIEWS and not licensed:
        return (403, *error_response("feedback", 403, UNLICENSED_MESSAGE))
    return None
