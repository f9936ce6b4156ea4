"""`analytics_assets.reading.sweep` on its own: `ServedKeys` fed records directly, and `sweep` against a real
dlt pipeline on a DuckDB file loaded from an in-memory resource (no server, no Dagster).

`ServedKeys` is the loader's record of the keys each resource was served in a run: repeats are counted
exactly and a few are named, at about 8 bytes a key."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.sources.rest_api import rest_api_resources

from analytics_assets.reading import sweep as sweep_module
from analytics_assets.reading.sweep import (
    UNCONFIRMED_TABLE,
    KeyTypeError,
    MissingKeyError,
    Repeats,
    ServedKeys,
    SweepRefusedError,
    SweepResult,
    apply_sweep,
    plan_sweep,
)


def sweep(pipeline: dlt.Pipeline, table: str, key_columns: list[str], served: ServedKeys) -> SweepResult:
    """`plan_sweep` and `apply_sweep` at once, with no bound on what goes, as a sync of a loaded table does."""
    return apply_sweep(pipeline, plan_sweep(pipeline, table, key_columns, served))


def serve(served: ServedKeys, ids: list[str]) -> None:
    observe = served.step("peoples", ["id"])
    for person_id in ids:
        observe({"id": person_id, "firstName": "x"})


def test_repeats_are_counted_and_named() -> None:
    served = ServedKeys()
    ids = [f"person-{i}" for i in range(1_000)]
    serve(served, [*ids[:500], "person-7", *ids[500:], "person-900", "person-900"])  # a key thrice
    repeats = served.repeats("peoples")
    assert repeats.count == 3
    assert sorted(repeats.sample) == ["person-7", "person-900"]
    assert len(served.sorted_hashes("peoples")) == 1_000
    assert served.repeats("accounts").count == 0


def test_a_composite_key_is_named_as_a_list() -> None:
    served = ServedKeys()
    observe = served.step("segment_people", ["segment_id", "id"])
    for record in ({"segment_id": 1, "id": "a"}, {"segment_id": 2, "id": "a"}, {"segment_id": 1, "id": "a"}):
        observe(record)
    assert served.repeats("segment_people") == Repeats(1, ([1, "a"],))


def test_repeats_far_apart_are_counted_and_only_a_handful_named() -> None:
    served = ServedKeys()
    ids = [f"person-{i}" for i in range(100_000)]
    serve(served, [*ids, *ids[:20]])  # 20 keys again, 100,000 records after their first time
    repeats = served.repeats("peoples")
    assert repeats.count == 20
    assert len(repeats.sample) <= 5


def kept_for(n: int) -> int:
    """Bytes a ServedKeys keeps after being served n keys."""
    served = ServedKeys()
    observe = served.step("peoples", ["id"])
    records = [{"id": f"person-{i}"} for i in range(n)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for record in records:
            observe(record)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # tracemalloc slows each of 180,000 records down
def test_about_8_bytes_a_key() -> None:
    # Past the fixed window of recent keys (4,096), each further key costs its 8-byte hash (the
    # array grows by up to an eighth at a time).
    small, large = kept_for(40_000), kept_for(140_000)
    assert (large - small) / 100_000 < 8 * 1.2, (small, large)
    assert small < 40_000 * 8 * 1.2 + 1_000_000  # the window: under 1 MB


def test_a_record_without_its_key_stops_the_run() -> None:
    observe = ServedKeys().step("peoples", ["id"])
    for missing in ({"firstName": "Ada"}, {"id": None}, {"id": ""}):
        with pytest.raises(MissingKeyError) as raised:
            observe(missing)
        assert raised.value.resource == "peoples"
        assert raised.value.fields == ["id"]


def test_the_key_is_found_under_the_apis_field_name() -> None:
    # Key columns are the warehouse's (snake_case), records carry the API's names (camelCase).
    served = ServedKeys()
    observe = served.step("segment_people", ["segment_id", "id"])
    observe({"segmentId": 1, "id": "a", "firstName": "Ada"})
    with pytest.raises(MissingKeyError) as raised:
        observe({"id": "b", "firstName": "Bo"})
    assert raised.value.fields == ["segmentId"]


def test_a_key_that_changes_type_within_a_run_stops_it() -> None:
    observe = ServedKeys().step("peoples", ["id"])
    observe({"id": 1})
    with pytest.raises(KeyTypeError) as raised:
        observe({"id": "1"})
    assert (raised.value.field, raised.value.value, raised.value.found) == ("id", "1", "a string")
    assert raised.value.before == "the first peoples record of this run had id 1 (a whole number)"
    with pytest.raises(KeyTypeError, match=r"True \(a boolean\)"):
        observe({"id": True})  # a bool is no whole number, though Python says it is an int


def segments_config() -> dict[str, Any]:
    """A `rest_api` config of a parent and its child, as the sources write them."""
    return {
        "client": {"base_url": "https://api.example.com/v1"},
        "resources": [
            {"name": "segments", "primary_key": "id", "endpoint": {"path": "/segments"}},
            {
                "name": "segment_people",
                "primary_key": ["segment_id", "id"],
                "endpoint": {"path": "/segments/{resources.segments.id}/people"},
            },
        ],
    }


def test_track_adds_the_recording_step_after_the_configs_own_and_before_the_cursor() -> None:
    served = ServedKeys()
    config = segments_config()
    config["resources"][0]["processing_steps"] = [{"map": lambda record: record}]
    config["resources"][0]["endpoint"]["incremental"] = {"cursor_path": "updatedAt"}
    resources = rest_api_resources(config)  # type: ignore[arg-type]
    served.track(config, resources)  # type: ignore[arg-type]
    by_name = {r.name: r for r in resources}
    steps = [type(step).__name__ for step in by_name["segments"]._pipe.steps[1:]]
    assert steps == ["MapItem", "_KeyStep", "IncrementalResourceWrapper"]
    steps_of_both = [s for name in ("segments", "segment_people") for s in by_name[name]._pipe.steps]
    page_step, record_step = [s for s in steps_of_both if isinstance(s, sweep_module._KeyStep)]
    page_step([{"id": 7}, {"id": 8}])  # a page
    record_step({"segment_id": 7, "id": "a"})  # a single record
    assert len(served.sorted_hashes("segments")) == 2
    assert len(served.sorted_hashes("segment_people")) == 1


def test_a_page_records_what_its_records_one_by_one_would() -> None:
    pages, records = ServedKeys(), ServedKeys()
    observe_page, observe_one = pages.observer("peoples", ["id"]), records.step("peoples", ["id"])
    ids = [f"person-{i}" for i in range(10_000)]
    # Repeated 10, ~1,000 and ~6,000 records after the first time (the window names the first two).
    served = [*ids[:6_000], "person-5990", *ids[6_000:], "person-9000", "person-10", "person-9999"]
    for start in range(0, len(served), 5_000):
        observe_page([{"id": i} for i in served[start : start + 5_000]])
    for person_id in served:
        observe_one({"id": person_id})
    assert pages.sorted_hashes("peoples") == records.sorted_hashes("peoples")
    assert (
        pages.repeats("peoples")
        == records.repeats("peoples")
        == Repeats(4, ("person-5990", "person-9000", "person-9999"))
    )


def test_a_page_stops_at_its_first_record_at_fault_having_recorded_those_before() -> None:
    served = ServedKeys()
    observe = served.observer("segment_people", ["segment_id", "id"])
    observe([{"segmentId": 1, "id": "a"}])
    with pytest.raises(KeyTypeError) as raised:
        observe([{"segmentId": 1, "id": "b"}, {"segmentId": "2", "id": "c"}, {"segmentId": 3, "id": None}])
    assert (raised.value.field, raised.value.value) == ("segmentId", "2")
    assert len(served.sorted_hashes("segment_people")) == 2
    with pytest.raises(MissingKeyError) as missing:
        observe([{"segmentId": 4, "id": "d"}, {"segmentId": 5, "id": ""}])
    assert missing.value.fields == ["id"]
    assert len(served.sorted_hashes("segment_people")) == 3


def test_an_unseen_end_is_the_first_reason_and_covers_the_children() -> None:
    served = ServedKeys()
    config = segments_config()
    served.track(config, rest_api_resources(config))  # type: ignore[arg-type]
    assert served.end_unseen("segments") is None
    report = served.reporter("segments")
    report("GET /segments answered the same 100 records")
    report("a later reason")
    assert served.end_unseen("segments") == "GET /segments answered the same 100 records"
    # A child read from part of its parents saw part of its own list.
    assert (
        served.end_unseen("segment_people")
        == "its parent segments: GET /segments answered the same 100 records"
    )


PEOPLE = [
    {"id": f"p-{i}", "name": f"Person {i}", "tags": [{"tag": "a"}, {"tag": f"t-{i}"}]} for i in range(1, 5)
]
MEMBERS = [{"segment_id": s, "id": p} for s in (1, 2) for p in ("a", "b")]
BULK = [{"id": i} for i in range(2_500)]  # three delete batches


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dlt pipeline's working folder and DuckDB file, loaded once by merge from in-memory resources."""
    folder = tmp_path_factory.mktemp("loaded")
    pipeline = dlt.pipeline(
        pipeline_name="sweep_unit",
        pipelines_dir=str(folder / "pipelines"),
        destination=dlt.destinations.duckdb(str(folder / "warehouse.duckdb")),
        dataset_name="audience",
    )
    pipeline.run(
        [
            dlt.resource(PEOPLE, name="peoples", primary_key="id", write_disposition="merge"),
            dlt.resource(
                MEMBERS, name="segment_people", primary_key=["segment_id", "id"], write_disposition="merge"
            ),
            dlt.resource(BULK, name="bulk", primary_key="id", write_disposition="merge"),
        ]
    )
    return folder


