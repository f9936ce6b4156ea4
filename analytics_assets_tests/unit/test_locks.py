"""`analytics_assets.loading.locks` on its own: file locks and bounded waits with a fake run context (no
Dagster run, no server)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from analytics_assets.loading.locks import (
    LOCK_TIMEOUT_ENV,
    FileLock,
    Holder,
    LockTimeoutError,
    wait_for,
)
from analytics_assets.loading.warehouse import WarehouseResource


@dataclass
class FakeRun:
    run_id: str
    job_name: str = "nightly_sync"


@dataclass
class FakeLog:
    lines: list[str] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.lines.append(message)


class FakeInstance:
    """Knows one other run: the holder's."""

    def get_run_by_id(self, run_id: str) -> Any:
        status = type("Status", (), {"value": "STARTED"})()
        return type("Run", (), {"job_name": "weekly_reconciliation", "status": status})()


@dataclass
class FakeContext:
    run: FakeRun
    log: FakeLog = field(default_factory=FakeLog)
    instance: FakeInstance = field(default_factory=FakeInstance)


def context(run_id: str = "run-b") -> Any:
    return FakeContext(FakeRun(run_id))


def test_a_file_lock_says_who_holds_it_and_since_when(tmp_path: Path) -> None:
    held = FileLock(tmp_path / "audience.lock")
    assert held.try_acquire("run-a")
    other = FileLock(tmp_path / "audience.lock")
    assert not other.try_acquire("run-b")
    holder = other.holder()
    assert holder.run_id == "run-a"
    assert holder.since is not None and abs(holder.since.timestamp() - time.time()) < 60
    held.release()
    assert other.try_acquire("run-b")  # let go: free at once
    other.release()


def test_a_wait_is_bounded_and_names_the_holder_and_the_setting(tmp_path: Path) -> None:
    held = FileLock(tmp_path / "feedback.lock")
    assert held.try_acquire("run-a")
    waiting = FileLock(tmp_path / "feedback.lock")
    ctx = context()
    started = time.monotonic()
    with pytest.raises(LockTimeoutError) as timed_out:
        wait_for(waiting, "the feedback API's lock", ctx, timeout=0.3)
    assert time.monotonic() - started < 5
    message = timed_out.value.description or ""
    assert (
        "Gave up waiting for the feedback API's lock after 0 s: run run-a of weekly_reconciliation" in message
    )
    assert "(STARTED), since " in message and LOCK_TIMEOUT_ENV in message
    assert ctx.log.lines and ctx.log.lines[0].startswith("Waiting for the feedback API's lock: run run-a")
    held.release()


def test_a_wait_ends_as_soon_as_the_holder_lets_go(tmp_path: Path) -> None:
    held = FileLock(tmp_path / "audience.lock")
    assert held.try_acquire("run-a")
    threading.Timer(0.3, held.release).start()
    waiting = FileLock(tmp_path / "audience.lock")
    assert wait_for(waiting, "the audience API's lock", context(), timeout=30)
    assert waiting.holder() == Holder("run-b", waiting.holder().since)
    waiting.release()


def test_a_lock_that_is_only_tried_is_not_waited_for(tmp_path: Path) -> None:
    held = FileLock(tmp_path / "audience.lock")
    assert held.try_acquire("run-a")
    ctx = context()
    assert not wait_for(FileLock(tmp_path / "audience.lock"), "the audience API's lock", ctx, 30, wait=False)
    assert ctx.log.lines == []
    held.release()


@pytest.mark.parametrize(("raw", "expected"), [(None, 3600.0), ("90", 90.0), ("0.5", 0.5)])
def test_the_lock_timeout_setting(raw: str | None, expected: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    if raw is not None:
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, raw)
    assert WarehouseResource().lock_timeout() == expected


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_a_wrong_lock_timeout_names_the_setting(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, raw)
    with pytest.raises(ValueError, match=LOCK_TIMEOUT_ENV):
        WarehouseResource().lock_timeout()
