"""One loader per API at a time, with a lock that is released when its holder dies.

Why not Dagster's pools: a run killed with SIGKILL (the OOM killer, a node restart) stays STARTED in
the instance and keeps its pool slot. `free_slots_after_run_end_seconds` frees only slots of runs that
have ended, the default run launcher cannot tell that a run worker is gone, and `dagster asset
materialize` has no daemon at all: every later load of that API waited for the slot forever.

Instead, every op that loads an API (and every check op reading its dataset) holds `api_lock` while it
works. The lock lives where the instance lives, and the operating system or the database drops it the
moment its holder's process is gone:

- embedded instance (SQLite under `$DAGSTER_HOME`): an `flock` on `<instance root>/locks/<api>.lock`;
  the kernel releases it when the process dies, whatever killed it.
- PostgreSQL instance (`deploy/dagster.yaml`): a session-level advisory lock in the instance's own
  database, held on a connection of its own; PostgreSQL releases it when that session ends, which
  happens at once when the process dies (its socket closes), and within about a minute when its machine
  vanishes (server-side TCP keepalives, set on the session). Runs on several machines share it.

A waiting op polls once a second and logs, in the run's log (the UI shows it), which run holds the
lock and since when; the holder's run id and time are the lock file's content, or the holder session's
`application_name` and start. **Every wait is bounded**: after `lock_timeout_seconds` of the warehouse
resource (`ANALYTICS_LOCK_TIMEOUT_SECONDS`, one hour by default) the step fails, naming the holder (run,
job, since when) and the setting (`LockTimeoutError`).

**The lock order**, kept by every path (the load op, checks, the sweep's repair, refreshes):
1. the APIs' locks (`api_lock`), in the order of `reading.apis.APIS`: audience, then feedback. The load
   op takes those of the APIs it loads, waiting for each within the bound; so a holder of an earlier API's
   lock may wait for a later one's, never the other way round. A total order cannot deadlock: the run
   that holds the latest lock any of them waits for waits for nothing.
2. the warehouse's one-writer lock (`WarehouseResource.lock`, on DuckDB), taken after the API locks and
   held within a step; no one waits for an API lock while holding it.
3. innermost, `endpoints_load.WAREHOUSE_TURN`: one thread of the process at a time opens the DuckDB file.
A run waits for a lock only while holding locks earlier in this order, so two runs cannot wait on each
other; and every wait ends within its bound anyway.

A lock belongs to a run, not to a step (`RunHolds`, one per run, the warehouse resource's): the load op's
reading threads join the op's warehouse hold while they restore their pipelines, and the lock is released
when the last holder lets go.
"""

from __future__ import annotations

import fcntl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dagster import DagsterInstance, DagsterLogManager, DagsterRun, Failure

POLL_SECONDS = 1.0
"""How often a waiting op tries the lock again (a dead holder's lock is free at once)."""

_NAMESPACE = zlib.crc32(b"analytics_assets") & 0x7FFFFFFF
"""The first key of our advisory locks, so they cannot collide with another application's."""

_APPLICATION_PREFIX = "analytics_assets lock "
"""The holder session's `application_name` is this prefix and its run id (visible in pg_stat_activity)."""

# Server-side settings of the holder's session: TCP keepalives make PostgreSQL notice a holder whose
# machine vanished without closing its socket (about 30 + 3 x 10 s), and no idle timeout may end the
# session while the load it guards is still running.
_SESSION_OPTIONS = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
    " -c idle_session_timeout=0 -c statement_timeout=0"
)


class RunContext(Protocol):
    """What `api_lock` needs of an op's context (asset, op and check contexts all have it)."""

    @property
    def instance(self) -> DagsterInstance: ...

    @property
    def run(self) -> DagsterRun: ...

    @property
    def log(self) -> DagsterLogManager: ...


LOCK_TIMEOUT_ENV = "ANALYTICS_LOCK_TIMEOUT_SECONDS"
"""The setting that bounds every lock wait (the warehouse resource's `lock_timeout_seconds`)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as far as the lock can tell."""

    run_id: str | None
    since: datetime | None


class LockTimeoutError(Failure):
    """A step waited for a lock as long as its bound allows: the message names the holder and the setting."""


class _Lock(Protocol):
    def try_acquire(self, run_id: str) -> bool: ...

    def holder(self) -> Holder: ...

    def release(self) -> None: ...


