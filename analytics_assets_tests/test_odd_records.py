"""A whole run of the sandbox serving records as people really fill them (`SandboxConfig.odd_records`):
a cut emoji, NUL, an integer beyond 64 bits, custom fields whose names meet the API's own. Every record
loads, every value is found in the warehouse in the form the README's table of odd values names, a
rerun stores the same, and the checks say what they should."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from analytics_assets.reading.history import HISTORY_SETTING
from analytics_assets.reading.odd_values import name_tag
from analytics_assets_tests.cli import dagster_home, run_materialize
from analytics_assets_tests.conftest import SMALL, Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox
from analytics_sandbox.odd_records import BIG

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

ODD = replace(SMALL, odd_records=True)
ASSETS = (
    "audience/peoples",
    "feedback/surveys",
    "feedback/responses",
)  # surveys: responses are checked against them
FULL_SCAN = {"ops": {"analytics_load": {"config": {"full_scan": True}}}}


def served(sandbox: Sandbox, resource: str, field: str) -> dict[str, Any]:
    """The one record the API serves with `field` (an odd one)."""
    (record,) = [r for r in sandbox.data.records(resource) if field in r or field in (r.get("data") or {})]
    return record


def row(warehouse: Warehouse, table: str, columns: str, key: str) -> tuple[Any, ...]:
    (found,) = warehouse.query(f"select {columns} from {table} where id = '{key}'")
    return found


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple[str, ...]]]:
    """Every stored value of both tables but dlt's load ids and row ids (which each load makes anew)."""
    tables = {}
    for table in ("audience.peoples", "feedback.responses"):
        schema, name = table.split(".")
        columns = [
            c
            for (c,) in warehouse.query(
                "select column_name from information_schema.columns"
                f" where table_schema = '{warehouse.dataset(schema)}' and table_name = '{name}'"
                " order by column_name"
            )
            if c not in ("_dlt_load_id", "_dlt_id")
        ]
        select = ", ".join(f'"{c}"' for c in columns)
        tables[table] = sorted(tuple(map(str, r)) for r in warehouse.query(f"select {select} from {table}"))
    return tables


def assert_every_value_stored(configured: Sandbox, warehouse: Warehouse) -> None:
    """Every record the sandbox serves is in the warehouse, each odd value in its documented form."""
    # Every record present.
    for table, resource in (("audience.peoples", "peoples"), ("feedback.responses", "responses")):
        served_ids = {r["id"] for r in configured.data.records(resource)}
        assert {i for (i,) in warehouse.query(f"select id from {table}")} == served_ids, table

    # Fields that meet in one column: the documented one keeps it, the other gets its own.
    person = served(configured, "peoples", "lead_score")
    assert row(
        warehouse, "audience.peoples", f"lead_score, lead_score__{name_tag('lead_score')}", person["id"]
    ) == (
        44,
        1174,
    )
    person = served(configured, "peoples", "Email")
    own = f"email__{name_tag('Email')}"
    assert row(warehouse, "audience.peoples", f"email, {own}", person["id"]) == (
        person["email"],
        person["Email"],
    )
    person = served(
        configured, "peoples", "Company Name"
    )  # both custom: the first name in code point order keeps it
    own = f"company_name__{name_tag('company_name')}"
    assert row(warehouse, "audience.peoples", f"company_name, {own}", person["id"]) == (
        "Acme GmbH",
        "acme-gmbh",
    )
    answer = next(r for r in configured.data.records("responses") if "Country" in r["meta"])
    own = f"meta__country__{name_tag('Country')}"
    assert row(warehouse, "feedback.responses", f"meta__country, {own}", answer["id"]) == (
        answer["meta"]["country"],
        "FR",
    )

    # A number beyond 64 bits: every digit, as text, in the field's text variant (in a JSON column: a string).
    person = next(r for r in configured.data.records("peoples") if r["leadScore"] == BIG)
    assert row(warehouse, "audience.peoples", "lead_score, lead_score__v_text", person["id"]) == (
        None,
        str(BIG),
    )
    (variables,) = row(warehouse, "feedback.responses", "variables", answer["id"])
    assert (json.loads(variables) if isinstance(variables, str) else variables)["score"] == str(BIG)

    # A cut emoji: U+FFFD in its place. NUL: kept where the warehouse stores it, U+FFFD where it refuses it.
    person = next(r for r in configured.data.records("peoples") if "\ud83d" in r["firstName"])
    assert row(warehouse, "audience.peoples", "first_name", person["id"]) == ("Zo\u00eb \ufffd",)
    comments = {}
    for record in configured.data.records("responses"):
        comment = record["data"].get("comment")
        if comment is not None:
            (data,) = row(warehouse, "feedback.responses", "data", record["id"])
            comments[comment] = (json.loads(data) if isinstance(data, str) else data)["comment"]
    nul = "\x00" if warehouse.destination == "duckdb" else "\ufffd"
    assert comments == {
        "Loved it \ud83d": "Loved it \ufffd",
        "line one\x00line two": f"line one{nul}line two",
    }


