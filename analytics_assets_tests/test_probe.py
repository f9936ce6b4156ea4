"""Requests outside a load (`analytics_assets.watching.probe`) go through the loads' transport: the sensor too."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context

from analytics_assets.reading.apis import AUDIENCE, FEEDBACK
from analytics_assets.watching import probe
from analytics_assets.watching.sensors import new_feedback_sensor
from analytics_sandbox import Sandbox

RESPONSES = "/feedback/v1/management/responses"
KEY = "live-feedback-key-5f2a9c"


class _Trap(ThreadingHTTPServer):
    """A loopback HTTP proxy that records every request it gets and answers an empty feedback page."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _TrapHandler)


class _TrapHandler(BaseHTTPRequestHandler):
    server: _Trap

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers.items())))
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def trap(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Trap]:
    """Every plain-http request of this process goes to the trap (as to a proxy) instead of the internet."""
    server = _Trap()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{server.server_address[1]}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeds' retry rule (4 attempts), without its waiting."""
    monkeypatch.setenv("SOURCES__FEEDBACK__RETRY_BACKOFF_FACTOR", "0.01")


def test_the_sensor_refuses_plain_http_to_another_host_and_sends_nothing(
    trap: _Trap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__FEEDBACK__BASE_URL", "http://api.example.com")
    monkeypatch.setenv("SOURCES__FEEDBACK__API_KEY", KEY)
    result = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(result, SkipReason)
    message = result.skip_message or ""
    assert "SOURCES__FEEDBACK__BASE_URL" in message and "SOURCES__FEEDBACK__ALLOW_INSECURE_HTTP" in message
    assert KEY not in message
    assert trap.seen == []  # no request at all: the key never left

    # The trap does catch a request that goes out: allowed on purpose, the same sensor reaches it.
    monkeypatch.setenv("SOURCES__FEEDBACK__ALLOW_INSECURE_HTTP", "true")
    assert isinstance(new_feedback_sensor(build_sensor_context(cursor=None)), SkipReason)  # no responses
    [(url, headers)] = trap.seen
    assert url == "http://api.example.com/v1/management/responses?limit=1&skip=0"
    assert headers["X-API-Key"] == KEY


def test_the_sensor_retries_a_503_by_the_seeds_rule(configured: Sandbox, fast_retries: None) -> None:
    configured.clear_requests()
    configured.inject_fault(RESPONSES, "status", status=503)
    result = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(result, SensorResult) and len(result.run_requests or []) == 1
    seen = configured.requests(path=RESPONSES)
    assert [r["status"] for r in seen] == [503, 200]
    assert all(r["headers"]["x-api-key"] == configured.feedback_key for r in seen)


def test_the_sensor_gives_up_after_four_attempts(configured: Sandbox, fast_retries: None) -> None:
    configured.clear_requests()
    configured.inject_fault(RESPONSES, "status", status=503, times=10)
    result = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(result, SkipReason) and "503" in (result.skip_message or "")
    assert [r["status"] for r in configured.requests(path=RESPONSES)] == [503] * 4


def test_the_sensor_retries_an_attempt_that_times_out(
    configured: Sandbox, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__FEEDBACK__REQUEST_TIMEOUT", "0.5")
    configured.clear_requests()
    configured.inject_fault(RESPONSES, "latency", delay=3)
    result = new_feedback_sensor(build_sensor_context(cursor=None))
    assert isinstance(result, SensorResult) and configured.pending_faults() == []
    # A second request went out (the slow first one is logged only once the sandbox answers it): the
    # first attempt timed out and was retried.
    answered = [r for r in configured.requests(path=RESPONSES) if r["fault"] is None]
    assert [r["status"] for r in answered] == [200]


def test_get_resolves_the_sources_settings_and_defaults(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = probe.ApiSettings.resolve(FEEDBACK)
    assert (settings.api_key_header, settings.request_timeout, settings.requests_per_minute) == (
        "X-API-Key",
        60,
        100,
    )
    assert settings.retry_backoff_factor == 2 and settings.allow_insecure_http is False
    assert configured.feedback_key not in repr(settings)
    assert probe.ApiSettings.resolve(AUDIENCE).api_key_header == "api_key"

    monkeypatch.setenv("SOURCES__AUDIENCE__API_KEY_HEADER", "X-Encharge-Token")
    response = probe.get("audience", "/segments", {"limit": 1})
    assert response.status_code == 401  # the sandbox wants `api_key`: the setting was used
    [seen] = configured.requests(path="/audience/v1/segments")
    assert seen["headers"]["x-encharge-token"] == configured.audience_key and seen["query"] == {"limit": "1"}


def test_get_names_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOURCES__FEEDBACK__BASE_URL", "SOURCES__FEEDBACK__API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        probe.MissingSettingError, match="SOURCES__FEEDBACK__BASE_URL and SOURCES__FEEDBACK__API_KEY"
    ):
        probe.get(FEEDBACK, "/v1/webhooks")


@pytest.mark.slow
def test_get_reads_dlt_toml_files(sandbox: Sandbox, tmp_path: Path) -> None:
    """Settings in `.dlt/config.toml` and `.dlt/secrets.toml` of the working folder, as for a load."""
    settings = tmp_path / ".dlt"
    settings.mkdir()
    (settings / "config.toml").write_text(
        f'[sources.feedback]\nbase_url = "{sandbox.feedback_base_url}"\nrequest_timeout = 7\n'
    )
    (settings / "secrets.toml").write_text(f'[sources.feedback]\napi_key = "{sandbox.feedback_key}"\n')
    code = (
        "from analytics_assets.watching import probe; s = probe.ApiSettings.resolve(probe.api_named('feedback'));"
        " print(s.request_timeout, probe.get('feedback', '/v1/webhooks').status_code)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["7.0", "200"], done.stderr[-2000:]
    [seen] = sandbox.requests()
    assert seen["path"] == "/feedback/v1/webhooks" and seen["headers"]["x-api-key"] == sandbox.feedback_key