class FileLock:
    """An `flock` on a file; the file holds the holder's run id and since when (`<run id> <ISO time>`).

    The kernel drops the lock when the holder's process dies, whatever killed it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # "a+": opening must not truncate what a live holder wrote.
        self.file = open(path, "a+")  # noqa: SIM115 (closed in release)

    def try_acquire(self, run_id: str) -> bool:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{run_id} {datetime.now(UTC).isoformat(timespec='seconds')}")
        self.file.flush()
        return True

    def holder(self) -> Holder:
        try:
            run_id, _, since = self.path.read_text().strip().partition(" ")
        except OSError:
            return Holder(None, None)
        try:
            when = datetime.fromisoformat(since) if since else None
        except ValueError:
            when = None
        return Holder(run_id or None, when)

    def release(self) -> None:
        self.file.close()  # closing the file drops the flock


class _PostgresLock:
    """A session-level advisory lock in the instance database, on a connection of its own."""

    def __init__(self, postgres_url: str, api: str) -> None:
        self.url = postgres_url
        self.key = (_NAMESPACE, zlib.crc32(api.encode()) & 0x7FFFFFFF)
        self.connection: Any = None

    def _connect(self, application_name: str) -> Any:
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(self.url)  # dagster-postgres URLs may name a driver: postgresql+psycopg2://
        arguments: dict[str, Any] = {
            **url.translate_connect_args(username="user", database="dbname"),
            **{k: v for k, v in url.query.items() if isinstance(v, str)},
        }
        arguments.setdefault("options", _SESSION_OPTIONS)
        connection = psycopg2.connect(application_name=application_name[:63], **arguments)
        connection.autocommit = True  # a session lock; no transaction left open while the load runs
        return connection

    def try_acquire(self, run_id: str) -> bool:
        if self.connection is None:
            self.connection = self._connect(_APPLICATION_PREFIX + run_id)
        with self.connection.cursor() as cursor:
            cursor.execute("select pg_try_advisory_lock(%s, %s)", self.key)
            return bool(cursor.fetchone()[0])

    def holder(self) -> Holder:
        # The holder's session is opened right before it takes the lock: its start is "since when".
        with self.connection.cursor() as cursor:
            cursor.execute(
                "select a.application_name, a.backend_start from pg_locks l join pg_stat_activity a"
                " on a.pid = l.pid where l.locktype = 'advisory' and l.granted and l.classid = %s"
                " and l.objid = %s and l.objsubid = 2 and l.database = (select oid from pg_database"
                " where datname = current_database())",
                self.key,
            )
            row = cursor.fetchone()
        name = str(row[0]) if row and row[0] else ""
        return Holder(name.removeprefix(_APPLICATION_PREFIX) or None, row[1] if row else None)

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()  # ending the session releases its advisory locks


def _lock_for(instance: DagsterInstance, api: str) -> _Lock:
    from dagster_postgres import PostgresRunStorage

    storage = instance.run_storage
    if isinstance(storage, PostgresRunStorage):
        return _PostgresLock(storage.postgres_url, api)
    return FileLock(Path(instance.root_directory) / "locks" / f"{api}.lock")


def describe_holder(instance: DagsterInstance, holder: Holder, own_run_id: str) -> str:
    """`run <id> of <job> (<status>), since <time>`, or what is known of it."""
    since = f", since {holder.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if holder.since else ""
    if holder.run_id is None:
        return f"another run{since}"
    if holder.run_id == own_run_id:
        return f"another step of this run ({holder.run_id}){since}"
    run = instance.get_run_by_id(holder.run_id)
    job = f" of {run.job_name} ({run.status.value})" if run is not None else ""
    return f"run {holder.run_id}{job}{since}"


H = TypeVar("H")


def wait_bounded(
    attempt: Callable[[], H | None],
    timeout: float,
    waiting: Callable[[H], None],
    timed_out: Callable[[H], LockTimeoutError],
) -> float:
    """Call `attempt` until it returns None (done), about once a second, for at most `timeout` seconds:
    the one bounded wait of the project's locks.

    Args:
        attempt: Tries once; returns None when done, else who stands in the way.
        waiting: Told each new holder in the way (to say so in the run's log).
        timed_out: The error raised at the bound, naming the last holder.

    Returns:
        The seconds waited.
    """
    started = time.monotonic()
    told: H | None = None
    while (holder := attempt()) is not None:
        if holder != told:
            waiting(holder)
            told = holder
        waited = time.monotonic() - started
        if waited >= timeout:
            raise timed_out(holder)
        time.sleep(min(POLL_SECONDS, max(timeout - waited, 0.01)))
    return time.monotonic() - started


def wait_for(lock: _Lock, what: str, context: RunContext, timeout: float, wait: bool = True) -> bool:
    """Take `lock` for this run, waiting at most `timeout` seconds while another holds it.

    Args:
        what: The lock in words, for the log and the error ("the audience API's lock").
        wait: False: give up at once when another holds it.

    Returns:
        True once taken; False when busy and `wait` is False.

    Raises:
        LockTimeoutError: Still held by another after `timeout` seconds; names the holder and the setting.
    """
    run_id = context.run.run_id
    if lock.try_acquire(run_id):
        return True
    if not wait:
        return False

    def described(holder: Holder) -> str:
        return describe_holder(context.instance, holder, run_id)

    waited = wait_bounded(
        lambda: None if lock.try_acquire(run_id) else lock.holder(),
        timeout,
        lambda holder: context.log.info(
            f"Waiting for {what}: {described(holder)} holds it. This step goes on as soon as it is let go"
            f" (a killed run lets go at once), or fails after {timeout:.0f} s ({LOCK_TIMEOUT_ENV})."
        ),
        lambda holder: LockTimeoutError(
            description=(
                f"Gave up waiting for {what} after {timeout:.0f} s: {described(holder)} holds it. If that run"
                " is stuck, terminate it (a killed run lets go of its locks at once); if it is only long,"
                f" raise {LOCK_TIMEOUT_ENV} (the warehouse resource's lock_timeout_seconds)."
            ),
            metadata={"holder_run_id": holder.run_id or "", "timeout_seconds": timeout},
        ),
    )
    context.log.info(f"Got {what} after waiting {waited:.0f} s.")
    return True


Release = Callable[[], None]
"""Lets go of a lock held through `RunHolds.hold` (once; later calls do nothing)."""


class RunHolds:
    """The locks one run holds in this process, shared by its steps and the load op's reading threads: the
    first holder of a lock takes it (`hold`), later holders of the run join, and the lock goes when the
    last one lets go.

    One object per run, living as long as the run: the warehouse resource's (`WarehouseResource`,
    copied by Dagster for each run, closed at the run's end), never a module-level registry.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[Release, int]] = {}
        """Lock name -> the lock's own release and how many holders of the run hold it now."""
        self._turns: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def hold(self, name: str, acquire: Callable[[], Release | None]) -> Release | None:
        """Hold the lock `name`: `acquire` takes it the first time (returning its release, or None when
        it is busy); later holders only join.

        Returns:
            This holder's release, or None when `acquire` found the lock busy.
        """
        with self._guard:
            turn = self._turns.setdefault(name, threading.Lock())
        # One holder of the run acquires at a time (it may wait for another run); the others then join.
        with turn:
            with self._guard:
                if name in self._held:
                    held, holders = self._held[name]
                    self._held[name] = (held, holders + 1)
                    return self._let_go(name)
            release = acquire()
            if release is None:
                return None
            with self._guard:
                self._held[name] = (release, 1)
        return self._let_go(name)

    def _let_go(self, name: str) -> Release:
        done = False

        def release() -> None:
            nonlocal done
            with self._guard:
                if done:
                    return
                done = True
                lock_release, holders = self._held[name]
                if holders > 1:
                    self._held[name] = (lock_release, holders - 1)
                    return
                del self._held[name]
            lock_release()

        return release

    def close(self) -> None:
        """At the run's end: let go of whatever is still held (nothing, when every holder let go)."""
        with self._guard:
            left, self._held = list(self._held.values()), {}
        for release, _ in left:
            release()


def hold_api_lock(api: str, context: RunContext, timeout: float, holds: RunHolds) -> Release:
    """Hold the lock of one API's loads for the run, waiting for it at most `timeout` seconds.

    Args:
        api: The API name (`audience`, `feedback`): one lock per API, shared by all its ops.
        context: The op's context: its instance holds the lock, its run id names the holder, its log
            tells a waiting run's reader what it waits for.
        timeout: The bound of the wait (`LOCK_TIMEOUT_ENV`).
        holds: The run's holds.

    Returns:
        The release of this hold.

    Raises:
        LockTimeoutError: Another run held it for all of `timeout`.
    """

    def acquire() -> Release:
        lock = _lock_for(context.instance, api)
        try:
            wait_for(
                lock, f"the {api} API's lock (the loads and checks of one API take turns)", context, timeout
            )
        except BaseException:
            lock.release()
            raise
        return lock.release

    release = holds.hold(f"api {api}", acquire)
    assert release is not None, "a waiting hold gets the lock or raises"
    return release


@contextmanager
def api_lock(api: str, context: RunContext, timeout: float, holds: RunHolds) -> Iterator[None]:
    """Hold the lock of one API's loads for the duration of the block, waiting for it at most `timeout`
    seconds (see `hold_api_lock`)."""
    release = hold_api_lock(api, context, timeout, holds)
    try:
        yield
    finally:
        release()
