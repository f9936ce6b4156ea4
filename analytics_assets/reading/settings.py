"""Reading settings: the sources' the dlt way (environment, then .dlt/*.toml) outside a dlt source,
and the Dagster resources' (`warehouse`, `alert_webhook`) when a run or tick uses them."""

from __future__ import annotations

import os

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


def resource_setting(configured: str | None, variable: str, default: str) -> str:
    """A Dagster resource's setting: its configured value, else the environment variable, else `default`.

    Read when a run or tick uses it, never when the definitions load. Dagster's `EnvVar` cannot say this:
    a field configured with `EnvVar(...)` fails every run while its variable is unset, even when the
    field is optional (dagster-io/dagster#16232), and these settings have always had defaults.
    """
    if configured is not None and configured.strip():
        return configured.strip()
    return os.environ.get(variable, "").strip() or default