@pytest.fixture
def pipeline(loaded: Path, tmp_path: Path) -> dlt.Pipeline:
    """A copy of the loaded pipeline and warehouse for one test, attached as the loader would find it."""
    shutil.copytree(loaded, tmp_path, dirs_exist_ok=True)
    return dlt.attach(
        "sweep_unit",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
    )


def rows(pipeline: dlt.Pipeline, query: str) -> list[tuple[Any, ...]]:
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(query) or []]


def served_ids(ids: list[Any], table: str = "peoples") -> ServedKeys:
    served = ServedKeys()
    observe = served.step(table, ["id"])
    for key in ids:
        observe({"id": key})
    return served


def test_sweep_deletes_the_rows_not_served_and_their_nested_rows(pipeline: dlt.Pipeline) -> None:
    result = sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-3"]))
    assert result == SweepResult(served=2, deleted=2, missing=0)
    assert result.warning is None
    assert rows(pipeline, "select id from peoples order by id") == [("p-1",), ("p-3",)]
    assert (
        rows(pipeline, "select t.tag from peoples__tags t join peoples p on t._dlt_root_id = p._dlt_id") != []
    )
    assert rows(pipeline, "select tag from peoples__tags order by tag") == [
        ("a",),
        ("a",),
        ("t-1",),
        ("t-3",),
    ]


