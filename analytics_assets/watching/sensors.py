"""The sensors that load an API's data between the nightly runs.

- `segment_members_sensor`: keeps `audience/segment_people` in step with `audience/segments` (its
  condition: `translator.CHILD_CONDITION`).
- `new_feedback_sensor`: loads `feedback/responses` soon after a response arrives or changes.

The webhook alerts have a sensor of their own (`alert_sensors.py`).
"""

from __future__ import annotations

import requests
from dagster import (
    AssetKey,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from analytics_assets.loading import tags
from analytics_assets.reading.apis import FEEDBACK
from analytics_assets.watching import probe

SEGMENT_PEOPLE = AssetKey(["audience", "segment_people"])
RESPONSES = AssetKey(["feedback", "responses"])
MINIMUM_INTERVAL_SECONDS = 300
"""One request every five minutes: 12 an hour against the API's ~100 a minute, leaving the budget to the loads."""


def newest_response_fingerprint() -> str | None:
    """`<id>@<updatedAt>` of the newest response, from one request (`limit=1`); None if there is none.

    The request goes through the loads' transport (`probe`): a plain-http base URL to another host is
    refused before anything is sent, and 429/5xx answers are retried by the seeds' rule.
    """
    response = probe.get(FEEDBACK, "/v1/management/responses", {"limit": 1, "skip": 0})
    if response.status_code != 200:
        raise LookupError(f"GET /v1/management/responses answered {response.status_code}")
    newest = response.json().get("data") or []
    return f"{newest[0]['id']}@{newest[0].get('updatedAt')}" if newest else None


@sensor(
    name="new_feedback_sensor",
    target=[RESPONSES],
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.STOPPED,
    description=(
        "Every 5 minutes, asks the feedback API for its newest response (one request) and loads"
        " feedback/responses when it is new or was updated. Off by default: it spends the production key's"
        " rate limit around the clock, so turn it on when the team wants responses within minutes rather"
        " than nightly."
    ),
)
def new_feedback_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    try:
        fingerprint = newest_response_fingerprint()
    except (LookupError, requests.RequestException, ValueError) as error:
        # Say what failed without echoing a request (its headers hold the key).
        return SkipReason(
            f"Could not ask the feedback API for its newest response: {type(error).__name__}: {error}"
        )
    if fingerprint is None or fingerprint == context.cursor:
        return SkipReason("No new or changed response since the last load.")
    # The run key is the change itself: the same change seen twice (a lost cursor, two ticks) is one run.
    return SensorResult(
        run_requests=[RunRequest(run_key=fingerprint, tags=tags.NEW_FEEDBACK)],
        cursor=fingerprint,
    )


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
