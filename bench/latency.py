"""Publish-to-delivery latency at a steady publish rate, through the real app.

The real ``app.py`` behind the local gateway (server process, in-memory storage, as
in bench.fanout), ``--subscribers`` clients subscribed to one channel (seeded into
the store), and one publisher client sending ``publish`` frames on a fixed schedule
(``--rate`` per second for ``--seconds``, after a one-second warm-up that is not
recorded). Each delivery's latency is its arrival time minus the moment its publish
frame was sent (``time.monotonic()``, system-wide on Linux).

    .venv/bin/python -m bench.latency [--rate 20] [--seconds 10] [--subscribers 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.common import (
    Crowd,
    ServerProcess,
    format_table,
    median,
    percentile,
    raise_open_files,
    token_url,
    write_results,
)
from bench.fanout import app_settings
from bench.servers import app_server, fast_sender_available

WARMUP_SECONDS = 1.0
SETTLE_SECONDS = 2.0  # after the last publish, for the last deliveries to arrive


async def _run(rate: float, seconds: float, subscribers: int,
               env: dict[str, str]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    sent: dict[int, float] = {}
    latencies: list[float] = []
    received: dict[int, int] = {}

    def on_frame(_index: int, text: str, at: float) -> None:
        if '"seq"' not in text:
            return
        seq = int(json.loads(text)["data"]["seq"])
        received[seq] = received.get(seq, 0) + 1
        if seq >= 0 and seq in sent:
            latencies.append(at - sent[seq])

    with ServerProcess(app_server, env) as server:
        base = server.ready["url"]
        crowd = Crowd()
        crowd.handler = on_frame
        await crowd.open([token_url(base, f"r{i}") for i in range(subscribers)])
        await server.call_async("seed", "lat", subscribers)
        publisher = await connect(token_url(base, "publisher", ("read", "write")),
                                  ping_interval=None, compression=None)

        async def drain() -> None:
            async for _ in publisher:
                pass

        drainer = asyncio.create_task(drain())
        warmup = int(WARMUP_SECONDS * rate)
        count = int(seconds * rate)
        start = time.monotonic()
        for k in range(-warmup, count):  # negative sequence numbers: the warm-up
            due = start + (k + warmup) / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = json.dumps({"action": "publish", "channel": "lat", "id": f"p{k}",
                                "data": {"seq": k}})
            now = time.monotonic()
            if k >= 0:
                sent[k] = now
            await publisher.send(frame)
        achieved = (count + warmup) / (time.monotonic() - start)
        await asyncio.sleep(SETTLE_SECONDS)
        drainer.cancel()
        publisher.transport.abort()
        await crowd.close()
    expected = count * subscribers
    ms = [x * 1000 for x in latencies]
    return {
        "rate_per_s": rate, "achieved_rate_per_s": achieved, "seconds": seconds,
        "subscribers": subscribers, "deliveries": len(ms), "expected": expected,
        "p50_ms": percentile(ms, 0.50), "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99), "max_ms": max(ms, default=float("nan")),
        "median_ms": median(ms),
        # Kept for the report's histogram; 20,000 floats are small.
        "latencies_ms": [round(x, 3) for x in ms],
        "settings": env, "store": "in-memory (local.memory.MemoryStorage)",
    }


def measure(rate: float = 20.0, seconds: float = 10.0, subscribers: int = 100,
            sender: str | None = None) -> dict[str, Any]:
    raise_open_files()
    if sender is None:
        sender = "fast" if fast_sender_available() else "boto3"
    env = app_settings(shards=16, concurrency=16, sender=sender, per_worker=8)
    return asyncio.run(_run(rate, seconds, subscribers, env))


def table(report: dict[str, Any]) -> str:
    return format_table(
        ["rate/s", "subscribers", "deliveries", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [[report["rate_per_s"], report["subscribers"],
          f"{report['deliveries']}/{report['expected']}", report["p50_ms"], report["p90_ms"],
          report["p99_ms"], report["max_ms"]]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--sender", choices=["fast", "boto3"], default=None)
    parser.add_argument("--json", action="store_true", help="write build/bench/latency.json")
    args = parser.parse_args(argv)
    report = measure(args.rate, args.seconds, args.subscribers, args.sender)
    print("publish-to-delivery latency (real app, in-memory storage):")
    print(table(report))
    if args.json:
        write_results("latency", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
