"""Where the data lands: the Dagster resource `warehouse`, which builds the dlt pipeline of each load and
check op at run time.

Its settings (the UI's Resources page), each read when a run uses it, never at import: left unset in
the definitions, from the environment variable named beside it (unset too: the default).
- `destination` / `ANALYTICS_DESTINATION`: the dlt destination (`duckdb` by default, `postgres`, or any
  other dlt destination name, configured the dlt way: `DESTINATION__<NAME>__CREDENTIALS`, ...).
- `duckdb_path` / `ANALYTICS_DUCKDB_PATH`: the DuckDB file (default `data/analytics.duckdb`).
- `max_row_drop` / `ANALYTICS_MAX_ROW_DROP`: the share of its rows one sync may delete from a table,
  and that a table may lose between two runs (`checks/history.py`).
- `lock_timeout_seconds` / `ANALYTICS_LOCK_TIMEOUT_SECONDS`: how long a step waits for a lock (`locks.py`).
- `dataset_prefix` / `ANALYTICS_DATASET_PREFIX`: put before each dataset's name (empty by default).
Each API gets its own pipeline names and dataset, so their state and tables never mix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dlt
import duckdb
from dagster import ConfigurableResource, Failure, InitResourceContext
from dlt.common.destination import Destination, DestinationCapabilitiesContext
from dlt.common.typing import TLoaderFileFormat
from pydantic import Field, PrivateAttr

from analytics_assets.loading.destinations import (
    KEEPS_NUL,
    LOADER_FILE_FORMATS,
    NOTHING_DONE,
    warehouse_failure,
)
from analytics_assets.loading.endpoints_load import WAREHOUSE_TURN
from analytics_assets.loading.locks import (
    LOCK_TIMEOUT_ENV,
    FileLock,
    LockTimeoutError,
    Release,
    RunContext,
    RunHolds,
    api_lock,
    wait_bounded,
    wait_for,
)
from analytics_assets.reading.settings import resource_setting

DESTINATION_ENV = "ANALYTICS_DESTINATION"
DUCKDB_PATH_ENV = "ANALYTICS_DUCKDB_PATH"
DEFAULT_DESTINATION = "duckdb"
DEFAULT_DUCKDB_PATH = "data/analytics.duckdb"
DATASET_PREFIX_ENV = "ANALYTICS_DATASET_PREFIX"
MAX_ROW_DROP_ENV = "ANALYTICS_MAX_ROW_DROP"
DEFAULT_MAX_ROW_DROP = 0.5
DEFAULT_LOCK_TIMEOUT = 3600.0
"""One hour: longer than any load of either API at 1,000,000 people, shorter than a night."""


class WarehouseResource(ConfigurableResource):
    """The warehouse the loads write to and the checks read: its dlt destination, the DuckDB file and
    its one-writer lock, and the row drop the checks tolerate.

    Every field left unset is read from its environment variable when a run uses it (unset too: the
    default); see `settings.resource_setting`.
    """

    destination: str | None = Field(
        default=None,
        description=(
            f"The dlt destination: duckdb, postgres, or any dlt destination name (its credentials the dlt"
            f" way: DESTINATION__<NAME>__CREDENTIALS). Unset: {DESTINATION_ENV}, else {DEFAULT_DESTINATION}."
        ),
    )
    duckdb_path: str | None = Field(
        default=None,
        description=(
            f"The DuckDB file (relative to the working directory); a lock file beside it lets one load"
            f" write at a time. Unset: {DUCKDB_PATH_ENV}, else {DEFAULT_DUCKDB_PATH}."
        ),
    )
    lock_timeout_seconds: str | None = Field(
        default=None,
        description=(
            "Seconds a step waits for a lock (an API's: its runs take turns; the DuckDB file's: one writer)"
            " before it fails naming the holder. Unset: "
            f"{LOCK_TIMEOUT_ENV}, else {DEFAULT_LOCK_TIMEOUT:.0f}."
        ),
    )
    dataset_prefix: str | None = Field(
        default=None,
        description=(
            "Put before each dataset's name (`staging_` makes `staging_audience`): several environments in"
            " one MySQL/MariaDB server, where a dataset is a database of its own and cannot sit inside"
            f" one. Unset: {DATASET_PREFIX_ENV}, else none."
        ),
    )
    max_row_drop: str | None = Field(
        default=None,
        description=(
            "The share of its rows (0 to 1) a table may lose between two runs before its row_count_drop"
            f" check fails. Unset: {MAX_ROW_DROP_ENV}, else {DEFAULT_MAX_ROW_DROP}."
        ),
    )

    # The locks one run holds in this process: Dagster copies the resource for each run (one copy for all
    # the steps of an in-process run), so they live exactly as long as the run, and its teardown closes
    # them. The load op's reading threads join its warehouse hold while they restore (`locks.RunHolds`).
    _holds: RunHolds = PrivateAttr(default_factory=RunHolds)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """At the end of a run: let go of whatever lock it still holds (`locks.RunHolds`)."""
        self._holds.close()

    def api_lock(self, api: str, context: RunContext) -> AbstractContextManager[None]:
        """Hold an API's lock for the block (`locks.api_lock`), within `lock_timeout`."""
        return api_lock(api, context, self.lock_timeout(), self._holds)

    def destination_name(self) -> str:
        """The configured dlt destination name."""
        return resource_setting(self.destination, DESTINATION_ENV, DEFAULT_DESTINATION).lower()

    def duckdb_file(self) -> Path:
        """The DuckDB file the embedded warehouse writes to, relative paths taken from the working directory.

        Resolved here because dlt would otherwise resolve a relative path against its own local folder.
        """
        return Path(resource_setting(self.duckdb_path, DUCKDB_PATH_ENV, DEFAULT_DUCKDB_PATH)).resolve()

    def dlt_destination(self) -> Destination:
        """The dlt destination for this run."""
        name = self.destination_name()
        if name == "duckdb":
            path = self.duckdb_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            return dlt.destinations.duckdb(str(path))
        # Any other dlt destination, configured through dlt's own settings (credentials included).
        resolved = Destination.from_reference(name)
        assert resolved is not None, "only an empty reference resolves to None"
        return resolved

    def capabilities(self) -> DestinationCapabilitiesContext:
        """The destination's dlt capabilities, adjusted to its configuration: SQLAlchemy's SQL dialect is
        its URL's backend's (`mysql+pymysql://` speaks MySQL)."""
        destination = self.dlt_destination()
        return destination.capabilities(destination.configuration(destination.spec(), accept_partial=True))

    def loader_file_format(self) -> TLoaderFileFormat:
        """The fastest loader file format for the configured destination (its own preference if unlisted)."""
        chosen = LOADER_FILE_FORMATS.get(self.destination_name())
        return chosen or self.dlt_destination().capabilities().preferred_loader_file_format

    def pipeline(self, name: str, dataset: str) -> dlt.Pipeline:
        """A dlt pipeline that loads into (or reads) the dataset of its API.

        Args:
            name: The pipeline name, unique per op so no two share local state or cursors.
            dataset: The dataset (schema) name: the API's name (after `dataset_prefix`).
        """
        # The prefix is applied here rather than by dlt's `dataset_name_layout`, which dlt applies again
        # to the name it restores from the warehouse (`sync_destination`): `p_p_audience`.
        prefix = resource_setting(self.dataset_prefix, DATASET_PREFIX_ENV, "")
        return dlt.pipeline(
            pipeline_name=name, destination=self.dlt_destination(), dataset_name=f"{prefix}{dataset}"
        )

    def refuses_nul(self) -> bool:
        """Whether the warehouse refuses NUL in text: PostgreSQL does (text and JSON alike); DuckDB keeps
        it. Another destination is taken to refuse it (`odd_values.py` then replaces it by U+FFFD)."""
        return self.destination_name() not in KEEPS_NUL

    def max_row_drop_share(self) -> float:
        """The share of rows a table may lose between two runs before the drop check fails.

        Raises:
            ValueError: The setting is not a number between 0 and 1.
        """
        raw = resource_setting(self.max_row_drop, MAX_ROW_DROP_ENV, "")
        value = float(raw) if raw else DEFAULT_MAX_ROW_DROP
        if not 0 <= value <= 1:
            raise ValueError(f"{MAX_ROW_DROP_ENV} must be a share between 0 and 1, got {raw!r}")
        return value

    def check_reachable(self, pipeline: dlt.Pipeline) -> None:
        """Open (and close) one connection to a server warehouse, before a run spends any API request.

        Without it a warehouse that is down shows up only after every page was read, as the driver's raw
        error and traceback (psycopg2's `OperationalError`). The embedded DuckDB file is not checked: it
        is created on first use, and opening it outside `lock` would contend with a writer.

        Raises:
            WarehouseUnreachableError: Naming the destination, host and port (never the password), the
                driver's reason, and the setting that holds the credentials.
        """
        name = self.destination_name()
        if name == "duckdb":
            return
        try:
            with pipeline.sql_client():
                return
        except Exception as error:  # each driver raises its own error class for a refused connection
            where, password = _describe(pipeline, name)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if password:
                reason = reason.replace(password, "***")
            setting = f"DESTINATION__{name.upper()}__CREDENTIALS"
            raise WarehouseUnreachableError(
                description=(
                    f"The warehouse could not be reached: {where} ({reason}). Nothing was requested from the"
                    f" APIs. Check that the database server is up and that {setting} (or"
                    f" [destination.{name}.credentials] in .dlt/secrets.toml) points at it."
                ),
                metadata={"destination": name},
            ) from None

    def describe(self, pipeline: dlt.Pipeline | None) -> tuple[str, str | None]:
        """The warehouse as a person knows it (`the DuckDB file /data/analytics.duckdb`, `postgres at
        db:5432/analytics`), and the password a message must not show."""
        name = self.destination_name()
        if name == "duckdb":
            return f"the DuckDB file {self.duckdb_file()}", None
        assert pipeline is not None, "a server warehouse is described by its pipeline's credentials"
        return _describe(pipeline, name)

    def lock_timeout(self) -> float:
        """Seconds any step waits for a lock (an API's, the warehouse's) before it fails naming the holder.

        Raises:
            ValueError: The setting is not a positive number.
        """
        raw = resource_setting(self.lock_timeout_seconds, LOCK_TIMEOUT_ENV, "")
        try:
            value = float(raw) if raw else DEFAULT_LOCK_TIMEOUT
        except ValueError:
            value = 0
        if not value > 0:
            raise ValueError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds above 0, got {raw!r}")
        return value

    def hold_lock(self, context: RunContext) -> Release:
        """Hold the embedded warehouse for one writer at a time, for a run; returns the release.

        DuckDB lets only one process open a file for writing; runs of the two APIs are processes of their
        own (a schedule tick can meet a manual run), so their loads take turns on a lock file beside the
        database, waiting at most `lock_timeout` (`locks.wait_for`). Once it holds the lock file, it makes
        sure no process outside Dagster (a notebook, a BI tool) holds the DuckDB file open, waiting for it
        within the same bound (`_wait_for_the_file`). The op and its reading threads share the hold
        (`locks.RunHolds`). Server destinations handle concurrent writers themselves: nothing to hold.

        Raises:
            LockTimeoutError: Another run, or another process, held it for all of `lock_timeout`.
        """
        if self.destination_name() != "duckdb":
            return lambda: None
        path, timeout = self.duckdb_file(), self.lock_timeout()

        def acquire() -> Release:
            try:
                lock = FileLock(path.with_name(path.name + ".lock"))
            except OSError as error:  # a read-only or full filesystem: say so in one line
                where, _ = self.describe(None)
                message = warehouse_failure(error, "duckdb", where, None, kept=NOTHING_DONE)
                if message is None:
                    raise
                raise WarehouseFailedError(description=message) from None
            try:
                started = time.monotonic()
                wait_for(lock, f"the warehouse {path} (DuckDB allows one writer)", context, timeout)
                _wait_for_the_file(path, context, timeout - (time.monotonic() - started))
            except BaseException:
                lock.release()
                raise
            return lock.release

        release = self._holds.hold(f"warehouse {path}", acquire)
        assert release is not None, "a waiting hold gets the lock or raises"
        return release

    @contextmanager
    def lock(self, context: RunContext) -> Iterator[None]:
        """Hold the embedded warehouse for the duration of the block (see `hold_lock`)."""
        release = self.hold_lock(context)
        try:
            yield
        finally:
            release()


