"""The order of a run's steps: the loads follow each other, and the checks of the other tables wait.

The run executes its steps one at a time; a check step run between two loads would lengthen the time
from a sync's first request to its last (README, "Performance").
"""

import pytest

from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox

LOADS = ["audience", "audience_segment_people", "feedback"]


@pytest.mark.slow  # a whole run of every asset against the sandbox
def test_only_the_parents_checks_run_between_the_loads(configured: Sandbox, warehouse: Warehouse) -> None:
    result = materialize()
    assert result.success
    order = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    first = min(order.index(step) for step in LOADS)
    last = max(order.index(step) for step in LOADS)
    assert sorted(order[first : last + 1]) == sorted([*LOADS, "audience_segments_checks"]), order
    assert order.index("audience_segments_checks") < order.index("audience_segment_people")
    assert len(order) == 17, order  # 3 loads, 13 check steps and the freshness checks: nothing skipped
