"""The warehouse's own failures, each made to happen: a full disk (DuckDB on a small tmpfs; PostgreSQL with
the test database in a tablespace on one), a read-only DuckDB filesystem, a PostgreSQL role and a MariaDB
user without the right to create a schema (database), a PostgreSQL connection that drops at every insert. Each fails
the endpoint with one line naming the warehouse and what to do (`loading/destinations.py`), and leaves
its table as it was.

The small disks are tmpfs mounts (the tests run as root in CI; without the right to mount they skip,
saying so).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from analytics_assets_tests.conftest import (
    Warehouse,
    dlt_postgres_credentials,
    mysql_connect,
    postgres_server_url,
    with_database,
)
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against a warehouse made to fail


@contextmanager
def small_disk(where: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` for the block (unmounted after, whatever happened)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a small filesystem: mount refused ({mounted.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill the filesystem of `disk` to its last byte; returns the filler file (delete it to free it)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
        for size in (4096, 512, 1):  # the last partial chunks
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                continue
    return filler


def failure_line(result: ExecuteInProcessResult, asset: str) -> tuple[str, str]:
    """(the whole message of the load op's failure, its line about `asset`)."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""  # type: ignore[union-attr]
    description = message.split("Failure: ", 1)[-1].strip()
    lines = [line for line in description.splitlines() if line.startswith(f"- {asset}: ")]
    assert len(lines) == 1, description
    return description, lines[0][2:]


def assert_one_plain_line(description: str) -> None:
    # The failure's message: its first line (the failed assets) and one line per failed endpoint.
    assert len(description.splitlines()) == 2, description
    for library in ("Traceback", "PipelineStepFailed", "Pending packages", "Exception", "dlt pipeline"):
        assert library not in description, description


def peoples(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query("select id, updated_at from audience.peoples order by id")


@pytest.fixture
def duckdb_on_small_disk(
    configured: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Warehouse, Path]]:
    """The warehouse's DuckDB file on an 8 MB tmpfs (dlt's own folder stays on the real disk)."""
    with small_disk(tmp_path / "disk") as disk:
        path = disk / "analytics.duckdb"
        monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(path))
        yield Warehouse("duckdb", path=path), disk


def test_a_full_duckdb_disk_fails_in_one_line_naming_the_file_and_writes_nothing(
    configured: Sandbox, duckdb_on_small_disk: tuple[Warehouse, Path]
) -> None:
    warehouse, disk = duckdb_on_small_disk
    with DagsterInstance.ephemeral() as instance:
        assert materialize("audience/peoples", instance=instance).success
        before = peoples(warehouse)
        filler = fill(disk)
        configured.data.update_people(50)
        result = materialize("audience/peoples", instance=instance, raise_on_error=False)
        assert not result.success
        description, line = failure_line(result, "audience/peoples")
        print(f"\n{line}")
        assert line.startswith(
            f"audience/peoples: the warehouse's disk is full: the DuckDB file {warehouse.path} ("
        )
        assert "No space left on device" in line and "free space on the disk that holds it" in line
        assert_one_plain_line(description)
        filler.unlink()
        assert peoples(warehouse) == before  # nothing half-written
        # Space again: the next run loads the changes.
        assert materialize("audience/peoples", instance=instance).success
    assert peoples(warehouse) != before
    assert len(peoples(warehouse)) == len(before)


