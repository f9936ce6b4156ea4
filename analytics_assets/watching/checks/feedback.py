"""The feedback API's own data checks, on top of the standard ones every table gets (`checks/suite.py`)."""

from __future__ import annotations

from analytics_assets.reading.feedback.source import CURRENT_GENERATION_PATHS
from analytics_assets.watching.checks.core import Check
from analytics_assets.watching.checks.table import available_on_plan, references

MUST_HAVE_DATA = frozenset({"surveys", "responses", "action_classes", "attribute_classes"})
"""Endpoints that always have data: the surveys and responses this load exists for, and the action and
attribute classes every environment is created with (`New Session`, `userId`, `email`). Identified
people and webhooks may really be empty."""


def resource_checks(resource: str) -> list[Check]:
    """The checks only this API's `resource` gets."""
    if resource == "responses":
        return [references("survey_id", parent="surveys", parent_column="id")]
    if resource in CURRENT_GENERATION_PATHS:  # a current server offers these with an Enterprise licence only
        return [available_on_plan()]
    return []
