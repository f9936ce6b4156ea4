"""Alerts: one JSON message per problem, POSTed to a webhook, with every configured secret redacted.

The message is Slack-compatible (a `text` field in Slack's mrkdwn) and also carries structured fields
for other receivers: `kind`, `severity`, `asset`, `check`, `run_id`, `run_url`, `asset_url`,
`summary`, `details`.

`AlertWebhook` is the Dagster resource `alert_webhook` (the UI's Resources page) the alert sensor
sends through. Its settings are read when an alert is sent (never at import):
- `url` / `ANALYTICS_ALERT_WEBHOOK_URL`: where alerts are POSTed; without it they are logged as warnings.
  A secret (a Slack hook is its own credential): it appears in no log, alert or resource display.
- `dagster_base_url` / `ANALYTICS_DAGSTER_BASE_URL`: the Dagster UI the links point to (default
  `http://localhost:3000`).

The sensor in `alert_sensors.py` builds `Alert`s from the event log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import dlt
import requests
from dagster import ConfigurableResource
from pydantic import Field

from analytics_assets.reading.apis import APIS
from analytics_assets.reading.settings import resource_setting

WEBHOOK_URL_ENV = "ANALYTICS_ALERT_WEBHOOK_URL"
BASE_URL_ENV = "ANALYTICS_DAGSTER_BASE_URL"
DEFAULT_BASE_URL = "http://localhost:3000"

ATTEMPTS = 3
"""POST attempts per alert: a receiver that answers 429/5xx or cannot be reached gets two more tries."""
BACKOFF_SECONDS = 0.5
"""Wait before the second attempt; doubled before each further one."""
TIMEOUT_SECONDS = 10.0

REDACTED = "[redacted]"
_SECRET_ENV_NAME = re.compile(r"(API_?KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS|WEBHOOK_URL)$", re.IGNORECASE)
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

CHECK_FAILED, RUN_FAILED, ASSET_STALE = "check_failed", "run_failed", "asset_stale"
_TITLES = {CHECK_FAILED: "Check failed", RUN_FAILED: "Run failed", ASSET_STALE: "Asset stale"}
_ICONS = {CHECK_FAILED: ":red_circle:", RUN_FAILED: ":x:", ASSET_STALE: ":hourglass:"}


@dataclass(frozen=True)
class Alert:
    """One problem worth a message.

    Attributes:
        kind: `check_failed`, `run_failed` or `asset_stale`.
        severity: `ERROR` or `WARN`.
        summary: What happened and what to do, in a sentence or two.
        run_id: The run that found or had the problem.
        asset: The asset (`audience/peoples`), or the assets a failed run did not update.
        check: The check name, for check failures and staleness.
        details: Counts and sample keys (the check's metadata, the failed steps).
    """

    kind: str
    severity: str
    summary: str
    run_id: str | None = None
    asset: str | None = None
    check: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def payload(alert: Alert, base_url: str = DEFAULT_BASE_URL) -> dict[str, Any]:
    """The JSON body of an alert (before redaction), its links into the Dagster UI at `base_url`."""
    base = base_url.rstrip("/")
    run_url = f"{base}/runs/{alert.run_id}" if alert.run_id else None
    asset_url = f"{base}/assets/{alert.asset}" if alert.asset and "," not in alert.asset else None
    subject = " ".join(
        part
        for part in (
            f"`{alert.check}`" if alert.check else "",
            "on" if alert.check and alert.asset else "",
            f"`{alert.asset}`" if alert.asset else "",
        )
        if part
    )
    text = f"{_ICONS[alert.kind]} *{_TITLES[alert.kind]}* [{alert.severity}] {subject}: {alert.summary}"
    if run_url:
        text += f"\n<{run_url}|Open run {alert.run_id[:8] if alert.run_id else ''} in Dagster>"
    return {
        "text": text,
        "kind": alert.kind,
        "severity": alert.severity,
        "asset": alert.asset,
        "check": alert.check,
        "run_id": alert.run_id,
        "run_url": run_url,
        "asset_url": asset_url,
        "summary": alert.summary,
        "details": _jsonable(alert.details),
        "source": "analytics_assets",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def configured_secrets() -> set[str]:
    """Every secret this process could leak, read now: both API keys (from dlt's config: environment
    or `.dlt/secrets.toml`), environment variables named like secrets, and passwords inside URLs."""
    secrets: set[str] = set()
    for api in APIS:
        value: Any = None
        with contextlib.suppress(Exception):  # an unreadable secrets.toml must not stop an alert
            value = dlt.secrets.get(f"sources.{api.name}.api_key")
        if isinstance(value, str):
            secrets.add(value)
    secrets.update(value for name, value in os.environ.items() if _SECRET_ENV_NAME.search(name))
    for value in list(secrets):
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            secrets.add(password)
    return {s.strip() for s in secrets if len(s.strip()) >= _MIN_SECRET_LENGTH}


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every secret (and its URL-encoded form) replaced in every string it holds."""
    forms = sorted({f for s in secrets for f in (s, quote(s, safe=""))}, key=len, reverse=True)

    def scrub(item: Any) -> Any:
        if isinstance(item, str):
            for secret in forms:
                item = item.replace(secret, REDACTED)
            return item
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        if isinstance(item, list):
            return [scrub(v) for v in item]
        return item

    return scrub(value)


class AlertWebhook(ConfigurableResource):
    """Where the alert sensor POSTs its alerts, and the Dagster UI their links point to.

    Both fields are read when an alert is sent: left unset here, from their environment variables
    (unset too: alerts are only logged as warnings; links point to http://localhost:3000).
    """

    url: str | None = Field(
        default=None,
        description=(
            f"The webhook alerts are POSTed to (Slack-compatible JSON). Unset: {WEBHOOK_URL_ENV}; unset too,"
            " alerts are only logged as warnings. A secret: set it in the environment (or with"
            f" EnvVar), never as a literal here, and it is redacted from every alert and log."
        ),
    )
    dagster_base_url: str | None = Field(
        default=None,
        description=f"The Dagster UI the alerts link to. Unset: {BASE_URL_ENV}, else {DEFAULT_BASE_URL}.",
    )

    def webhook_url(self) -> str | None:
        """The webhook, read now; None without one."""
        return resource_setting(self.url, WEBHOOK_URL_ENV, "") or None

    def base_url(self) -> str:
        """The Dagster UI's base URL, read now."""
        return resource_setting(self.dagster_base_url, BASE_URL_ENV, DEFAULT_BASE_URL).rstrip("/")

    def send(self, alert: Alert, log: logging.Logger) -> bool:
        """POST an alert to the webhook, retrying; never raises.

        Returns:
            Whether the receiver accepted it (without a webhook: False, and the alert is logged as a warning).
        """
        url = self.webhook_url()
        try:
            body = redact(payload(alert, self.base_url()), configured_secrets() | ({url} if url else set()))
        except Exception:
            log.exception("Could not build an alert message")
            return False
        if not url:
            log.warning(f"{WEBHOOK_URL_ENV} is not set, so this alert is only logged: {json.dumps(body)}")
            return False
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = requests.post(url, json=body, timeout=TIMEOUT_SECONDS)
            except requests.RequestException as error:
                # The exception text holds the webhook URL, itself a secret for Slack-style hooks.
                problem, retry = type(error).__name__, True
            else:
                if response.ok:
                    log.info(f"Alert sent ({alert.kind}, {body['asset'] or 'no asset'}), attempt {attempt}.")
                    return True
                problem, retry = (
                    f"HTTP {response.status_code}",
                    response.status_code == 429 or response.status_code >= 500,
                )
            log.warning(f"Alert POST attempt {attempt}/{ATTEMPTS} failed: {problem}.")
            if not retry:
                break
            if attempt < ATTEMPTS:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        log.error(f"Alert not delivered, giving up: {body['text']}")
        return False
