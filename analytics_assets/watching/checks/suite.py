"""Every data check of this code location: the standard checks of each table plus the per-API ones
(`audience.py`, `feedback.py`), one check op per asset. The blocking checks of a parent
(`segments`) are not in its check op: the load op runs them between the parent's write and its
children's (`build_gates`, passed to the load op by `definitions.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from dagster import AssetChecksDefinition, AssetKey, AssetsDefinition

from analytics_assets.loading.assets import Gate
from analytics_assets.reading.apis import APIS
from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.history import history_tables
from analytics_assets.watching.checks import audience as audience_checks
from analytics_assets.watching.checks import feedback as feedback_checks
from analytics_assets.watching.checks.core import Check, build_gate, build_load_checks
from analytics_assets.watching.checks.history import row_count_drop, schema_drift
from analytics_assets.watching.checks.table import (
    not_empty,
    one_active_version,
    primary_key_not_null,
    primary_key_unique,
)

PER_API: Mapping[str, ModuleType] = {"audience": audience_checks, "feedback": feedback_checks}
"""Each API's module of its own checks: `MUST_HAVE_DATA` and `resource_checks(resource)`."""


@dataclass(frozen=True)
class _Api:
    name: str
    catalog: Mapping[str, Endpoint]
    checks: ModuleType

    @property
    def parents(self) -> set[str]:
        return {e.parent for e in self.catalog.values() if e.parent}


def standard_checks(resource: str, endpoint: Endpoint, must_have_data: bool, parent: bool) -> list[Check]:
    """The checks every table gets.

    Args:
        resource: The table.
        endpoint: Its endpoint (for the primary key).
        must_have_data: The endpoint always has data: add `not_empty`.
        parent: Other resources are loaded from its rows: the checks that say its data is wrong
            block them (ERROR, blocking), so that a bad parent never feeds its children.
    """
    guarded = [
        *([not_empty()] if must_have_data else []),
        row_count_drop(),
        primary_key_unique(endpoint.primary_key),
        primary_key_not_null(endpoint.primary_key),
    ]
    if parent:
        guarded = [check.guarding_children() for check in guarded]
    return [*guarded, schema_drift()]


def checks_of(api: _Api, resource: str) -> list[Check]:
    """All data checks of one table."""
    standard = standard_checks(
        resource,
        api.catalog[resource],
        must_have_data=resource in api.checks.MUST_HAVE_DATA,
        parent=resource in api.parents,
    )
    # ANALYTICS_HISTORY is read when the definitions load: a table switched into history gets its check then.
    history = (
        [one_active_version(api.catalog[resource].primary_key)]
        if f"{api.name}.{resource}" in history_tables()
        else []
    )
    return [*standard, *history, *api.checks.resource_checks(resource)]


def _apis() -> dict[str, _Api]:
    return {a.name: _Api(a.name, a.catalog, PER_API[a.name]) for a in APIS}


def build_gates() -> dict[AssetKey, Gate]:
    """The blocking checks of every parent, by parent asset, for the load op to run (`build_load_assets`)."""
    gates = {}
    for api in _apis().values():
        for parent in sorted(api.parents):
            key = AssetKey([api.name, parent])
            gates[key] = build_gate(key, [c for c in checks_of(api, parent) if c.blocking])
    return gates


def build_asset_checks(assets: Sequence[AssetsDefinition]) -> list[AssetChecksDefinition]:
    """One check op per asset (`<api>_<resource>_checks`), holding the data checks of its table but the
    blocking ones (the load op's: `build_gates`).

    Per asset, not per load op: when one endpoint fails, the checks of the others still run.

    Args:
        assets: The code location's load op (`build_load_assets`).
    """
    apis = _apis()
    result = []
    for assets_def in assets:
        for key in sorted(assets_def.keys, key=lambda k: k.to_user_string()):
            api = apis[key.path[0]]
            checks = {key: [c for c in checks_of(api, key.path[-1]) if not c.blocking]}
            result.append(build_load_checks(f"{api.name}_{key.path[-1]}", dataset=api.name, checks=checks))
    return result
