"""Records as people fill them: what a survey answer, a CRM custom field or a contact attribute can hold,
served as JSON by a small local API, read by the project's own dlt sources (transport, resource steps,
Arrow pages) and loaded by a plain dlt pipeline into a DuckDB file.

The model: a form (field names as people choose them: any case, spaces, dots, accents, names that meet
after normalization) whose fields hold values of one kind each (text with any character, lone
surrogates and NUL included; integers of any size; doubles, long decimals and huge exponents; booleans;
objects and lists several levels deep), in the places both APIs leave to their users: the custom fields
of a person, a response's `data`, `meta` and `variables`, a contact's `attributes`.

Properties: every record served is loaded; no value is lost (each value the API served is found in the
warehouse, in the form the README's table of odd values names); two fields never share a column; the
same records load the same way twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt
import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics_assets.reading import transport
from analytics_assets.reading.audience import columns as audience_columns
from analytics_assets.reading.audience.source import audience
from analytics_assets.reading.feedback.source import feedback
from analytics_assets.reading.odd_values import OddValues, OddValuesStep, name_tag
from analytics_assets.reading.transport import NumberText

# --- the local API ---------------------------------------------------------------------------------


class LocalApi:
    """Serves JSON text per path, paged by `limit` and `offset`/`skip` like both APIs; the text is
    written by `to_json`, so lone surrogates, NUL, big integers and long decimals reach the loader as
    an API sends them."""

    def __init__(self) -> None:
        self.lists: dict[str, tuple[str | None, list[Any]]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                envelope, records = api.lists.get(parts.path, (None, []))
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                start = int(query.get("offset", query.get("skip", 0)))
                page = records[start : start + int(query.get("limit", len(records) or 1))]
                body = to_json(page if envelope is None else {envelope: page}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def to_json(value: Any) -> str:
    """JSON text as an API writes it: `Decimal` as its digits (a long decimal, `1e400`), strings with
    `\\u` escapes for what is not printable ASCII (a lone surrogate stays a lone `\\ud83d`)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture(scope="module")
def local_api() -> Iterator[LocalApi]:
    api = LocalApi()
    yield api
    api.close()


# --- the model -------------------------------------------------------------------------------------

MEETING_NAMES = (
    "leadScore", "lead_score", "LeadScore", "Email", "email", "EMAIL", "Company Name", "company_name",
    "company.name", "company__name", "Café", "cafx", "a.b", "a_b", "x\ud83d", "x\ud83e", "", " ", "_dlt_id",
    "value", "id",
)  # fmt: skip
"""Names that meet in one column under dlt's `snake_case` (or one of dlt's own columns)."""
ODD_TEXTS = (
    "\ud83d", "cut emoji \ud83d", "\udc00 low", "a\x00b", "\x00", "\x01\x1f\x7f", "😀🎉", "שלום עולם",
    "مرحبا", "\u202eevil", "\ufeffbom", "\ufffd", "e\u0301", "🏳️‍🌈",
)  # fmt: skip
BIG_INTEGERS = (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**70, -(2**70), 10**40)
DECIMALS = (
    Decimal("0.12345678901234567890123"), Decimal("123456789012345678901234567890.5"), Decimal("1e400"),
    Decimal("-1E+400"), Decimal("1e-400"), Decimal("3.0"),
)  # fmt: skip

names = st.one_of(
    st.sampled_from(MEETING_NAMES),
    st.text(st.sampled_from("aAbBzZ _.-éÉñ0\u05d0"), min_size=1, max_size=8),
)
texts = st.one_of(
    st.sampled_from(ODD_TEXTS),
    st.text(st.characters(codec=None, categories=None), max_size=12),  # any code point, surrogates too
    st.builds(lambda c, n: c * n, st.sampled_from("xé😀\x00"), st.integers(5_000, 20_000)),
)
integers = st.one_of(st.sampled_from(BIG_INTEGERS), st.integers())
doubles = st.one_of(st.sampled_from(DECIMALS), st.floats(allow_nan=False, allow_infinity=False))

Kind = Any
"""A field's kind: "text", "int", "float", "bool", ("object", {name: kind}) or ("list", kind)."""

kinds: st.SearchStrategy[Kind] = st.recursive(
    st.sampled_from(["text", "int", "float", "bool"]),
    lambda inner: st.one_of(
        st.tuples(st.just("object"), st.dictionaries(names, inner, min_size=1, max_size=3)),
        st.tuples(st.just("list"), inner),
    ),
    max_leaves=6,
)
forms = st.dictionaries(names, kinds, min_size=1, max_size=5)
"""What the people of one account can fill: each field with one kind (a custom field's type)."""


