"""Personal data hashed or kept out (`ANALYTICS_HASHED_FIELDS`, `ANALYTICS_EXCLUDED_FIELDS`,
`ANALYTICS_HASH_KEY`): whole runs of both APIs against the sandbox, asserted on every cell of the
warehouse, on the run's events and logs, and on the requests the sandbox saw."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, EventLogEntry, ExecuteInProcessResult, TableSchema

from analytics_assets.reading.field_rules import Hasher
from analytics_assets.reading.history import HISTORY_SETTING
from analytics_assets.reading.personal_data import EXCLUDED_SETTING, HASHED_SETTING, KEY_SETTING
from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_checks import evaluations, failed
from analytics_sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

KEY = "test-only-hash-key-7f3a9c1e5b2d4f60"
HASHED = "audience.peoples.email, audience.segment_people.email, feedback.identified_peoples.attributes.email"
NAMES = ("firstName", "lastName", "name")
EXCLUDED = ",".join(
    [f"audience.{table}.{name}" for table in ("peoples", "segment_people") for name in NAMES]
    + ["feedback.identified_peoples.userId", "feedback.responses.person.userId"]  # a nested field too
)


FEW = SandboxConfig(seed=7, people=120, segments=2, members_per_segment=60, surveys=2, responses=60)
"""Every list on two pages at most: the test is about every field of every record, not about paging."""
PERSONAL = (
    "audience/peoples",
    "audience/segments",
    "audience/segment_people",
    "feedback/surveys",
    "feedback/identified_peoples",
    "feedback/responses",
)
"""The assets whose tables hold people (and the parents their checks look up): a run of both APIs."""


def every_cell(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(table, value as text) of every cell of every table and view of both datasets: nested tables, JSON
    columns, history's closed versions, and dlt's own tables (its schema and state) too."""
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('audience', 'feedback')"
    )
    assert {t for _, t in tables} >= {"peoples", "segment_people", "identified_peoples", "_dlt_version"}
    return [
        (f"{schema}.{table}", str(cell))
        for schema, table in tables
        for row in warehouse.query(f'select * from {schema}."{table}"')
        for cell in row
    ]


def columns(warehouse: Warehouse, dataset: str, table: str) -> set[str]:
    return {
        r[0]
        for r in warehouse.query(
            "select column_name from information_schema.columns"
            f" where table_schema = '{dataset}' and table_name = '{table}'"
        )
    }


def emails(warehouse: Warehouse, table: str) -> dict[str, str]:
    """Each person's email column, by id (one value per person, whatever the versions or memberships)."""
    rows = warehouse.query(f"select distinct id, email from audience.{table}")
    by_id = dict(rows)
    assert len(by_id) == len(rows), f"a person of {table} has two emails"
    return by_id


