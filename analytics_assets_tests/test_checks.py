"""The asset checks: each passes on the sandbox's default data and fails, with the expected severity
and metadata, on data broken on purpose (at the API, or in the warehouse where the loader cannot)."""

from collections.abc import Iterator
from typing import Any

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
)

from analytics_assets.definitions import defs
from analytics_assets.watching.freshness import FRESHNESS_WINDOW, WINDOW_ENV, freshness_window
from analytics_assets_tests.conftest import SMALL, Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_definitions import EXPECTED_KEYS
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs with their checks (all but two tests)

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN
STANDARD = {"row_count_drop", "primary_key_unique", "primary_key_not_null", "schema_drift"}
EXPECTED_CHECKS = {
    "audience/schemas": STANDARD,
    "audience/peoples": STANDARD | {"not_empty", "seed_columns", "email_format"},
    "audience/accounts": STANDARD | {"not_empty", "seed_columns"},
    "audience/account_tags": STANDARD,
    "audience/segments": STANDARD | {"not_empty"},
    "audience/fields": STANDARD | {"not_empty"},
    "audience/segment_people": STANDARD | {"segment_ids_exist"},
    "feedback/surveys": STANDARD | {"not_empty"},
    "feedback/action_classes": STANDARD | {"not_empty"},
    "feedback/attribute_classes": STANDARD | {"not_empty", "available_on_plan"},
    "feedback/identified_peoples": STANDARD | {"available_on_plan"},
    "feedback/responses": STANDARD | {"not_empty", "survey_ids_exist"},
    "feedback/webhooks": STANDARD,
}
GUARDS = {"not_empty", "row_count_drop", "primary_key_unique", "primary_key_not_null"}
"""The checks on segments that block segment_people."""


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """One instance for the runs of a test, so checks see the earlier materializations."""
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


REFRESH_AUDIENCE = {"ops": {"analytics_load": {"config": {"refresh": True, "apis": ["audience"]}}}}


def run(
    instance: DagsterInstance, *keys: str, run_config: dict[str, Any] | None = None
) -> ExecuteInProcessResult:
    """Materialize assets (all when none are given) with their checks, without raising on failure."""
    return materialize(*keys, instance=instance, raise_on_error=False, run_config=run_config)


def run_checks(instance: DagsterInstance, *keys: str) -> ExecuteInProcessResult:
    """Run only the checks of the given assets, against what the warehouse holds now."""
    selection = AssetSelection.checks_for_assets(*(AssetKey.from_user_string(k) for k in keys))
    job = define_asset_job("checks_only", selection=selection)
    job_def = Definitions.merge(defs, Definitions(jobs=[job])).resolve_job_def("checks_only")
    return job_def.execute_in_process(instance=instance, raise_on_error=False)


