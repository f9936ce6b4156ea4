"""The two APIs this code location loads, each with its dlt source and its configuration keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from dlt.sources import DltSource
from dlt.sources.rest_api import RESTAPIConfig

from analytics_assets.reading.audience import columns as audience_columns
from analytics_assets.reading.audience.source import (
    LOADER_FIELDS,
    REAL_KEY_HEADER,
    AudienceSettings,
    audience,
    audience_config,
)
from analytics_assets.reading.catalog import Endpoint, endpoints
from analytics_assets.reading.feedback import columns as feedback_columns
from analytics_assets.reading.feedback.source import (
    CURRENT_GENERATION_PATHS,
    FeedbackSettings,
    feedback,
    feedback_config,
)
from analytics_assets.reading.settings import SourceSettings, env_var


@dataclass(frozen=True)
class Api:
    """One third-party API: its name (also its pipeline, dataset, asset prefix and group) and its source."""

    name: str
    source: Callable[..., DltSource]
    settings: type[SourceSettings]
    """The source's settings spec (`@dlt.source(spec=...)`): what dlt injects into `source`, and what
    anything else that needs the API's settings resolves (`watching/probe.py`)."""
    config: Callable[..., RESTAPIConfig]
    base_url_shape: str
    """What its base URL looks like, for messages about a wrong one (e.g. "ending in /v1")."""
    successor_paths: Mapping[str, str] = field(default_factory=dict)
    """Where the API's current servers serve a resource whose seed path they answer 404 for."""
    real_key_header: str | None = None
    """The header the real API reads its key from, where it differs from the seed's default (which the
    sandbox keeps): named in the fix for a refused key."""
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """What each documented field means, by resource, then by field name on the wire (`<api>/columns.py` here):
    the column descriptions of the UI's column schema."""
    loader_fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Fields the loader adds to the API's records, by resource, with where each comes from (a child's
    copy of its parent's id): not the API's, so neither hashed nor excluded."""

    def env_var(self, setting: str) -> str:
        """The environment variable dlt reads a setting of this source from."""
        return env_var(self.name, setting)

    def spec_source(self) -> DltSource:
        """The source with placeholder settings: enough to list its resources, never run.

        Passing every setting explicitly keeps dlt from looking anything up at import time.
        """
        return self.source(**_SPEC_ONLY_SETTINGS)

    def spec_config(self) -> RESTAPIConfig:
        """The `rest_api` config with placeholder settings, for describing the endpoints."""
        return self.config(**_SPEC_ONLY_SETTINGS)

    @cached_property
    def catalog(self) -> Mapping[str, Endpoint]:
        """The API's endpoints by resource name (parents first), read once from its config: the one
        catalog the assets, checks, history mode and the connection test all use."""
        return MappingProxyType(dict(endpoints(self.spec_config())))


_SPEC_ONLY_SETTINGS: dict[str, Any] = {"base_url": "https://spec-only.invalid", "api_key": "spec-only"}

AUDIENCE = Api(
    name="audience",
    source=audience,
    settings=AudienceSettings,
    config=audience_config,
    base_url_shape="ending in /v1",
    real_key_header=REAL_KEY_HEADER,
    columns=audience_columns.COLUMNS,
    loader_fields=LOADER_FIELDS,
)
FEEDBACK = Api(
    name="feedback",
    source=feedback,
    settings=FeedbackSettings,
    config=feedback_config,
    base_url_shape="without /v1",
    successor_paths=CURRENT_GENERATION_PATHS,
    columns=feedback_columns.COLUMNS,
)
APIS = (AUDIENCE, FEEDBACK)