def run_log(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[EventLogEntry]:
    """Every entry of the run's event log: its log lines and its events (what the UI and alerts show)."""
    return list(instance.all_logs(result.run_id))


def said(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    """The run's warnings about a change of the personal data settings."""
    return [
        e.user_message
        for e in run_log(instance, result)
        if e.level == logging.WARNING and "personal data settings" in e.user_message
    ]


def logged_text(instance: DagsterInstance, result: ExecuteInProcessResult) -> str:
    """Everything the run's event log holds: messages, metadata, failures, as text."""
    return "\n".join(f"{e.user_message} {e.dagster_event!r}" for e in run_log(instance, result))


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """One instance for the runs of a test: their event logs stay to be read."""
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def private(configured: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv(HASHED_SETTING, HASHED)
    monkeypatch.setenv(EXCLUDED_SETTING, EXCLUDED)
    monkeypatch.setenv(KEY_SETTING, KEY)
    monkeypatch.setenv(HISTORY_SETTING, "audience.peoples")
    return configured


@pytest.mark.parametrize("sandbox", [FEW], indirect=True)
def test_both_apis_load_hashed_emails_and_no_excluded_value_and_a_change_is_said_once(
    private: Sandbox,
    warehouse: Warehouse,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    data = private.data
    people = list(data.records("peoples"))
    identified = list(data.records("identified_peoples"))
    raw_emails = [p["email"] for p in people] + [p["attributes"]["email"] for p in identified]
    excluded_values = {str(p[n]) for p in people for n in NAMES} | {p["userId"] for p in identified}

    first = materialize(*PERSONAL, instance=instance)
    assert first.success
    hasher = Hasher(KEY)

    # No cell holds a raw email or an excluded value, nor any text containing one (JSON columns: quoted).
    cells = every_cell(warehouse)
    assert [(t, e) for t, text in cells for e in raw_emails if e in text] == []
    assert [(t, text) for t, text in cells if text in excluded_values] == []
    assert [(t, v) for t, text in cells for v in excluded_values if f'"{v}"' in text] == []
    # The excluded fields made no column (nor a nested table).
    for table in ("peoples", "segment_people"):
        assert not columns(warehouse, "audience", table) & {"first_name", "last_name", "name"}, table
    assert "user_id" not in columns(warehouse, "feedback", "identified_peoples")
    assert "person__user_id" not in columns(warehouse, "feedback", "responses")
    assert "person__id" in columns(warehouse, "feedback", "responses")

    # A person's email is the same hash in peoples (every version), segment_people and feedback.
    hashed = {p["id"]: hasher.hash(p["email"]) for p in people}
    assert emails(warehouse, "peoples") == hashed
    members = emails(warehouse, "segment_people")
    assert members and members == {i: hashed[i] for i in members}
    # Inside the JSON column, only the email is hashed.
    attributes = {
        i: a if isinstance(a, dict) else json.loads(a)
        for i, a in warehouse.query("select id, attributes from feedback.identified_peoples")
    }
    assert attributes == {
        p["id"]: {**p["attributes"], "email": hasher.hash(p["attributes"]["email"])} for p in identified
    }

    # The checks judge the hashed keys and columns for what they are: every one passes.
    assert failed(first) == {}
    assert evaluations(first)[("audience/peoples", "email_format")].passed
    assert evaluations(first)[("audience/peoples", "seed_columns")].passed
    # The column descriptions say the email is hashed.
    schema = next(
        e.materialization.metadata["dagster/column_schema"].value
        for e in first.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "audience/peoples"
    )
    assert isinstance(schema, TableSchema)
    described = {c.name: c.description or "" for c in schema.columns}
    assert "Hashed" in described["email"] and "Hashed" not in described["id"]

    # A second run, with people changed (new history versions), hashes every email the same way.
    changed = data.update_people(3)
    second = materialize(
        "audience/peoples", "audience/segments", "audience/segment_people", instance=instance
    )
    assert second.success
    assert emails(warehouse, "peoples") == hashed
    assert emails(warehouse, "segment_people") == members
    versions = warehouse.query(
        "select count(*) from audience.peoples where id in ({})".format(", ".join(f"'{i}'" for i in changed))
    )
    assert versions == [(6,)]  # each changed person: a closed version and an active one, both hashed
    assert [(t, e) for t, text in every_cell(warehouse) for e in raw_emails if e in text] == []

    assert said(instance, first) == said(instance, second) == []  # nothing changed: nothing to say

    # The settings change: names load again, userId is hashed too. The rows loaded before keep their form,
    # and the run says so once, naming the refresh that rewrites them.
    monkeypatch.setenv(
        EXCLUDED_SETTING, EXCLUDED.replace("audience.peoples.firstName,audience.peoples.lastName,", "")
    )
    monkeypatch.setenv(HASHED_SETTING, f"{HASHED},audience.peoples.userId")
    [person] = data.update_people(1)
    third = materialize("audience/peoples", instance=instance)
    assert third.success
    [warning] = said(instance, third)
    assert "audience.peoples" in warning and "audience_full_refresh" in warning
    assert "userId now hashed" in warning and "firstName, lastName no longer excluded" in warning
    fourth = materialize("audience/peoples", instance=instance)
    assert fourth.success and said(instance, fourth) == []
    # The person written again has its names back and its userId hashed; the others are as they were.
    rows = {
        r[0]: r[1:] for r in warehouse.query("select id, first_name, user_id from audience.peoples_current")
    }
    api = data.record("peoples", person)
    assert api is not None
    assert rows.pop(person) == (api["firstName"], hasher.hash(api["userId"]))
    assert {first for first, _ in rows.values()} == {None}
    assert all(user_id.startswith("user_") for _, user_id in rows.values())

    # The key is a secret: in no event of any run, and in nothing printed or logged.
    printed = capfd.readouterr()
    logged = [logged_text(instance, run) for run in (first, second, third, fourth)]
    assert "audience/peoples" in logged[0] and "email_format" in logged[0]  # the log is there to search
    for text in (*logged, printed.out, printed.err, caplog.text):
        assert KEY not in text


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({HASHED_SETTING: "audience.peoples.email"}, KEY_SETTING),
        ({EXCLUDED_SETTING: "audience.peoples.emial"}, f"{EXCLUDED_SETTING} lists audience.peoples.emial"),
        ({HASHED_SETTING: "audiences.peoples.email", KEY_SETTING: KEY}, "audiences.peoples.email"),
    ],
    ids=["hashed-without-key", "unknown-field", "unknown-dataset"],
)
def test_a_setting_that_cannot_hold_is_refused_before_any_request(
    configured: Sandbox,
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    named: str,
) -> None:
    monkeypatch.delenv(KEY_SETTING, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configured.clear_requests()
    result = materialize("audience/peoples", "feedback/identified_peoples", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert named in str(failure.step_failure_data.error)
    assert configured.requests() == []
    assert not warehouse.path or not warehouse.path.exists() or warehouse.tables("audience") == set()
