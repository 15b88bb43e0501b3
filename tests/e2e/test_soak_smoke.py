"""The soak runs end to end at a tiny size with its faults on, and meets its zero goals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Every goal the soak states; a renamed or dropped one must fail here, not pass unseen.
GOALS = {
    "connections opened", "acked publishes and expected deliveries",
    "lost deliveries (acked, to connections up)", "connections forgotten with no 410 logged",
    "duplicate deliveries", "cross-tenant deliveries",
    "deliveries on a channel not subscribed", "connections closed by the server",
    "stuck requests (live after the grace)", "requests run twice / result after cancel",
    "orphan rows, $disconnect ran (after sweep)",
    "orphan subscriptions a sweep should reach (after sweep)",
    "ERROR lines in the stack's log",
}


def _soak(tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / "soak.json"
    # Its own process: the soak raises its open-file limit and runs its own event loop,
    # and 30 clients plus the stack's children must not leak into the test process.
    # Faults stronger than the default so that a 20-second run still meets each of them.
    # --deadline: on a machine too busy to finish in time, the soak itself stops and
    # reports the phase it was in, rather than being killed with nothing to show.
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--connections", "30", "--minutes", "0.33",
         "--throttle-fraction", "0.05", "--gone-share", "0.1", "--drop-disconnect", "0.2",
         "--redeliver-fraction", "0.3", "--request-rate", "1", "--deadline", "120",
         "--json-path", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False)
    return done.returncode, json.loads(path.read_text()), done.stdout + done.stderr


@pytest.mark.timeout(180)  # about 40 s; the soak's own deadline (120 s) comes first
def test_soak_meets_its_zero_goals_with_faults_on(tmp_path: Path) -> None:
    """30 subscribers for 20 s with every fault switch on: every goal met, exit status 0."""
    status, report, output = _soak(tmp_path)
    goals = {g["name"]: g for g in report["goals"]}
    missed = [g for g in goals.values() if not g["met"]]  # a passed deadline is one too
    assert not missed, (missed, output[-4000:])
    assert set(goals) == GOALS, output
    assert status == 0 and report["passed"], output[-4000:]
    # The figures behind the goals exist and show that the run exercised something.
    up = report["deliveries"]["stayed_up"]
    assert up["expected"] > 0 and up["received_expected"] > 0
    assert report["publishes"]["acked"] > 0
    assert report["requests"]["acked"] > 0 and report["requests"]["cancels_sent"] > 0
    assert report["server"]["retries"] > 0, "the 429 fault was never hit"
    assert report["connections"]["opened"] == 30
    for stage in ("before_sweep", "after_sweep"):
        assert {"connection_rows", "subscription_rows", "excused_connections",
                "unexcused_connections"} <= set(report["orphans"][stage])
    assert report["rss"]["samples"] and report["latency_ms"]["steady"]["count"] > 0
