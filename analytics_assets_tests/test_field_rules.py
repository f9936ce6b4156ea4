"""The audience source with fields hashed and excluded, in a bare dlt pipeline against the sandbox: the
Arrow pages keep going as Arrow, and a hashed key is what the served keys and the sweep compare."""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb

from analytics_assets.reading.audience.source import audience
from analytics_assets.reading.field_rules import FieldRules, Hasher
from analytics_assets.reading.sweep import ServedKeys, plan_sweep
from analytics_sandbox import Sandbox

KEY = "source-test-key-0123456789abcdef"


def test_hashed_pages_go_as_arrow_and_the_sweep_compares_hashed_keys(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    hasher = Hasher(KEY)
    rules = {
        "peoples": FieldRules(
            hashed=(("email",), ("id",)), excluded=(("firstName",), ("name",)), hasher=hasher
        )
    }
    served = ServedKeys()
    source = audience(
        base_url=sandbox.audience_base_url,
        api_key=sandbox.audience_key,
        served_keys=served,
        field_rules=rules,
    )
    path = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline(
        "field_rules_peoples",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name="audience",
    )
    extracted = pipeline.extract(source.with_resources("peoples"))
    formats = {
        job.split(".")[-1]
        for metrics in extracted.metrics.values()
        for job in metrics[0]["job_metrics"]
        if job.startswith("peoples.")
    }
    assert formats == {"parquet"}  # every page went as an Arrow table, hashes and all
    pipeline.normalize()
    pipeline.load().raise_on_failed_jobs()

    people = list(sandbox.data.records("peoples"))
    with duckdb.connect(str(path), read_only=True) as con:
        loaded = set(con.execute("select id, email, last_name from audience.peoples").fetchall())
        names = {r[0] for r in con.execute("describe audience.peoples").fetchall()}
    assert loaded == {(hasher.hash(p["id"]), hasher.hash(p["email"]), p["lastName"]) for p in people}
    assert not names & {"first_name", "name"}
    # The sweep finds every served (hashed) key in the table: nothing to delete, nothing missing.
    assert served.repeats("peoples").count == 0 and len(served.sorted_hashes("peoples")) == len(people)
    plan = plan_sweep(pipeline, "peoples", ("id",), served)
    assert plan.whole and plan.stale == [] and plan.rows == len(people)