def test_a_read_only_duckdb_filesystem_fails_in_one_line_and_writes_nothing(
    configured: Sandbox, duckdb_on_small_disk: tuple[Warehouse, Path]
) -> None:
    warehouse, disk = duckdb_on_small_disk
    with DagsterInstance.ephemeral() as instance:
        assert materialize("audience/peoples", instance=instance).success
        before = peoples(warehouse)
        configured.data.update_people(50)
        requested = len(configured.requests())
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        try:
            result = materialize("audience/peoples", instance=instance, raise_on_error=False)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert not result.success
    # The op cannot even take the file's one-writer lock: the whole op fails before any request.
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.error.message.split("FailedError: ", 1)[-1].strip()  # type: ignore[union-attr]
    print(f"\n{description}")
    assert description.startswith(f"the warehouse is read-only: the DuckDB file {warehouse.path} (")
    assert "Nothing was requested from the APIs" in description and "writable" in description
    assert len(description.splitlines()) == 1
    assert len(configured.requests()) == requested
    assert peoples(warehouse) == before


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_postgres_user_without_create_fails_in_one_line_without_its_password(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert warehouse.url is not None
    role = f"loader_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_server_url())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"create role {role} login password 'sekret-pw'")
        parts = urlsplit(warehouse.url)
        url = urlunsplit(parts._replace(netloc=f"{role}:sekret-pw@{parts.hostname}:{parts.port or 5432}"))
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        result = materialize("audience/accounts", raise_on_error=False)
        assert not result.success
        description, line = failure_line(result, "audience/accounts")
        print(f"\n{line}")
        database = parts.path.lstrip("/")
        assert line.startswith(
            f"audience/accounts: the warehouse refused the loading user the right to write: postgres at"
            f" {parts.hostname}:{parts.port or 5432}/{database} (permission denied for database {database})"
        )
        assert "GRANT CREATE ON DATABASE" in line and "sekret-pw" not in description
        assert_one_plain_line(description)
        assert warehouse.tables("audience") == set()
    finally:
        with admin.cursor() as cursor:
            database = urlsplit(warehouse.url).path.lstrip("/")
            cursor.execute(f'revoke all on database "{database}" from {role}')
            cursor.execute(f"drop owned by {role} cascade")
            cursor.execute(f"drop role if exists {role}")
        admin.close()


class DroppingProxy:
    """A TCP proxy to the database server that cuts a connection the moment it carries an insert: a
    connection lost mid-load, every time dlt tries again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if watch and b"INSERT INTO" in data.upper():
                    self.cuts += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.server.close()
        for end in self._sockets:
            with suppress(OSError):
                end.close()


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_connection_lost_at_an_insert_fails_in_one_line(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert warehouse.url is not None
    parts = urlsplit(warehouse.url)
    proxy = DroppingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        through = urlunsplit(parts._replace(netloc=f"{parts.username}:@127.0.0.1:{proxy.port}"))
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", through)
        result = materialize("audience/accounts", raise_on_error=False)
    finally:
        proxy.close()
    assert not result.success and proxy.cuts >= 1
    description, line = failure_line(result, "audience/accounts")
    print(f"\n{line} ({proxy.cuts} connections cut)")
    assert line.startswith(
        f"audience/accounts: the connection to the warehouse was lost during the load: postgres at"
        f" 127.0.0.1:{proxy.port}/"
    )
    assert_one_plain_line(description)
    rows = warehouse.query(
        "select count(*) from information_schema.tables where table_schema = 'audience' and table_name = 'accounts'"
    )
    assert rows == [(0,)] or warehouse.query("select count(*) from audience.accounts") == [(0,)]


@contextmanager
def postgres_database_on(disk: Path) -> Iterator[str]:
    """A fresh database on the PostgreSQL server whose tables live in a tablespace on `disk` (dropped
    after, with the tablespace); yields its URL."""
    server = postgres_server_url()
    location = disk / "pg"
    location.mkdir()
    os.chown(location, *_postgres_owner())
    name = f"analytics_full_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"create tablespace {name} location '{location}'")
            cursor.execute(f'create database "{name}" tablespace {name}')
        yield with_database(server, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
            cursor.execute(f"drop tablespace if exists {name}")
        admin.close()


def _postgres_owner() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def test_a_full_postgres_disk_fails_in_one_line_naming_the_database_and_writes_nothing(
    configured: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if urlsplit(postgres_server_url()).hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("a tablespace on a small disk needs the PostgreSQL server on this machine")
    # The PostgreSQL server runs as its own user: the mount point must be reachable by it (pytest's
    # temporary folders are root's alone).
    shared = Path(tempfile.mkdtemp(prefix="analytics_pgdisk_", dir="/tmp"))
    shared.chmod(0o755)
    stack = ExitStack()
    stack.callback(shared.rmdir)
    with stack, small_disk(shared, size="24m") as disk, postgres_database_on(disk) as url:
        monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dlt_postgres_credentials(url))
        warehouse = Warehouse("postgres", url=url)
        with DagsterInstance.ephemeral() as instance:
            assert materialize("audience/peoples", instance=instance).success
            before = peoples(warehouse)
            filler = fill(disk)
            configured.data.update_people(50)
            configured.data.add_people(200)
            result = materialize("audience/peoples", instance=instance, raise_on_error=False)
            filler.unlink()
        assert not result.success
        description, line = failure_line(result, "audience/peoples")
        print(f"\n{line}")
        parts = urlsplit(url)
        assert line.startswith(
            f"audience/peoples: the warehouse's disk is full: postgres at {parts.hostname}:{parts.port or 5432}"
            f"/{parts.path.lstrip('/')} ("
        )
        assert "free space on the database server's disk" in line
        assert_one_plain_line(description)
        assert peoples(warehouse) == before


@pytest.mark.parametrize("warehouse", ["mysql"], indirect=True)
def test_a_mariadb_user_without_create_fails_in_one_line_without_its_password(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB: a dataset is a database, and this user may use only the database of its URL."""
    assert warehouse.url is not None
    parts = urlsplit(warehouse.url)
    user = f"loader_{uuid.uuid4().hex[:8]}"
    start = parts.path.lstrip("/")
    admin = mysql_connect(warehouse.url)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"create user '{user}'@'%' identified by 'sekret-pw'")
            cursor.execute(f"grant all on `{start}`.* to '{user}'@'%'")
        url = urlunsplit(parts._replace(netloc=f"{user}:sekret-pw@{parts.hostname}:{parts.port or 3306}"))
        monkeypatch.setenv("DESTINATION__SQLALCHEMY__CREDENTIALS", url)
        result = materialize("audience/accounts", raise_on_error=False)
        assert not result.success
        description, line = failure_line(result, "audience/accounts")
        print(f"\n{line}")
        assert line.startswith(
            "audience/accounts: the warehouse refused the loading user the right to write: sqlalchemy at"
            f" {parts.hostname}:{parts.port or 3306}/{start} ((1142, "
        )
        assert f"command denied to user '{user}'@" in line  # restoring the pipeline's state from its dataset
        assert "GRANT ALL ON the datasets' databases" in line and "sekret-pw" not in description
        assert_one_plain_line(description)
        assert warehouse.tables("audience") == set()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"drop user if exists '{user}'@'%'")
        admin.close()
