"""Keeping credentials that an API payload carries out of the warehouse, whatever they are called.

The audience API's account payload carries live credentials of the account (`apiKeys`, a list of key
strings; `writeKey`; `webhookSeed`), and a new one may appear under any name at any depth. A list of
known names misses the next one, so fields are dropped by what their *name* says (key, secret,
token, seed, password, credential...), in nested objects and inside lists too.

Plain Python, no dlt or Dagster import: a `map` step of a `rest_api` resource.
"""

from __future__ import annotations

import re
from typing import Any

# Whole words of a field name (camelCase, snake_case, kebab-case and digits split apart): `writeKey`,
# `api_keys`, `webhookSeed`. Words, not substrings, for `key` and `seed`: `keyword`, `monkey` or
# `seeded` are not credentials.
_CREDENTIAL_WORDS = frozenset(
    {
        "key", "keys", "apikey", "apikeys", "secret", "secrets", "token", "tokens", "seed", "seeds",
        "password", "passwords", "passwd", "pwd", "passphrase", "credential", "credentials", "auth",
        "authorization", "bearer", "salt",
    }
)  # fmt: skip
# Substrings that mean a credential even inside one lowercase word (`webhooksecret`, `accesstoken`).
_CREDENTIAL_PARTS = ("secret", "token", "password", "passwd", "credential", "apikey", "privatekey")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


def is_credential(name: str, value: Any) -> bool:
    """Whether a field must not reach the warehouse: its name says credential, and its value could be one.

    Kept on purpose: booleans such as `hasStripeAPIKey` (whether an account connected Stripe). A
    true/false flag cannot carry a secret, and it is worth having in the warehouse. Every other value
    under such a name is dropped, strings, numbers, lists and objects alike (a number can be a PIN).
    """
    if isinstance(value, bool):
        return False
    lowered = name.lower()
    return any(part in lowered for part in _CREDENTIAL_PARTS) or not _CREDENTIAL_WORDS.isdisjoint(
        _words(name)
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        for name in [n for n, v in value.items() if is_credential(str(n), v)]:
            del value[name]
        for nested in value.values():
            _scrub(nested)
    elif isinstance(value, list):
        for item in value:
            _scrub(item)
    return value


def drop_credentials(record: dict[str, Any]) -> dict[str, Any]:
    """A dlt `map` step: the record without credential-like fields, at any depth and inside lists.

    Changes the record in place (it is the one dlt is about to normalize) and returns it.
    """
    return _scrub(record)
