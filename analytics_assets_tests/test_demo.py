"""`make demo`'s command, end to end: the sandbox, the real `dagster` CLI, a DuckDB file, the summary."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from analytics_assets_tests.test_definitions import EXPECTED_KEYS

REPO = Path(__file__).resolve().parents[1]


def test_demo_materializes_every_asset_with_the_dagster_cli(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    warehouse = tmp_path / "demo.duckdb"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ANALYTICS_"))},
        "DAGSTER_HOME": str(home),
        "ANALYTICS_DUCKDB_PATH": str(warehouse),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "analytics_assets.sandbox.demo", "--people", "1234"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("Loaded into") :]
    for key in EXPECTED_KEYS:
        assert ".".join(key.path) in summary
    assert "audience.peoples                 1,234" in summary
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from audience.peoples").fetchone() == (1234,)
    # The run went through the instance in DAGSTER_HOME, as a run from the UI would.
    assert (home / "history").exists() or (home / "storage").exists()
