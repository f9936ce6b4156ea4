"""Turning a failed load into one message a person can act on: the API, the request and what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import requests
from dlt.extract.exceptions import PipeException

from analytics_assets.reading.apis import Api
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.settings import env_var
from analytics_assets.reading.sweep import KeyTypeError, MissingKeyError, SweepRefusedError
from analytics_assets.reading.transport import (
    RETRY_STATUS_CODES,
    ApiResponseError,
    KeyRefusedError,
    RequestStats,
    RetryPolicy,
)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and the errors behind it (causes, contexts, and what dlt's step failures wrap), once each."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "exception", None)  # dlt's PipelineStepFailed keeps it here
        current = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__


def _request(response: requests.Response) -> str:
    parts = urlsplit(response.url)
    return f"GET {parts.path}" + (f"?{parts.query}" if parts.query else "")


def _last_request(stats: RequestStats, endpoint: Endpoint | None) -> str:
    """The last request of the failing endpoint (its page), as `GET /path?query`."""
    if endpoint is None:
        return "its last request"
    tail = endpoint.path.rsplit("}", 1)[-1]
    head = endpoint.path.split("{", 1)[0]
    urls = [url for path, url in stats.last.items() if path.endswith(tail) and head in path]
    return f"GET {urls[-1]}" if urls else f"GET {endpoint.path}"


def error_response(error: BaseException) -> requests.Response | None:
    """The API's answer behind a failed load when it answered with an error status, else None."""
    return next(
        (
            c.response
            for c in error_chain(error)
            if isinstance(c, requests.HTTPError) and c.response is not None
        ),
        None,
    )


def server_message(response: requests.Response) -> str:
    """What the API said about an error, from its JSON body (`message`, or `error.message`), shortened."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("message") or (error.get("message") if isinstance(error, dict) else None)
    return str(message or f"{response.status_code} {response.reason}")[:300]


def explain(
    api: Api, error: BaseException, stats: RequestStats, catalog: Mapping[str, Endpoint], base_url: str
) -> str | None:
    """A clear message for a failed load of `api`, or None when the failure is not about the API.

    Args:
        api: The API.
        error: What the dlt run raised.
        stats: The requests of the run.
        catalog: The API's endpoints, to name the failing one.
        base_url: The configured base URL (never secret; the key travels in a header).
    """
    name = api.name
    chain = list(error_chain(error))
    resource = next((e.pipe_name for e in chain if isinstance(e, PipeException)), None)
    endpoint = catalog.get(resource or "")
    url_setting = env_var(api.name, "base_url")
    key_setting = env_var(api.name, "api_key")
    attempts = RetryPolicy().max_attempts
    for cause in chain:
        if isinstance(cause, ApiResponseError):
            return str(cause)
        if isinstance(cause, SweepRefusedError):
            return f"{name} API: {cause}"
        if isinstance(cause, KeyRefusedError):
            return _key_refused(name, cause.status, cause.request, key_setting, base_url)
        if isinstance(cause, MissingKeyError):
            return (
                f"{name} API: a {cause.resource} record on {_last_request(stats, endpoint)} has no"
                f" {', '.join(cause.fields)}, the key it is merged on. Nothing of this endpoint was loaded; the"
                f" record is {cause.sample}. Report it to the API's owner, or wait for a corrected record."
            )
        if isinstance(cause, KeyTypeError):
            shown = repr(cause.value)
            shown = shown if len(shown) <= 120 else f"{shown[:117]}..."
            return (
                f"{name} API: a {cause.resource} record on {_last_request(stats, endpoint)} has {cause.field}"
                f" {shown} ({cause.found}), but {cause.before}. A key that changes type cannot be merged (dlt"
                " would put the value in a variant column and leave the key empty), so nothing of this"
                " endpoint was loaded. Report the record to the API's owner; if the API now sends every"
                f" {cause.field} as {cause.found}, run a refresh of {name}/{cause.resource} to load it anew."
            )
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            status = cause.response.status_code
            request = _request(cause.response)
            if status in (401, 403):
                return _key_refused(name, status, request, key_setting, base_url)
            if status == 404:
                return (
                    f"{name} API has no {request} (404 Not Found): check {url_setting}, now {base_url!r}"
                    f" ({api.base_url_shape} for this API)."
                )
            if status in RETRY_STATUS_CODES:
                return (
                    f"{name} API answered {status} on {request} on all {attempts} attempts ({attempts - 1} retries with backoff):"
                    " the API is down or rate limiting. Nothing of this endpoint was loaded and its cursor did not move;"
                    " run it again later."
                )
            return f"{name} API answered {status} on {request}, which is not retried. Nothing of this endpoint was loaded."
        if isinstance(cause, requests.Timeout):
            return (
                f"{name} API did not answer {_last_request(stats, endpoint)} in time, {attempts} attempts in a row:"
                f" check that {base_url!r} is up, or raise {env_var(api.name, 'request_timeout')}."
            )
        if isinstance(cause, requests.ConnectionError):
            return (
                f"{name} API could not be reached at {base_url!r} ({type(cause).__name__}, {attempts} attempts):"
                f" check {url_setting} and the network."
            )
        if isinstance(cause, (json.JSONDecodeError, requests.JSONDecodeError)):
            return (
                f"{name} API answered malformed JSON on {_last_request(stats, endpoint)}: the page is cut or"
                " broken. Nothing of this endpoint was loaded; run it again, and if it persists, report it to the"
                " API's owner."
            )
    return None


def _key_refused(name: str, status: int, request: str, key_setting: str, base_url: str) -> str:
    return (
        f"{name} API refused the API key ({status}) on {request}: set {key_setting} (or api_key"
        f" under [sources.{name}] in .dlt/secrets.toml) to a valid key for {base_url}."
    )
