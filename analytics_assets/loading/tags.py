"""The names this code location marks runs and materializations with: every run it starts says why it
runs (`analytics/sync`); a load says when the API's plan does not offer an endpoint (`UNAVAILABLE`)."""

from __future__ import annotations

SYNC_TAG = "analytics/sync"
"""The tag every run this code location starts carries; its value is one of those below."""

NIGHTLY = {SYNC_TAG: "nightly"}
RECONCILIATION = {SYNC_TAG: "reconciliation"}
REFRESH = {SYNC_TAG: "refresh"}
NEW_FEEDBACK = {SYNC_TAG: "new-feedback"}
SEGMENT_MEMBERS = {SYNC_TAG: "segment-members"}
CONNECTION_TEST = {SYNC_TAG: "connection-test"}

UNAVAILABLE = "unavailable"
"""The metadata entry a load sets when the API's plan does not offer the endpoint (see `available_on_plan`)."""