def values_of(kind: Kind) -> st.SearchStrategy[Any]:
    """What a person may put into a field of `kind` (or leave empty)."""
    if kind == "text":
        scalar: st.SearchStrategy[Any] = texts
    elif kind == "int":
        scalar = integers
    elif kind == "float":
        scalar = doubles
    elif kind == "bool":
        scalar = st.booleans()
    elif kind[0] == "object":
        scalar = st.fixed_dictionaries({}, optional={k: values_of(v) for k, v in kind[1].items()})
    else:
        scalar = st.lists(values_of(kind[1]), max_size=3)
    return st.one_of(st.none(), scalar) if kind in ("text", "int") else scalar


@st.composite
def filled(draw: st.DrawFn, form: Mapping[str, Kind], at_least: int = 1) -> list[dict[str, Any]]:
    """Records filled in on one form: each field present or not, its value of the field's kind."""
    fields = st.fixed_dictionaries({}, optional={name: values_of(kind) for name, kind in form.items()})
    return draw(st.lists(fields, min_size=at_least, max_size=4))


# --- the endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """An endpoint whose records carry fields people fill, and how the loader is asked to read it."""

    api: str
    resource: str
    path: str
    envelope: str | None
    wrap: Callable[[int, dict[str, Any]], dict[str, Any]]
    """The API's own fields of record `i` around what people filled."""
    own: tuple[str, ...]
    """Columns of the API's own fields (compared apart: timestamps, ids)."""
    json_columns: tuple[str, ...] = ()


STAMP = "2026-03-0{d}T10:00:00.000Z"


def person(i: int, custom: dict[str, Any]) -> dict[str, Any]:
    own = {
        "id": f"p-{i}",
        "email": f"p{i}@example.com",
        "leadScore": 40 + i,
        "updatedAt": STAMP.format(d=i % 9 + 1),
    }
    return {**own, **{k: v for k, v in custom.items() if k not in own}}


def response(i: int, answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"r-{i}",
        "createdAt": STAMP.format(d=9 - i % 9),  # newest first, as the API serves them
        "surveyId": "s-1",
        "finished": True,
        "data": answers,
        # `meta` is flattened into columns (`meta__country`), `data` and `variables` are JSON columns.
        "meta": {"country": "DE", **{k: v for k, v in answers.items() if k != "country"}},
        "variables": {"v": answers, "n": i},
    }


def contact(i: int, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"c-{i}", "userId": f"u{i}", "attributes": attributes}


PEOPLES = Endpoint(
    "audience", "peoples", "/v1/people/all", "people", person, ("id", "email", "lead_score", "updated_at")
)
RESPONSES = Endpoint(
    "feedback", "responses", "/v1/management/responses", "data", response,
    ("id", "created_at", "survey_id", "finished", "meta__country"), ("data", "variables"),
)  # fmt: skip
CONTACTS = Endpoint(
    "feedback",
    "identified_peoples",
    "/v1/management/people",
    "data",
    contact,
    ("id", "user_id"),
    ("attributes",),
)


# --- what the warehouse holds ----------------------------------------------------------------------

Leaf = tuple[str, str]
"""A value as text with its JSON kind: a value read back from any column type compares with the one served."""


def _leaf(value: Any) -> Leaf:
    if isinstance(value, bool):
        return ("bool", str(value))
    if isinstance(value, float):
        return ("number", repr(value))
    if isinstance(value, int):
        return ("number", str(value))
    return ("text", str(value))


def served_leaves(value: Any) -> Counter[Leaf]:
    """What a served value should be stored as, by the README's table of odd values: text with lone
    surrogates and NUL replaced by U+FFFD; integers beyond 64 bits and numbers beyond a double as the
    digits served (text); other numbers as doubles; every value of an object or list, none dropped."""
    found: Counter[Leaf] = Counter()
    if isinstance(value, dict):
        for v in value.values():
            found += served_leaves(v)
    elif isinstance(value, list):
        for v in value:
            found += served_leaves(v)
    elif isinstance(value, str):
        found[
            ("text", "".join("\ufffd" if "\ud800" <= c <= "\udfff" or c == "\x00" else c for c in value))
        ] += 1
    elif isinstance(value, bool):
        found[_leaf(value)] += 1
    elif isinstance(value, int):
        found[_leaf(value) if -(2**63) <= value < 2**63 else ("text", str(value))] += 1
    elif isinstance(value, Decimal):
        number = float(value)
        found[("text", str(value)) if number in (float("inf"), float("-inf")) else _leaf(number)] += 1
    elif value is not None:
        found[_leaf(value)] += 1
    return found


