"""The benchmarks' cores run end to end at a small size (no timing asserted)."""

from __future__ import annotations

import math

from bench import cold_start, fanout


def test_fanout_benchmark_delivers_to_every_client_in_every_variant() -> None:
    report = fanout.measure([50], reps=1, big_reps=1)
    row = report["results"]["50"]
    for variant in fanout.VARIANTS:
        assert row[variant]["delivered"] == [50], (variant, row[variant])
        assert not math.isnan(row[variant]["median_s"]), variant


def test_cold_start_benchmark_times_every_first_call_and_breaks_the_ping_down() -> None:
    report = cold_start.run(1, package=False, profile_reps=1)
    first = report["first_call"]
    assert set(first["medians"]) == {v.name for v in cold_start.FIRST_CALLS}
    for name, medians in first["medians"].items():
        assert all(math.isfinite(value) and value >= 0 for value in medians.values()), name
    assert not math.isnan(first["ping_minus_floor_ms"])
    breakdown = first["breakdown"]
    assert breakdown["imports_ms"] and breakdown["profile"]
    # The ping builds exactly one client (DynamoDB): the Lambda client waits for a worker.
    assert breakdown["profile"]["botocore clients created"]["calls"] == 1
