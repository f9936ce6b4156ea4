"""`ServedKeys`, the loader's record of the keys each resource was served in a run: repeats are counted
exactly and a few are named, at about 8 bytes a key."""

import tracemalloc

from analytics_assets.sweep import Repeats, ServedKeys


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


def test_about_8_bytes_a_key() -> None:
    # Past the fixed window of recent keys (4,096), each further key costs its 8-byte hash (the
    # array grows by up to an eighth at a time).
    small, large = kept_for(40_000), kept_for(140_000)
    assert (large - small) / 100_000 < 8 * 1.2, (small, large)
    assert small < 40_000 * 8 * 1.2 + 1_000_000  # the window: under 1 MB