def test_sweep_counts_a_served_key_missing_from_the_warehouse(pipeline: dlt.Pipeline) -> None:
    result = sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-2", "p-3", "p-4", "p-9", "p-9"]))
    assert result == SweepResult(served=5, deleted=0, missing=1)
    assert len(rows(pipeline, "select id from peoples")) == 4


def test_sweep_deletes_nothing_when_nothing_was_served(pipeline: dlt.Pipeline) -> None:
    # An empty answer to a whole-list read is more likely a fault than a list emptied overnight.
    result = sweep(pipeline, "peoples", ["id"], ServedKeys())
    assert result == SweepResult(served=0, deleted=0, missing=0, skipped=True)
    assert len(rows(pipeline, "select id from peoples")) == 4
    assert len(rows(pipeline, "select tag from peoples__tags")) == 8


def test_sweep_deletes_nothing_when_the_end_of_the_list_was_not_seen(pipeline: dlt.Pipeline) -> None:
    served = served_ids(["p-1"])
    served.reporter("peoples")("GET /people/all answered the same 1 records at offset=100")
    result = sweep(pipeline, "peoples", ["id"], served)
    assert (result.deleted, result.missing, result.served) == (0, 0, 1)
    assert result.end_unseen == "GET /people/all answered the same 1 records at offset=100"
    assert result.warning is not None
    assert result.warning.startswith("deleted nothing this run: GET /people/all answered the same 1 records")
    assert len(rows(pipeline, "select id from peoples")) == 4


def test_sweep_of_a_table_not_loaded_yet_deletes_nothing(pipeline: dlt.Pipeline) -> None:
    result = sweep(pipeline, "segments", ["id"], served_ids([1, 2], table="segments"))
    assert result == SweepResult(served=2, deleted=0, missing=2)


def test_sweep_matches_a_composite_key_on_all_its_columns(pipeline: dlt.Pipeline) -> None:
    served = ServedKeys()
    observe = served.step("segment_people", ["segment_id", "id"])
    for record in ({"segmentId": 1, "id": "a"}, {"segmentId": 2, "id": "b"}):
        observe(record)
    result = sweep(pipeline, "segment_people", ["segment_id", "id"], served)
    assert result == SweepResult(served=2, deleted=2, missing=0)
    assert rows(pipeline, "select segment_id, id from segment_people order by segment_id") == [
        (1, "a"),
        (2, "b"),
    ]


def test_sweep_deletes_more_rows_than_one_statement_holds(pipeline: dlt.Pipeline) -> None:
    result = sweep(pipeline, "bulk", ["id"], served_ids(list(range(0, 2_500, 10)), table="bulk"))
    assert result == SweepResult(served=250, deleted=2_250, missing=0)
    assert rows(pipeline, "select count(*), min(id), max(id) from bulk") == [(250, 0, 2_490)]


