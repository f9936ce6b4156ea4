"""The Dagster resources `warehouse` and `alert_webhook` on their own: each setting is its configured
value, else its environment variable read when used, else today's default (no Dagster run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_assets.loading.warehouse import WarehouseResource
from analytics_assets.watching.alerts import AlertWebhook

VARIABLES = (
    "ANALYTICS_DESTINATION",
    "ANALYTICS_DUCKDB_PATH",
    "ANALYTICS_MAX_ROW_DROP",
    "ANALYTICS_ALERT_WEBHOOK_URL",
    "ANALYTICS_DAGSTER_BASE_URL",
)


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_unset_settings_keep_their_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    warehouse = WarehouseResource()
    assert warehouse.destination_name() == "duckdb"
    assert warehouse.duckdb_file() == tmp_path / "data" / "analytics.duckdb"
    assert warehouse.loader_file_format() == "parquet"
    assert warehouse.max_row_drop_share() == 0.5
    webhook = AlertWebhook()
    assert webhook.webhook_url() is None
    assert webhook.base_url() == "http://localhost:3000"


def test_the_environment_is_read_when_a_setting_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, webhook = WarehouseResource(), AlertWebhook()  # built before the variables are set
    monkeypatch.setenv("ANALYTICS_DESTINATION", " Postgres ")
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("ANALYTICS_MAX_ROW_DROP", "0.25")
    monkeypatch.setenv("ANALYTICS_ALERT_WEBHOOK_URL", "https://hooks.example.test/T000/B000/secret")
    monkeypatch.setenv("ANALYTICS_DAGSTER_BASE_URL", "https://dagster.example.test/")
    assert warehouse.destination_name() == "postgres"
    assert warehouse.loader_file_format() == "insert_values"
    assert warehouse.duckdb_file() == tmp_path / "w.duckdb"
    assert warehouse.max_row_drop_share() == 0.25
    assert webhook.webhook_url() == "https://hooks.example.test/T000/B000/secret"
    assert webhook.base_url() == "https://dagster.example.test"


def test_a_configured_value_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv("ANALYTICS_DAGSTER_BASE_URL", "https://from-the-environment.test")
    assert WarehouseResource(destination="duckdb").destination_name() == "duckdb"
    assert AlertWebhook(dagster_base_url="https://dagster.example.test").base_url() == (
        "https://dagster.example.test"
    )


def test_an_invalid_row_drop_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_MAX_ROW_DROP", "2")
    with pytest.raises(ValueError, match="ANALYTICS_MAX_ROW_DROP must be a share between 0 and 1"):
        WarehouseResource().max_row_drop_share()
