"""`analytics_assets.loading.errors` on its own: the exception chains a failed dlt extract raises, turned into
one message naming the API, the request and the setting to change (no server, no Dagster)."""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path

import dlt
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed
from requests import Response

from analytics_assets.loading.errors import error_response, explain, server_message
from analytics_assets.reading.apis import APIS, AUDIENCE
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.sweep import KeyTypeError, MissingKeyError
from analytics_assets.reading.transport import ApiResponseError, RequestStats

APIS_BY_NAME = {api.name: api for api in APIS}
BASE_URL = "https://audience.example.com/v1"
KEY = "sk_live_4f9a2c7e"
PEOPLE = Endpoint(
    resource="peoples",
    path="/people/all",
    primary_key=("id",),
    paging="offset",
    write_disposition="merge",
    parent=None,
    cursor=None,
    stops_early=False,
)
SEGMENT_PEOPLE = Endpoint(
    resource="segment_people",
    path="/segments/{resources.segments.id}/people",
    primary_key=("segment_id", "id"),
    paging="offset",
    write_disposition="merge",
    parent="segments",
    cursor=None,
    stops_early=False,
)
CATALOG = {e.resource: e for e in (PEOPLE, SEGMENT_PEOPLE)}


def answer(status: int, body: str = "", url: str = f"{BASE_URL}/people/all?offset=200&limit=100") -> Response:
    """An API's answer as requests builds it, its request carrying the key the way the sources send it."""
    made = Response()
    made.status_code = status
    made.reason = HTTPStatus(status).phrase
    made._content = body.encode()
    made.url = url
    made.request = requests.Request("GET", url, headers={"api_key": KEY}).prepare()
    return made


def http_error(
    status: int, body: str = "", url: str = f"{BASE_URL}/people/all?offset=200&limit=100"
) -> Exception:
    """The `HTTPError` dlt's RESTClient raises for an error status (it calls `raise_for_status`)."""
    try:
        answer(status, body, url).raise_for_status()
    except requests.HTTPError as error:
        return error
    raise AssertionError(f"{status} is no error status")


def raised_by_dlt(tmp_path: Path, error: Exception, resource: str = "peoples") -> PipelineStepFailed:
    """What `pipeline.extract` raises when `resource` fails with `error`: dlt's own wrapping, cause and all."""

    @dlt.resource(name=resource)
    def failing() -> object:
        raise error
        yield  # a generator, like rest_api's resources

    pipeline = dlt.pipeline(pipeline_name="errors_unit", pipelines_dir=str(tmp_path))
    with pytest.raises(PipelineStepFailed) as raised:
        pipeline.extract(failing())
    return raised.value


def stats_after(*urls: str) -> RequestStats:
    stats = RequestStats("audience")
    for url in urls:
        stats.before(url)
    return stats


def explained(tmp_path: Path, error: Exception, resource: str = "peoples", api: str = "audience") -> str:
    stats = stats_after("/v1/people/all?offset=0&limit=100", "/v1/people/all?offset=200&limit=100")
    message = explain(APIS_BY_NAME[api], raised_by_dlt(tmp_path, error, resource), stats, CATALOG, BASE_URL)
    assert message is not None
    assert KEY not in message
    return message


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_names_the_request_and_the_key_setting(tmp_path: Path, status: int) -> None:
    message = explained(tmp_path, http_error(status, '{"message": "invalid api key"}'))
    assert message.startswith(
        f"audience API refused the API key ({status}) on GET /v1/people/all?offset=200&limit=100"
    )
    assert "SOURCES__AUDIENCE__API_KEY" in message
    assert "[sources.audience] in .dlt/secrets.toml" in message
    assert BASE_URL in message


def test_a_404_names_the_request_and_the_base_url_setting(tmp_path: Path) -> None:
    message = explained(tmp_path, http_error(404, url=f"{BASE_URL}/v1/people/all"))
    assert message.startswith("audience API has no GET /v1/v1/people/all (404 Not Found)")
    assert f"check SOURCES__AUDIENCE__BASE_URL, now {BASE_URL!r}" in message


def test_a_404_tells_each_api_how_its_base_url_ends(tmp_path: Path) -> None:
    audience = explained(tmp_path, http_error(404))
    feedback = explained(
        tmp_path, http_error(404, url="https://feedback.example.com/v1/surveys"), api="feedback"
    )
    assert "ending in /v1" in audience
    assert "SOURCES__FEEDBACK__BASE_URL" in feedback
    assert "without /v1" in feedback


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_retried_status_says_it_was_retried_and_nothing_was_loaded(tmp_path: Path, status: int) -> None:
    message = explained(tmp_path, http_error(status))
    assert message.startswith(
        f"audience API answered {status} on GET /v1/people/all?offset=200&limit=100 on all"
    )
    assert "attempts" in message
    assert "Nothing of this endpoint was loaded and its cursor did not move" in message


def test_another_error_status_says_it_is_not_retried(tmp_path: Path) -> None:
    message = explained(tmp_path, http_error(422))
    assert message == (
        "audience API answered 422 on GET /v1/people/all?offset=200&limit=100, which is not retried."
        " Nothing of this endpoint was loaded."
    )


def test_a_timeout_names_the_last_request_of_the_failing_endpoint_and_the_timeout_setting(
    tmp_path: Path,
) -> None:
    message = explained(tmp_path, requests.ReadTimeout("read timed out"))
    assert message.startswith("audience API did not answer GET /v1/people/all?offset=200&limit=100 in time")
    assert BASE_URL in message
    assert "SOURCES__AUDIENCE__REQUEST_TIMEOUT" in message


