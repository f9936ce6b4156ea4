"""Credentials an API payload carries never reach the warehouse, whatever they are called and wherever
they sit in the record; harmless look-alikes (a boolean `hasStripeAPIKey`) are kept on purpose."""

from typing import Any

import pytest

from analytics_assets_tests.conftest import Warehouse, on_every_warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # a whole Dagster run against the sandbox


def secrets_in(value: Any, name: str = "") -> list[str]:
    """The credential values of an account payload as the sandbox serves it (the test's own list)."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in secrets_in(item, key)]
    if isinstance(value, list):
        return [s for item in value for s in secrets_in(item, name)]
    if name in {"apiKeys", "writeKey", "webhookSeed", "accessToken", "secretKey"}:
        return [value]
    return []


def every_value(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(table, value as text) of every cell of every table of both datasets, dlt's and child tables too:
    the accounts', their child tables and dlt's state and version tables (its schema, as JSON)."""
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables"
        f" where table_schema in ('{warehouse.dataset('audience')}', '{warehouse.dataset('feedback')}')"
    )
    assert {t for _, t in tables} >= {"accounts", "accounts__integrations", "_dlt_version"}
    return [
        (f"{schema}.{table}", str(cell))
        for schema, table in tables
        for row in warehouse.query(f'select * from {schema}."{table}"')
        for cell in row
    ]


@on_every_warehouse
def test_no_credential_of_an_account_payload_reaches_the_warehouse(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    accounts = list(configured.data.records("accounts"))
    secrets = [s for account in accounts for s in secrets_in(account)]
    assert len(secrets) == 6 * len(accounts)  # 2 apiKeys, writeKey, webhookSeed, 2 nested
    assert materialize("audience/accounts").success  # every table it makes is searched below

    leaks = [(table, s) for table, text in every_value(warehouse) for s in secrets if s in text]
    assert leaks == []
    # Nothing of them as a column either (a column of nulls, or a child table named after them).
    columns = {r[0] for r in warehouse.query(
        "select table_name || '.' || column_name from information_schema.columns"
        f" where table_schema = '{warehouse.dataset('audience')}' and table_name like 'accounts%'"
    )}  # fmt: skip
    assert not [c for c in columns if any(w in c for w in ("key", "seed", "token", "secret"))
                and c != "accounts.has_stripe_api_key"]  # fmt: skip
    # The harmless flag is kept, with its values; the rest of the nested data too.
    flags = dict(warehouse.query("select account_id, has_stripe_api_key from audience.accounts"))
    assert flags == {a["accountId"]: a["hasStripeAPIKey"] for a in accounts}
    assert {True, False} <= set(flags.values())
    providers = warehouse.query("select distinct provider from audience.accounts__integrations")
    assert providers == [("stripe",)]
    assert warehouse.query(
        "select count(*) from audience.accounts where company_info__crm__provider = 'hubspot'"
    ) == [(len(accounts),)]
