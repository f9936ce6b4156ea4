"""The paging and sweep rules proven against a model of the ways an API serves a list.

Plain dlt, no Dagster and no sockets: dlt's own `RESTClient.paginate` drives the project's paginator
(`reading/rest.py`) over a `requests` session whose adapter answers from the model; the project's
`ServedKeys` records what was served and `sweep.decide` decides what a sync deletes from a table kept
in memory (the warehouse's SQL is proven by the whole-run tests). A Hypothesis state machine makes
syncs, and changes the list between and during them.

The model (`ListApi`), each behaviour an API has been seen to have:
- a list of 0 to 1,000 records (60 at most when a page holds fewer than 100), or a parent list and
  one child list per parent record (`segments` and `segment_people`, keyed on both ids);
- a page maximum below, equal to or above the limit asked, which may change between syncs;
- the offset (`offset` or `skip`) honoured; or ignored, with a full first page (`limit` records) on every
  request; or ignored with the whole list in one answer whatever the limit (an endpoint that does not
  page: the seed's `/segments`); or `limit` ignored, every record from the offset on;
- a stable order, or records of one `createdAt` (ties) shuffled on every request, or the last
  changed first (an edit moves a record to the head: `surveys` by `updatedAt`);
- records added, changed and deleted between syncs, and one change between two requests of a read;
- a page served twice (the page before answered again); a server error on a request (the read fails).

Pages hold two records at least (the sources ask for 100): pages of one record cannot overlap, so a
record deleted before the offset hides the next one from any reader (found by the long profile:
`start("pages", "stable", 1, 2)`, a sync, then a sync with `{1: "twice", 2: "delete:0"}` deletes record 2).
The one thing it leaves out besides, because no reader of offset pages can see it: two changes between the same
two requests whose shifts cancel at the page boundary, or one change beside ties shuffled across it,
while a record crosses the boundary; the pages then look exactly like those of a list that held still.

The invariants, checked after every sync:
1. no record the API served throughout a read (there before it started and when it ended) is deleted
   by that read's sweep;
2. after a read that saw the end of a list that held still, the table equals what the API serves;
3. a read that cannot prove it saw the end deletes nothing and says why, naming the request and what the
   API did;
4. a record gone at the source is gone from the table after the next sync that can prove it;
5. requests stay within the pages needed plus two per list (plus what a change or a repeat costs);
6. a sweep over the `max_row_drop` share is refused before anything is written.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import requests
from dlt.common import jsonpath
from dlt.sources.helpers.rest_client import RESTClient
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from requests.adapters import BaseAdapter

from analytics_assets.reading.rest import ShortPageOffsetPaginator
from analytics_assets.reading.sweep import ServedKeys, SweepRefusedError, decide, partition

BASE = "https://api.test/v1"
DATA = jsonpath.compile_path("data")
MODES = ("pages", "ignore_offset", "whole_list", "ignore_limit")
ORDERS = ("stable", "ties_shuffled", "changed_first")


@dataclass
class ListApi:
    """How one API serves a list (and its children's lists), and what it did during a read."""

    mode: str
    order: str
    page_max: int
    offset_param: str
    records: list[dict[str, Any]]
    children: dict[int, list[dict[str, Any]]] | None = None
    """Members per parent id, for a parent list with a child list per record (None: a plain list)."""
    seed: int = 0
    requests: int = 0
    """Requests answered in the current sync."""
    script: dict[int, str] = field(default_factory=dict)
    """What happens at the n-th request of the sync: `twice` (the page before served again), `error`
    (a 500), or a change to the list (`insert:i`, `delete:i`, `edit:i`) made before it is answered."""
    answers: dict[str, bytes] = field(default_factory=dict)
    """The last body answered per path, for `twice`."""
    changed: bool = False
    """A change happened during the current read."""
    next_id: int = 10_000

    def view(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The list in the order of this request."""
        ordered = sorted(items, key=lambda r: (r["createdAt"], r["id"]))
        if self.order == "changed_first":
            ordered.sort(key=lambda r: -r["updatedAt"])  # stable: ties keep the creation order
        elif self.order == "ties_shuffled":
            shuffle = random.Random(self.seed * 1_000_003 + self.requests)
            ordered.sort(key=lambda r: (r["createdAt"], shuffle.random()))
        return ordered

    def answer(self, path: str, offset: int, limit: int) -> tuple[int, bytes]:
        self.requests += 1
        assert self.requests < 5_000, f"no end after 5,000 requests: {path} at {offset}"
        event = self.script.get(self.requests, "")
        if event == "error":
            return 500, b'{"error": "internal"}'
        if event == "twice" and path in self.answers:
            return 200, self.answers[path]
        if ":" in event:
            self.change(event)
        parent = None if path == "/list" else int(path.split("/")[2])  # /segments/<id>/people
        items = self.records if parent is None else (self.children or {}).get(parent, [])
        ordered = self.view(items)
        most = min(limit, self.page_max)
        if self.mode == "pages":
            page = ordered[offset : offset + most]
        elif self.mode == "ignore_offset":
            page = ordered[:limit]  # a full first page, whatever the offset
        elif self.mode == "whole_list":
            page = ordered
        else:  # ignore_limit
            page = ordered[offset:]
        body = orjson.dumps({"data": page})
        self.answers[path] = body
        return 200, body

    def change(self, event: str) -> None:
        kind, at = event.split(":")
        items = self.records
        if self.children and int(at) % 2:  # odd: a member list, of the parent at that place
            parents = sorted(self.children)
            items = self.children[parents[int(at) // 2 % len(parents)]]
        self.changed = True
        if kind == "insert":
            items.insert(int(at) % (len(items) + 1), self.new_record(int(at)))
        elif items:
            index = int(at) % len(items)
            if kind == "delete":
                del items[index]
            else:
                items[index] = {**items[index], "updatedAt": self.next_stamp(), "v": items[index]["v"] + 1}

    def new_record(self, created: int) -> dict[str, Any]:
        self.next_id += 1
        return {"id": self.next_id, "createdAt": created % 7, "updatedAt": self.next_stamp(), "v": 0}

    def next_stamp(self) -> int:
        self.next_id += 1
        return self.next_id

    def member_lists(self) -> list[list[dict[str, Any]]]:
        """The member lists of the parents served now (none for a plain list)."""
        return [self.children.get(p["id"], []) for p in self.records] if self.children is not None else []

    def keys(self) -> set[tuple[Any, ...]]:
        """What the API serves now, as table keys (the members of the parents it serves)."""
        if self.children is None:
            return {(r["id"],) for r in self.records}
        return {(p["id"], r["id"]) for p in self.records for r in self.children.get(p["id"], [])}


class ModelAdapter(BaseAdapter):
    """A `requests` transport answering from the model (no socket)."""

    def __init__(self, api: ListApi) -> None:
        super().__init__()
        self.api = api

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(str(request.url))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        offset = int(query.get(self.api.offset_param, 0))
        status, body = self.api.answer(parts.path.removeprefix("/v1"), offset, int(query["limit"]))
        response = requests.Response()
        response.status_code, response._content, response.url = status, body, str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


@dataclass
class Read:
    """What one sync's read served, and what it cost."""

    served: ServedKeys
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    """The table keys of the records passed on (what the merge writes)."""
    requests: int = 0
    failed: bool = False
    lists: int = 1


def read(api: ListApi, limit: int) -> Read:
    """One sync's read of the list (and of each served parent's members), as the sources read it."""
    session = requests.Session()
    session.mount(BASE, ModelAdapter(api))
    session.trust_env = False  # no proxy settings to look up for every request
    client = RESTClient(base_url=BASE, session=session, data_selector=DATA)
    done = Read(ServedKeys())
    served = done.served
    api.requests, api.answers, api.changed = 0, {}, False

    def paginator(resource: str) -> ShortPageOffsetPaginator:
        made = ShortPageOffsetPaginator(offset_param=api.offset_param, limit=limit)
        made.on_end_unseen, made.on_moved = served.reporter(resource), served.mover(resource)
        return made

    def pages(path: str, paging: ShortPageOffsetPaginator) -> Iterator[list[dict[str, Any]]]:
        return (list(page) for page in client.paginate(path, paginator=paging) if page)

    try:
        if api.children is None:
            observe = served.observer("list", ["id"])
            for page in pages("/list", paginator("list")):
                observe(page)
                done.keys |= {(r["id"],) for r in page}
        else:
            served.relate("segment_people", "segments")
            observe_parents = served.observer("segments", ["id"])
            parents: list[int] = []
            for page in pages("/list", paginator("segments")):
                observe_parents(page)
                parents += [r["id"] for r in page]
            observe = served.observer("segment_people", ["segment_id", "id"])
            members = paginator("segment_people")
            for parent in parents:
                done.lists += 1
                # dlt copies the paginator for each parent record (`PageSizes` stays shared).
                for page in pages(f"/segments/{parent}/people", deepcopy(members)):
                    observe([{**r, "segment_id": parent} for r in page])
                    done.keys |= {(parent, r["id"]) for r in page}
    except requests.HTTPError:
        done.failed = True
    done.requests = api.requests
    return done


def pages_needed(count: int, per_page: int) -> int:
    """Requests a reader with a one-record overlap needs for a list that holds still."""
    if per_page <= 1:
        return count + 1
    return 1 + max(0, -(-(count - per_page) // (per_page - 1))) + 1


class Table:
    """The warehouse table: its rows by key (what a merge keeps) and the unconfirmed deletions."""

    def __init__(self) -> None:
        self.rows: set[tuple[Any, ...]] = set()
        self.unconfirmed: set[tuple[Any, ...]] = set()


class PagingModel(RuleBasedStateMachine):
    """Syncs of one endpoint over an API the model changes between and during them."""

    def __init__(self) -> None:
        super().__init__()
        self.table = Table()
        self.proven_absent: list[set[tuple[Any, ...]]] = []

    @initialize(
        mode=st.sampled_from(MODES),
        order=st.sampled_from(ORDERS),
        limit=st.sampled_from([2, 3, 5, 100]),
        cap=st.sampled_from([-2, -1, 0, 1, 1_000]),
        offset_param=st.sampled_from(["offset", "skip"]),
        count=st.integers(0, 1_000),
        members=st.lists(st.integers(0, 12), max_size=6),
        nested=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def start(
        self,
        mode: str,
        order: str,
        limit: int,
        cap: int,
        offset_param: str,
        count: int,
        members: list[int],
        nested: bool,
        seed: int,
    ) -> None:
        # An API that ignores the offset serves at least the limit asked (or its whole list): a page
        # cap below the limit on such an API is a whole list of fewer records to any reader.
        page_max = max(2, limit + cap) if mode == "pages" else max(limit, limit + cap)
        count = count if limit >= 100 else count % 61
        records = [
            {
                "id": i,
                "createdAt": (i * 7919 + seed) % 5 if order == "ties_shuffled" else i,
                "updatedAt": 0,
                "v": 0,
            }
            for i in range(1, count + 1)
        ]
        children = None
        if nested:
            records = records[: len(members)]
            children = {
                r["id"]: [
                    {"id": 100 * r["id"] + j, "createdAt": j % 3, "updatedAt": 0, "v": 0} for j in range(n)
                ]
                for r, n in zip(records, members, strict=False)
            }
        self.api = ListApi(mode, order, page_max, offset_param, records, children, seed)
        self.limit = limit
        note(
            f"api: {mode}, {order}, limit {limit}, page max {page_max}, {len(records)} records, children {members if nested else None}"
        )

    @rule(events=st.lists(st.sampled_from(["insert", "delete", "edit"]), max_size=4), at=st.integers(0, 99))
    def change_between_syncs(self, events: list[str], at: int) -> None:
        for i, event in enumerate(events):
            self.api.change(f"{event}:{at + i}")

    @precondition(lambda self: self.api.mode == "pages")
    @rule(cap=st.integers(2, 120))
    def change_page_maximum(self, cap: int) -> None:
        self.api.page_max = cap

    @rule(
        script=st.dictionaries(
            st.integers(1, 12),
            st.sampled_from(["twice", "error"])
            | st.builds("{}:{}".format, st.sampled_from(["insert", "delete", "edit"]), st.integers(0, 99)),
            max_size=2,
        ),
        max_drop=st.sampled_from([1.0, 1.0, 0.5, 0.0]),
    )
    def sync(self, script: dict[int, str], max_drop: float) -> None:
        api = self.api
        if api.order == "ties_shuffled":  # ties shuffled beside a change: the case no reader can see
            script = {at: event for at, event in script.items() if event in ("twice", "error")}
        before = api.keys()
        api.script = script
        done = read(api, self.limit)
        api.script = {}
        after = api.keys()
        throughout = before & after
        note(f"sync: script {script}, {done.requests} requests, failed {done.failed}, changed {api.changed}")
        if done.failed:
            return  # the read failed: nothing is written or swept
        resource = "list" if api.children is None else "segment_people"
        end_unseen = done.served.end_unseen(resource)
        rows_before = set(self.table.rows)
        present, absent = partition(set(done.served.sorted_hashes(resource)), sorted(rows_before))
        try:
            plan = decide("audience", resource, ["id"], done.served, present, absent, max_drop)
        except SweepRefusedError:
            # 6. refused before anything is written: the table is as it was.
            assert len(absent) > max_drop * len(rows_before)
            assert self.table.rows == rows_before
            return
        served_keys = done.keys
        self.table.rows |= served_keys  # the merge
        stale = set(plan.stale)
        self.table.rows -= stale
        self.table.unconfirmed = set(plan.unconfirmed) if plan.whole else self.table.unconfirmed - served_keys
        # 1. nothing the API served throughout the read is deleted by it.
        assert not stale & throughout, f"deleted live records {sorted(stale & throughout)[:5]}"
        # 6. an accepted plan is within the share.
        assert len(stale) <= max_drop * len(rows_before)
        provable = self.provable(api.changed)
        # 3. a read that cannot see its end deletes nothing and says why, naming the request.
        if self.end_out_of_reach():
            assert end_unseen is not None
            assert "ignores the paging parameters" in end_unseen, end_unseen
        if end_unseen is not None:
            assert not stale and not plan.whole
            request = end_unseen.removeprefix("its parent segments: ")
            assert request.startswith("GET /") and f" at {api.offset_param}=" in request, end_unseen
            assert "never seen" in end_unseen, end_unseen
        # 2. a read of a list that held still, to its end, leaves the table equal to the API.
        if provable and served_keys:
            assert end_unseen is None, end_unseen
            assert self.table.rows == after, (sorted(self.table.rows ^ after)[:5], plan.moved)
        # 4. a record gone at the source goes with the next sync that can prove it.
        if provable and served_keys:  # a read that served nothing deletes nothing (more likely a fault)
            self.proven_absent.append(rows_before - after)
            assert not (rows_before - after) & self.table.rows
        # 5. no loop: the pages needed plus two per list, plus two per scripted event.
        largest = max([len(api.records), *map(len, api.member_lists())])
        per_page = min(self.limit, api.page_max)
        needed = pages_needed(largest + len(script), per_page) if api.mode == "pages" else 3
        if api.order == "ties_shuffled":
            needed *= 2  # a page may hold the record(s) of the page before, and is asked once more
        if api.order == "ties_shuffled" and api.mode in ("ignore_offset", "whole_list"):
            # No page repeats the one before: the read ends on one that brings nothing new, once the
            # records the first page is drawn from were served.
            needed += 2 * max(map(self.head_ties, [api.records, *api.member_lists()]))
        assert done.requests <= done.lists * (needed + 2) + 2 * len(script), (done.requests, done.lists)

    def provable(self, changed: bool) -> bool:
        """Whether a read can prove it saw the whole list: it held still (no change, no shuffled ties),
        and the API does not hide the rest of the list behind a full page it repeats."""
        return not changed and self.api.order != "ties_shuffled" and not self.end_out_of_reach()

    def head_ties(self, items: list[dict[str, Any]]) -> int:
        """How many records share the sort values of a first page: what a shuffled one is drawn from."""
        values = sorted(r["createdAt"] for r in items)
        return sum(1 for v in values if v <= values[min(len(values), self.limit) - 1]) if values else 0

    def end_out_of_reach(self) -> bool:
        api = self.api
        lists = [api.records, *api.member_lists()]
        # A full page answered whatever the offset: the API's whole list or only its first page?
        if api.mode == "whole_list":
            return any(len(items) == self.limit for items in lists)
        return api.mode == "ignore_offset" and any(len(items) >= self.limit for items in lists)


def replay(steps: list[tuple[str, dict[str, Any]]]) -> None:
    """Run steps of the state machine as Hypothesis prints a failing case (`state.sync(...)`)."""
    state = PagingModel()
    try:
        for name, arguments in steps:
            getattr(state, name)(**arguments)
    finally:
        state.teardown()


def start(
    mode: str, order: str, limit: int, count: int, members: list[int] | None = None, seed: int = 0
) -> tuple[str, dict[str, Any]]:
    arguments = {
        "mode": mode,
        "order": order,
        "limit": limit,
        "cap": 0,
        "offset_param": "offset",
        "count": count,
    }
    return "start", {**arguments, "members": members or [], "nested": members is not None, "seed": seed}


SYNC: tuple[str, dict[str, Any]] = ("sync", {"script": {}, "max_drop": 1.0})
COUNTEREXAMPLES = {
    # The seed's one-page list: a short page answered whatever the offset was read as "end unseen", so
    # the list was never swept (invariant 2, on the rules before the model).
    "a short whole list answered whatever the offset": [start("ignore_offset", "stable", 2, 1), SYNC],
    # Ties shuffled on an API ignoring the offset: no page repeats the one before, so the reader
    # asked for ever (invariant 5: no end after 5,000 requests).
    "ties shuffled whatever the offset": [start("ignore_offset", "ties_shuffled", 100, 1_000, seed=1), SYNC],
    "ties shuffled, pages of two": [start("ignore_offset", "ties_shuffled", 2, 6, seed=31), SYNC],
    "one record a page, ties shuffled": [start("whole_list", "ties_shuffled", 1, 40, seed=1), SYNC],
    "pages of two, ties of six shuffled": [start("ignore_offset", "ties_shuffled", 2, 93 % 61, seed=8), SYNC],
    "pages of one, ties shuffled": [start("pages", "ties_shuffled", 1, 11, seed=206), SYNC],
    # The model's own: the members of a parent the API no longer serves are not served either.
    "a parent deleted": [
        start("ignore_offset", "stable", 1, 1, members=[1]),
        ("change_between_syncs", {"events": ["delete"], "at": 0}),
        SYNC,
    ],
}


@pytest.mark.parametrize("steps", COUNTEREXAMPLES.values(), ids=COUNTEREXAMPLES.keys())
def test_counterexamples_found_before(
    steps: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{__name__}.note", lambda text: None)  # outside a Hypothesis test
    replay(steps)


PagingModel.TestCase.settings = settings(
    settings(),  # the profile's examples (conftest.py): derandomized, more with HYPOTHESIS_PROFILE=long
    stateful_step_count=10,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestPagingModel = PagingModel.TestCase
