"""Records as people really fill them, served when `SandboxConfig.odd_records` is on: a handful of
people and responses whose custom fields and answers hold what breaks naive loaders.

Each odd record is a generated one with a few fields changed, always the same ones (by index), so a
test knows what the API served and can look for every value in the warehouse.
"""

from __future__ import annotations

from typing import Any

BIG = 2**70
"""An integer beyond 64 bits (a number a script wrote into a score)."""

ODD_PEOPLE: dict[int, dict[str, Any]] = {
    # A custom field named like the API's own `leadScore` once both are in snake_case.
    1: {"leadScore": 44, "lead_score": 1174},
    # A custom field `Email` beside the API's `email`.
    2: {"Email": "Second.Address@example.com"},
    # Two custom fields that meet in `company_name`.
    3: {"Company Name": "Acme GmbH", "company_name": "acme-gmbh"},
    4: {"leadScore": BIG},
    # A name cut in the middle of an emoji (half of a surrogate pair).
    5: {"firstName": "Zo\u00eb \ud83d"},
}
"""Changed fields of people, by index."""

ODD_RESPONSES: dict[int, dict[str, Any]] = {
    1: {"data": {"comment": "Loved it \ud83d"}},  # a cut emoji in an answer
    2: {"data": {"comment": "line one\x00line two"}},  # NUL in an answer
    3: {"meta": {"Country": "FR"}, "variables": {"score": BIG}},  # meta meeting `country`; a big variable
}
"""Changed fields of responses, by index: objects are merged into the generated ones."""


def odd_person(i: int, record: dict[str, Any]) -> dict[str, Any]:
    """Person `i` as served with odd records on."""
    change = ODD_PEOPLE.get(i)
    return record if change is None else {**record, **change}


def odd_response(i: int, record: dict[str, Any]) -> dict[str, Any]:
    """Response `i` as served with odd records on."""
    change = ODD_RESPONSES.get(i)
    if change is None:
        return record
    return {**record, **{k: {**(record.get(k) or {}), **v} for k, v in change.items()}}
