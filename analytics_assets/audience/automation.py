"""Keeping `audience/segment_people` in step with `audience/segments` (its condition: `translator.CHILD_CONDITION`)."""

from __future__ import annotations

from dagster import AssetKey, AutomationConditionSensorDefinition, DefaultSensorStatus

from analytics_assets import tags

SEGMENT_PEOPLE = AssetKey(["audience", "segment_people"])

segment_members_sensor = AutomationConditionSensorDefinition(
    "segment_members_after_segments",
    target=[SEGMENT_PEOPLE],
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Loads audience/segment_people after audience/segments is materialized without it (e.g. from the UI)."
        " On by default: members that lag their segments are wrong data, and it costs nothing until segments change."
    ),
    run_tags=tags.SEGMENT_MEMBERS,
)