def test_a_timeout_of_a_child_names_its_last_request(tmp_path: Path) -> None:
    stats = stats_after("/v1/segments/s-1/people?offset=0&limit=100", "/v1/people/all?offset=0&limit=100")
    error = raised_by_dlt(tmp_path, requests.ConnectTimeout("timed out"), resource="segment_people")
    message = explain(AUDIENCE, error, stats, CATALOG, BASE_URL)
    assert message is not None
    assert message.startswith(
        "audience API did not answer GET /v1/segments/s-1/people?offset=0&limit=100 in time"
    )


def test_an_unreachable_api_names_the_base_url_setting(tmp_path: Path) -> None:
    message = explained(tmp_path, requests.ConnectionError("connection refused"))
    assert message.startswith(f"audience API could not be reached at {BASE_URL!r} (ConnectionError")
    assert "check SOURCES__AUDIENCE__BASE_URL" in message


@pytest.mark.parametrize(
    "error",
    [
        json.JSONDecodeError("Expecting value", '{"people": [', 12),
        requests.JSONDecodeError("Expecting value", '{"people": [', 12),
    ],
)
def test_malformed_json_names_the_page(tmp_path: Path, error: Exception) -> None:
    message = explained(tmp_path, error)
    assert message.startswith(
        "audience API answered malformed JSON on GET /v1/people/all?offset=200&limit=100"
    )
    assert "Nothing of this endpoint was loaded" in message


def test_a_page_check_speaks_for_itself(tmp_path: Path) -> None:
    said = "audience API answered GET /v1/people/all with text/html (an HTML page?) where JSON was expected"
    assert explained(tmp_path, ApiResponseError(said)) == said


def test_a_record_without_its_key_names_the_key_the_request_and_the_record(tmp_path: Path) -> None:
    error = MissingKeyError(
        "peoples", ["id"], {"id": None, "firstName": "Ada", "lastName": "L", "a": 1, "b": 2}
    )
    message = explained(tmp_path, error)
    assert message.startswith(
        "audience API: a peoples record on GET /v1/people/all?offset=200&limit=100 has no id"
    )
    assert "'firstName': 'Ada'" in message
    assert "'b'" not in message  # a sample of the record, not all of it
    assert "Nothing of this endpoint was loaded" in message


def test_a_key_of_another_type_names_the_value_and_the_refresh(tmp_path: Path) -> None:
    error = KeyTypeError(
        "peoples", "id", "p-" + "x" * 200, "a string", "the warehouse's peoples.id holds whole numbers"
    )
    message = explained(tmp_path, error)
    assert message.startswith(
        "audience API: a peoples record on GET /v1/people/all?offset=200&limit=100 has id 'p-x"
    )
    assert "(a string), but the warehouse's peoples.id holds whole numbers" in message
    assert "x" * 130 not in message  # a long value is shortened
    assert "run a refresh of audience/peoples" in message


def test_an_unknown_resource_falls_back_to_its_last_request(tmp_path: Path) -> None:
    message = explained(tmp_path, requests.ReadTimeout(), resource="not_in_catalog")
    assert "did not answer its last request in time" in message


def test_a_failure_that_is_not_about_the_api_is_left_alone(tmp_path: Path) -> None:
    stats = stats_after()
    assert (
        explain(AUDIENCE, raised_by_dlt(tmp_path, ZeroDivisionError("x")), stats, CATALOG, BASE_URL) is None
    )
    assert explain(AUDIENCE, RuntimeError("disk full"), stats, CATALOG, BASE_URL) is None


def test_a_bare_http_error_is_explained_too(tmp_path: Path) -> None:
    # Outside an extract (a probe, the connection test) the error arrives unwrapped.
    message = explain(AUDIENCE, http_error(401), stats_after(), CATALOG, BASE_URL)
    assert message is not None
    assert message.startswith("audience API refused the API key (401)")


def test_error_response_finds_the_apis_answer_in_dlts_chain(tmp_path: Path) -> None:
    error = raised_by_dlt(tmp_path, http_error(410, '{"message": "gone"}'))
    found = error_response(error)
    assert found is not None
    assert found.status_code == 410


def test_error_response_is_none_without_an_answer(tmp_path: Path) -> None:
    assert error_response(raised_by_dlt(tmp_path, requests.ConnectionError("refused"))) is None
    assert error_response(requests.HTTPError("no response")) is None


def test_an_error_chain_that_loops_ends(tmp_path: Path) -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert error_response(first) is None
    assert explain(AUDIENCE, first, stats_after(), CATALOG, BASE_URL) is None


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"message": "segment was deleted"}', "segment was deleted"),
        ('{"error": {"message": "plan does not include webhooks"}}', "plan does not include webhooks"),
        ('{"error": "plain"}', "403 Forbidden"),
        ("<html>Forbidden</html>", "403 Forbidden"),
        ("", "403 Forbidden"),
        ("[1, 2]", "403 Forbidden"),
    ],
)
def test_server_message_reads_what_the_api_said(body: str, said: str) -> None:
    assert server_message(answer(403, body)) == said


def test_server_message_is_shortened() -> None:
    said = server_message(answer(400, json.dumps({"message": "x" * 1_000})))
    assert said == "x" * 300