def test_a_sweep_over_the_row_drop_share_is_refused_before_anything_is_written(
    pipeline: dlt.Pipeline,
) -> None:
    # 3 of 4 people not served (75%) where 50% is the most a sync may delete.
    with pytest.raises(SweepRefusedError) as refused:
        plan_sweep(pipeline, "peoples", ["id"], served_ids(["p-1"]), max_drop=0.5)
    message = str(refused.value)
    assert (
        "would delete 3 of the 4 rows of audience.peoples (75%), more than max_row_drop allows (50%"
        in message
    )
    assert "ANALYTICS_MAX_ROW_DROP" in message and "refresh: true" in message
    assert "Nothing was written: the table and its cursor are as they were" in message
    assert len(rows(pipeline, "select id from peoples")) == 4
    # At the share itself, the sweep goes ahead.
    plan = plan_sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-2"]), max_drop=0.5)
    assert apply_sweep(pipeline, plan).deleted == 2


def moved_read(ids: list[str]) -> ServedKeys:
    served = served_ids(ids)
    served.mover("peoples")(
        "GET /people/all at offset=1188 did not start with the record the page before ended with"
    )
    return served


def test_a_read_that_moved_keeps_what_it_missed_until_a_read_that_holds_still_misses_it_too(
    pipeline: dlt.Pipeline,
) -> None:
    # p-2 was skipped (the list shifted under the read) and p-4 was deleted at the source.
    first = apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], moved_read(["p-1", "p-3"])))
    assert (first.deleted, first.unconfirmed) == (0, 2)
    assert first.warning is not None and "kept 2 row(s) the API did not serve this run" in first.warning
    assert "offset=1188" in first.warning
    assert len(rows(pipeline, "select id from peoples")) == 4
    assert sorted(rows(pipeline, f"select key_values from {UNCONFIRMED_TABLE}")) == [
        ('["p-2"]',),
        ('["p-4"]',),
    ]
    # The next read moved too, and served p-2 this time: p-4, missed twice, still proves nothing (the
    # same record can be skipped twice by two moves), and stays unconfirmed.
    second = apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], moved_read(["p-1", "p-2", "p-3"])))
    assert (second.deleted, second.unconfirmed) == (0, 1)
    assert rows(pipeline, f"select key_values from {UNCONFIRMED_TABLE}") == [('["p-4"]',)]
    # A read that holds still and misses p-4 too: it goes.
    third = apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-2", "p-3"])))
    assert (third.deleted, third.unconfirmed) == (1, 0)
    assert rows(pipeline, "select id from peoples order by id") == [("p-1",), ("p-2",), ("p-3",)]
    assert rows(pipeline, f"select key_values from {UNCONFIRMED_TABLE}") == []


def test_a_read_that_held_still_deletes_what_it_missed_at_once(pipeline: dlt.Pipeline) -> None:
    apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], moved_read(["p-1", "p-3"])))
    result = apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-2"])))
    assert (result.deleted, result.unconfirmed) == (2, 0)
    assert rows(pipeline, f"select key_values from {UNCONFIRMED_TABLE}") == []


def test_keys_served_twice_count_as_a_move(pipeline: dlt.Pipeline) -> None:
    # An insertion at the head serves a record again at the next page boundary, and may skip another.
    result = apply_sweep(pipeline, plan_sweep(pipeline, "peoples", ["id"], served_ids(["p-1", "p-1", "p-3"])))
    assert (result.deleted, result.unconfirmed) == (0, 2)
    assert result.moved == "1 record(s) were served twice, so others may have been skipped"


def test_a_history_table_closes_a_version_only_on_the_same_proof(tmp_path: Path) -> None:
    history = dlt.pipeline(
        pipeline_name="sweep_history",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="audience",
    )
    scd2 = {"disposition": "merge", "strategy": "scd2"}
    people = [{"id": f"p-{i}", "name": f"n{i}"} for i in range(1, 5)]
    history.run(dlt.resource(people, name="peoples", primary_key="id", write_disposition=scd2))  # type: ignore[arg-type]

    def active() -> list[tuple[Any, ...]]:
        return rows(history, "select id from peoples where _dlt_valid_to is null order by id")

    # A read that moved missed p-2 and p-4: no version is closed yet.
    first = apply_sweep(history, plan_sweep(history, "peoples", ["id"], moved_read(["p-1", "p-3"])))
    assert (first.closed, first.unconfirmed) == (0, 2)
    assert active() == [("p-1",), ("p-2",), ("p-3",), ("p-4",)]
    # The next read (which held still) served p-2 again: only p-4's version closes, and stays as history.
    second = apply_sweep(history, plan_sweep(history, "peoples", ["id"], served_ids(["p-1", "p-2", "p-3"])))
    assert (second.closed, second.deleted) == (1, 0)
    assert active() == [("p-1",), ("p-2",), ("p-3",)]
    assert rows(history, "select count(*) from peoples") == [(4,)]
