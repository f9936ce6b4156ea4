"""dlt pieces both REST sources share: paging, path-safe parent values, and the assembly of a
declarative config into resources (session, response checks, key tracking).

Plain dlt, no Dagster import: the sources built from these run in a bare dlt pipeline too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from dlt.common import jsonpath
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources
from requests import Request, Response

from analytics_assets.internals import replace_generator
from analytics_assets.reading.arrow_pages import ArrowPages, batched_pages
from analytics_assets.reading.catalog import endpoints
from analytics_assets.reading.field_rules import FieldRules, FieldStep
from analytics_assets.reading.odd_values import OddValues, OddValuesStep
from analytics_assets.reading.settings import env_var
from analytics_assets.reading.sweep import ServedKeys
from analytics_assets.reading.transport import Transport, check_base_url, expect_json

PAGE_SIZE = 100
"""Both APIs cap a page at 100 records (the seeds' `limit`)."""

_PLACEHOLDER = re.compile(r"\{resources\.(\w+)\.(\w+)\}")


class PageSizes:
    """The most records one resource's pages held in this run, shared by every copy of its paginator
    (dlt copies a paginator for each list it reads: one per parent record of a child)."""

    def __init__(self) -> None:
        self.most = 0
        self._lock = threading.Lock()

    def saw(self, size: int) -> int:
        """Count a page of `size` records; the most of the pages before it."""
        with self._lock:
            before, self.most = self.most, max(self.most, size)
            return before

    def __deepcopy__(self, memo: dict[int, Any]) -> PageSizes:
        return self  # one count for every copy of the paginator


class ShortPageOffsetPaginator(OffsetPaginator):
    """Offset paging for APIs that return no total, read to the real end of the list or saying it was not.

    dlt's `OffsetPaginator` needs a `total` field (neither API has one) or pages until an empty page.
    The rules, proven together against a model of the ways an API serves a list
    (`analytics_assets_tests/unit/test_paging_model.py`):
    - the offset moves by what a page really held, not by `limit` (an API may serve fewer a page
      than asked without a word: one that lowered its maximum, a server whose default page is 25);
    - pages overlap by one record: each page after the first is asked from the previous page's last
      record. That record is passed on once; when the next page does not start with it (or is empty),
      the list moved under the read (records deleted or inserted before the offset), so records may
      have been skipped, and `on_moved` is told (a sweep then deletes nothing on this read's word);
    - a page shorter than `limit` ends the list when it is also shorter than the largest page of the
      resource served in this run (`PageSizes`): that API serves more a page. So a list whose first page
      is short costs one more request (the overlap record alone);
    - a page that repeats the one before is asked once more at the same offset (a page served twice by
      accident is no rule). Answered a third time, the API ignores the offset. When that page is the
      first of the list and holds fewer or more records than `limit`, it is the API's whole list (an
      endpoint that does not page: the seed's `/segments`), and the end was seen. A page of exactly
      `limit` records, or a page repeated after others, leaves the rest of the list out of reach:
      `on_end_unseen` is told why, so that this read deletes nothing (see `sweep.plan_sweep`).
      Repeats are not passed on (their records were already).
    """

    def __init__(self, offset_param: str, limit: int = PAGE_SIZE, limit_param: str = "limit") -> None:
        super().__init__(
            limit=limit,
            offset_param=offset_param,
            limit_param=limit_param,
            total_path=None,
            stop_after_empty_page=True,
        )
        self.on_end_unseen: Callable[[str], None] | None = None
        """Called with the reason when a read stops without having seen the end of its list. A plain
        function, so that it is shared by the copies dlt makes of the paginator (one per parent row)."""
        self.on_moved: Callable[[str], None] | None = None
        """Called with the reason when a page does not start where the previous one ended (shared too)."""
        self.page_sizes = PageSizes()
        self._page: tuple[int, str, str] | None = None  # the last page's size, first and last records
        self._last: str | None = None  # the last page's last record, when the next page overlaps it
        self._pages = 0  # distinct pages of this list read so far
        self._again: frozenset[str] | None = None  # the records of a repeat, asked once more
        self._moved_records: set[int] | None = None  # records of pages that did not start with the overlap

    def init_request(self, request: Request) -> None:
        self._page = None
        self._last = None
        self._pages = 0
        self._again = None
        self._moved_records = None
        super().init_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        size = len(data) if data else 0
        if data and self._repeats_previous(data):
            records = frozenset(map(repr, data))
            # dlt wraps `data` into the page it yields after this call: a repeat's records were passed
            # on with the page before, and are not served twice.
            if self._again is None:
                # Asked once more at the same offset (it stays): a page served twice by accident is no rule.
                self._again = records
                data.clear()
                return
            if self._again == records:
                self._repeated(response, size)
                data.clear()
                return
            # A repeat not answered the same again is read as the page it is.
        self._again = None
        most_before = self.page_sizes.saw(size)
        if not data:
            self._has_next_page = False
            if self._last is not None:  # asked from a record the API no longer has there
                self._moved(response, "answered no record where the page before ended")
            return
        self._pages += 1
        # A page's records, not its body (which may carry a timestamp), as text, taken before dlt's
        # steps change them: its size and its first and last records tell it from the page before.
        first, last = repr(data[0]), repr(data[-1])
        self._page = (size, first, last)
        if self._last is not None:
            if first == self._last:
                del data[0]  # the overlap: passed on with the page before
            else:
                self._moved(response, "did not start with the record the page before ended with")
                if self._brings_nothing_new(data):
                    # An API ignoring the offset, with records of one sort value in another order on
                    # every request: no page repeats the one before, and none brings anything new.
                    self._has_next_page = False
                    self._end_unseen(response, size, "held no record not served before")
                    data.clear()
                    return
        elif self._pages > 1 and self._brings_nothing_new(data):
            # Pages of one record (no overlap to check) from an API ignoring the offset, with records of
            # one sort value in another order on every request.
            self._has_next_page = False
            self._end_unseen(response, size, "held no record not served before")
            data.clear()
            return
        if size < self.limit and size < most_before:
            self._has_next_page = False  # this API serves more a page: this one is the last
            return
        # From the last record on (a page of one record moves on by one: no overlap is possible).
        self._last = last if size > 1 else None
        self.current_value += size - 1 if size > 1 else size

    def _repeats_previous(self, data: list[Any]) -> bool:
        """Whether a page holds the records of the page before: the same first and last records, or (an
        API that orders records of one sort value differently on every request) the same number of
        records with the page before's first and last among them."""
        if self._page is None or len(data) != self._page[0]:
            return False
        _, first, last = self._page
        if repr(data[0]) == first and repr(data[-1]) == last:
            return True
        # Only when the overlap is missing (an API that pages serves it first): rare, so text it all.
        return repr(data[0]) != last and {first, last} <= set(map(repr, data))

    def _brings_nothing_new(self, data: list[Any]) -> bool:
        """Whether a page that did not start where the one before ended (or followed a page of one
        record) holds only records served by such pages before: kept from the first such page of a read
        on, so a list of pages that overlap as they should costs nothing here."""
        records = {hash(repr(record)) for record in data}
        if self._moved_records is None:
            self._moved_records = records
            return False
        if records <= self._moved_records:
            return True
        self._moved_records |= records
        return False

    def _repeated(self, response: Response, size: int) -> None:
        """A page answered a third time (the API ignores the offset): the list's end, or out of reach."""
        self._has_next_page = False
        if self._pages == 1 and size != self.limit:
            return  # the whole list, whatever the offset (and the limit) asked
        self._end_unseen(response, size, "answered the same records as the page before, asked twice")

    def _end_unseen(self, response: Response, size: int, what: str) -> None:
        if self.on_end_unseen is not None:
            self.on_end_unseen(
                f"GET {urlsplit(response.url).path} at {self.param_name}={self.current_value} {what}"
                f" ({size} records): the API ignores the paging parameters ({self.limit_param},"
                f" {self.param_name}), so the end of the list was never seen"
            )

    def _moved(self, response: Response, what: str) -> None:
        if self.on_moved is not None:
            self.on_moved(
                f"GET {urlsplit(response.url).path} at {self.param_name}={self.current_value} {what}:"
                " the list changed while it was read"
            )


class PathSegment(str):
    """A string that percent-encodes itself when dlt formats it into a child request's path.

    dlt fills `{resources.<parent>.<field>}` with `str.format` and no quoting, so a parent value like
    `1/../accounts` would change the path requested. The value stays as it is everywhere else (it is
    loaded unchanged).
    """

    def __format__(self, spec: str) -> str:
        return quote(str(self), safe="")


def _path_safe(field: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def _wrap(record: dict[str, Any]) -> dict[str, Any]:
        value = record.get(field)
        if isinstance(value, str):  # numbers are path-safe as they are
            record[field] = PathSegment(value)
        return record

    return _wrap


def assemble(
    api: str,
    config: RESTAPIConfig,
    transport: Transport,
    served_keys: ServedKeys | None = None,
    allow_insecure_http: bool = False,
    arrow_resources: Collection[str] = (),
    field_rules: Mapping[str, FieldRules] | None = None,
    documented: Mapping[str, Collection[str]] | None = None,
    replace_nul: bool = True,
    odd_values: OddValues | None = None,
) -> list[DltResource]:
    """The dlt resources of a declarative config, wired for a run.

    Adds what every endpoint needs and the configs leave out: the source's session (retries, pacing,
    observation), a check of every page before dlt reads it, path-safe parent values for child paths,
    the fields hashed and dropped (`field_rules`, by resource: `field_rules.py`) and the recording of
    served keys for the sweep. The pages of `arrow_resources` go to dlt as Arrow tables where that
    changes nothing in the warehouse (`arrow_pages.py`). Every record is made storable
    (`odd_values.py`): `documented` names each resource's documented fields (they keep their columns),
    `replace_nul` whether the warehouse refuses NUL, `odd_values` collects what was changed.
    """
    client = config["client"]
    check_base_url(api, client["base_url"], env_var(api, "base_url"), allow_insecure_http)
    by_name = {str(r["name"]): r for r in config["resources"] if isinstance(r, dict)}
    for resource in by_name.values():
        endpoint = resource["endpoint"]
        assert isinstance(endpoint, dict), "configs here give endpoints as dicts"
        endpoint["response_actions"] = [expect_json(api, str(endpoint.get("data_selector", "$")))]
        if isinstance(selector := endpoint.get("data_selector"), str):
            # dlt parses a selector given as text again for every page: a fifth of extract's CPU time.
            endpoint["data_selector"] = jsonpath.compile_path(selector)
        for parent, field in _PLACEHOLDER.findall(str(endpoint.get("path", ""))):
            steps = by_name[parent].get("processing_steps") or []
            by_name[parent]["processing_steps"] = [*steps, {"map": _path_safe(field)}]
        _fit_column_hints(resource, (field_rules or {}).get(str(resource["name"])))
    offset_params = {
        str(paginator.param_name)
        for resource in by_name.values()
        if isinstance(paginator := resource["endpoint"].get("paginator"), ShortPageOffsetPaginator)  # type: ignore[union-attr]
    }
    client["session"] = transport.session(offset_params)
    if served_keys is not None:
        for name, resource in by_name.items():
            paginator = resource["endpoint"].get("paginator")  # type: ignore[union-attr]
            if isinstance(paginator, ShortPageOffsetPaginator):
                paginator.on_end_unseen = served_keys.reporter(name)
                paginator.on_moved = served_keys.mover(name)
    json_columns = {name: _json_fields(resource) for name, resource in by_name.items()}
    built = rest_api_resources(config)
    if field_rules is not None:
        # Before the served keys are recorded: a hashed key is recorded, swept and checked as its hash.
        for dlt_resource in built:
            dlt_resource.add_step(FieldStep(field_rules.get(dlt_resource.name, FieldRules())))
    for dlt_resource in built:
        # After the fields are hashed or dropped (a dropped field's odd value never moves to another
        # column), before the keys are recorded and dlt's incremental step: every later step sees
        # storable records.
        name = dlt_resource.name
        dlt_resource.add_step(
            OddValuesStep(name, json_columns[name], (documented or {}).get(name, ()), replace_nul, odd_values)
        )
    if served_keys is not None:
        served_keys.track(config, built)  # first: before any step added below or later (history's)
    # dlt 1.31 drops `parallelized` from top-level rest_api resources (their generator takes an
    # `Incremental`, and the incremental wrapper replaces the parallel one): they would run one after
    # another. Children are parallelized by rest_api itself, one call per parent record.
    default = (config.get("resource_defaults") or {}).get("parallelized", False)
    for dlt_resource in built:
        arrow = dlt_resource.name in arrow_resources and not dlt_resource.is_transformer
        if arrow:
            # Arrow tables of many pages: dlt's cost per Arrow item is that of 200 rows (`arrow_pages.py`).
            # Before `parallelize`, which wraps the generator the same way.
            replace_generator(dlt_resource, batched_pages)
        if not dlt_resource.is_transformer and by_name[dlt_resource.name].get("parallelized", default):
            dlt_resource.parallelize()
        if arrow:
            key = endpoints(config)[dlt_resource.name].primary_key
            dlt_resource.add_step(ArrowPages(dlt_resource.name, key, _keeps_history(dlt_resource)))
    return built


def _fit_column_hints(resource: Any, rules: FieldRules | None) -> None:
    """A config's column hints that still fit the fields as loaded: none for an excluded field (a hinted
    column is created even without data), text for a hashed one (a JSON column would hold a quoted hash)."""
    columns = resource.get("columns")
    if not rules or not isinstance(columns, dict):
        return
    columns = resource["columns"] = dict(columns)
    for path in rules.excluded:
        if len(path) == 1:
            columns.pop(path[0], None)
    for path in rules.hashed:
        if len(path) == 1 and path[0] in columns:
            columns[path[0]] = {**columns[path[0]], "data_type": "text"}


def _json_fields(resource: Any) -> list[str]:
    """The fields a config loads as JSON columns (after `_fit_column_hints`)."""
    columns = resource.get("columns")
    if not isinstance(columns, dict):
        return []
    return [name for name, c in columns.items() if isinstance(c, dict) and c.get("data_type") == "json"]


def _keeps_history(resource: DltResource) -> Callable[[], bool]:
    # History mode (`history.py`) sets scd2 on the resource after it is built: asked at read time.
    def keeps() -> bool:
        disposition = resource.write_disposition
        return (disposition.get("disposition") if isinstance(disposition, dict) else disposition) == "scd2"

    return keeps
