"""The tags of this code location: every run it starts says why it runs (`analytics/sync`), and every
step says which API it works on (`analytics/api`)."""

from __future__ import annotations

SYNC_TAG = "analytics/sync"
"""The tag every run this code location starts carries; its value is one of those below."""

NIGHTLY = {SYNC_TAG: "nightly"}
RECONCILIATION = {SYNC_TAG: "reconciliation"}
REFRESH = {SYNC_TAG: "refresh"}
NEW_FEEDBACK = {SYNC_TAG: "new-feedback"}
SEGMENT_MEMBERS = {SYNC_TAG: "segment-members"}
CONNECTION_TEST = {SYNC_TAG: "connection-test"}

API_TAG = "analytics/api"
"""The op tag naming the API whose dataset a load or check op uses: the executor runs one such step of
an API at a time (`definitions.py`), as they would take turns on its lock anyway (`locks.py`)."""


def step_tags(api: str, first: bool = False) -> dict[str, str]:
    """The op tags of a step working on `api`'s dataset.

    Args:
        first: The step is on the way to a child's load (a parent's blocking checks, a child load):
            among the ready steps of its API it runs first (Dagster's `dagster/priority`), so that the
            child's requests do not wait behind the checks of every other table.
    """
    return {API_TAG: api, **({"dagster/priority": "1"} if first else {})}
