"""Reading the sources' settings the dlt way (environment, then .dlt/*.toml), outside a dlt source."""

from __future__ import annotations

import dlt


def env_var(api: str, setting: str) -> str:
    """The environment variable dlt reads a source setting from, e.g. `SOURCES__FEEDBACK__API_KEY`."""
    return f"SOURCES__{api.upper()}__{setting.upper()}"


def source_setting(api: str, name: str) -> str | None:
    """A setting of one API's source, e.g. `source_setting("feedback", "api_key")`, or None when unset.

    Looks where the source itself looks: `SOURCES__<API>__<NAME>`, then `[sources.<api>]` in
    .dlt/secrets.toml and .dlt/config.toml.
    """
    value: object = (
        dlt.secrets.get(f"sources.{api}.{name}")
        if name == "api_key"
        else dlt.config.get(f"sources.{api}.{name}")
    )
    return None if value is None else str(value)
