"""How dlt resources appear in Dagster: keys, groups, lineage, descriptions and metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dagster import AssetKey, AssetSpec, AutomationCondition, FreshnessPolicy, MetadataValue
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from analytics_assets.reading.catalog import Endpoint
from analytics_assets.reading.history import describe, history_tables

CHILD_CONDITION = AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()
"""A child resource loads once its parent has new data and the parent's blocking checks passed.
`eager` never requests while the asset or its parent is being materialized: one such run at a time."""


@dataclass
class ApiTranslator(DagsterDltTranslator):
    """Maps each resource of one API to the asset `<api>/<resource>` in the group `<api>`.

    The default translator would add a placeholder upstream asset per resource (`<source>_<resource>`);
    here an asset depends only on its parent endpoint (`audience/segment_people` on `audience/segments`).
    """

    api: str = ""
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    freshness_policy: FreshnessPolicy | None = None

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        endpoint = self.endpoints[data.resource.name]
        history = describe(self.api, endpoint.resource, history_tables())  # read when the definitions load
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=AssetKey([self.api, endpoint.resource]),
                deps=[AssetKey([self.api, endpoint.parent])] if endpoint.parent else [],
                group_name=self.api,
                automation_condition=CHILD_CONDITION if endpoint.parent else None,
                freshness_policy=self.freshness_policy,
                description="\n".join(filter(None, (endpoint.description(self.api), history))),
                kinds={"dlt", "api"},
                metadata={
                    "dagster/table_name": MetadataValue.text(f"{self.api}.{endpoint.resource}"),
                    "endpoint": MetadataValue.text(endpoint.path),
                    "primary_key": MetadataValue.text(", ".join(endpoint.primary_key)),
                    "paging": MetadataValue.text(endpoint.paging),
                    "write_disposition": MetadataValue.text(
                        "merge (scd2: keeps history)" if history else endpoint.write_disposition
                    ),
                },
            )
        )
