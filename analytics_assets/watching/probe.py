"""Talking to an API outside a load (sensors, the connection test) exactly as the loads do.

Settings are the source's own, resolved by dlt from the source function's signature (environment,
then `.dlt/*.toml`, with the same defaults), and every request goes through the source's transport:
the refusal of plain-http base URLs, the seeds' retry rule, the timeout and the pacing.

Plain dlt and requests, no Dagster: callers decide how to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from dlt.common.configuration import known_sections, resolve_configuration

from analytics_assets.reading.apis import APIS, Api
from analytics_assets.reading.transport import RequestStats, RetryPolicy, Transport, check_base_url


class MissingSettingError(LookupError):
    """A setting the API cannot be reached without is not set; the message names its variable."""


@dataclass(frozen=True)
class ApiSettings:
    """What reaching one API takes, as its dlt source would see it.

    Attributes:
        api: The API name.
        base_url: The API root (`SOURCES__<API>__BASE_URL`).
        api_key: The key (never printed: not in `repr`).
        api_key_header: The header the key travels in.
        request_timeout: Seconds before an attempt times out (and is retried).
        retry_backoff_factor: Retries wait factor * 2**(retry - 1) seconds.
        requests_per_minute: Pacing (None or 0: none).
        rate_window_seconds: The rolling window of the pacing.
        allow_insecure_http: Whether a plain-http base URL beyond this machine is allowed.
    """

    api: str
    base_url: str
    api_key: str = field(repr=False)
    api_key_header: str
    request_timeout: float
    retry_backoff_factor: float
    requests_per_minute: float | None
    rate_window_seconds: float
    allow_insecure_http: bool

    @classmethod
    def resolve(cls, api: Api) -> ApiSettings:
        """The settings of `api`, looked up by dlt where and as its source looks them up.

        Raises:
            MissingSettingError: The base URL or the key is not set (naming the variables).
        """
        # The source's own settings spec and sections (`@dlt.source(name=..., section=..., spec=...)`):
        # the same lookup and the same defaults as a load, without building the source.
        config = resolve_configuration(
            api.settings(),
            sections=(known_sections.SOURCES, api.name, api.name),
            accept_partial=True,
        )
        missing = [api.env_var(name) for name in ("base_url", "api_key") if not config.get(name)]
        if missing:
            raise MissingSettingError(
                f"{api.name} API: set {' and '.join(missing)}"
                f" (or the same keys under [sources.{api.name}] in .dlt/config.toml / .dlt/secrets.toml)."
            )
        return cls(
            api=api.name,
            base_url=str(config["base_url"]).rstrip("/"),
            api_key=str(config["api_key"]),
            api_key_header=str(config["api_key_header"]),
            request_timeout=float(config["request_timeout"]),
            retry_backoff_factor=float(config["retry_backoff_factor"]),
            requests_per_minute=config.get("requests_per_minute"),
            rate_window_seconds=float(config["rate_window_seconds"]),
            allow_insecure_http=bool(config["allow_insecure_http"]),
        )


class ApiClient:
    """Requests to one API, one at a time, through the transport its loads use.

    Create one per API and batch of requests: they share the pacing and the statistics.

    Args:
        api: The API.
        settings: Its settings (default: resolved the dlt way).

    Raises:
        MissingSettingError: The base URL or the key is not set.
        ValueError: The base URL is refused (not http(s), or plain http beyond this machine); the
            message names the setting. Nothing is sent then.
    """

    def __init__(self, api: Api, settings: ApiSettings | None = None) -> None:
        self.api = api
        self.settings = settings or ApiSettings.resolve(api)
        check_base_url(
            api.name, self.settings.base_url, api.env_var("base_url"), self.settings.allow_insecure_http
        )
        self.stats = RequestStats(api.name, refusal=None)  # each endpoint asked, whatever the others answered
        transport = Transport(
            RetryPolicy(
                backoff_factor=self.settings.retry_backoff_factor, timeout=self.settings.request_timeout
            ),
            self.settings.requests_per_minute,
            self.settings.rate_window_seconds,
            self.stats,
        )
        self._session = transport.session()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET `path` (relative to the base URL), retried per the seeds' rule; any status is returned.

        Raises:
            requests.RequestException: No answer after every attempt (connection refused, timeout...).
        """
        return self._session.get(
            self.settings.base_url + path,
            params=dict(params or {}),
            headers={self.settings.api_key_header: self.settings.api_key},
            # A redirect could carry the key header to another host, or to plain http.
            allow_redirects=False,
        )

    def close(self) -> None:
        """Close the connections."""
        self._session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def api_named(name: str) -> Api:
    """The API called `name` (`audience`, `feedback`)."""
    for api in APIS:
        if api.name == name:
            return api
    raise ValueError(f"unknown API {name!r}; expected one of {', '.join(a.name for a in APIS)}")


def get(api: Api | str, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
    """One GET to an API through the loads' transport, with its settings resolved the dlt way.

    Args:
        api: The API or its name.
        path: The path below the base URL, e.g. `/v1/management/responses`.
        params: Query parameters.

    Raises:
        MissingSettingError: The base URL or the key is not set.
        ValueError: The base URL is refused (nothing is sent).
        requests.RequestException: No answer after every attempt.
    """
    with ApiClient(api if isinstance(api, Api) else api_named(api)) as client:
        return client.get(path, params)
