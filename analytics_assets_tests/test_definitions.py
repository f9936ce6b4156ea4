"""The code location as the Dagster UI sees it: assets, groups, lineage, descriptions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, Definitions

from analytics_assets.definitions import defs

AUDIENCE = ["schemas", "peoples", "accounts", "account_tags", "segments", "fields", "segment_people"]
FEEDBACK = ["surveys", "action_classes", "attribute_classes", "identified_peoples", "responses", "webhooks"]
EXPECTED_KEYS = {AssetKey(["audience", r]) for r in AUDIENCE} | {AssetKey(["feedback", r]) for r in FEEDBACK}
REPO = Path(__file__).resolve().parents[1]


def test_exactly_the_thirteen_endpoint_assets() -> None:
    graph = defs.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == EXPECTED_KEYS


def test_segment_people_depends_on_segments_and_nothing_else_has_upstreams() -> None:
    graph = defs.resolve_asset_graph()
    for key in EXPECTED_KEYS:
        parents = set(graph.get(key).parent_keys)
        if key == AssetKey(["audience", "segment_people"]):
            assert parents == {AssetKey(["audience", "segments"])}
        else:
            assert parents == set(), key


def test_groups_descriptions_and_table_metadata() -> None:
    graph = defs.resolve_asset_graph()
    peoples = graph.get(AssetKey(["audience", "peoples"]))
    assert peoples.group_name == "audience"
    assert graph.get(AssetKey(["feedback", "responses"])).group_name == "feedback"
    assert "`GET /people/all`" in (peoples.description or "")
    assert "`offset`" in (peoples.description or "")
    assert peoples.metadata["dagster/table_name"].value == "audience.peoples"
    assert peoples.metadata["primary_key"].value == "id"
    members = graph.get(AssetKey(["audience", "segment_people"]))
    assert members.metadata["primary_key"].value == "segment_id, id"
    assert "dlt" in peoples.kinds


def test_the_catalog_says_how_each_asset_pages_and_shows_nothing_unserializable() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        # dagster-dlt's own rows, which the UI shows as "[DltSource] (unserializable)"
        assert not [k for k in metadata if k.startswith("dagster_dlt/")], key
    peoples = graph.get(AssetKey(["audience", "peoples"])).metadata["paging"].value
    assert "each page asked from the last record of the page before" in peoples
    assert "whatever the offset" in peoples and "deletes nothing" in peoples
    assert "stops on the first short page" not in peoples  # untrue since pages overlap
    assert "`skip`" in graph.get(AssetKey(["feedback", "responses"])).metadata["paging"].value
    surveys = graph.get(AssetKey(["feedback", "surveys"]))
    assert surveys.metadata["paging"].value == "none (one request answers the whole list)"
    assert "- paging: none (one request answers the whole list)" in (surveys.description or "")


@pytest.mark.slow
def test_definitions_load_without_any_configuration(tmp_path: Path) -> None:
    """No setting, secret or network is needed to load the code location (the UI does it on every reload)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_", "DESTINATION__"))
    }
    env["HOME"] = str(tmp_path)
    code = (
        "import json; from analytics_assets.definitions import defs; "
        "print(json.dumps(sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())))"
    )
    # Run from an empty folder so no .dlt/ settings can be found either.
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == sorted(
        k.to_user_string() for k in EXPECTED_KEYS
    )


def test_the_code_location_loads_as_the_webserver_loads_it() -> None:
    """Every job, op and schedule resolves (a name used twice fails only here, not in `defs` itself)."""
    Definitions.validate_loadable(defs)
    assert {"check_connection", "nightly_sync", "weekly_reconciliation"} <= {
        job.name for job in defs.get_repository_def().get_all_jobs()
    }


def test_the_settings_are_resources_on_the_resources_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI's Resources page lists `warehouse` and `alert_webhook` with a description, and each setting
    with the environment variable it is read from; none is configured when the definitions load (they
    are read when used), so the webhook, a secret, is in no resource's config the UI displays."""
    monkeypatch.setenv("ANALYTICS_ALERT_WEBHOOK_URL", "https://hooks.example.test/T000/B000/secret")
    resources = defs.get_repository_def().get_top_level_resources()
    expected = {
        "warehouse": {
            "destination": "ANALYTICS_DESTINATION",
            "duckdb_path": "ANALYTICS_DUCKDB_PATH",
            "max_row_drop": "ANALYTICS_MAX_ROW_DROP",
            "lock_timeout_seconds": "ANALYTICS_LOCK_TIMEOUT_SECONDS",
            "dataset_prefix": "ANALYTICS_DATASET_PREFIX",
        },
        "alert_webhook": {
            "url": "ANALYTICS_ALERT_WEBHOOK_URL",
            "dagster_base_url": "ANALYTICS_DAGSTER_BASE_URL",
        },
    }
    for name, fields in expected.items():
        resource = resources[name]
        assert resource.description, name
        config_fields = resource.config_schema.as_field().config_type.fields  # type: ignore[attr-defined]
        assert set(config_fields) == set(fields), name
        for field, variable in fields.items():
            assert variable in (config_fields[field].description or ""), (name, field)
            assert config_fields[field].default_value is None, (name, field)  # read when used
    assert "hooks.example.test" not in repr(defs.resources)


@pytest.mark.parametrize("api", ["audience", "feedback"])
def test_each_api_readme_lists_its_assets_endpoints_keys_checks_and_settings(api: str) -> None:
    """`<api>/README.md` is the page an engineer opens first: it must not fall behind the code."""
    from analytics_assets.reading.apis import APIS

    readme = (REPO / "analytics_assets" / "reading" / api / "README.md").read_text()
    catalog = next(a for a in APIS if a.name == api).catalog
    graph = defs.resolve_asset_graph()
    for resource, endpoint in catalog.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{api}/{resource}` |")), None)
        assert row is not None, f"{api}/README.md has no row for {api}/{resource}"
        path = endpoint.path.replace("{resources.segments.id}", "{id}")
        assert f"`GET {path}`" in row and f"`{api}.{resource}`" in row
        assert ", ".join(f"`{k}`" for k in endpoint.primary_key) in row
        checks = {k.name for k in graph.asset_check_keys if k.asset_key == AssetKey([api, resource])}
        for check in checks:
            assert f"`{check}`" in row or f"`{check}`" in readme, f"{check} of {api}/{resource}"
    for setting in ("BASE_URL", "API_KEY", "PAGE_CONCURRENCY", "REQUEST_TIMEOUT", "ALLOW_INSECURE_HTTP"):
        assert f"`SOURCES__{api.upper()}__{setting}`" in readme
