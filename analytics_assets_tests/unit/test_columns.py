"""`analytics_assets.loading.columns`: the documented fields' descriptions on the UI's column schema (no Dagster run)."""

from __future__ import annotations

from dagster import TableColumn, TableColumnConstraints, TableSchema
from dlt.common.normalizers.naming import snake_case, sql_cs_v1

from analytics_assets.loading.columns import with_descriptions
from analytics_assets.reading.apis import APIS, AUDIENCE

KEY = TableColumnConstraints(nullable=False, other=["primary_key"])


def test_documented_columns_get_their_description_and_keep_the_rest() -> None:
    dlt_schema = TableSchema(
        columns=[
            TableColumn("id", "text", constraints=KEY),
            TableColumn("first_name", "text"),
            TableColumn("favourite_colour", "text"),  # a custom field: nobody documented it
        ]
    )
    described = with_descriptions(dlt_schema, AUDIENCE.columns["peoples"], snake_case.NamingConvention())
    by_name = {c.name: c for c in described.columns}
    assert [c.name for c in described.columns] == ["id", "first_name", "favourite_colour"]
    assert by_name["id"].description == "The person's id, a UUID (the key)."
    assert by_name["id"].type == "text"
    assert by_name["id"].constraints == KEY
    assert by_name["first_name"].description == "The person's first name."
    assert by_name["favourite_colour"].description is None


def test_columns_are_matched_through_the_warehouses_naming_convention() -> None:
    # Under sql_cs_v1 the column keeps the API's name, and the description still finds it.
    dlt_schema = TableSchema(columns=[TableColumn("firstName", "text"), TableColumn("first_name", "text")])
    described = with_descriptions(dlt_schema, {"firstName": "first"}, sql_cs_v1.NamingConvention())
    assert [c.description for c in described.columns] == ["first", None]


def test_every_described_resource_is_an_endpoint_and_the_seeds_fields_are_described() -> None:
    for api in APIS:
        assert set(api.columns) <= set(api.catalog), api.name
        for resource, endpoint in api.catalog.items():
            # Every key field is documented (the wire names of `account_id`, `segment_id`: camelCase or not).
            fields = {snake_case.NamingConvention().normalize_identifier(f) for f in api.columns[resource]}
            assert set(endpoint.primary_key) <= fields, f"{api.name}/{resource}"
    # The seed's documented schemas: people and accounts.
    naming = snake_case.NamingConvention()
    peoples = {naming.normalize_identifier(f) for f in AUDIENCE.columns["peoples"]}
    assert {"id", "email", "first_name", "last_name", "created_at", "updated_at"} <= peoples
    assert {"account_id", "name", "created_at"} <= {
        naming.normalize_identifier(f) for f in AUDIENCE.columns["accounts"]
    }


def test_a_nested_objects_field_describes_its_flattened_column() -> None:
    dlt_schema = TableSchema(columns=[TableColumn("company_info__crm__provider", "text")])
    described = with_descriptions(
        dlt_schema, {"companyInfo.crm.provider": "The CRM."}, snake_case.NamingConvention()
    )
    assert [c.description for c in described.columns] == ["The CRM."]
