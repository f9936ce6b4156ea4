"""The audience API's own data checks, on top of the standard ones every table gets (`checks/suite.py`)."""

from __future__ import annotations

from analytics_assets.watching.checks.core import Check
from analytics_assets.watching.checks.table import (
    NUMERIC,
    TEXT,
    TIMESTAMP,
    references,
    seed_columns,
    share_at_least,
)

MUST_HAVE_DATA = frozenset({"peoples", "accounts", "segments", "fields"})
"""Endpoints that always have data: a workspace has people, its account, its people fields and at
least the built-in segments. (Custom object schemas and account tags may really be empty.)"""

PEOPLE_SEED_COLUMNS = {
    "id": TEXT,
    "email": TEXT,
    "first_name": TEXT,
    "last_name": TEXT,
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
}
ACCOUNT_SEED_COLUMNS = {"account_id": NUMERIC, "name": TEXT, "created_at": TIMESTAMP}

EMAIL_MIN_VALID_SHARE = 0.95
"""People are mostly identified by email; a few odd values happen, a lot mean a broken field mapping."""


def _looks_like_email(column: str) -> str:
    # Deliberately loose (one @, a dot in the domain, no blanks): LIKE works on every SQL destination.
    return f"{column} like '_%@_%._%' and {column} not like '%@%@%' and {column} not like '% %'"


EMAIL_FORMAT = share_at_least(
    name="email_format",
    description=(
        f"At least {EMAIL_MIN_VALID_SHARE:.0%} of the non-null emails look like an email address. Many"
        " invalid ones usually mean the API moved or renamed the field: look at a few people (ids in the"
        " metadata) in the API."
    ),
    column="email",
    is_valid=_looks_like_email,
    min_share=EMAIL_MIN_VALID_SHARE,
)


def resource_checks(resource: str) -> list[Check]:
    """The checks only this API's `resource` gets."""
    if resource == "peoples":
        return [seed_columns(PEOPLE_SEED_COLUMNS), EMAIL_FORMAT]
    if resource == "accounts":
        return [seed_columns(ACCOUNT_SEED_COLUMNS)]
    if resource == "segment_people":
        return [references("segment_id", parent="segments", parent_column="id")]
    return []
