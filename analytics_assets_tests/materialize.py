"""Running the code location's assets in process, the way a Dagster run does."""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from analytics_assets.definitions import defs


def materialize(
    *keys: str,
    raise_on_error: bool = True,
    run_config: Mapping[str, Any] | None = None,
    instance: DagsterInstance | None = None,
    job: str | None = None,
) -> ExecuteInProcessResult:
    """Materialize the given assets (e.g. "audience/peoples"), or all of them when none are given.

    Args:
        run_config: Run config, e.g. `{"ops": {"analytics_load": {"config": {"full_scan": True, "apis": ["feedback"]}}}}`.
        instance: The Dagster instance (default: an ephemeral one).
        job: A job of the code location to run instead of the implicit asset job.
    """
    job_def = defs.resolve_job_def(job) if job else defs.resolve_implicit_global_asset_job_def()
    selection: Sequence[AssetKey] | None = [AssetKey.from_user_string(k) for k in keys] or None
    return job_def.execute_in_process(
        asset_selection=selection, raise_on_error=raise_on_error, run_config=run_config, instance=instance
    )
