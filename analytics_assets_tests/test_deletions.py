"""Nothing the API still serves is deleted; what it stopped serving is. Through the real `dagster` CLI and
one DAGSTER_HOME, from the shared first sync of every asset (`test_isolation.first_sync`).

- An API that serves fewer records a page than asked is read to the real end of its list.
- People deleted while a sync pages (every later offset shifts) cost no live person: the read says its
  list moved, so what it missed waits for the next read that holds still to confirm it.
- A sync that would delete more than `max_row_drop` fails that endpoint before writing anything.
- The weekly reconciliation reads (and sweeps) both APIs in full.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance

from analytics_assets.reading.audience.source import PAGE_CONCURRENCY
from analytics_assets_tests import test_isolation
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.test_e2e import REPO
from analytics_assets_tests.test_isolation import ALL_TABLES, Cli, table_rows
from analytics_assets_tests.test_sync import assert_warehouse_equals_api, assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PEOPLE = "/audience/v1/people/all"
# The isolation tests' fixtures: each test starts from a copy of their shared first sync of every asset.
first_sync = test_isolation.first_sync
cli = test_isolation.cli


def people_ids(warehouse: Warehouse) -> set[str]:
    return {str(r[0]) for r in warehouse.query("select id from audience.peoples")}


def served_ids(sandbox: Sandbox) -> set[str]:
    return {str(r["id"]) for r in sandbox.data.records("peoples")}


def test_no_person_the_api_still_serves_is_deleted_and_a_mass_deletion_is_refused(
    configured: Sandbox, warehouse: Warehouse, cli: Cli
) -> None:
    # The API lowers its page maximum without a word: 50 records where the loader asks for 100.
    configured.set_page_max("peoples", 50)
    configured.data.delete_people(2)  # and two people are really gone
    configured.clear_requests()
    done = cli.materialize("audience/peoples")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")
    # 248 people, 50 a page, each page from the last record of the one before: 0, 49, ..., 196 (50
    # records) and 245 (the last 3, shorter than the 50 served before: the end); pages side by side
    # ask at most a window past it.
    offsets = [int(r["query"]["offset"]) for r in configured.requests(path=PEOPLE)]
    assert sorted(o for o in offsets if o <= 245) == [0, 49, 98, 147, 196, 245]
    assert all(o % 49 == 0 for o in offsets) and len(offsets) - 6 < PAGE_CONCURRENCY

    # Three people at the head of the list deleted after the 2nd page was served: every later offset
    # shifts by three, so the read skips live people. None of them may leave the warehouse.
    head = [str(r["id"]) for r in configured.data.records("peoples")][:3]
    configured.delete_after_page("peoples", 2, head)
    done = cli.materialize("audience/peoples")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert served_ids(configured) <= people_ids(warehouse), "a person the API still serves was deleted"
    assert "did not start with the record the page before ended with" in output
    assert "The next sync that reads the list holding still deletes those it does not serve" in output
    done = cli.materialize("audience/peoples")  # the next read holds still: the three go
    assert done.returncode == 0
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")

    # The API drops most of its people: the sync refuses before writing, the other endpoint loads.
    before = table_rows(warehouse, "audience.peoples")
    configured.data.delete_people(200)
    configured.data.add_record("fields")
    done = cli.materialize("audience/peoples,audience/fields")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "audience/peoples failed" in output
    assert (
        "would delete 200 of the 245 rows of audience.peoples (82%), more than max_row_drop allows (50%"
        in output
    )
    assert "ANALYTICS_MAX_ROW_DROP" in output and "refresh: true" in output
    assert table_rows(warehouse, "audience.peoples") == before, "the refused table is untouched"
    assert_warehouse_equals_api_table(warehouse, configured, "audience.fields")


def last_run_metadata(cli: Cli) -> dict[str, dict[str, Any]]:
    """The materialization metadata of the newest run on the CLI's instance, by `api/resource`."""
    with DagsterInstance.from_config(str(cli.home)) as instance:
        run = instance.get_run_records(limit=1)[0].dagster_run
        records = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1_000
        ).records
    found = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        assert materialization is not None
        found[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    return found


def test_the_weekly_reconciliation_reads_and_sweeps_both_apis_in_full(
    configured: Sandbox, warehouse: Warehouse, cli: Cli
) -> None:
    # Two old responses deleted at the source: far outside the window a nightly sync reads.
    oldest = [str(r["id"]) for r in configured.data.records("responses")][-2:]
    for response in oldest:
        configured.data.delete_record("responses", response)
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m", "analytics_assets.definitions"]
    done = subprocess.run(
        [*command, "-j", "weekly_reconciliation"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(cli.home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    loaded = {str(r[0]) for r in warehouse.query("select id from feedback.responses")}
    assert not loaded & set(oldest)
    assert_warehouse_equals_api(warehouse, configured)
    metadata = last_run_metadata(cli)
    every = {f"{api}/{table}" for api, tables in ALL_TABLES.items() for table in tables}
    assert set(metadata) == every
    assert {key: m["sync"] for key, m in metadata.items()} == dict.fromkeys(every, "full scan")
