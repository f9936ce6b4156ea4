"""Reading settings: the sources' the dlt way (environment, then .dlt/*.toml) outside a dlt source,
and the Dagster resources' (`warehouse`, `alert_webhook`) when a run or tick uses them."""

# No `from __future__ import annotations`: dlt reads `SourceSettings`' field types from its subclasses'
# modules, where these names are not imported.

import os

import dlt
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue


@configspec
class SourceSettings(BaseConfiguration):
    """What every API's source is configured with (`SOURCES__<API>__<SETTING>`, or `[sources.<api>]` in
    `.dlt/*.toml`): each API's spec (`@dlt.source(spec=...)`) extends it with its own settings and
    defaults; dlt injects them into the source function, and the connection test resolves the same spec."""

    # None is dlt's mark of a required field of a spec (a missing one raises ConfigFieldMissingException).
    base_url: str = None  # type: ignore[assignment]
    api_key: TSecretStrValue = None  # type: ignore[assignment]  # a secret
    api_key_header: str = "api_key"
    requests_per_minute: float | None = None
    rate_window_seconds: float = 60.0
    retry_backoff_factor: float = 2.0
    request_timeout: float = 60.0
    page_concurrency: int = 1
    allow_insecure_http: bool = False


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


def whole_number_setting(variable: str, default: int, unit: str) -> int:
    """A count of `unit` (1 or more) from the environment variable, else `default`.

    A wrong value raises, naming the variable: one silently left at its default would hide the mistake
    until what it times came late.
    """
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{variable} must be a whole number of {unit} (1 or more), not {raw!r}")
    return number
