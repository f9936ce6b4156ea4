"""What each endpoint is, read from the declarative `rest_api` configs (their single source of truth).

The Dagster side uses this for asset descriptions, metadata and lineage, so that changing a config
changes what the UI shows with it; each API's catalog is computed once (`Api.catalog` in `apis.py`)
and every module asks it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from dlt.sources.rest_api import RESTAPIConfig

_PARENT_PLACEHOLDER = re.compile(r"\{resources\.(\w+)\.(\w+)\}")


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint as loaded into one table."""

    resource: str
    path: str
    primary_key: tuple[str, ...]
    paging: str
    write_disposition: str
    parent: str | None
    cursor: str | None
    """The incremental cursor field, if any (API field name)."""
    stops_early: bool
    """True when a nightly sync pages only back to the cursor: it does not see the whole list."""
    data_selector: str = "$"
    """Where the records are in a response (`$`: the root is the list)."""
    limit_param: str | None = None
    """The query parameter that sets the page size, for an offset-paged list."""
    parent_field: str | None = None
    """The field of the parent's records a child's path is requested with (`id` of `segments`)."""
    json_columns: tuple[str, ...] = ()
    """Fields loaded as one JSON column each (their names inside are the customer's own or arbitrary)."""

    def description(self, api: str) -> str:
        """A Markdown description for the asset page."""
        lines = [
            f"`GET {self.path}` of the {api} API, loaded into table `{api}.{self.resource}`.",
            "",
            f"- primary key: {', '.join(f'`{k}`' for k in self.primary_key)}",
            f"- paging: {self.paging}",
            f"- write disposition: `{self.write_disposition}`",
        ]
        if self.parent:
            lines.append(f"- one request per row of `{api}/{self.parent}`; rows carry its id")
        if self.stops_early:
            lines.append(
                f"- nightly: pages back to the newest `{self.cursor}` loaded minus a look-back window;"
                " the weekly reconciliation reads everything and removes deleted records"
            )
        elif self.cursor:
            lines.append(
                f"- every sync reads the whole list; only records with a newer `{self.cursor}` are written;"
                " records the API no longer serves are removed"
            )
        else:
            lines.append("- every sync reads the whole list; records the API no longer serves are removed")
        return "\n".join(lines)


def _paging(paginator: Any) -> str:
    # What `rest.ShortPageOffsetPaginator` does, said for the asset page (its docstring has the why).
    if isinstance(paginator, OffsetPaginator):
        return (
            f"offset (`{paginator.param_name}`, `{paginator.limit_param}`={paginator.limit}), each page asked from"
            " the last record of the page before; the list ends on an empty page, on a page shorter than the"
            " largest served, or when the same records are answered whatever the offset (an API that does"
            " not page: its whole list). A read that cannot see its end, or whose list moved under it,"
            " deletes nothing"
        )
    if paginator == "single_page":
        return "none (one request answers the whole list)"
    return str(paginator)


def _as_tuple(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def endpoints(config: RESTAPIConfig) -> Mapping[str, Endpoint]:
    """The endpoints of a `rest_api` config, by resource name, in the config's order (parents first).

    The code location reads an API's once, as `Api.catalog`; the sources read the config they run with.
    """
    defaults: Mapping[str, Any] = config.get("resource_defaults") or {}
    result = {}
    for resource in config["resources"]:
        assert isinstance(resource, dict), "configs here list resources as dicts"
        endpoint: Mapping[str, Any] = resource["endpoint"]  # type: ignore[assignment]
        path = endpoint["path"]
        parent = _PARENT_PLACEHOLDER.search(path)
        incremental: Mapping[str, Any] = endpoint.get("incremental") or {}
        paginator = endpoint.get("paginator")
        name = str(resource["name"])
        result[name] = Endpoint(
            resource=name,
            path=path,
            primary_key=_as_tuple(resource.get("primary_key", defaults.get("primary_key", ()))),
            paging=_paging(paginator),
            write_disposition=str(resource.get("write_disposition", defaults.get("write_disposition"))),
            parent=parent.group(1) if parent else None,
            cursor=incremental.get("cursor_path"),
            stops_early=bool(incremental.get("row_order")),
            data_selector=str(endpoint.get("data_selector", "$")),
            limit_param=paginator.limit_param if isinstance(paginator, OffsetPaginator) else None,
            parent_field=parent.group(2) if parent else None,
            json_columns=tuple(
                column
                for column, hints in (resource.get("columns") or {}).items()  # type: ignore[union-attr]
                if hints.get("data_type") == "json"
            ),
        )
    return result