def evaluations(result: ExecuteInProcessResult) -> dict[tuple[str, str], AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def failed(result: ExecuteInProcessResult) -> dict[tuple[str, str], AssetCheckEvaluation]:
    return {key: e for key, e in evaluations(result).items() if not e.passed}


def metadata(evaluation: AssetCheckEvaluation) -> dict[str, Any]:
    return {k: v.value for k, v in evaluation.metadata.items()}


def execute(warehouse: Warehouse, sql: str) -> None:
    """Change the warehouse by hand: what a loader that works cannot do."""
    warehouse.execute(sql)


def people(sandbox: Sandbox, n: int) -> list[dict[str, Any]]:
    return list(sandbox.data.records("peoples", limit=n))


def test_every_asset_has_its_checks_severity_and_blocking_on_purpose() -> None:
    # The blocking checks are the load op's own (`Gate`), the others in a check op per asset.
    specs = {
        (spec.asset_key.to_user_string(), spec.name): spec
        for c in [*(defs.asset_checks or []), *(defs.assets or [])]
        for spec in c.check_specs  # type: ignore[union-attr]
    }
    checks: dict[str, set[str]] = {}
    for asset, name in specs:
        checks.setdefault(asset, set()).add(name)
    assert checks == EXPECTED_CHECKS
    assert {k.to_user_string() for k in EXPECTED_KEYS} == set(checks)
    blocking = {key for key, spec in specs.items() if spec.blocking}
    assert blocking == {("audience/segments", name) for name in GUARDS}

    def severity(asset: str, name: str) -> str:
        return specs[(asset, name)].metadata["severity"]

    assert severity("audience/peoples", "primary_key_unique") == "ERROR"
    assert severity("audience/peoples", "row_count_drop") == "WARN"
    assert severity("audience/segments", "row_count_drop") == "ERROR"  # guards its children
    assert severity("audience/peoples", "schema_drift") == "WARN"
    assert severity("audience/peoples", "email_format") == "WARN"
    assert severity("audience/segment_people", "segment_ids_exist") == "ERROR"
    assert severity("audience/accounts", "seed_columns") == "ERROR"


@on_every_warehouse
def test_keys_served_twice_warn_and_keys_stored_twice_are_an_error(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    first = people(configured, 1)[0]
    configured.data.add_raw_record("peoples", {**first, "lastName": "Twice"})  # the same id on the last page
    result = run(instance, "audience/peoples")
    served_twice = failed(result)[("audience/peoples", "primary_key_unique")]
    assert served_twice.severity == WARN  # the merge kept one row: suspicious, not wrong
    assert metadata(served_twice) == {"duplicates_served": 1, "duplicate_keys_served": [first["id"]]}
    assert warehouse.query("select count(*) - count(distinct id) from audience.peoples") == [(0,)]

    second = people(configured, 2)[1]  # a second row takes the first one's key, as a bad load would
    execute(warehouse, f"update audience.peoples set id = '{first['id']}' where id = '{second['id']}'")
    stored_twice = failed(run_checks(instance, "audience/peoples"))[
        ("audience/peoples", "primary_key_unique")
    ]
    assert stored_twice.severity == ERROR
    assert metadata(stored_twice) == {"duplicate_rows": 1, "duplicate_keys": [first["id"]]}


@on_every_warehouse
def test_a_key_served_twice_warns_even_when_the_cursor_drops_both_records(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    assert run(instance, "audience/peoples").success  # the cursor now stands at the newest updatedAt
    served = list(configured.data.records("peoples"))
    newest = max(p["updatedAt"] for p in served)
    person = next(p for p in served[200:] if p["updatedAt"] < newest)  # on the last page, unchanged
    # Another person under the same id, as old: the cursor drops both, so dlt writes neither.
    configured.data.add_raw_record("peoples", {**person, "firstName": "Other", "email": "other@example.com"})
    page = configured.data.page("peoples", 200, 100) or []
    assert [p["id"] for p in page].count(person["id"]) == 2  # one id twice on one page

    result = run(instance, "audience/peoples")
    assert result.success
    unique = failed(result)[("audience/peoples", "primary_key_unique")]
    assert unique.severity == WARN
    assert metadata(unique) == {"duplicates_served": 1, "duplicate_keys_served": [person["id"]]}
    # Neither record was written: the row is the first sync's.
    rows = warehouse.query(f"select first_name from audience.peoples where id = '{person['id']}'")
    assert rows == [(person["firstName"],)]


@on_every_warehouse
def test_a_blank_key_is_an_error_and_a_missing_one_stops_the_load(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    template = people(configured, 1)[0]
    configured.data.add_raw_record("peoples", {**template, "id": "  ", "email": "blank.key@example.com"})
    result = run(instance, "audience/peoples")
    blank = failed(result)[("audience/peoples", "primary_key_not_null")]
    assert blank.severity == ERROR
    assert metadata(blank)["rows_without_key"] == 1 and len(metadata(blank)["sample_dlt_ids"]) == 1

    # Without the key field at all the loader refuses the page: the run fails (and alerts), nothing
    # of the load is committed, and the checks of the asset do not run.
    configured.data.add_raw_record(
        "peoples", {k: v for k, v in template.items() if k != "id"} | {"lastName": "X"}
    )
    result = run(instance, "audience/peoples")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "analytics_load" and " id" in str(failure.step_failure_data.error)
    assert ("audience/peoples", "primary_key_not_null") not in evaluations(result)
    assert warehouse.query("select count(*) from audience.peoples") == [(SMALL.people + 1,)]


@on_every_warehouse
def test_a_membership_of_a_segment_missing_from_segments_is_an_error(
    configured: Sandbox, instance: DagsterInstance
) -> None:
    assert run(instance, "audience/segments").success
    new_segment = configured.data.add_segment()  # listed after segments was loaded
    result = run(instance, "audience/segment_people")
    orphans = failed(result)[("audience/segment_people", "segment_ids_exist")]
    assert orphans.severity == ERROR
    assert metadata(orphans) == {
        "orphan_rows": SMALL.members_per_segment,
        "missing_segment_ids": [new_segment],
    }

    assert failed(run(instance, "audience/segments", "audience/segment_people")) == {}


def test_a_response_to_an_unknown_survey_is_an_error(configured: Sandbox, instance: DagsterInstance) -> None:
    response = next(configured.data.records("responses"))
    stray = {**response, "id": "c" + "x" * 24, "surveyId": "cnosuchsurvey0000000000000"}
    configured.data.add_raw_record("responses", stray)
    result = run(instance, "feedback/surveys", "feedback/responses")
    orphans = failed(result)[("feedback/responses", "survey_ids_exist")]
    assert orphans.severity == ERROR
    assert metadata(orphans) == {"orphan_rows": 1, "missing_survey_ids": ["cnosuchsurvey0000000000000"]}


def test_a_truncated_endpoint_fails_the_row_count_drop_check(
    configured: Sandbox, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(instance, "audience/peoples").success
    configured.data.truncate("peoples", 100)  # the endpoint silently serves 100 of 250
    # A sync refuses to delete 60% of the table (the loader's guard, at the same share as the check) ...
    refused = run(instance, "audience/peoples")
    assert not refused.success and ("audience/peoples", "row_count_drop") not in failed(refused)
    # ... a refresh accepts it, and the check says what the table lost.
    result = run(instance, "audience/peoples", run_config=REFRESH_AUDIENCE)
    assert result.success
    drop = failed(result)[("audience/peoples", "row_count_drop")]
    assert drop.severity == WARN
    assert metadata(drop) | {"previous_run_id": None} == {
        "row_count": 100,
        "previous_row_count": SMALL.people,
        "drop": 0.6,
        "max_drop": 0.5,
        "previous_run_id": None,
    }

    monkeypatch.setenv("ANALYTICS_MAX_ROW_DROP", "0.7")  # a 60% drop is tolerated with that setting
    assert ("audience/peoples", "row_count_drop") not in failed(run_checks(instance, "audience/peoples"))


def test_an_endpoint_that_answers_nothing_fails_not_empty(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    assert run(instance, "audience/accounts").success
    configured.data.truncate("accounts", 0)
    result = run(instance, "audience/accounts")
    empty = failed(result)[("audience/accounts", "not_empty")]
    assert empty.severity == ERROR
    assert metadata(empty) == {"row_count": SMALL.accounts, "keys_served": 0}  # the loader kept the rows

    execute(warehouse, "delete from audience.accounts")
    empty = failed(run_checks(instance, "audience/accounts"))[("audience/accounts", "not_empty")]
    assert metadata(empty) == {"row_count": 0}


def test_seed_columns_missing_or_of_another_type_are_an_error(
    configured: Sandbox, instance: DagsterInstance
) -> None:
    for account in list(configured.data.records("accounts")):
        configured.data.patch_record(
            "accounts", account["accountId"], set_fields={"accountId": f"A{account['accountId']}"}
        )
    for person in people(configured, SMALL.people):
        configured.data.patch_record("peoples", person["id"], remove_fields=["lastName"])
    result = run(instance, "audience/accounts", "audience/peoples")
    accounts = failed(result)[("audience/accounts", "seed_columns")]
    assert accounts.severity == ERROR
    assert metadata(accounts)["missing_columns"] == []
    assert set(metadata(accounts)["incompatible_columns"]) == {"account_id"}
    peoples = failed(result)[("audience/peoples", "seed_columns")]
    assert metadata(peoples) == {"missing_columns": ["last_name"], "incompatible_columns": {}}


def test_new_fields_and_type_changes_are_reported_as_drift(
    configured: Sandbox, instance: DagsterInstance
) -> None:
    assert run(instance, "audience/peoples").success
    person = people(configured, 1)[0]
    configured.data.patch_record(
        "peoples", person["id"], set_fields={"favoriteColor": "teal", "leadScore": "high"}
    )
    result = run(instance, "audience/peoples")
    drift = failed(result)[("audience/peoples", "schema_drift")]
    assert drift.severity == WARN
    assert metadata(drift) == {
        "added_columns": ["favorite_color", "lead_score__v_text"],
        "type_changes": {},
        "variant_columns": ["lead_score__v_text"],
    }
    assert set(failed(result)) == {("audience/peoples", "schema_drift")}  # information, nothing else


def test_implausible_emails_warn(configured: Sandbox, instance: DagsterInstance) -> None:
    broken = [p["id"] for p in people(configured, 30)]
    for person_id in broken:
        configured.data.patch_record("peoples", person_id, set_fields={"email": "n/a"})
    result = run(instance, "audience/peoples")
    emails = failed(result)[("audience/peoples", "email_format")]
    assert emails.severity == WARN
    found = metadata(emails)
    assert (found["valid_share"], found["invalid_rows"], found["checked_rows"]) == (0.88, 30, SMALL.people)
    assert set(found["invalid_ids"]) <= set(broken) and len(found["invalid_ids"]) == 5


def test_a_blocking_check_failure_on_segments_keeps_segment_people_from_loading(
    configured: Sandbox, warehouse: Warehouse, instance: DagsterInstance
) -> None:
    assert run(instance, "audience/segments", "audience/segment_people").success
    members = SMALL.segments * SMALL.members_per_segment
    configured.data.truncate("segments", 1)  # two of three segments vanish from the list
    # A sync refuses to delete two thirds of segments; a refresh of segments alone loads the one left.
    result = run(instance, "audience/segments", "audience/segment_people", run_config=REFRESH_AUDIENCE)
    assert not result.success
    drop = failed(result)[("audience/segments", "row_count_drop")]
    assert (drop.severity, drop.blocking) == (ERROR, True)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"audience/segments"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "audience_segment_people_checks" not in started  # neither segment_people nor its checks ran
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "analytics_load"
    assert "Not loading segment_people: audience/segments failed its blocking checks (row_count_drop)" in str(
        failure.step_failure_data.error
    )
    # The members of the vanished segments are still there: the bad parent fed nothing downstream.
    assert warehouse.query("select count(*) from audience.segment_people") == [(members,)]
    # What the run read for segment_people was dropped, and the locks went with the run: the next run of
    # this process and instance does not wait for them (it would wait forever).
    assert run(instance, "audience/segments").success


def test_every_asset_has_a_freshness_policy_of_26_hours_and_no_freshness_check() -> None:
    graph = defs.resolve_asset_graph()
    windows = {key: graph.get(key).freshness_policy.fail_window.to_timedelta() for key in EXPECTED_KEYS}  # type: ignore[union-attr]
    assert set(windows.values()) == {FRESHNESS_WINDOW} and FRESHNESS_WINDOW.total_seconds() == 26 * 3600
    # Freshness is the policy's: no check (whose runs painted every asset red) and no sensor of its own.
    assert not [k for k in graph.asset_check_keys if "freshness" in k.name]
    assert not [s for s in defs.sensors or [] if "freshness" in s.name]


def test_the_freshness_window_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINDOW_ENV, "90")
    assert freshness_window().total_seconds() == 90 * 60
    for wrong in ("0", "-5", "1.5h", "soon"):
        monkeypatch.setenv(WINDOW_ENV, wrong)
        with pytest.raises(ValueError, match=WINDOW_ENV):
            freshness_window()
