"""The connection test: one small request per endpoint of both APIs, before the first sync.

Like the "test connection" step of hosted loaders. For every endpoint of the catalog it reports
whether the server answered, whether the key was accepted, whether the page holds the endpoint's data
field, and for the feedback API's two reworked resources which server generation serves them; where
something is wrong, the setting to fix. Requests go through `probe` (the loads' transport); nothing is
loaded and no cursor moves (no dlt pipeline). The key is never printed: it travels in a header, and
every text shown is scrubbed of it in case a server echoes it back.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from dagster import Failure, MetadataValue, OpExecutionContext, Output, job, op
from dlt.common import jsonpath

from analytics_assets.loading import tags
from analytics_assets.reading.apis import APIS, Api
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.feedback.source import CURRENT_GENERATION_PATHS
from analytics_assets.reading.personal_data import PersonalDataSettingError, personal_data
from analytics_assets.reading.transport import RETRY_STATUS_CODES
from analytics_assets.watching.probe import ApiClient, ApiSettings, MissingSettingError

SEED = "seed"
CURRENT = "current"
UNAVAILABLE = "unavailable on this plan"

_PLACEHOLDER = re.compile(r"\{resources\.(\w+)\.(\w+)\}")


@dataclass
class EndpointReport:
    """What one endpoint answered.

    Attributes:
        api: The API name.
        resource: The resource (asset `<api>/<resource>`).
        requests: The requests sent and their statuses, e.g. `GET /fields -> 200`.
        reachable: Whether the server answered (None: not tried).
        key_accepted: Whether the key was accepted (None: cannot tell).
        data_field: Whether the page holds the endpoint's data field (None: no page to look at).
        generation: For the feedback API's reworked resources: `seed`, `current` or `unavailable on
            this plan`.
        problem: Why the endpoint cannot be loaded (None: it can).
        warning: Something to know that does not stop a load (a plan restriction).
        note: Anything else worth showing.
        fix: The setting to change, or what to do.
        settings_error: Not checked because the API's settings are missing or refused.
    """

    api: str
    resource: str
    requests: list[str] = field(default_factory=list)
    reachable: bool | None = None
    key_accepted: bool | None = None
    data_field: bool | None = None
    generation: str | None = None
    problem: str | None = None
    warning: str | None = None
    note: str | None = None
    fix: str | None = None
    settings_error: bool = False
    records: list[Any] = field(default_factory=list, repr=False)
    """The records of the page (parents only, to pick a child's id)."""

    @property
    def name(self) -> str:
        return f"{self.api}/{self.resource}"

    @property
    def usable(self) -> bool:
        return self.problem is None


def _records(body: Any, selector: str) -> list[Any] | None:
    """The records at the data selector, or None when the page has no such field."""
    if selector == "$":
        return body if isinstance(body, list) else None
    found = jsonpath.find_values(selector, body) if isinstance(body, dict) else []
    if not found:
        return None
    value = found[0]
    return value if isinstance(value, list) else [value]


def _server_message(response: requests.Response) -> str:
    """The error message the server gave, if any (both APIs' error envelopes)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    if message is None and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    return str(message)[:200] if message else ""


class _Checker:
    """Checks the endpoints of one API with one client (shared pacing)."""

    def __init__(self, api: Api, client: ApiClient) -> None:
        self.api = api
        self.client = client
        self.base_url = client.settings.base_url
        self.url_setting = api.env_var("base_url")
        self.key_setting = api.env_var("api_key")

    def _key_fix(self) -> str:
        fix = f"set {self.key_setting} to a valid key for {self.base_url}"
        if self.api.real_key_header:
            fix += (
                f"; against the real {self.api.name} API also set"
                f" {self.api.env_var('api_key_header')}={self.api.real_key_header}"
                f" (now {self.client.settings.api_key_header!r})"
            )
        return fix

    def _url_fix(self) -> str:
        shape = self.api.base_url_shape
        return f"check {self.url_setting} (now {self.base_url!r}, {shape})"

    def _send(self, report: EndpointReport, path: str, params: Mapping[str, Any]) -> requests.Response | None:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        request = f"GET {path}" + (f"?{query}" if query else "")
        try:
            response = self.client.get(path, params)
        except requests.RequestException as error:
            report.requests.append(f"{request} -> no answer")
            report.reachable = False
            report.problem = (
                f"no answer from {self.base_url} on {request} after every attempt ({type(error).__name__})"
            )
            report.fix = f"{self._url_fix()}, and the network"
            return None
        report.requests.append(f"{request} -> {response.status_code}")
        report.reachable = True
        return response

    def _judge(self, report: EndpointReport, response: requests.Response, selector: str) -> None:
        """Fill in key, data field and problem from one answer."""
        status = response.status_code
        request = report.requests[-1].rsplit(" -> ", 1)[0]
        message = _server_message(response)
        said = f": {message!r}" if message else ""
        if status in (401, 403):
            report.key_accepted = False
            report.problem = f"the API refused the key ({status}) on {request}{said}"
            report.fix = self._key_fix()
            return
        if status == 404:
            kind = "an HTML page" if "html" in response.headers.get("Content-Type", "") else "JSON"
            report.problem = f"{request} does not exist on this server (404, {kind})"
            report.fix = self._url_fix()
            return
        if status in RETRY_STATUS_CODES:
            report.problem = (
                f"the API answered {status} on {request} on every attempt{said}: it is down or rate limiting"
            )
            report.fix = "run the test again later"
            return
        if status != 200:
            report.problem = f"the API answered {status} on {request}{said}"
            report.fix = "see the server's message"
            return
        report.key_accepted = True
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type or response.text.lstrip().startswith("<"):
            report.data_field = False
            report.problem = f"{request} answered {content_type or 'no content type'} (an HTML page?) where JSON was expected"
            report.fix = self._url_fix()
            return
        try:
            body = response.json()
        except ValueError:
            report.data_field = False
            report.problem = f"{request} answered malformed JSON"
            report.fix = "run the test again; if it persists, report it to the API's owner"
            return
        records = _records(body, selector)
        report.data_field = records is not None
        if records is None:
            field_name = "a JSON array at the root" if selector == "$" else f"its `{selector}` field"
            report.problem = f"{request} answered without {field_name}"
            report.fix = self._url_fix()
            return
        report.records = records

    def check(self, target: Endpoint, done: Mapping[str, EndpointReport]) -> EndpointReport:
        report = EndpointReport(self.api.name, target.resource)
        path = target.path
        placeholder = _PLACEHOLDER.search(path)
        if placeholder is not None:
            parent = done.get(placeholder.group(1))
            if parent is None or not parent.usable:
                report.note = f"not checked: {self.api.name}/{placeholder.group(1)} failed"
                report.problem = report.note  # its parent's fix is this one's too
                return report
            value = next((r.get(placeholder.group(2)) for r in parent.records if isinstance(r, dict)), None)
            if value is None:
                report.note = f"not checked: {self.api.name}/{placeholder.group(1)} lists none to ask for"
                return report
            path = _PLACEHOLDER.sub(quote(str(value), safe=""), path)
        params = {target.limit_param: 1} if target.limit_param else {}
        response = self._send(report, path, params)
        if response is None:
            return report
        successor = CURRENT_GENERATION_PATHS.get(target.resource) if self.api.name == "feedback" else None
        if successor is not None and response.status_code == 404:
            self._check_current_generation(report, successor, target.data_selector, target.path)
            return report
        self._judge(report, response, target.data_selector)
        if successor is not None and report.usable:
            report.generation = SEED
        return report

    def _check_current_generation(
        self, report: EndpointReport, path: str, selector: str, legacy: str
    ) -> None:
        """The seed's path answered 404: a current server serves the resource at `path`, maybe not on this plan."""
        response = self._send(report, path, {})
        if response is None:
            return
        if response.status_code == 403:
            report.key_accepted = True
            report.generation = UNAVAILABLE
            message = _server_message(response) or "403 Forbidden"
            report.warning = f"{path} answered 403: {message!r}; {report.name} will not load on this plan"
            report.fix = "an Enterprise licence on the server, or leave it: the other tables load"
            return
        if response.status_code == 404:
            report.problem = (
                f"neither GET {legacy} (the seed's) nor GET {path} (current servers') exists (404)"
            )
            report.fix = self._url_fix()
            return
        self._judge(report, response, selector)
        if report.usable:
            report.generation = CURRENT
            report.note = f"served at {path} (the current generation; {legacy} is gone)"


def check_api(api: Api) -> list[EndpointReport]:
    """One request per endpoint of `api` (two where a resource moved); every endpoint gets a report."""
    targets = list(api.catalog.values())  # parents before children
    try:
        client = ApiClient(api, ApiSettings.resolve(api))
    except (MissingSettingError, ValueError) as error:
        # Nothing was sent: the settings themselves are wrong, for every endpoint alike.
        setting = re.findall(r"SOURCES__\w+", str(error))
        return [
            EndpointReport(
                api.name,
                target.resource,
                problem=f"not checked: {error}",
                fix=f"set {', '.join(dict.fromkeys(setting))}" if setting else None,
                settings_error=True,
            )
            for target in targets
        ]
    with client:
        checker = _Checker(api, client)
        done: dict[str, EndpointReport] = {}
        for target in targets:
            done[target.resource] = checker.check(target, done)
    return list(done.values())


# -- presentation ------------------------------------------------------------------------------


def _mark(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


COLUMNS = ("endpoint", "requests", "reachable", "key accepted", "data field", "generation", "notes", "to fix")


def rows(reports: Iterable[EndpointReport]) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per report."""
    out: list[tuple[str, ...]] = []
    for r in reports:
        notes = "; ".join(
            part
            for part in (
                f"FAILED: {r.problem}" if r.problem and r.problem != r.note else None,
                f"WARNING: {r.warning}" if r.warning else None,
                r.note,
            )
            if part
        )
        out.append(
            (
                r.name,
                ", ".join(r.requests) or "-",
                _mark(r.reachable),
                _mark(r.key_accepted),
                _mark(r.data_field),
                r.generation or "-",
                notes or "ok",
                (r.fix or "") if r.problem or r.warning else "",
            )
        )
    return out


def text_table(reports: Iterable[EndpointReport]) -> str:
    """A fixed-width table for the run log (the last column unpadded)."""
    table = [COLUMNS, *rows(reports)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in table
    ]
    return "\n".join([lines[0], "-" * max(len(line) for line in lines), *lines[1:]])


def markdown_table(reports: Iterable[EndpointReport]) -> str:
    """The same table in Markdown, for the UI."""

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(COLUMNS), line("---" for _ in COLUMNS), *(line(row) for row in rows(reports))])


def failure_message(reports: Iterable[EndpointReport]) -> str | None:
    """One message listing every unusable endpoint, then each thing to fix once; None when all can load."""
    failed: list[str] = []
    fixes: list[str] = []
    said: set[str] = set()
    for r in reports:
        if r.usable:
            continue
        if r.settings_error:
            if r.api in said:
                continue  # the same for every endpoint of the API: say it once
            said.add(r.api)
        scope = f"{r.api} API (every endpoint)" if r.settings_error else r.name
        failed.append(f"- {scope}: {r.problem}")
        if r.fix and r.fix not in fixes:
            fixes.append(r.fix)
    if not failed:
        return None
    return "\n".join(
        [
            f"Connection test failed: {len(failed)} endpoint(s) cannot be loaded.",
            *failed,
            "What to fix:",
            *(f"- {fix}" for fix in fixes),
        ]
    )


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _keys() -> list[str]:
    """The configured keys (to scrub from anything shown), as far as they are set."""
    keys = []
    for api in APIS:
        try:
            keys.append(ApiSettings.resolve(api).api_key)
        except MissingSettingError:
            continue
    return keys


@op(
    name="test_endpoints",
    description=(
        "Sends one small request to every endpoint of both APIs (limit=1 where paged) and reports per"
        " endpoint: reachable, key accepted, data field present, and which server generation serves the"
        " feedback API's identified_peoples and attribute_classes. Loads nothing, moves no cursor."
    ),
)
def check_connection_op(context: OpExecutionContext) -> Output[None]:
    reports = [report for api in APIS for report in check_api(api)]
    secrets = _keys()
    log_table = _scrub(text_table(reports), secrets)
    context.log.info("Connection test, one request per endpoint:\n" + log_table)
    for report in reports:
        if report.warning:
            context.log.warning(_scrub(f"{report.name}: {report.warning}", secrets))
    metadata: dict[str, MetadataValue] = {
        "endpoints": MetadataValue.md(_scrub(markdown_table(reports), secrets)),
        "usable": MetadataValue.int(sum(r.usable and not r.warning for r in reports)),
        "unavailable on this plan": MetadataValue.int(sum(bool(r.warning) for r in reports)),
        "failed": MetadataValue.int(sum(not r.usable for r in reports)),
    }
    message = failure_message(reports)
    try:  # the settings a load reads before any request: a wrong one fails the load, so it fails the test
        personal_data()
    except PersonalDataSettingError as error:
        message = "\n".join(filter(None, [message, f"Personal data settings: {error}"]))
    if message is not None:
        raise Failure(description=_scrub(message, secrets), metadata=metadata)
    return Output(None, metadata=metadata)


@job(
    name="check_connection",
    tags=tags.CONNECTION_TEST,
    description=(
        "Test the connection to both APIs before the first sync: one small request per endpoint, a table"
        " of what answered and the setting to fix. Loads nothing. Also `make check-connection`."
    ),
)
def check_connection_job() -> None:
    check_connection_op()
