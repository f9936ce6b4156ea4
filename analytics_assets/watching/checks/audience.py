"""The audience API's own data checks, on top of the standard ones every table gets (`checks/suite.py`)."""

from __future__ import annotations

from analytics_assets.reading.personal_data import HASHED_SETTING, personal_data
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


def _looks_like_hash(column: str) -> str:
    # 64 lowercase hex digits: deleting each digit leaves nothing. Nested `replace` rather than `translate`
    # or a regular expression, which not every destination has (MySQL: neither; MariaDB: no REGEXP_LIKE).
    deleted = column
    for digit in "0123456789abcdef":
        deleted = f"replace({deleted}, '{digit}', '')"
    return f"length({column}) = 64 and {deleted} = ''"


def _valid_email(column: str) -> str:
    """What a valid email of `peoples` looks like in the warehouse: an address, or its hash where
    `ANALYTICS_HASHED_FIELDS` hashes it (read when the check runs). Rows loaded before the email was
    hashed count as invalid then: they still hold raw addresses, which is worth a warning."""
    if personal_data(require_key=False).is_hashed("audience", "peoples", "email"):
        return _looks_like_hash(column)
    return _looks_like_email(column)


EMAIL_FORMAT = share_at_least(
    name="email_format",
    description=(
        f"At least {EMAIL_MIN_VALID_SHARE:.0%} of the non-null emails look like an email address (where"
        f" {HASHED_SETTING} hashes them: like a hash, 64 hex digits). Many invalid ones usually mean the API"
        " moved or renamed the field (or, hashed, that rows loaded before still hold raw addresses: refresh"
        " the asset): look at a few people (ids in the metadata)."
    ),
    column="email",
    is_valid=_valid_email,
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
