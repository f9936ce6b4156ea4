"""`analytics_assets.internals`: one contract test per hook, on small real dlt, tenacity and Dagster
objects, so that an upgrade changing what a hook relies on fails here within seconds (and not, silently,
in a load). Where a test also asserts that no public route answers yet, its failure says the hook can go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import dlt
import pytest
import requests
from dlt.sources.helpers.requests import Client
from requests import Response
from tenacity import Retrying

from analytics_assets.internals import (
    client_retrying,
    freshness_states,
    planned_check_asset_key,
    replace_generator,
)
from analytics_assets.reading.arrow_pages import batched_pages

# replace_generator


def _pages() -> Iterator[list[dict[str, int]]]:
    yield [{"n": 1}, {"n": 2}]
    yield [{"n": 3}]
    yield [{"n": 4}, {"n": 5}]


def _read(resource: Any) -> tuple[list[Any], list[int]]:
    """The rows `resource` yields, and the size of every item its last step was handed."""
    sizes: list[int] = []
    resource.add_step(lambda item, meta=None: (sizes.append(len(item)), item)[1])
    return list(resource), sizes


def test_replace_generator_wraps_what_a_resource_generates_under_its_steps() -> None:
    """As `rest.assemble` uses it: a resource built with an incremental argument and a step of its own,
    its generator replaced by `batched_pages`, then parallelized: every step sees the joined pages."""

    @dlt.resource
    def pages(n: Any = dlt.sources.incremental("n")) -> Iterator[list[dict[str, int]]]:  # noqa: B008 (dlt's idiom)
        yield from _pages()

    resource = pages().add_map(lambda row: {**row, "mapped": True})
    replace_generator(resource, lambda gen: batched_pages(gen, rows=3))
    resource.parallelize()
    rows, sizes = _read(resource)
    assert [row["n"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["mapped"] for row in rows)  # the resource's own step still runs, after the join
    assert sizes == [3, 2]  # pages joined to at least 3 rows, the partial last batch handed over


def test_replace_generator_wraps_a_bound_generator() -> None:
    """A resource made from a generator object (its pipe's generating step is the generator itself)."""
    resource = dlt.resource(_pages(), name="pages")
    replace_generator(resource, lambda gen: batched_pages(gen, rows=10))
    rows, sizes = _read(resource)
    assert len(rows) == 5
    assert sizes == [5]


# client_retrying


class _Answers:
    """A `send` answering each call with the next status (or raising the next exception)."""

    def __init__(self, *answers: int | type[Exception]) -> None:
        self.answers = iter(answers)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Response:
        self.calls += 1
        answer = next(self.answers)
        if not isinstance(answer, int):
            raise answer("canned")
        response = Response()
        response.status_code = answer
        if answer == 429:
            response.headers["Retry-After"] = "7"
        return response


def _retrying(**client: Any) -> tuple[Retrying, list[float]]:
    """The `Retrying` of a `Client` made with `client`, sleeping on a fake clock (its waits recorded)."""
    slept: list[float] = []
    retrying = client_retrying(Client(**client))
    return retrying.copy(sleep=slept.append), slept


def test_client_retrying_is_the_retry_dlts_client_puts_on_its_sessions() -> None:
    retrying, slept = _retrying(
        status_codes=(503, 429), request_max_attempts=4, request_backoff_factor=2, request_max_retry_delay=30
    )
    send = _Answers(503, 503, 503, 200)
    assert retrying.wraps(send)().status_code == 200
    assert send.calls == 4
    assert slept == [2, 4, 8]  # factor * 2**(retry - 1): the seeds' waits


def test_client_retrying_hands_back_the_last_response_when_the_attempts_run_out() -> None:
    retrying, _ = _retrying(status_codes=(503,), request_max_attempts=3, request_backoff_factor=0)
    send = _Answers(503, 503, 503, 200)
    assert retrying.wraps(send)().status_code == 503  # not an exception: dlt's RESTClient raises for it
    assert send.calls == 3


def test_client_retrying_retries_only_its_statuses_and_connection_errors() -> None:
    retrying, _ = _retrying(status_codes=(503,), request_max_attempts=4, request_backoff_factor=0)
    send = _Answers(404, 200)
    assert retrying.wraps(send)().status_code == 404
    assert send.calls == 1
    send = _Answers(requests.ConnectionError, 200)
    assert retrying.wraps(send)().status_code == 200
    assert send.calls == 2
    send = _Answers(ValueError, 200)
    with pytest.raises(ValueError):
        retrying.wraps(send)()


def test_client_retrying_waits_as_a_servers_retry_after_says() -> None:
    retrying, slept = _retrying(
        status_codes=(429,), request_backoff_factor=2, respect_retry_after_header=True
    )
    assert retrying.wraps(_Answers(429, 200))().status_code == 200
    assert slept == [7]


# planned_check_asset_key


@dg.asset
def _table() -> int:
    return 1


@dg.asset_check(asset=_table)
def _has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_planned_check_asset_key_names_the_asset_a_checks_only_run_checks() -> None:
    defs = dg.Definitions(
        assets=[_table],
        asset_checks=[_has_rows],
        jobs=[dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(_has_rows))],
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("checks_only").execute_in_process(instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        records = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
        ).records
    assert len(records) == 1
    event = records[0].event_log_entry.dagster_event
    assert event is not None
    assert planned_check_asset_key(event) == _table.key
    # Why the hook: nothing public names the asset of this run (if one does now, use it instead).
    assert not run.asset_selection and run.asset_check_selection is None
    assert records[0].asset_key is None and event.asset_key is None


# freshness_states


def test_freshness_states_reads_the_state_each_asset_last_took() -> None:
    """What the freshness daemon records (a `FreshnessStateChange`, reported without a run), read back per
    asset: the latest state and when it was taken; an asset never judged is missing."""
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    late, fresh, unjudged = dg.AssetKey(["a", "late"]), dg.AssetKey(["a", "fresh"]), dg.AssetKey("other")
    with dg.instance_for_test() as instance:
        for key, state, at in ((late, "PASS", 100.0), (late, "FAIL", 200.0), (fresh, "PASS", 150.0)):
            instance.report_runless_asset_event(
                FreshnessStateChange(
                    key=key,
                    new_state=FreshnessState(state),
                    previous_state=FreshnessState.UNKNOWN,
                    state_change_timestamp=at,
                )
            )
        states = freshness_states(instance, [late, fresh, unjudged])
    assert states == {late: ("FAIL", 200.0), fresh: ("PASS", 150.0)}