def stored_leaves(value: Any, json_column: bool) -> Counter[Leaf]:
    if value is None:
        return Counter()
    if json_column:
        parsed = json.loads(value) if isinstance(value, str) else value
        return served_leaves(
            parsed
        )  # JSON as stored holds no surrogate nor NUL (json.loads of `\u0000` aside)
    return Counter([_leaf(value)])


DLT_OWN = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_root_id"}


def warehouse_records(
    pipeline: dlt.Pipeline, resource: str, timestamps: set[str]
) -> dict[Any, Counter[Leaf]]:
    """Every value the warehouse holds per record (by its `id`): its row's columns, its JSON columns'
    values and the rows of its child tables; dlt's own columns and the API's timestamps left out."""
    schema = pipeline.default_schema
    path = pipeline.destination_client().config.credentials.database  # type: ignore[attr-defined]
    tables = [t for t in schema.data_table_names() if t == resource or t.startswith(f"{resource}__")]
    found: dict[Any, Counter[Leaf]] = {}
    with duckdb.connect(path, read_only=True) as conn:
        ids: dict[str, Any] = {}
        for table in tables:
            columns = schema.tables[table]["columns"]
            names = [c for c in columns if c not in DLT_OWN and c not in timestamps]
            root = table == resource
            key = "_dlt_id" if root else "_dlt_root_id"
            select = ", ".join(f'"{c}"' for c in [key, *names] + (["id"] if root else []))
            for row in conn.sql(f'select {select} from "{pipeline.dataset_name}"."{table}"').fetchall():
                record = ids.setdefault(row[0], row[-1]) if root else ids[row[0]]
                leaves = found.setdefault(record, Counter())
                for name, value in zip(names, row[1 : len(names) + 1], strict=True):
                    leaves += stored_leaves(value, columns[name].get("data_type") == "json")
    return found


_runs = count()


def load(
    local_api: LocalApi,
    endpoint: Endpoint,
    records: list[dict[str, Any]],
    where: Path,
    pipeline: dlt.Pipeline | None = None,
    full_scan: bool = False,
) -> dlt.Pipeline:
    """Serve `records` and load them with the project's source of `endpoint` through a plain dlt pipeline
    into a DuckDB file (a new one, or `pipeline`'s again)."""
    local_api.lists[endpoint.path] = (endpoint.envelope, records)
    if pipeline is None:
        n = next(_runs)
        pipeline = dlt.pipeline(
            f"odd_values_{n}",
            pipelines_dir=str(where / "dlt"),
            destination=dlt.destinations.duckdb(str(where / f"w{n}.duckdb")),
            dataset_name=endpoint.api,
        )
    if endpoint.api == "audience":
        source = audience(
            base_url=f"{local_api.url}/v1", api_key="k", page_concurrency=1, full_scan=full_scan
        )
    else:
        source = feedback(
            base_url=local_api.url,
            api_key="k",
            page_concurrency=1,
            requests_per_minute=None,
            full_scan=full_scan,
        )
    pipeline.run(source.with_resources(endpoint.resource))
    return pipeline


ENDPOINTS = {
    "peoples": (PEOPLES, {"updated_at"}),
    "responses": (RESPONSES, {"created_at"}),
    "identified_peoples": (CONTACTS, set()),
}


@st.composite
def answers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """What the people of one account filled in on one form (custom fields, answers, attributes)."""
    return draw(filled(draw(forms)))


