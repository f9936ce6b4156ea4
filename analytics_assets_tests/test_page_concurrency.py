"""Pages side by side (`SOURCES__<API>__PAGE_CONCURRENCY`): one list's pages requested at once, rows
exact and in page order, the end of the list exact, at most one window of requests past it."""

from dataclasses import replace
from itertools import pairwise

import pytest

from analytics_assets.reading.audience.source import audience
from analytics_assets_tests.conftest import SMALL, Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_assets_tests.test_sync import assert_warehouse_equals_api_table
from analytics_sandbox import Sandbox

pytestmark = pytest.mark.slow  # whole Dagster runs against the sandbox

PEOPLE = "/audience/v1/people/all"
LATENCY = 0.1
CONCURRENCY = 4
# 2,050 people: 20 full pages and a short one, a list long enough for the window to open fully.
LONG_LIST = replace(SMALL, people=2050, segments=1, members_per_segment=10, responses=10)


@pytest.fixture(autouse=True)
def four_pages_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__AUDIENCE__PAGE_CONCURRENCY", str(CONCURRENCY))
    monkeypatch.setenv("SOURCES__AUDIENCE__RETRY_BACKOFF_FACTOR", "0.05")


LAST_PAGE = 1980
"""The offset of the last page of 2,050 people, 100 records a page, each page from the last record of the one before."""


def offsets(sandbox: Sandbox) -> list[int]:
    return [int(r["query"]["offset"]) for r in sandbox.requests(path=PEOPLE)]


def assert_pages_of_a_sequential_read_and_at_most_a_window_more(requested: list[int]) -> None:
    # Pages overlap by one record (each asked from the last record of the one before): 0, 99, 198, ...
    needed = list(range(0, LAST_PAGE + 1, 99))  # the short page at 1,980 ends the list of 2,050
    assert sorted(o for o in requested if o <= LAST_PAGE) == needed  # each page once
    past_the_end = [o for o in requested if o > LAST_PAGE]
    assert len(past_the_end) <= CONCURRENCY - 1
    assert all(o % 99 == 0 for o in past_the_end)


@pytest.mark.parametrize("sandbox", [LONG_LIST], indirect=True)
def test_pages_of_one_list_overlap_and_the_warehouse_is_exact(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    configured.set_latency(LATENCY)
    assert materialize("audience/peoples").success

    requested = configured.requests(path=PEOPLE)
    arrivals = sorted(r["time"] for r in requested)
    # The sandbox answers each request LATENCY after it arrives: a reader that waits for each answer
    # before asking again can never have two requests arrive closer than that.
    overlapping = sum(1 for a, b in pairwise(arrivals) if b - a < LATENCY / 2)
    assert overlapping >= 5
    assert_pages_of_a_sequential_read_and_at_most_a_window_more(offsets(configured))
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")
    assert warehouse.query("select count(*) from audience.peoples") == [(2050,)]


@pytest.mark.parametrize("sandbox", [LONG_LIST], indirect=True)
def test_rows_are_handed_on_in_page_order(configured: Sandbox) -> None:
    configured.set_latency(0.02)
    # The source in a bare dlt iteration: the rows as dlt receives them, before any warehouse.
    source = audience(base_url=configured.audience_base_url, api_key=configured.audience_key)
    rows = list(source.with_resources("peoples"))
    assert [r["id"] for r in rows] == [p["id"] for p in configured.data.records("peoples")]
    assert_pages_of_a_sequential_read_and_at_most_a_window_more(offsets(configured))


@pytest.mark.parametrize("sandbox", [LONG_LIST], indirect=True)
def test_a_500_on_a_page_requested_ahead_is_retried_and_the_data_is_exact(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    configured.inject_fault(PEOPLE, kind="status", status=500, times=2, query={"offset": "1485"})
    assert materialize("audience/peoples").success

    requested = offsets(configured)
    assert requested.count(1485) == 3  # two 500s, then the page
    assert_pages_of_a_sequential_read_and_at_most_a_window_more([o for o in requested if o != 1485] + [1485])
    assert_warehouse_equals_api_table(warehouse, configured, "audience.peoples")


@pytest.mark.parametrize("sandbox", [LONG_LIST], indirect=True)
def test_one_page_at_a_time_when_set_to_1(
    configured: Sandbox, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__AUDIENCE__PAGE_CONCURRENCY", "1")
    assert materialize("audience/peoples").success
    assert offsets(configured) == list(range(0, LAST_PAGE + 1, 99))  # in order, none past the end
