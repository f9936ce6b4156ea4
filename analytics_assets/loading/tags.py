"""The names this code location marks runs and materializations with: every run it starts says why it
runs (`analytics/sync`); the steps on the way to a child's load go first (`CHILD_PATH`); a load says
when the API's plan does not offer an endpoint (`UNAVAILABLE`)."""

from __future__ import annotations

SYNC_TAG = "analytics/sync"
"""The tag every run this code location starts carries; its value is one of those below."""

NIGHTLY = {SYNC_TAG: "nightly"}
RECONCILIATION = {SYNC_TAG: "reconciliation"}
REFRESH = {SYNC_TAG: "refresh"}
NEW_FEEDBACK = {SYNC_TAG: "new-feedback"}
SEGMENT_MEMBERS = {SYNC_TAG: "segment-members"}
CONNECTION_TEST = {SYNC_TAG: "connection-test"}

CHILD_PATH = {"dagster/priority": "1"}
"""Op tags of the steps a child's load waits for (its parent's check op) and of the child's load itself.

The run executes its steps one at a time (`definitions.py`); among the ready steps, these go first
(Dagster's `dagster/priority`), so a child's requests follow its parent's load and checks instead of
the checks of every other table, and the other API's load follows them at once: no check runs
between the first request of a run and its last (README, "Performance").
"""

UNAVAILABLE = "unavailable"
"""The metadata entry a load sets when the API's plan does not offer the endpoint (see `available_on_plan`)."""
