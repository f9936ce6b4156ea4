"""Which loader file format loads the sandbox into PostgreSQL fastest, and does it keep the data intact?

Loads the same sandbox into a fresh database per format (dlt's default `insert_values`, then `csv`,
which dlt loads with `COPY`), times the extract, normalize and load steps, then compares every table
of the two databases row by row (JSON columns and child tables included), naming the columns where
the only difference is an empty string loaded as NULL. Plain dlt (the sources, no Dagster), without
the feedback API's pacing (the sandbox does not limit the rate).

    ANALYTICS_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        make bench-postgres BENCH_ARGS="--people 100000 --responses 20000"

The figures are in benchmarks/README.md; the choice they support in `warehouse.LOADER_FILE_FORMATS`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dlt
import psycopg2

from analytics_assets.reading.apis import APIS
from analytics_sandbox import Sandbox, SandboxConfig

FORMATS = ("insert_values", "csv")


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _dlt_credentials(url: str) -> str:
    """`url` as dlt's Postgres credentials: dlt requires a password, so trust auth gets an empty one."""
    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:@{parts.netloc.split('@', 1)[1]}"))


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'create database "{name}"')
        yield _with_database(server_url, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


def load(url: str, file_format: str, data_dir: str) -> dict[str, float]:
    """Load both APIs into the database at `url`; seconds per step, summed over both pipelines."""
    os.environ["DLT_DATA_DIR"] = data_dir
    seconds = {"extract": 0.0, "normalize": 0.0, "load": 0.0}
    for api in APIS:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{api.name}",
            destination=dlt.destinations.postgres(credentials=_dlt_credentials(url)),
            dataset_name=api.name,
        )
        for step in seconds:
            started = time.perf_counter()
            if step == "extract":
                pipeline.extract(api.source(), loader_file_format=file_format)  # type: ignore[arg-type]
            elif step == "normalize":
                pipeline.normalize()
            else:
                pipeline.load().raise_on_failed_jobs()
            seconds[step] += time.perf_counter() - started
    return seconds


Snapshot = dict[str, tuple[list[str], list[tuple[Any, ...]]]]
"""Each data table (`<dataset>.<table>`) as its column names and its rows."""


def snapshot(url: str) -> Snapshot:
    """Every data table (child tables included) as sorted rows, without dlt's per-load columns."""
    tables: Snapshot = {}
    with psycopg2.connect(url) as con, con.cursor() as cursor:
        cursor.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('audience', 'feedback') and table_name not like '\\_dlt\\_%'"
        )
        for schema, table in sorted(cursor.fetchall()):
            cursor.execute(
                "select column_name from information_schema.columns where table_schema = %s"
                " and table_name = %s and column_name not in ('_dlt_load_id', '_dlt_id',"
                " '_dlt_parent_id', '_dlt_root_id') order by column_name",
                (schema, table),
            )
            columns = [c for (c,) in cursor.fetchall()]
            quoted = ", ".join(f'"{c}"' for c in columns)
            cursor.execute(f'select {quoted} from "{schema}"."{table}"')
            tables[f"{schema}.{table}"] = (columns, sorted(cursor.fetchall(), key=repr))
    return tables


def _blanks_as_null(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(None if v == "" else v for v in row) for row in rows), key=repr)


def compare(reference: Snapshot, other: Snapshot) -> str:
    """`identical`; or, when the only difference is empty strings loaded as NULL (what `COPY ... CSV`
    does to nullable text), how many and in which columns; or the tables that differ otherwise."""
    if set(reference) != set(other):
        return f"DIFFERENT tables: {sorted(set(reference) ^ set(other))}"
    differing = [t for t in reference if other[t] != reference[t]]
    if not differing:
        return "identical"
    blanked: dict[str, int] = {}
    for table in differing:
        (columns, rows), (other_columns, other_rows) = reference[table], other[table]
        if columns != other_columns or _blanks_as_null(rows) != _blanks_as_null(other_rows):
            return f"DIFFERENT: {differing} (beyond empty strings)"
        for index, column in enumerate(columns):
            lost = sum(1 for row in rows if row[index] == "") - sum(
                1 for row in other_rows if row[index] == ""
            )
            if lost:
                blanked[f"{table}.{column}"] = lost
    where = ", ".join(f"{column} ({count:,})" for column, count in sorted(blanked.items()))
    return f"identical but for {sum(blanked.values()):,} empty strings loaded as NULL: {where}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--responses", type=int, default=50_000)
    args = parser.parse_args()
    server_url = os.environ.get("ANALYTICS_TEST_POSTGRES_URL")
    if not server_url:
        parser.error("set ANALYTICS_TEST_POSTGRES_URL to a PostgreSQL server it may create databases on")
    config = SandboxConfig(people=args.people, responses=args.responses)
    snapshots = {}
    with Sandbox(config, port=0) as sandbox, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(sandbox.env())
        # The sandbox does not limit the rate: pacing to the real API's 100 requests a minute would time
        # the pacing (a minute per 10,000 responses), not the file formats.
        os.environ["SOURCES__FEEDBACK__REQUESTS_PER_MINUTE"] = "0"
        for file_format in FORMATS:
            with fresh_database(server_url) as url:
                seconds = load(url, file_format, os.path.join(tmp, file_format))
                snapshots[file_format] = snapshot(url)
            rows = sum(len(rows) for _, rows in snapshots[file_format].values())
            steps = ", ".join(f"{step} {s:.1f} s" for step, s in seconds.items())
            print(f"{file_format:>13}: {sum(seconds.values()):.1f} s ({steps}); {rows:,} rows", flush=True)
    for file_format in FORMATS[1:]:
        print(f"{file_format} vs {FORMATS[0]}: {compare(snapshots[FORMATS[0]], snapshots[file_format])}")


if __name__ == "__main__":
    main()
