"""The order of a run's steps: one load step, then the checks.

The run executes its steps one at a time; a check step run between the first request of a sync and its
last would lengthen it (benchmarks/README.md). All endpoints of both APIs load in one op
(`analytics_load`), segments' blocking checks inside it, so no check step can run in between.
"""

import pytest

from analytics_assets_tests.conftest import Warehouse
from analytics_assets_tests.materialize import materialize
from analytics_sandbox import Sandbox


@pytest.mark.slow  # a whole run of every asset against the sandbox
def test_the_one_load_step_runs_first_and_gates_the_child_itself(
    configured: Sandbox, warehouse: Warehouse
) -> None:
    result = materialize()
    assert result.success
    order = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert order[0] == "analytics_load", order
    assert len(order) == 14, order  # 1 load and 13 check steps: nothing skipped
    # Segments' blocking checks were evaluated in the load step, before segment_people was materialized.
    events = [
        e
        for e in result.all_events
        if e.event_type_value in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION")
        and e.step_key == "analytics_load"
    ]
    keys = [
        (e.event_type_value, (e.asset_key or e.event_specific_data.asset_key).to_user_string())  # type: ignore[union-attr]
        for e in events
    ]
    segments = keys.index(("ASSET_MATERIALIZATION", "audience/segments"))
    members = keys.index(("ASSET_MATERIALIZATION", "audience/segment_people"))
    gate = [i for i, k in enumerate(keys) if k == ("ASSET_CHECK_EVALUATION", "audience/segments")]
    assert gate and segments < min(gate) and max(gate) < members, keys
