"""`field_rules` and `personal_data`: the keyed hash, the fields hashed and dropped in a page, the settings
checked against the catalog, and what a change of them means (no run, no network)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_assets.reading.field_rules import FieldRules, FieldStep, Hasher
from analytics_assets.reading.personal_data import (
    EXCLUDED_SETTING,
    HASHED_SETTING,
    KEY_SETTING,
    PersonalDataSettingError,
    PersonalDataSwitchError,
    change_warning,
    form_change,
    personal_data,
)

KEY = "unit-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (HASHED_SETTING, EXCLUDED_SETTING, KEY_SETTING):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("key", [KEY, "k" * 64, "long-" * 30, "clé-ünïcode-0123456789"])
def test_the_hash_is_hmac_sha256_hex_of_the_value(key: str) -> None:
    hasher = Hasher(key)
    for value in ("ada.lovelace.1@example.com", "", "ünïcode"):
        assert hasher.hash(value) == hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
    # Another value than a string: its compact JSON, keys sorted (one hash for one value, whatever its order).
    assert hasher.hash(42) == hmac.new(key.encode(), b"42", hashlib.sha256).hexdigest()
    assert hasher.hash({"b": 1, "a": [True]}) == hasher.hash({"a": [True], "b": 1})
    assert key not in repr(hasher) and key not in repr(FieldRules(hashed=(("email",),), hasher=hasher))
    assert Hasher(key).fingerprint() == hasher.fingerprint() != Hasher(key + "x").fingerprint()


def page() -> list[dict[str, Any]]:
    return [
        {"id": "p1", "email": "a@example.com", "firstName": "Ada", "attributes": {"email": "a@example.com"}},
        {"id": "p2", "email": None, "firstName": "Alan", "attributes": {"plan": "pro"}},
        {"id": "p3", "email": "a@example.com", "notes": [{"text": "call Ada", "id": 1}, {"id": 2}]},
    ]


def test_a_step_hashes_and_drops_fields_at_any_depth_and_in_lists() -> None:
    hasher = Hasher(KEY)
    rules = FieldRules(
        hashed=(("email",), ("attributes", "email")),
        excluded=(("firstName",), ("notes", "text")),
        hasher=hasher,
    )
    rows = FieldStep(rules, record_form=False)(page())
    digest = hasher.hash("a@example.com")
    assert rows == [
        {"id": "p1", "email": digest, "attributes": {"email": digest}},
        {"id": "p2", "email": None, "attributes": {"plan": "pro"}},  # null stays null
        {"id": "p3", "email": digest, "notes": [{"id": 1}, {"id": 2}]},
    ]
    # One record at a time (what a step may be handed) is the same; no rules: nothing changes.
    assert FieldStep(rules, record_form=False)(page()[0]) == rows[0]
    assert FieldStep(FieldRules(), record_form=False)(page()) == page()


def test_a_column_of_objects_is_hashed_value_by_value() -> None:
    hasher = Hasher(KEY)
    rows = [{"meta": {"country": "DE"}}, {"meta": ["x"]}, {"meta": "DE"}]
    FieldStep(FieldRules(hashed=(("meta",),), hasher=hasher), record_form=False)(rows)
    assert [r["meta"] for r in rows] == [
        hasher.hash({"country": "DE"}),
        hasher.hash(["x"]),
        hasher.hash("DE"),
    ]


def test_the_settings_are_read_per_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        HASHED_SETTING, " audience.peoples.email, feedback.identified_peoples.attributes.email,"
    )
    monkeypatch.setenv(EXCLUDED_SETTING, "audience.peoples.firstName,feedback.responses.person.userId")
    monkeypatch.setenv(KEY_SETTING, KEY)
    settings = personal_data()
    assert settings.rules("audience", "peoples").hashed == (("email",),)
    assert settings.rules("audience", "peoples").excluded == (("firstName",),)
    assert settings.rules("feedback", "identified_peoples").hashed == (("attributes", "email"),)
    assert settings.rules("feedback", "responses").excluded == (("person", "userId"),)
    assert not settings.rules("audience", "accounts")
    assert settings.is_hashed("audience", "peoples", "email")
    assert not settings.is_hashed("audience", "segment_people", "email")
    assert settings.excluded_columns("feedback", "responses") == {"person__user_id"}
    assert KEY not in repr(settings)
    described = settings.describe("audience", "peoples", {"email": "The email.", "firstName": "First."})
    assert described == {"email": f"The email. {described['email'][11:]}"} and "Hashed" in described["email"]
    inside = settings.describe("feedback", "identified_peoples", {"attributes": "As JSON."})
    assert "`email` is hashed" in inside["attributes"]


@pytest.mark.parametrize(
    ("setting", "entry", "says"),
    [
        (HASHED_SETTING, "audience.peoples", "not <dataset>.<table>.<field>"),
        (HASHED_SETTING, "audience..email", "not <dataset>.<table>.<field>"),
        (HASHED_SETTING, "audiences.peoples.email", "loads no dataset audiences: one of audience, feedback"),
        (HASHED_SETTING, "audience.people.email", "audience has no table people: one of"),
        (EXCLUDED_SETTING, "audience.peoples.emial", "knows no field emial in audience.peoples"),
        (EXCLUDED_SETTING, "feedback.responses.person.name", "knows no field person.name"),
        (EXCLUDED_SETTING, "audience.peoples.id", "primary key of audience.peoples"),
        (EXCLUDED_SETTING, "audience.accounts.accountId", "primary key of audience.accounts"),
        (HASHED_SETTING, "audience.peoples.updatedAt", "the sync's cursor"),
        (EXCLUDED_SETTING, "feedback.responses.createdAt", "the sync's cursor"),
        (HASHED_SETTING, "audience.segments.id", "requests of segment_people are made with"),
        (HASHED_SETTING, "audience.segment_people.segment_id", "the loader adds it"),
    ],
)
def test_an_entry_that_cannot_be_is_refused_naming_the_setting_and_the_entry(
    monkeypatch: pytest.MonkeyPatch, setting: str, entry: str, says: str
) -> None:
    monkeypatch.setenv(setting, f"audience.peoples.lastName,{entry}")
    monkeypatch.setenv(KEY_SETTING, KEY)
    with pytest.raises(PersonalDataSettingError, match=f"^{setting} lists {entry}, ") as refused:
        personal_data()
    assert says in str(refused.value)


def test_fields_anywhere_in_a_json_column_and_hashed_keys_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        HASHED_SETTING, "audience.peoples.id,audience.segment_people.id,feedback.responses.data.q1"
    )
    monkeypatch.setenv(EXCLUDED_SETTING, "feedback.responses.variables.plan,audience.accounts.companyInfo")
    monkeypatch.setenv(KEY_SETTING, KEY)
    assert personal_data().rules("feedback", "responses").hashed == (("data", "q1"),)


def test_hashed_fields_need_a_long_enough_key_and_a_field_is_hashed_or_excluded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HASHED_SETTING, "audience.peoples.email")
    with pytest.raises(PersonalDataSettingError, match=f"{KEY_SETTING} is not set"):
        personal_data()
    assert personal_data(require_key=False).is_hashed("audience", "peoples", "email")  # what a check asks
    monkeypatch.setenv(KEY_SETTING, "short-secret")
    with pytest.raises(PersonalDataSettingError, match="shorter than 16") as short:
        personal_data()
    assert "short-secret" not in str(short.value)
    monkeypatch.setenv(KEY_SETTING, KEY)
    monkeypatch.setenv(EXCLUDED_SETTING, "audience.peoples.email")
    with pytest.raises(PersonalDataSettingError, match=r"both list audience\.peoples\.email"):
        personal_data()
    monkeypatch.delenv(HASHED_SETTING)
    monkeypatch.delenv(KEY_SETTING)
    assert personal_data().rules("audience", "peoples").excluded == (("email",),)  # no key needed


def test_a_change_since_the_last_load_is_said_and_a_key_change_needs_a_refresh() -> None:
    hasher = Hasher(KEY)
    before = FieldRules(hashed=(("email",),), excluded=(("firstName",),), hasher=hasher).form()
    same = FieldRules(hashed=(("email",),), excluded=(("firstName",),), hasher=Hasher(KEY))
    assert form_change("audience", "peoples", before, same, ("id",)) is None
    assert form_change("audience", "peoples", None, same, ("id",)) is None  # a table not loaded yet
    other_key = FieldRules(hashed=(("email",), ("userId",)), hasher=Hasher(KEY + "2"))
    said = form_change("audience", "peoples", before, other_key, ("id",))
    assert said == (
        "audience.peoples (userId now hashed; email hashed with another ANALYTICS_HASH_KEY;"
        " firstName no longer excluded (loaded again from this run on))"
    )
    assert "audience_full_refresh" in change_warning({"audience": [said]})
    with pytest.raises(
        PersonalDataSwitchError, match=r"its key id is written in another form.*audience_full_refresh"
    ):
        form_change("audience", "peoples", before, FieldRules(hashed=(("id",),), hasher=hasher), ("id",))
    with pytest.raises(PersonalDataSwitchError, match="accountId"):
        form_change(
            "audience",
            "accounts",
            FieldRules(hashed=(("accountId",),), hasher=hasher).form(),
            FieldRules(),
            ("account_id",),
        )
    # A table loaded before any rule was recorded: the form without rules.
    assert form_change("audience", "peoples", FieldRules().form(), FieldRules(), ("id",)) is None


def test_the_form_is_noted_in_the_resources_state_only_once_it_has_rules(tmp_path: Path) -> None:
    def extract(rules: FieldRules) -> dict[str, Any]:
        @dlt.resource(name="peoples")
        def peoples() -> Any:
            yield [{"id": "p1", "email": "a@example.com"}]

        resource = peoples()
        resource.add_step(FieldStep(rules))
        pipeline = dlt.pipeline("form_state", pipelines_dir=str(tmp_path))
        pipeline.extract(dlt.source(lambda: [resource], name="form_state")())
        resources = (pipeline.state.get("sources") or {}).get("form_state", {}).get("resources", {})
        return dict(resources.get("peoples") or {})

    assert extract(FieldRules()) == {}  # no rules, none before: the state is left alone
    hashed = FieldRules(hashed=(("email",),), hasher=Hasher(KEY))
    assert extract(hashed) == {"personal_data": hashed.form()}
    assert extract(FieldRules()) == {"personal_data": FieldRules().form()}  # the rules were removed
