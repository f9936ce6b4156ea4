"""`analytics_assets.reading.catalog` and `Api.catalog`: each API's endpoints, read once from its `rest_api` config."""

from __future__ import annotations

import pytest

from analytics_assets.reading.apis import APIS, AUDIENCE, FEEDBACK
from analytics_assets.reading.catalog import endpoints


def test_each_apis_catalog_is_read_once_and_cannot_be_changed() -> None:
    for api in APIS:
        assert api.catalog is api.catalog
        assert dict(api.catalog) == dict(endpoints(api.spec_config()))
        with pytest.raises(TypeError):
            api.catalog["extra"] = api.catalog[next(iter(api.catalog))]  # type: ignore[index]


def test_the_catalog_says_how_to_ask_each_endpoint_for_one_page() -> None:
    peoples, accounts = AUDIENCE.catalog["peoples"], AUDIENCE.catalog["accounts"]
    assert (peoples.path, peoples.data_selector, peoples.limit_param) == ("/people/all", "people", "limit")
    assert (accounts.data_selector, accounts.limit_param) == ("$", None)
    assert FEEDBACK.catalog["responses"].limit_param == "limit"
    assert FEEDBACK.catalog["webhooks"].data_selector == "data"
    # Parents come before their children: the connection test asks a child with a parent's id.
    assert list(AUDIENCE.catalog).index("segments") < list(AUDIENCE.catalog).index("segment_people")
    assert AUDIENCE.catalog["segment_people"].parent == "segments"


def test_a_childs_parent_field_and_the_json_columns_are_read_from_the_config() -> None:
    assert AUDIENCE.catalog["segment_people"].parent_field == "id"
    assert AUDIENCE.catalog["peoples"].parent_field is None
    assert AUDIENCE.catalog["segments"].json_columns == ("conditions",)
    assert FEEDBACK.catalog["responses"].json_columns == ("data", "ttc", "variables")
    assert FEEDBACK.catalog["identified_peoples"].json_columns == ("attributes",)
