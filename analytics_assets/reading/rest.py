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
    An API may serve fewer records a page than asked without a word (one that lowered its maximum, a
    server whose default page is 25), so a short page is no proof of the end. This one:
    - moves the offset by what the page really held, not by `limit`;
    - overlaps pages by one record: each page after the first is asked from the previous page's last
      record. That record is passed on once; when the next page does not start with it, the list moved
      under the read (records were deleted or inserted before the offset), so records may have been
      skipped, and `on_moved` is told (a sweep then deletes nothing on this read's word alone);
    - stops on an empty page, or on a page shorter than `limit` that is also shorter than the largest
      page of the resource served in this run (`PageSizes`): that API serves more a page, so this page
      is the end. So a list whose first page is short costs one more request (the overlap record alone);
    - stops on a page that repeats the previous one: the API ignores the paging parameters and answers
      the same records whatever the offset. The repeat is not passed on (its records were already).
      When the first answer was longer than `limit`, the API ignored the limit too and that answer was
      its whole list; otherwise (a page of `limit` records, again and again) the rest of the list is out
      of reach, and `on_end_unseen` is told why, so that this read deletes nothing (see `sweep.plan_sweep`).
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
        self._previous: int | None = None  # the fingerprint of the last page
        self._last: str | None = None  # the last record of the last page, as text

    def init_request(self, request: Request) -> None:
        self._previous = None
        self._last = None
        super().init_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        # A page's records, not its body (which may carry a timestamp): its size and its first and
        # last records, taken before dlt's steps change them. Two pages of one list never share those.
        size = len(data) if data else 0
        page = hash((size, repr(data[0]), repr(data[-1]))) if data else None
        if data and page == self._previous:
            self._has_next_page = False
            if size <= self.limit and self.on_end_unseen is not None:
                self.on_end_unseen(
                    f"GET {urlsplit(response.url).path} answered the same {size} records at"
                    f" {self.param_name}={self.current_value} as on the page before: the API ignores the"
                    f" paging parameters ({self.limit_param}, {self.param_name}), so the end of the list"
                    " was never seen"
                )
            # dlt wraps `data` into the page it yields after this call: these records were passed on
            # with the previous page already, and are not served twice.
            data.clear()
            return
        self._previous = page
        most_before = self.page_sizes.saw(size)
        if not data:
            self._has_next_page = False
            return
        last = repr(data[-1])
        if self._last is not None:
            if repr(data[0]) == self._last:
                del data[0]  # the overlap: passed on with the page before
            elif self.on_moved is not None:
                self.on_moved(
                    f"GET {urlsplit(response.url).path} at {self.param_name}={self.current_value} did not"
                    " start with the record the page before ended with: the list changed while it was read"
                )
        self._last = last
        if size < self.limit and size < most_before:
            self._has_next_page = False  # this API serves more a page: this one is the last
            return
        # From the last record on (a page of one record moves on by one: no overlap is possible).
        self.current_value += size - 1 if size > 1 else size


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