_HELD_BY = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def _file_holder(path: Path) -> tuple[str, int] | None:
    """None when this process can open the DuckDB file for writing; else the process holding it open, as
    DuckDB reports it (its description and PID)."""
    try:
        with WAREHOUSE_TURN:  # not while a thread of this process has it open (`endpoints_load.py`)
            duckdb.connect(str(path)).close()
    except duckdb.IOException as error:
        held = _HELD_BY.search(str(error))
        if held is None:
            raise
        return f"process {held['pid']} ({held['program']})", int(held["pid"])
    return None


def _wait_for_the_file(path: Path, context: RunContext, timeout: float) -> None:
    """Wait (at most `timeout` s) until this process can open the DuckDB file for writing: another
    process holding it open (a notebook, a BI tool) keeps every load out, and dlt would say only that the
    connection failed and the credentials may be wrong.

    Raises:
        LockTimeoutError: Still held after `timeout`; names the process DuckDB reports.
    """
    wait_bounded(
        lambda: _file_holder(path),
        timeout,
        lambda holder: context.log.info(
            f"Waiting for {path}: {holder[0]} has the DuckDB file open (DuckDB allows one writer)."
        ),
        lambda holder: LockTimeoutError(
            description=(
                f"The DuckDB file {path} is held by another process, {holder[0]}: DuckDB lets one process"
                f" open it for writing. Waited {timeout:.0f} s ({LOCK_TIMEOUT_ENV}); nothing was requested"
                " from the APIs. Close the file there (a notebook or BI tool can read it with"
                " duckdb.connect(path, read_only=True) while no load runs), then run again."
            ),
            metadata={"holder_pid": holder[1]},
        ),
    )


class WarehouseFailedError(Failure):
    """The warehouse itself failed (its disk, its rights, its filesystem): one line saying what to do."""


class WarehouseUnreachableError(Failure):
    """The warehouse could not be reached: which one, why, and the setting that points at it."""


def _describe(pipeline: dlt.Pipeline, name: str) -> tuple[str, str | None]:
    """`<destination> at host:port/database` from the resolved credentials, and the password to hide."""
    try:
        credentials = pipeline.destination_client().config.credentials
    except Exception:  # credentials that do not even resolve: the destination name is all we know
        return f"{name}", None
    host = getattr(credentials, "host", None)
    port = getattr(credentials, "port", None)
    database = getattr(credentials, "database", None)
    where = f"{name} at {host or '?'}" + (f":{port}" if port else "") + (f"/{database}" if database else "")
    password = getattr(credentials, "password", None)
    return where, str(password) if password else None