@on_every_warehouse
@pytest.mark.parametrize("sandbox", [ODD], indirect=True)
def test_odd_records_all_load_with_every_value_the_same_on_every_run(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    instance = DagsterInstance.ephemeral()
    result = materialize(*ASSETS, instance=instance)
    assert result.success

    assert_every_value_stored(configured, warehouse)

    # Counted in the assets' metadata.
    by_asset = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("analytics_load")
    }
    peoples = by_asset["audience/peoples"]
    assert peoples["values_made_storable_by_kind"].value == {
        "lone surrogate replaced": 1,
        "number stored as text": 1,
        "field given its own column": 3,
    }
    assert peoples["fields_renamed"].value == {
        "Email": own_column("email", "Email"),
        "company_name": own_column("company_name", "company_name"),
        "lead_score": own_column("lead_score", "lead_score"),
    }
    responses = by_asset["feedback/responses"]
    kinds = responses["values_made_storable_by_kind"].value
    assert kinds["lone surrogate replaced"] == 1 and kinds["number stored as text"] == 1
    assert kinds.get("NUL replaced", 0) == (0 if warehouse.destination == "duckdb" else 1)

    # Said once per table in the run's log.
    said = [
        e.user_message for e in instance.all_logs(result.run_id) if "cannot store as served" in e.user_message
    ]
    assert sorted(m.split(":")[0] for m in said) == ["audience.peoples", "feedback.responses"], said
    assert "'lead_score' -> lead_score__x" in said[0] + said[1]

    # The checks: no error; a warning only for what really is new (the text variant of a number column).
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()
    }
    failed = {k: e.severity for k, e in evaluations.items() if not e.passed}
    assert AssetCheckSeverity.ERROR not in failed.values(), failed

    # The same records again, every row rewritten: the same stored values, no new column.
    before = snapshot(warehouse)
    again = materialize(*ASSETS, run_config=FULL_SCAN)
    assert again.success
    assert snapshot(warehouse) == before
    # Nothing drifted, nothing is new: every check passes (a replaced character is no failed check).
    assert [(e.asset_key, e.check_name) for e in again.get_asset_check_evaluations() if not e.passed] == []


def own_column(column: str, name: str) -> str:
    return f"{column}__{name_tag(name)}"


@on_every_warehouse
@pytest.mark.parametrize("sandbox", [ODD], indirect=True)
def test_odd_records_load_with_the_dagster_cli_and_a_rerun_stores_the_same(
    configured: Sandbox, warehouse: Warehouse, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        home = dagster_home("embedded", tmp_path, stack)
        done = run_materialize(",".join(ASSETS), home)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert_every_value_stored(configured, warehouse)
        before = snapshot(warehouse)
        again = run_materialize(",".join(ASSETS), home)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert snapshot(warehouse) == before


@pytest.mark.parametrize("sandbox", [ODD], indirect=True)
def test_odd_records_in_history_mode_keep_one_version_each(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HISTORY_SETTING, "audience.peoples,feedback.responses")
    assert materialize(*ASSETS).success
    assert materialize(*ASSETS, run_config=FULL_SCAN).success  # every record read and merged again
    for table in ("audience.peoples", "feedback.responses"):
        # The same stored values hash to the same version: no record was closed and opened again.
        ((rows, records, active),) = warehouse.query(
            f"select count(*), count(distinct id), count(_dlt_valid_from) - count(_dlt_valid_to) from {table}"
        )
        assert rows == records == active, table
    person = next(r for r in configured.data.records("peoples") if r["leadScore"] == BIG)
    assert row(warehouse, "audience.peoples", "lead_score__v_text", person["id"]) == (str(BIG),)
