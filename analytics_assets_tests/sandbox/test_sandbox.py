"""The sandbox over real sockets: shapes, auth, paging, mutations, faults, log, control, scale."""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import pytest

from analytics_sandbox import Sandbox, SandboxClient, SandboxConfig
from analytics_sandbox.generate import Generator
from analytics_sandbox.sequences import RangeWithHoles

CONFIG = SandboxConfig(seed=7, people=250, segments=3, members_per_segment=120, surveys=4, responses=230)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CUID = re.compile(r"^c[0-9a-z]{24}$")
PEOPLE_FIELDS = [
    "id",
    "email",
    "firstName",
    "lastName",
    "name",
    "userId",
    "createdAt",
    "updatedAt",
    "lastActivity",
    "leadScore",
    "isEmailDisposable",
    "tags",
    "plan",
    "company",
]
PEOPLE = "/audience/v1/people/all"
RESPONSES = "/feedback/v1/management/responses"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(CONFIG, port=0) as sandbox:
        yield sandbox


class Reply:
    """One HTTP response, read whole."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


def get(
    sb: Sandbox,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None = "default",
    header: str | None = None,
    timeout: float = 10,
) -> Reply:
    """GET a sandbox path with the right API key header unless told otherwise."""
    audience = path.startswith("/audience")
    if header is None:
        header = "api_key" if audience else "X-API-Key"
    if key == "default":
        key = sb.audience_key if audience else sb.feedback_key
    headers = {header: key} if key is not None else {}
    url = path + ("?" + urlencode(params) if params else "")
    connection = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=timeout)
    try:
        connection.request("GET", url, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def people(sb: Sandbox, **params: Any) -> list[dict[str, Any]]:
    reply = get(sb, PEOPLE, params)
    assert reply.status == 200, reply.body
    return list(reply.json()["people"])


def all_pages(
    sb: Sandbox, path: str, envelope: str, offset_param: str = "offset", **params: Any
) -> list[Any]:
    """Every record of a paginated endpoint, paging by 100 until a short page."""
    records: list[Any] = []
    while True:
        reply = get(sb, path, {"limit": 100, offset_param: len(records), **params})
        assert reply.status == 200, reply.body
        page = reply.json()[envelope]
        records.extend(page)
        if len(page) < 100:
            return records


def ids(records: list[dict[str, Any]]) -> list[Any]:
    return [r["id"] for r in records]


# -- shapes ------------------------------------------------------------------------------------


def test_health_and_urls(sb: Sandbox) -> None:
    assert get(sb, "/_control/health").json() == {"ok": True}
    assert sb.audience_base_url == sb.url + "/audience/v1"
    assert sb.feedback_base_url == sb.url + "/feedback"
    assert sb.env() == {
        "SOURCES__AUDIENCE__BASE_URL": sb.audience_base_url,
        "SOURCES__AUDIENCE__API_KEY": "sandbox-audience-key",
        "SOURCES__FEEDBACK__BASE_URL": sb.feedback_base_url,
        "SOURCES__FEEDBACK__API_KEY": "sandbox-feedback-key",
    }


def test_people_shape(sb: Sandbox) -> None:
    reply = get(sb, PEOPLE, {"limit": 100})
    assert reply.headers["content-type"].startswith("application/json")
    assert list(reply.json()) == ["people"]
    page = reply.json()["people"]
    for person in page:
        assert list(person) == PEOPLE_FIELDS
        assert str(uuid.UUID(person["id"])) == person["id"] and uuid.UUID(person["id"]).version == 4
        assert ISO.match(person["createdAt"]) and ISO.match(person["updatedAt"])
        assert person["lastActivity"] is None or ISO.match(person["lastActivity"])
        assert person["createdAt"] <= person["updatedAt"] < "2026"
        assert isinstance(person["leadScore"], int | float)
        assert isinstance(person["isEmailDisposable"], bool)
        assert isinstance(person["tags"], str) and " " not in person["tags"]
        assert person["name"] == f"{person['firstName']} {person['lastName']}"
    assert any("," in p["tags"] for p in page) and any(p["tags"] == "" for p in page)
    assert len(set(ids(page))) == 100


def test_generated_people_are_ordered_by_created_and_updated(sb: Sandbox) -> None:
    records = list(sb.data.records("peoples"))
    created = [p["createdAt"] for p in records]
    updated = [p["updatedAt"] for p in records]
    assert created == sorted(set(created)) and updated == sorted(set(updated))


def test_inlined_people_generator_matches_the_id_codec() -> None:
    generator = Generator(SandboxConfig(people=1_000_000, seed=3))
    sample = random.Random(0).sample(range(1_000_000), 200)
    for i, person in zip(sample, generator.people(sample), strict=True):
        assert person["id"] == generator.people_ids.uuid(i)
        assert generator.people_ids.uuid_index(person["id"]) == i
    assert generator.people_ids.uuid_index("not-a-uuid") is None


def test_audience_small_endpoint_shapes(sb: Sandbox) -> None:
    schemas = get(sb, "/audience/v1/schemas").json()["objects"]
    assert len(schemas) == CONFIG.schemas
    for schema in schemas:
        assert {"name", "displayNameSingular", "displayNamePlural", "fields", "associations"} <= set(schema)
        assert isinstance(schema["fields"], list) and isinstance(schema["associations"], list)

    accounts = get(sb, "/audience/v1/accounts").json()
    assert isinstance(accounts, list) and len(accounts) == CONFIG.accounts  # a bare array
    for account in accounts:
        assert isinstance(account["accountId"], int)
        assert {"name", "createdAt", "status", "timezone", "peopleCount"} <= set(account)
        # The real payload's credentials, top-level and nested, and a harmless look-alike flag.
        assert isinstance(account["apiKeys"], list) and all(
            k.startswith("ak_fake_") for k in account["apiKeys"]
        )
        assert account["writeKey"].startswith("wk_fake_") and account["webhookSeed"].startswith("ws_fake_")
        assert isinstance(account["hasStripeAPIKey"], bool)
        assert account["companyInfo"]["crm"]["accessToken"].startswith("tk_fake_")
        assert account["integrations"][0]["secretKey"].startswith("sk_fake_")

    tags = get(sb, "/audience/v1/tags-management").json()["tags"]
    assert len(tags) == CONFIG.account_tags
    assert all({"tag", "createdAt", "color", "description", "count"} <= set(t) for t in tags)

    segments = get(sb, "/audience/v1/segments").json()["segments"]
    assert [s["id"] for s in segments] == [1001, 1002, 1003]
    for segment in segments:
        assert {"name", "objectName", "accountId", "version", "readOnly", "autoSegment"} <= set(segment)
        assert isinstance(segment["conditions"]["conditions"], list)

    fields = get(sb, "/audience/v1/fields").json()["items"]
    assert len(fields) == CONFIG.fields
    for field in fields:
        assert field["type"] in {"string", "number", "boolean", "integer", "any"}
        assert {"name", "title", "format", "readOnly", "array", "enum"} <= set(field)


def test_segment_people_shape_and_membership(sb: Sandbox) -> None:
    members = all_pages(sb, "/audience/v1/segments/1001/people", "people")
    assert len(members) == CONFIG.members_per_segment
    assert all(list(p) == PEOPLE_FIELDS for p in members)
    assert ids(members) == sb.data.segment_members(1001)
    everyone = {p["id"]: p for p in sb.data.records("peoples")}
    assert all(everyone[p["id"]] == p for p in members)
    memberships = sb.data.memberships()
    assert len(memberships) == CONFIG.segments * CONFIG.members_per_segment
    per_person: dict[str, int] = {}
    for _, person_id in memberships:
        per_person[person_id] = per_person.get(person_id, 0) + 1
    assert max(per_person.values()) > 1  # a person is in several segments


def test_feedback_shapes(sb: Sandbox) -> None:
    bodies = {
        name: get(sb, f"/feedback/v1/{name}").json()
        for name in (
            "management/surveys",
            "management/action-classes",
            "management/attribute-classes",
            "management/people",
            "webhooks",
        )
    }
    assert all(list(body) == ["data"] for body in bodies.values())
    surveys = bodies["management/surveys"]["data"]
    assert len(surveys) == CONFIG.surveys
    for survey in surveys:
        assert CUID.match(survey["id"]) and survey["status"] in {"draft", "inProgress", "paused", "completed"}
        assert {"name", "type", "environmentId", "createdAt", "updatedAt"} <= set(survey)
        assert survey["questions"] and all("id" in q for q in survey["questions"])
    actions = bodies["management/action-classes"]["data"]
    assert [a["createdAt"] for a in actions] == sorted(a["createdAt"] for a in actions)
    assert all(a["type"] in {"code", "noCode", "automatic"} for a in actions)
    attributes = bodies["management/attribute-classes"]["data"]
    assert all(isinstance(a["archived"], bool) for a in attributes)
    identified = bodies["management/people"]["data"]
    assert len(identified) == CONFIG.identified_peoples
    assert all(isinstance(p["attributes"], dict) and p["userId"] for p in identified)
    webhooks = bodies["webhooks"]["data"]
    survey_ids = {s["id"] for s in surveys}
    for webhook in webhooks:
        assert webhook["url"].startswith("https://") and webhook["source"] and webhook["triggers"]
        assert set(webhook["surveyIds"]) <= survey_ids
    for body in bodies.values():
        for record in body["data"]:
            assert CUID.match(record["id"]) and ISO.match(record["createdAt"])


def test_responses_shape(sb: Sandbox) -> None:
    surveys = {s["id"]: s for s in get(sb, "/feedback/v1/management/surveys").json()["data"]}
    identified = {p["id"]: p["userId"] for p in get(sb, "/feedback/v1/management/people").json()["data"]}
    responses = get(sb, RESPONSES, {"limit": 100}).json()["data"]
    kinds: set[type] = set()
    for response in responses:
        assert CUID.match(response["id"]) and isinstance(response["finished"], bool)
        questions = {q["id"] for q in surveys[response["surveyId"]]["questions"]}
        assert set(response["data"]) <= questions and set(response["ttc"]) <= questions
        kinds.update(type(v) for v in response["data"].values())
        assert set(response["meta"]) == {"country", "userAgent"}
        assert set(response["meta"]["userAgent"]) == {"browser", "os", "device"}
        person = response["person"]
        assert person is None or identified[person["id"]] == person["userId"]
        assert isinstance(response["tags"], list) and isinstance(response["notes"], list)
        assert isinstance(response["variables"], dict)
    assert {int, str, list} <= kinds
    assert any(r["person"] is None for r in responses) and any(r["person"] for r in responses)


# -- auth and errors ---------------------------------------------------------------------------


def test_audience_auth(sb: Sandbox) -> None:
    unauthorized = {"error": {"message": "User not logged in: Unauthorized request: no authentication given"}}
    for key in (None, "wrong"):
        reply = get(sb, PEOPLE, key=key)
        assert (reply.status, reply.json()) == (401, unauthorized)
    assert get(sb, PEOPLE, {"api_key": sb.audience_key}, key=None).status == 401  # header only
    assert get(sb, PEOPLE, header="Authorization").status == 401
    assert get(sb, PEOPLE, header="API_KEY").status == 200  # header names are case-insensitive


def test_feedback_auth(sb: Sandbox) -> None:
    reply = get(sb, RESPONSES, key="wrong")
    assert reply.status == 401
    assert reply.json() == {"code": "not_authenticated", "message": "Not authenticated", "details": {}}
    assert get(sb, RESPONSES, key=None).status == 401
    assert get(sb, RESPONSES, {"api_key": sb.feedback_key}, key=None).status == 401
    assert get(sb, RESPONSES, header="api_key").status == 401  # the audience header name


def test_unknown_paths(sb: Sandbox) -> None:
    for path in ("/audience/v1/nope", "/audience/v1/segments/999/people", "/audience/v1/segments/x/people"):
        reply = get(sb, path)
        assert reply.status == 404 and reply.headers["content-type"].startswith("text/html")
        assert b"<html>" in reply.body
    reply = get(sb, "/feedback/v1/management/nope")
    assert reply.status == 404 and reply.json()["code"] == "not_found"
    assert get(sb, "/elsewhere").status == 404


def test_bad_paging_parameters(sb: Sandbox) -> None:
    for params in ({"limit": "abc"}, {"limit": 0}, {"offset": -1}, {"sort": "name"}, {"order": "up"}):
        reply = get(sb, PEOPLE, params)
        assert reply.status == 400 and "message" in reply.json()["error"]
    reply = get(sb, RESPONSES, {"skip": "x"})
    assert reply.status == 400 and reply.json()["code"] == "bad_request"


# -- paging ------------------------------------------------------------------------------------


def test_offset_paging(sb: Sandbox) -> None:
    expected = ids(list(sb.data.records("peoples")))
    assert ids(people(sb, limit=100, offset=0)) == expected[:100]
    assert ids(people(sb, limit=100, offset=200)) == expected[200:]  # short last page
    assert people(sb, limit=100, offset=250) == []
    assert people(sb, limit=100, offset=10_000) == []
    assert ids(people(sb, limit=7, offset=3)) == expected[3:10]
    assert len(people(sb, limit=1000)) == 100  # capped silently
    assert len(people(sb)) == 50  # default page size without limit
    assert ids(all_pages(sb, PEOPLE, "people")) == expected


def test_endpoints_that_do_not_page_answer_everything_whatever_the_query(sb: Sandbox) -> None:
    segments = get(sb, "/audience/v1/segments").json()["segments"]
    assert len(segments) == 3
    assert get(sb, "/audience/v1/segments", {"limit": 1, "offset": 1}).json()["segments"] == segments
    surveys = get(sb, "/feedback/v1/management/surveys").json()["data"]
    assert get(sb, "/feedback/v1/management/surveys", {"limit": 2, "skip": 1}).json()["data"] == surveys
    assert get(sb, "/audience/v1/accounts", {"limit": 2}).json() == get(sb, "/audience/v1/accounts").json()


def test_responses_newest_first_with_skip(sb: Sandbox) -> None:
    responses = all_pages(sb, RESPONSES, "data", offset_param="skip")
    assert len(responses) == CONFIG.responses
    created = [r["createdAt"] for r in responses]
    assert created == sorted(created, reverse=True) and len(set(created)) == len(created)
    assert responses == list(sb.data.records("responses"))
    assert get(sb, RESPONSES, {"limit": 5, "skip": 5}).json()["data"] == responses[5:10]
    # `offset` is not the feedback API's parameter: it is ignored.
    assert get(sb, RESPONSES, {"limit": 5, "offset": 5}).json()["data"] == responses[:5]
    assert get(sb, RESPONSES, {"limit": 5, "order": "asc"}).json()["data"] == responses[:5]


def test_people_sort_and_order(sb: Sandbox) -> None:
    expected = ids(list(sb.data.records("peoples")))
    assert ids(all_pages(sb, PEOPLE, "people", order="desc")) == expected[::-1]
    assert ids(all_pages(sb, PEOPLE, "people", sort="updatedAt")) == expected  # generated: same order
    changed = sb.data.update_people([expected[5], expected[0]])
    by_update = ids(all_pages(sb, PEOPLE, "people", sort="updatedAt"))
    assert by_update[-2:] == changed and len(by_update) == len(expected)
    newest_first = ids(all_pages(sb, PEOPLE, "people", sort="updatedAt", order="desc"))
    assert newest_first[:2] == changed[::-1]
    assert ids(all_pages(sb, PEOPLE, "people")) == expected  # createdAt order is unchanged


# -- mutations ---------------------------------------------------------------------------------


def test_update_people(sb: Sandbox) -> None:
    before = {p["id"]: p for p in sb.data.records("peoples")}
    newest = max(p["updatedAt"] for p in before.values())
    changed = sb.data.update_people(5)
    assert len(changed) == len(set(changed)) == 5
    served = {p["id"]: p for p in all_pages(sb, PEOPLE, "people")}
    stamps = []
    for person_id in changed:
        person = served[person_id]
        assert person["updatedAt"] > newest and person["createdAt"] == before[person_id]["createdAt"]
        assert ISO.match(person["updatedAt"])
        stamps.append(person["updatedAt"])
    assert stamps == sorted(set(stamps))  # strictly increasing, in the order of the changes
    assert sb.data.update_people([changed[0]]) == [changed[0]]
    assert sb.data.record("peoples", changed[0])["updatedAt"] > max(stamps)  # type: ignore[index]
    with pytest.raises(KeyError):
        sb.data.update_people(["no-such-id"])


def test_update_people_by_count_is_deterministic() -> None:
    picks = []
    for _ in range(2):
        with Sandbox(CONFIG) as sandbox:
            picks.append((sandbox.data.update_people(4), sandbox.data.delete_people(3)))
    assert picks[0] == picks[1]


def test_add_people_go_last(sb: Sandbox) -> None:
    newest = max(p["updatedAt"] for p in sb.data.records("peoples"))
    added = sb.data.add_people(3)
    served = all_pages(sb, PEOPLE, "people")
    assert len(served) == CONFIG.people + 3 and ids(served[-3:]) == added
    assert all(p["createdAt"] > newest and p["createdAt"] == p["updatedAt"] for p in served[-3:])
    assert len({p["userId"] for p in served}) == len(served)


def test_delete_people_keeps_offsets_consistent(sb: Sandbox) -> None:
    members_before = sb.data.segment_members(1001)
    deleted = sb.data.delete_people([members_before[0], members_before[50]])
    deleted += sb.data.delete_people(40)
    assert len(set(deleted)) == 42
    expected = ids(list(sb.data.records("peoples")))
    assert len(expected) == CONFIG.people - 42 == sb.data.count("peoples")
    assert ids(all_pages(sb, PEOPLE, "people")) == expected
    assert ids(all_pages(sb, PEOPLE, "people", order="desc")) == expected[::-1]
    for offset in (0, 37, 99, 150, 207):
        assert ids(people(sb, limit=13, offset=offset)) == expected[offset : offset + 13]
    members = ids(all_pages(sb, "/audience/v1/segments/1001/people", "people"))
    assert members == [m for m in members_before if m not in set(deleted)]
    assert not set(deleted) & {p for _, p in sb.data.memberships()}
    with pytest.raises(KeyError):
        sb.data.delete_people([deleted[0]])


def test_patch_record_type_drift_and_missing_key(sb: Sandbox) -> None:
    first, second = ids(people(sb, limit=2))
    patched = sb.data.patch_record("peoples", first, {"leadScore": "high", "newField": {"a": 1}})
    assert patched["leadScore"] == "high" and patched["newField"] == {"a": 1}
    served = people(sb, limit=2)[0]
    assert served == patched and served["updatedAt"] > "2026"
    sb.data.patch_record("peoples", second, remove_fields=["id"])
    assert "id" not in people(sb, limit=2)[1]
    assert sb.data.record("peoples", second) is None
    account = next(sb.data.records("accounts"))
    sb.data.patch_record("accounts", account["accountId"], {"accountId": str(account["accountId"])})
    assert get(sb, "/audience/v1/accounts").json()[0]["accountId"] == str(account["accountId"])
    survey = next(sb.data.records("surveys"))
    kept = sb.data.patch_record(
        "surveys", survey["id"], {"name": "x", "updatedAt": "2020-01-01T00:00:00.000Z"}
    )
    assert kept["updatedAt"] == "2020-01-01T00:00:00.000Z"  # set by the caller: not bumped
    with pytest.raises(ValueError):
        sb.data.patch_record("nothing", 1)


def test_add_raw_record(sb: Sandbox) -> None:
    duplicate = dict(people(sb, limit=1)[0])
    assert sb.data.add_raw_record("peoples", duplicate) == duplicate["id"]
    sb.data.add_raw_record("peoples", {"email": "no-id@example.com"})
    served = all_pages(sb, PEOPLE, "people")
    assert served[-2] == duplicate and served[-1] == {"email": "no-id@example.com"}
    sb.data.add_raw_record("responses", {"id": "raw", "createdAt": "2030-01-01T00:00:00.000Z"})
    assert get(sb, RESPONSES, {"limit": 1}).json()["data"][0]["id"] == "raw"
    sb.data.add_raw_record("segments", {"id": 5000, "name": "hand-made"})
    assert get(sb, "/audience/v1/segments/5000/people").json() == {"people": []}
    with pytest.raises(ValueError):
        sb.data.add_raw_record("segment_people", {})


def test_memberships_change(sb: Sandbox) -> None:
    before = sb.data.segment_members(1002)
    removed = sb.data.remove_memberships(1002, [before[3]]) + sb.data.remove_memberships(1002, 4)
    assert len(set(removed)) == 5 and set(removed) <= set(before)
    added = sb.data.add_memberships(1002, 6)
    assert len(set(added)) == 6 and not set(added) & set(before)
    extra = ids(people(sb, limit=1, offset=249))
    assert sb.data.add_memberships(1002, extra) == ([] if extra[0] in before else extra)
    expected = [p for p in before if p not in set(removed)] + added + [e for e in extra if e not in before]
    served = ids(all_pages(sb, "/audience/v1/segments/1002/people", "people"))
    assert served == expected == sb.data.segment_members(1002)
    assert sb.data.segment_members(1001) == ids(all_pages(sb, "/audience/v1/segments/1001/people", "people"))


def test_segments_add_delete_hide(sb: Sandbox) -> None:
    new_id = sb.data.add_segment()
    assert new_id == 1004
    assert [s["id"] for s in get(sb, "/audience/v1/segments").json()["segments"]] == [1001, 1002, 1003, 1004]
    assert len(all_pages(sb, "/audience/v1/segments/1004/people", "people")) == CONFIG.members_per_segment
    sb.data.delete_segment(1001)
    reply = get(sb, "/audience/v1/segments/1001/people")
    assert reply.status == 404 and reply.headers["content-type"].startswith("text/html")
    sb.data.hide_segment(1002)
    assert [s["id"] for s in get(sb, "/audience/v1/segments").json()["segments"]] == [1003, 1004]
    assert len(all_pages(sb, "/audience/v1/segments/1002/people", "people")) == CONFIG.members_per_segment
    assert {s for s, _ in sb.data.memberships()} == {1003, 1004}  # through the listed segments
    assert sb.data.count("segment_people") == 2 * CONFIG.members_per_segment
    with pytest.raises(KeyError):
        sb.data.delete_segment(1001)


def test_responses_add_and_update(sb: Sandbox) -> None:
    before = list(sb.data.records("responses"))
    added = sb.data.add_responses(2)
    served = all_pages(sb, RESPONSES, "data", offset_param="skip")
    assert ids(served[:2]) == added[::-1] and served[2:] == before
    updated = sb.data.update_responses(3)
    newest = ids(served[:100])
    assert set(updated) <= set(newest)
    after = all_pages(sb, RESPONSES, "data", offset_param="skip")
    assert ids(after) == ids(served)  # updates do not move responses
    by_id = {r["id"]: r for r in after}
    old = {r["id"]: r for r in served}
    for response_id in updated:
        assert by_id[response_id]["finished"] is True
        assert by_id[response_id]["createdAt"] == old[response_id]["createdAt"]
        assert by_id[response_id]["updatedAt"] > max(r["updatedAt"] for r in before)
    oldest = served[-1]["id"]
    assert sb.data.update_responses([oldest], recent=False) == [oldest]


def test_small_list_mutations(sb: Sandbox) -> None:
    for resource, path, envelope, key in (
        ("webhooks", "/feedback/v1/webhooks", "data", "id"),
        ("accounts", "/audience/v1/accounts", None, "accountId"),
        ("account_tags", "/audience/v1/tags-management", "tags", "tag"),
        ("schemas", "/audience/v1/schemas", "objects", "name"),
        ("fields", "/audience/v1/fields", "items", "name"),
        ("action_classes", "/feedback/v1/management/action-classes", "data", "id"),
    ):

        def served(path: str = path, envelope: str | None = envelope) -> list[dict[str, Any]]:
            body = get(sb, path).json()
            return list(body if envelope is None else body[envelope])

        before = served()
        new_key = sb.data.add_record(resource)
        assert served()[-1][key] == new_key and len(served()) == len(before) + 1
        changed = sb.data.update_record(resource, before[0][key])
        assert served()[0] == changed != before[0]
        if "updatedAt" in before[0]:
            assert changed["updatedAt"] > before[0]["updatedAt"]
        sb.data.delete_record(resource, before[1][key])
        assert [r[key] for r in served()] == [before[0][key]] + [r[key] for r in before[2:]] + [new_key]
        assert served() == list(sb.data.records(resource))
    actions = [a["createdAt"] for a in sb.data.records("action_classes")]
    assert actions == sorted(actions)


def test_truncate_and_reset(sb: Sandbox) -> None:
    sb.data.truncate("peoples", 120)
    assert len(all_pages(sb, PEOPLE, "people")) == 120 == sb.data.count("peoples")
    sb.data.truncate("segment_people", 10)
    assert len(all_pages(sb, "/audience/v1/segments/1001/people", "people")) == 10
    sb.data.truncate("webhooks", 1)
    assert len(get(sb, "/feedback/v1/webhooks").json()["data"]) == 1
    pristine = get(sb, PEOPLE, {"limit": 100}).body
    sb.data.update_people(10)
    sb.data.delete_segment(1002)
    sb.data.reset()
    assert len(all_pages(sb, PEOPLE, "people")) == CONFIG.people
    assert get(sb, PEOPLE, {"limit": 100}).body == pristine
    assert sb.data.count("segment_people") == CONFIG.segments * CONFIG.members_per_segment
    assert sb.data.count("webhooks") == CONFIG.webhooks


# -- faults, latency, rate limits ----------------------------------------------------------------


def test_status_fault_with_retry_after_is_consumed(sb: Sandbox) -> None:
    sb.inject_fault(PEOPLE, "status", times=2, status=503, retry_after=2)
    for _ in range(2):
        reply = get(sb, PEOPLE)
        assert reply.status == 503 and reply.headers["retry-after"] == "2"
        assert "message" in reply.json()["error"]
    assert get(sb, PEOPLE).status == 200
    assert sb.pending_faults() == []
    faults = [r["fault"] for r in sb.requests(path=PEOPLE)]
    assert faults == ["status", "status", None]


def test_status_fault_without_retry_after_on_a_middle_page(sb: Sandbox) -> None:
    sb.inject_fault(RESPONSES, "status", status=500, query={"skip": "100"})
    assert get(sb, RESPONSES, {"limit": 100, "skip": 0}).status == 200
    reply = get(sb, RESPONSES, {"limit": 100, "skip": 100})
    assert reply.status == 500 and "retry-after" not in reply.headers
    assert reply.json() == {
        "code": "internal_server_error",
        "message": "Internal Server Error",
        "details": {},
    }
    assert get(sb, RESPONSES, {"limit": 100, "skip": 100}).status == 200


def test_fault_prefix_match(sb: Sandbox) -> None:
    sb.inject_fault("/audience/v1/segments*", "status", times=2, status=502)
    assert get(sb, "/audience/v1/segments").status == 502
    assert get(sb, "/audience/v1/segments/1001/people").status == 502
    assert get(sb, "/audience/v1/segments/1001/people").status == 200
    sb.inject_fault(PEOPLE, "status", times=5, status=500)
    sb.clear_faults()
    assert get(sb, PEOPLE).status == 200


def test_reset_fault_breaks_the_connection(sb: Sandbox) -> None:
    sb.inject_fault(PEOPLE, "reset")
    with pytest.raises(ConnectionError):
        get(sb, PEOPLE)
    assert get(sb, PEOPLE).status == 200
    assert [(r["status"], r["fault"]) for r in sb.requests(path=PEOPLE)] == [(None, "reset"), (200, None)]


def test_latency_fault_outlasts_a_client_timeout(sb: Sandbox) -> None:
    sb.inject_fault(RESPONSES, "latency", delay=2.0)
    with pytest.raises(TimeoutError):
        get(sb, RESPONSES, timeout=0.2)
    assert get(sb, RESPONSES).status == 200


def test_malformed_json_and_html_error(sb: Sandbox) -> None:
    sb.inject_fault(PEOPLE, "malformed_json")
    reply = get(sb, PEOPLE, {"limit": 100})
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        reply.json()
    sb.inject_fault(RESPONSES, "html_error")
    reply = get(sb, RESPONSES)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    sb.inject_fault(RESPONSES, "html_error", status=502)
    reply = get(sb, RESPONSES)
    assert reply.status == 502 and b"502 Bad Gateway" in reply.body
    with pytest.raises(ValueError):
        sb.inject_fault(PEOPLE, "explode")
    with pytest.raises(ValueError):
        sb.inject_fault(PEOPLE, "status")  # needs a status


def test_rate_limit(sb: Sandbox) -> None:
    sb.set_rate_limit("feedback", 3, 60)
    assert [get(sb, RESPONSES).status for _ in range(3)] == [200, 200, 200]
    reply = get(sb, RESPONSES)
    assert reply.status == 429 and "retry-after" not in reply.headers
    assert reply.json()["code"] == "too_many_requests"
    assert get(sb, PEOPLE).status == 200  # per API
    sb.set_rate_limit("feedback", None)
    assert get(sb, RESPONSES).status == 200
    with pytest.raises(ValueError):
        sb.set_rate_limit("other", 1)


def test_paging_modes_of_an_endpoint() -> None:
    with Sandbox(SandboxConfig(seed=7, people=10, segments=150, members_per_segment=2), port=0) as sb:
        segments = "/audience/v1/segments"

        def ids_of(query: dict[str, Any]) -> list[int]:
            return [s["id"] for s in get(sb, segments, query).json()["segments"]]

        everything = [s["id"] for s in sb.data.records("segments")]
        assert len(everything) == 150 and ids_of({}) == everything  # documented as one page
        sb.set_paging("segments", "pages")
        assert ids_of({}) == everything[:100]  # at most 100 a page, 100 without `limit`
        assert ids_of({"limit": 100, "offset": 100}) == everything[100:]
        sb.set_paging("segments", "ignore")
        assert ids_of({"limit": 100, "offset": 100}) == everything
        sb.set_paging("segments", "ignore_first_page")
        assert ids_of({"limit": 100, "offset": 100}) == ids_of({"limit": 10}) == everything[:100]
        assert SandboxClient(sb.url).call("info")["paging"] == {"segments": "ignore_first_page"}
        SandboxClient(sb.url).call("set_paging", resource="segments", mode="default")
        assert ids_of({"limit": 100, "offset": 100}) == everything and sb.paging == {}
        sb.set_paging("segments", "ignore")
        sb.reset()
        assert ids_of({}) == everything
        with pytest.raises(ValueError):
            sb.set_paging("segments", "sideways")
        with pytest.raises(ValueError):
            sb.set_paging("nothing", "pages")


def test_global_latency_still_serves(sb: Sandbox) -> None:
    sb.set_latency(0.01)
    assert get(sb, PEOPLE).status == 200
    sb.set_latency(0)
    with pytest.raises(ValueError):
        sb.set_latency(-1)


# -- request log -------------------------------------------------------------------------------


def test_request_log_and_stats(sb: Sandbox) -> None:
    get(sb, PEOPLE, {"limit": 100, "offset": 200})
    get(sb, "/audience/v1/segments/1001/people", {"limit": 100})
    get(sb, RESPONSES, key="wrong")
    get(sb, "/_control/health")  # not an API request
    log = sb.requests()
    assert [(r["api"], r["path"], r["status"]) for r in log] == [
        ("audience", PEOPLE, 200),
        ("audience", "/audience/v1/segments/1001/people", 200),
        ("feedback", RESPONSES, 401),
    ]
    first = log[0]
    assert first["method"] == "GET" and first["query"] == {"limit": "100", "offset": "200"}
    assert first["headers"]["api_key"] == sb.audience_key and first["fault"] is None
    assert all(name == name.lower() for name in first["headers"])
    assert isinstance(first["time"], float)
    assert [r["path"] for r in sb.requests(api="feedback")] == [RESPONSES]
    assert len(sb.requests(path="/audience/v1/segments/*")) == 1
    stats = sb.stats()
    assert stats["total"] == 3
    assert stats["apis"]["audience"]["/segments/{id}/people"]["requests"] == 1
    assert stats["apis"]["feedback"]["/v1/management/responses"]["statuses"] == {"401": 1}
    sb.clear_requests()
    assert sb.requests() == [] and sb.stats()["total"] == 0


def test_request_log_is_capped() -> None:
    with Sandbox(SandboxConfig(people=10, request_log_size=3)) as sandbox:
        for _ in range(5):
            get(sandbox, PEOPLE)
        assert len(sandbox.requests()) == 3 and sandbox.stats()["total"] == 5


# -- control over HTTP -------------------------------------------------------------------------


def test_control_routes_dispatch_to_the_same_methods(sb: Sandbox) -> None:
    client = SandboxClient(sb.url)
    assert client.health() and client.call("info")["config"]["people"] == CONFIG.people
    changed = client.data.update_people(2)
    assert [p["id"] for p in people(sb, sort="updatedAt", order="desc", limit=2)] == changed[::-1]
    assert client.data_call("count", resource="peoples") == CONFIG.people
    assert [p["id"] for p in client.data_call("records", resource="peoples", limit=3)] == ids(
        people(sb, limit=3)
    )
    assert [tuple(m) for m in client.data_call("memberships")] == sb.data.memberships()
    assert client.data_call("records", resource="webhooks") == list(sb.data.records("webhooks"))
    first_pair = client.data_call("records", resource="segment_people", limit=1)[0]
    assert first_pair[0] == 1001
    client.call("inject_fault", path=PEOPLE, kind="status", status=503, query={"offset": "100"})
    assert client.call("pending_faults")[0]["status"] == 503
    assert get(sb, PEOPLE, {"offset": 100}).status == 503
    assert client.requests(api="audience")[-1]["status"] == 503
    assert client.stats()["total"] == sb.stats()["total"]
    client.call("set_rate_limit", api="audience", requests=0)
    assert get(sb, PEOPLE).status == 429
    client.call("reset")
    assert get(sb, PEOPLE).status == 200 and sb.data.count("peoples") == CONFIG.people
    with pytest.raises(KeyError):
        client.data.update_people(["missing"])
    with pytest.raises(ValueError):
        client.data_call("count", resource="nothing")
    with pytest.raises(ValueError):
        client.data_call("add_people", n="x")
    raw = http.client.HTTPConnection("127.0.0.1", sb.port)
    raw.request("POST", "/_control/data/__init__", body=b"{}")
    assert raw.getresponse().status == 404  # only the listed operations are reachable


@pytest.mark.slow
def test_command_line_and_remote_client() -> None:
    process = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "analytics_sandbox",
                "--port",
                "0",
                "--people",
                "300",
                "--seed",
                "7",
            ),
            *("--feedback-generation", "current", "--unlicensed"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(7)]
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", banner[0]).group(1)  # type: ignore[union-attr]
        exports = dict(re.findall(r"export (\w+)=(\S+)", "".join(banner)))
        assert exports["SOURCES__AUDIENCE__BASE_URL"] == url + "/audience/v1"
        client = SandboxClient(url)
        assert client.health() and client.call("info")["config"]["people"] == 300
        assert (client.call("info")["feedback_generation"], client.call("info")["feedback_licensed"]) == (
            "current",
            False,
        )
        added = client.data_call("add_people", n=2)
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        connection.request(
            "GET",
            "/audience/v1/people/all?limit=100&offset=202",
            headers={"api_key": exports["SOURCES__AUDIENCE__API_KEY"]},
        )
        page = json.loads(connection.getresponse().read())["people"]
        assert [p["id"] for p in page[-2:]] == added and len(page) == 100
        assert client.requests()[-1]["query"] == {"limit": "100", "offset": "202"}
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "Sandbox stopped." in out


def test_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "8.8.8.8"):
        with pytest.raises(ValueError):
            Sandbox(CONFIG, host=host)


# -- determinism and scale -----------------------------------------------------------------------


def test_same_seed_same_bytes() -> None:
    bodies = []
    for seed in (11, 11, 12):
        with Sandbox(SandboxConfig(seed=seed, people=300)) as sandbox:
            bodies.append(
                [
                    get(sandbox, path, params).body
                    for path, params in (
                        (PEOPLE, {"limit": 100, "offset": 100}),
                        (RESPONSES, {"limit": 100}),
                        ("/audience/v1/segments/1002/people", {"limit": 100}),
                        ("/feedback/v1/webhooks", None),
                        ("/audience/v1/accounts", None),
                    )
                ]
            )
    assert bodies[0] == bodies[1]
    assert all(a != b for a, b in zip(bodies[0], bodies[2], strict=True))


def test_a_million_people_without_building_them() -> None:
    config = SandboxConfig(people=1_000_000, segments=2, members_per_segment=1000)
    with Sandbox(config) as sandbox:
        last = people(sandbox, limit=100, offset=999_900)
        assert len(last) == 100 and last[-1]["userId"] == "user_0999999"
        assert last[-1]["id"] == sandbox.data.generator.people_ids.uuid(999_999)
        assert len(people(sandbox, limit=100, offset=999_950)) == 50
        assert people(sandbox, limit=100, offset=1_000_000) == []
        assert sandbox.data.count("peoples") == 1_000_000
        a, b, m = sandbox.data.generator.segment_members(0)
        expected = [sandbox.data.generator.people_ids.uuid((a + j * b) % 1_000_000) for j in range(900, 1000)]
        assert (
            ids(
                get(sandbox, "/audience/v1/segments/1001/people", {"limit": 100, "offset": 900}).json()[
                    "people"
                ]
            )
            == expected
        )
        assert m == 1000
        deleted = sandbox.data.delete_people(1000)
        assert sandbox.data.count("peoples") == 999_000
        assert len(people(sandbox, limit=100, offset=998_950)) == 50
        assert not set(deleted) & set(ids(people(sandbox, limit=100, offset=500_000)))
        assert sandbox.data._people.replaced == {}  # nothing was materialised


# -- building blocks ---------------------------------------------------------------------------


def test_range_with_holes_matches_a_list() -> None:
    rng = random.Random(5)
    for _ in range(500):
        size = rng.randint(0, 40)
        holes = sorted(rng.sample(range(size), rng.randint(0, size)))
        kept = [v for v in range(size) if v not in set(holes)]
        seq = RangeWithHoles(size, holes)
        start, stop = rng.randint(-2, size + 2), rng.randint(-2, size + 4)
        assert len(seq) == len(kept) and seq.slice(start, stop) == kept[max(start, 0) : max(stop, 0)]


def test_concurrent_reads_during_mutations(sb: Sandbox) -> None:
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(15):
                all_pages(sb, PEOPLE, "people")
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for _ in range(20):
        sb.data.update_people(3)
        sb.data.add_people(1)
        sb.data.delete_people(1)
    for thread in readers:
        thread.join()
    assert errors == []


def test_stop_closes_keep_alive_connections() -> None:
    sandbox = Sandbox(CONFIG).start()
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    connection.request("GET", PEOPLE, headers={"api_key": sandbox.audience_key})
    assert connection.getresponse().read()
    sandbox.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request("GET", PEOPLE, headers={"api_key": sandbox.audience_key})
        connection.getresponse().read()
    assert not sandbox.running


# -- feedback API generations ------------------------------------------------------------------

FEEDBACK = "/feedback/v1/management"
CONTACT_FIELDS = ["id", "createdAt", "updatedAt", "workspaceId"]
ATTRIBUTE_KEY_FIELDS = [
    "id",
    "createdAt",
    "updatedAt",
    "isUnique",
    "key",
    "name",
    "description",
    "type",
    "dataType",
    "workspaceId",
]
UNLICENSED = {
    "code": "forbidden",
    "message": "Contacts are only enabled for Enterprise Edition, please upgrade.",
    "details": {},
}


def test_seed_generation_is_the_default(sb: Sandbox) -> None:
    assert sb.info()["feedback_generation"] == "seed" and sb.info()["feedback_licensed"] is True
    assert get(sb, f"{FEEDBACK}/people").status == 200
    for path in ("contacts", "contact-attribute-keys"):  # not there yet: the API's own JSON 404
        reply = get(sb, f"{FEEDBACK}/{path}")
        assert (reply.status, reply.json()["code"]) == (404, "not_found")


def test_current_generation_serves_contacts_instead_of_people() -> None:
    config = dataclasses.replace(CONFIG, feedback_generation="current")
    with Sandbox(config) as sb:
        for legacy in ("people", "attribute-classes"):
            reply = get(sb, f"{FEEDBACK}/{legacy}")
            assert reply.status == 404 and reply.headers["content-type"].startswith("text/html")
            assert b"This page could not be found" in reply.body
        contacts = get(sb, f"{FEEDBACK}/contacts").json()["data"]
        assert [list(c) for c in contacts] == [CONTACT_FIELDS] * CONFIG.identified_peoples
        # Contact ids are the former people ids.
        assert ids(contacts) == [p["id"] for p in sb.data.records("identified_peoples")]
        assert contacts == list(sb.data.records("contacts"))
        keys = get(sb, f"{FEEDBACK}/contact-attribute-keys").json()["data"]
        assert [list(k) for k in keys] == [ATTRIBUTE_KEY_FIELDS] * CONFIG.attribute_classes
        assert ids(keys) == [a["id"] for a in sb.data.records("attribute_classes")]
        assert keys == list(sb.data.records("contact_attribute_keys"))
        assert {k["type"] for k in keys} == {"default", "custom"}
        assert [k["key"] for k in keys if k["isUnique"]] == ["userId", "email"]
        for record in contacts + keys:
            assert (
                CUID.match(record["id"])
                and ISO.match(record["updatedAt"])
                and CUID.match(record["workspaceId"])
            )
        # Answered whole, without paging, like the other small lists, whatever limit/skip say.
        assert get(sb, f"{FEEDBACK}/contacts", {"limit": 5, "skip": 3}).json()["data"] == contacts
        assert get(sb, f"{FEEDBACK}/contact-attribute-keys", {"skip": 4}).json()["data"] == keys
        # One set of records: a change through either name shows in both.
        added = sb.data.add_record("contacts")
        sb.data.delete_record("identified_peoples", contacts[0]["id"])
        updated = sb.data.update_record("contact_attribute_keys", keys[1]["id"])
        assert list(updated) == ATTRIBUTE_KEY_FIELDS and updated["updatedAt"] > keys[1]["updatedAt"]
        served = get(sb, f"{FEEDBACK}/contacts").json()["data"]
        assert ids(served) == [*ids(contacts)[1:], added] and sb.data.count("contacts") == len(served)
        assert sb.data.record("contact_attribute_keys", keys[1]["id"]) == updated
        assert get(sb, f"{FEEDBACK}/surveys").status == 200 and get(sb, RESPONSES).status == 200
        assert get(sb, f"{FEEDBACK}/contacts", key="wrong").status == 401  # the key first, then the licence
        assert sb.stats()["apis"]["feedback"]["/v1/management/contacts"]["statuses"] == {"200": 3, "401": 1}


def test_unlicensed_current_generation_answers_403() -> None:
    config = dataclasses.replace(CONFIG, feedback_generation="current", feedback_licensed=False)
    with Sandbox(config) as sb:
        for path in ("contacts", "contact-attribute-keys"):
            reply = get(sb, f"{FEEDBACK}/{path}", {"limit": 1})
            assert (reply.status, reply.json()) == (403, UNLICENSED)
        assert get(sb, f"{FEEDBACK}/people").status == 404
        assert get(sb, f"{FEEDBACK}/webhooks".replace("/management", "")).status == 200
        assert get(sb, f"{FEEDBACK}/action-classes").status == 200


def test_feedback_generation_switches_at_run_time(sb: Sandbox) -> None:
    client = SandboxClient(sb.url)
    assert client.call("set_feedback_generation", generation="current") == {
        "feedback_generation": "current",
        "feedback_licensed": True,
    }
    assert get(sb, f"{FEEDBACK}/contacts").status == 200 and get(sb, f"{FEEDBACK}/people").status == 404
    client.call("set_feedback_generation", generation="current", licensed=False)
    assert get(sb, f"{FEEDBACK}/contacts").json() == UNLICENSED
    sb.set_feedback_generation("seed")
    assert get(sb, f"{FEEDBACK}/people").status == 200 and sb.info()["feedback_licensed"] is False
    client.call("set_feedback_generation", generation="current")  # licensed is kept when not given
    assert get(sb, f"{FEEDBACK}/contact-attribute-keys").status == 403
    with pytest.raises(ValueError):
        client.call("set_feedback_generation", generation="v2")
    with pytest.raises(ValueError):
        SandboxConfig(feedback_generation="next")
    client.call("reset")  # back to the config's generation
    assert (
        client.call("info")["feedback_generation"] == "seed" and get(sb, f"{FEEDBACK}/people").status == 200
    )