FOUND = [
    # Found by Hypothesis on the code before odd values were made storable, minimal as printed (kept).
    [{"lead_score": None}],  # peoples: the API's leadScore (40) lost to a custom field's null
    [{"lead_score": "\ud83d"}],  # a lone surrogate: the endpoint failed at extract
    # A blank field name failed Arrow pages; 2**63 is beyond a signed 64-bit integer.
    [{"cafx": -(2**63), "": {"Company Name": None, "company__name": "\U000e1894\t", "a_b": 2**63}}],
    [{"": [None], "leadScore": None}, {}],  # a list under a blank name: its rows went into the root table
    [{"x\ud83d": None}],  # identified_peoples: a cut emoji in a key of a JSON column failed extract
    [{"x\ud83e": {"company.name": 1.4008797383138037e-153}}],  # responses: a value of meta lost
    [{"0": ["\U0001f600" * 8435, None, "a\x00b"]}, {"0": []}, {}, {"0": []}],  # Arrow pages failed
    [{"": {"_": None}}, {}, {}, {}],  # peoples: extract failed on a blank name
    # NUL, a cut emoji and very long text in one page.
    [
        {"x\ud83d": "cut emoji \ud83d", "leadScore": None},
        {"leadScore": "x" * 10784, "x\ud83d": "\x00" * 20000},
    ],
    # Integers just beyond 63 bits, a decimal beyond a double: values lost or the endpoint failed.
    [
        {},
        {"0": Decimal("3.0")},
        {"0": Decimal("3.0")},
        {
            "leadScore": 9_223_372_036_854_775_808,
            "cafx": [Decimal("123456789012345678901234567890.5"), Decimal("1E+400"), -7.191289834761495e16],
        },
    ],
    [
        {
            "\u00c9aZ.\u00c9\u05d0": ["\x00"],
            "leadScore": {},
            "Email": [[8522, -9_223_372_036_854_775_808]],
            "_dlt_id": 4.0574702764464326e88,
            "B-": False,
        },
        {},
    ],
    [{"a__b": 1, "a": {"b": 2}, "A": {"B": 3}}],  # one column from three depths
]


def found_on_the_code_before(test: Callable[..., None]) -> Callable[..., None]:
    """`test` with every example of `FOUND`, as explicit examples."""
    for found in reversed(FOUND):
        test = example(filled_in=found)(test)
    return test


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("odd_values")


@pytest.mark.slow  # a load into DuckDB per example, twice: ~3 s an example on 2 shared cores (`make test`)
@pytest.mark.parametrize("name", list(ENDPOINTS))
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(filled_in=answers())
@found_on_the_code_before
def test_every_record_served_is_loaded_with_every_value(
    local_api: LocalApi, where: Path, name: str, filled_in: list[dict[str, Any]]
) -> None:
    endpoint, timestamps = ENDPOINTS[name]
    records = [endpoint.wrap(i, a) for i, a in enumerate(filled_in)]
    pipeline = load(local_api, endpoint, records, where)
    stored = warehouse_records(pipeline, endpoint.resource, timestamps)
    assert sorted(stored) == sorted(r["id"] for r in records)  # every record, none twice
    for record in records:
        expected = served_leaves({k: v for k, v in record.items() if k not in ("updatedAt", "createdAt")})
        assert stored[record["id"]] == expected, record["id"]
    # The same records read and written again (a full scan rewrites every row): the same values, no new column.
    tables = {
        t: dict(pipeline.default_schema.tables[t]["columns"])
        for t in pipeline.default_schema.data_table_names()
    }
    load(local_api, endpoint, records, where, pipeline, full_scan=True)
    assert warehouse_records(pipeline, endpoint.resource, timestamps) == stored
    assert {
        t: dict(pipeline.default_schema.tables[t]["columns"])
        for t in pipeline.default_schema.data_table_names()
    } == tables


# --- the step on its own: fast, many examples --------------------------------------------------------

PERSON_FIELDS = frozenset(audience_columns.COLUMNS["peoples"])


def stored_by_dlt(record: dict[str, Any]) -> Counter[tuple[str, str, Leaf]]:
    """(table, column, value) of every value dlt's relational normalizer makes of `record`: the rows of
    a table `t` and of its child tables, dlt's own columns left out."""
    rows = dlt.Schema("odd_values_unit").normalize_data_item(deepcopy(record), "1", "t")
    return Counter(
        (table, column, _leaf(value))
        for (table, _, _), row in rows
        for column, value in row.items()
        if not column.startswith("_dlt") and value is not None
    )


def parsed(value: Any) -> Any:
    """`value` served as JSON text and read back by the sources' own response parser (`transport.py`)."""
    response = transport._JsonResponse()
    response.status_code = 200
    response._content = to_json(value).encode()
    response.encoding = "utf-8"
    return response.json()


