"""Running the code location's assets in process, the way a Dagster run does."""

from collections.abc import Sequence

from dagster import AssetKey, ExecuteInProcessResult

from analytics_assets.definitions import defs


def materialize(*keys: str, raise_on_error: bool = True) -> ExecuteInProcessResult:
    """Materialize the given assets (e.g. "audience/peoples"), or all of them when none are given."""
    job = defs.resolve_implicit_global_asset_job_def()
    selection: Sequence[AssetKey] | None = [AssetKey.from_user_string(k) for k in keys] or None
    return job.execute_in_process(asset_selection=selection, raise_on_error=raise_on_error)
