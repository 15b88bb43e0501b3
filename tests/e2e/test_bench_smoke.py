"""The fan-out benchmark's core runs end to end at a small size (no timing asserted)."""

from __future__ import annotations

import math

from bench import fanout


def test_fanout_benchmark_delivers_to_every_client_in_every_variant() -> None:
    report = fanout.measure([50], reps=1, big_reps=1)
    row = report["results"]["50"]
    for variant in fanout.VARIANTS:
        assert row[variant]["delivered"] == [50], (variant, row[variant])
        assert not math.isnan(row[variant]["median_s"]), variant