def made_storable(
    records: list[dict[str, Any]], replace_nul: bool = True
) -> tuple[list[dict[str, Any]], OddValues]:
    report = OddValues()
    step = OddValuesStep("peoples", (), PERSON_FIELDS, replace_nul, report)
    return step(deepcopy(records)), report


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(filled_in=answers())
@found_on_the_code_before
def test_each_value_gets_a_column_of_its_own_whatever_the_order_of_fields(
    filled_in: list[dict[str, Any]],
) -> None:
    records = parsed([person(i, a) for i, a in enumerate(filled_in)])
    storable, _ = made_storable(records)
    orjson.dumps(storable)  # what dlt's extract writes: no lone surrogate, no integer beyond 64 bits
    for record, served in zip(storable, records, strict=True):
        stored = stored_by_dlt(record)
        expected = served_leaves({k: v for k, v in served.items() if k != "updatedAt"})
        assert (
            Counter(leaf for _, _, leaf in stored.elements()) - Counter([("text", served["updatedAt"])])
            == expected
        )
        # The same fields served in another order land in the same columns.
        reordered, _ = made_storable([dict(reversed(served.items()))])
        assert stored_by_dlt(reordered[0]) == stored


def test_fields_that_meet_keep_the_documented_one_in_the_column_and_the_other_in_a_predictable_one() -> None:
    for served in (
        {"id": 1, "leadScore": 44, "lead_score": 1174},
        {"id": 1, "lead_score": 1174, "leadScore": 44},
    ):
        (record,), report = made_storable([served])
        assert {k: v for k, v in record.items()} == {
            "id": 1,
            "leadScore": 44,
            f"lead_score__{name_tag('lead_score')}": 1174,
        }
        assert report.renamed("peoples") == {"lead_score": f"lead_score__{name_tag('lead_score')}"}
        assert name_tag("lead_score") == "x" + hashlib.sha256(b"lead_score").hexdigest()[:8]
    # Neither documented: the first name in code point order keeps the column, at any depth.
    (record,), report = made_storable(
        [{"id": 1, "company_name": "b", "Company Name": "a", "meta": {"Tier": 1, "tier": 2}}]
    )
    assert report.renamed("peoples") == {
        "company_name": f"company_name__{name_tag('company_name')}",
        "meta.tier": f"meta__tier__{name_tag('tier')}",
    }
    assert report.counts("peoples") == {"field given its own column": 2}


def test_values_no_column_holds_are_replaced_or_kept_as_text_and_counted() -> None:
    served = {
        "id": 1,
        "firstName": "Zo\u00eb \ud83d",
        "note": "a\x00b",
        "leadScore": 2**70,
        "ratio": NumberText("1e400"),
        "scores": [1, 2**64],
        "attributes": dict([("x\ud83d", 1), ("x\ud83e", 2)]),  # two keys cut at an emoji alike
    }
    (record,), report = made_storable([served])
    assert record["firstName"] == "Zo\u00eb \ufffd"
    assert record["note"] == "a\ufffdb"
    assert record["lead_score__v_text"] == str(2**70) and "leadScore" not in record
    assert record["ratio__v_text"] == "1e400"
    assert record["scores"] == [1, {"value__v_text": str(2**64)}]
    second = "x\ufffd__" + name_tag("x\ud83e")
    assert record["attributes"] == {"x\ufffd": 1, second: 2}  # two keys cut alike stay apart
    assert report.counts("peoples") == {
        "lone surrogate replaced": 3,
        "NUL replaced": 1,
        "number stored as text": 3,
    }
    summary = report.summary("peoples")
    assert summary is not None and summary.startswith("peoples: ") and "3 lone surrogate replaced" in summary
    # A warehouse that stores NUL keeps it.
    (record,), report = made_storable([{"id": 1, "note": "a\x00b"}], replace_nul=False)
    assert record["note"] == "a\x00b" and report.summary("peoples") is None


def test_a_page_of_plain_records_is_passed_on_as_it_is() -> None:
    page = [
        {"id": i, "email": f"p{i}@example.com", "leadScore": 2**63 - 1, "name": "Zoë 😀"} for i in range(3)
    ]
    storable, report = made_storable(page)
    assert storable == page and report.counts("peoples") == {}


def test_a_persons_own_segment_id_keeps_its_value_beside_the_loaders() -> None:
    from analytics_assets.reading.audience.source import _rename_parent_id

    record = _rename_parent_id({"id": "p-1", "segment_id": "custom", "_segments_id": 1001})
    assert record == {"id": "p-1", f"segment_id__{name_tag('segment_id')}": "custom", "segment_id": 1001}
    assert _rename_parent_id({"id": "p-2", "_segments_id": 1002}) == {"id": "p-2", "segment_id": 1002}
