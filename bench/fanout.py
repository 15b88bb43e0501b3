"""Time to deliver one publish to N real local WebSocket clients, four ways.

- **Streamer, worker processes**: the real ``app.py`` behind the local gateway (server
  process), a client ``publish`` frame; large channels go to ``fanout`` workers through
  the gateway's Lambda Invoke API (see chalicelib/parallel.py), which runs them in N
  worker processes of their own (``--lambda-processes``), as separate Lambda instances
  do on AWS: each worker its own interpreter, GIL and sender. Storage is in memory
  (``local.memory.MemoryStorage``) in the gateway's process, shared with the workers
  over a unix socket (``bench.shared_storage``; moto's Query would be what is measured).
- **Streamer** (worker threads): the same app and storage, but the ``fanout`` workers
  run in threads of the gateway's process: gateway, app and workers share one GIL.
- **sequential**: the same gateway and clients; the server process loops
  ``app.websocket_api.send(connection_id, message)`` (boto3 ``post_to_connection``
  against the gateway's ``@connections``), as Chalice's wschat tutorial sends.
- **raw**: a plain aiohttp WebSocket server (its own process, no Lambda layer; on
  uvloop when it is installed, as the gateway may be: both loops are reported) writing
  the same frame to the same number of clients: this machine's limit.

Clients live in this process (websockets' asyncio client). Subscriptions are seeded
straight into the in-memory store (the rows the subscribe action writes), to save
10,000 round trips. Delivery time = last arrival - the moment the trigger was sent
(publish frame, or pipe command for the two baselines), both ``time.monotonic()``.

    .venv/bin/python -m bench.fanout [--sizes 1000 5000 10000] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.common import (
    Crowd,
    ServerProcess,
    format_table,
    median,
    raise_open_files,
    token_url,
    write_results,
)
from bench.report import FANOUT_MAX_TIMES_RAW as GOAL_VS_RAW
from bench.report import FANOUT_MIN_SPEEDUP_VS_SEQUENTIAL as GOAL_VS_SEQUENTIAL
from bench.report import FANOUT_N as GOAL_N
from bench.servers import app_server, app_server_processes, fast_sender_available, raw_server

STREAMER, SEQUENTIAL, RAW = "Streamer", "sequential send loop", "raw aiohttp broadcast"
STREAMER_PROCESSES = "Streamer, worker processes"
# The worker-process variant first: it is the one that models AWS.
VARIANTS = (STREAMER_PROCESSES, STREAMER, SEQUENTIAL, RAW)
ROUND_TIMEOUT = 120.0  # seconds for one delivery round, the slowest (sequential 10k) included
PAD = "x" * 200  # a frame of about 400 bytes, a typical small update


@dataclass
class Round:
    """One delivery: which marker to look for, and when each client first saw it."""

    marker: str = ""
    expected: int = 0
    seen: set[int] = field(default_factory=set)
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def arm(self, expected: int) -> str:
        self.marker = uuid.uuid4().hex
        self.expected = expected
        self.seen = set()
        self.last = 0.0
        self.done = asyncio.Event()
        return self.marker

    def on_frame(self, index: int, text: str, at: float) -> None:
        if self.marker and self.marker in text and index not in self.seen:
            self.seen.add(index)
            self.last = at
            if len(self.seen) >= self.expected:
                self.done.set()

    async def wait(self, timeout: float = ROUND_TIMEOUT) -> int:
        """Wait until every expected client got the marker (or the timeout); how many did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)
        count = len(self.seen)
        self.marker = ""  # late arrivals of this round are ignored from now on
        return count


def frame_for(marker: str, channel: str) -> str:
    """The message frame Streamer sends, for the baselines to send the same bytes."""
    return json.dumps({"type": "message", "channel": channel, "message_id": marker,
                       "data": {"m": marker, "pad": PAD}, "sender": {"user_id": "publisher"},
                       "ts": int(time.time() * 1000)}, separators=(",", ":"))


@dataclass
class Sample:
    variant: str
    n: int
    seconds: float
    delivered: int


async def _drain(client: ClientConnection) -> None:
    """Read and drop the publisher's own frames (acks) so its queue never fills."""
    async for _ in client:
        pass


@contextlib.asynccontextmanager
async def _audience(base: str, count: int, label: str,
                    log: list[str]) -> AsyncIterator[tuple[Round, ClientConnection]]:
    """``count`` receiving clients and one publisher on a gateway, closed afterwards."""
    from websockets.asyncio.client import connect

    crowd, round_ = Crowd(), Round()
    crowd.handler = round_.on_frame
    started = time.monotonic()
    await crowd.open([token_url(base, f"r{i}") for i in range(count)])
    log.append(f"{label}: {len(crowd)} clients connected in "
               f"{time.monotonic() - started:.1f} s")
    publisher = await connect(token_url(base, "publisher", ("read", "write")),
                              ping_interval=None, compression=None)
    drain = asyncio.create_task(_drain(publisher))
    try:
        yield round_, publisher
    finally:
        drain.cancel()
        publisher.transport.abort()
        await crowd.close()


async def _streamer_and_sequential(sizes: Sequence[int], reps: dict[int, tuple[int, int]],
                                   env: dict[str, str], log: list[str],
                                   loops: dict[str, str]) -> list[Sample]:
    samples: list[Sample] = []
    with ServerProcess(app_server, env) as server:
        loops["gateway"] = server.ready.get("loop", "?")
        audience = _audience(server.ready["url"], max(sizes), "gateway with worker threads",
                             log)
        async with audience as (round_, publisher):
            warm = min(100, max(sizes))
            for n in (warm, *sizes):
                await server.call_async("seed", f"fan{n}", n)
            # Warm-up: the first publish builds the Streamer (settings, clients, pools),
            # the first sequential send builds Chalice's boto3 client.
            for variant in (STREAMER, SEQUENTIAL):
                await _deliver(variant, warm, round_, server, publisher)
            for n in sizes:
                streamer_reps, sequential_reps = reps[n]
                for rep in range(max(streamer_reps, sequential_reps)):  # interleaved
                    if rep < streamer_reps:
                        samples.append(await _deliver(STREAMER, n, round_, server, publisher))
                    if rep < sequential_reps:
                        samples.append(await _deliver(SEQUENTIAL, n, round_, server, publisher))
    return samples


async def _deliver(variant: str, n: int, round_: Round, server: ServerProcess,
                   publisher: ClientConnection | None) -> Sample:
    channel = f"fan{n}"
    marker = round_.arm(n)
    if variant in (STREAMER, STREAMER_PROCESSES):
        assert publisher is not None
        frame = json.dumps({"action": "publish", "channel": channel, "id": marker,
                            "data": {"m": marker, "pad": PAD}})
        start = time.monotonic()
        await publisher.send(frame)
    else:
        command = "sequential" if variant == SEQUENTIAL else "broadcast"
        message = frame_for(marker, channel)
        start = time.monotonic()
        server.send(command, n, message)
    delivered = await round_.wait()
    if variant not in (STREAMER, STREAMER_PROCESSES):
        await asyncio.to_thread(server.reply, ROUND_TIMEOUT)
    return Sample(variant, n, round_.last - start if delivered else float("nan"), delivered)


async def _streamer_processes(sizes: Sequence[int], reps: dict[int, tuple[int, int]],
                              env: dict[str, str], processes: int,
                              log: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    with ServerProcess(app_server_processes, env, processes, ready_timeout=180.0,
                       daemon=False) as server:
        label = f"gateway with {processes} worker processes"
        async with _audience(server.ready["url"], max(sizes), label, log) as (round_, publisher):
            for n in sizes:
                await server.call_async("seed", f"fan{n}", n)
            # Warm-up: builds the senders in the gateway process and, one publish per
            # worker process, in the workers (a free process takes a job). The smallest
            # size: the benchmark's threshold sends it to workers from N = 1,000.
            for _ in range(max(2, processes)):
                await _deliver(STREAMER_PROCESSES, min(sizes), round_, server, publisher)
            for n in sizes:
                for _ in range(reps[n][0]):
                    samples.append(await _deliver(STREAMER_PROCESSES, n, round_, server, publisher))
            await asyncio.sleep(0.5)  # the last invocations report back after delivering
            pids = await server.call_async("worker_pids")
            log.append(f"worker processes: finished invocations by pid {pids} (gateway pid "
                       f"{server.ready['pid']}; storage shared with them over a unix socket)")
    return samples


async def _raw(sizes: Sequence[int], reps: dict[int, tuple[int, int]],
               log: list[str], loops: dict[str, str]) -> list[Sample]:
    samples: list[Sample] = []
    with ServerProcess(raw_server) as server:
        base = server.ready["url"]
        loops["raw server"] = server.ready.get("loop", "?")
        crowd, round_ = Crowd(), Round()
        crowd.handler = round_.on_frame
        started = time.monotonic()
        await crowd.open([f"{base}/?i={i}" for i in range(max(sizes))])
        log.append(f"raw server (on {loops['raw server']}): {len(crowd)} clients connected "
                   f"in {time.monotonic() - started:.1f} s")
        await _deliver(RAW, min(100, max(sizes)), round_, server, None)  # warm-up
        for n in sizes:
            for _ in range(reps[n][0]):
                samples.append(await _deliver(RAW, n, round_, server, None))
        await crowd.close()
    return samples


def app_settings(*, shards: int, concurrency: int, sender: str,
                 per_worker: int = 2, threshold: int = 500) -> dict[str, str]:
    """Streamer at its best here: sharded channels, parallel workers, the fast sender."""
    return {
        "SUBSCRIPTION_SHARDS": str(shards),
        # Below the default 1,000, so N = 1,000 always goes to workers (the publisher
        # estimates the channel's size from shard 0, which varies around N / shards).
        "FANOUT_WORKER_THRESHOLD": str(threshold),
        "FANOUT_SHARDS_PER_WORKER": str(per_worker),
        "FANOUT_FUNCTION_NAME": "fanout",
        "FANOUT_CONCURRENCY": str(concurrency),
        "SENDER": sender,
        "LOG_LEVEL": "WARNING",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


def measure(sizes: Sequence[int], *, reps: int = 3, big_reps: int = 1, big_from: int = 10_000,
            shards: int = 16, concurrency: int = 16, per_worker: int = 8,
            sender: str | None = None, processes: int = 2) -> dict[str, Any]:
    """Run the four variants (three with ``processes=0``); per-size medians, ratios, samples.

    Sizes at or above ``big_from`` run the sequential loop ``big_reps`` times (it is
    the slowest by far) and the others ``reps`` times.
    """
    raise_open_files()
    if sender is None:
        sender = "fast" if fast_sender_available() else "boto3"
    per_size = {n: (reps, big_reps if n >= big_from else reps) for n in sizes}
    env = app_settings(shards=shards, concurrency=concurrency, sender=sender,
                       per_worker=per_worker)
    log: list[str] = []
    loops: dict[str, str] = {}

    async def run() -> list[Sample]:
        samples = await _streamer_and_sequential(sizes, per_size, env, log, loops)
        if processes:
            samples += await _streamer_processes(sizes, per_size, env, processes, log)
        return [*samples, *await _raw(sizes, per_size, log, loops)]

    samples = asyncio.run(run())
    results: dict[str, Any] = {}
    for n in sizes:
        row: dict[str, Any] = {}
        for variant in VARIANTS:
            mine = [s for s in samples if s.variant == variant and s.n == n]
            row[variant] = {"median_s": median([s.seconds for s in mine]),
                            "samples_s": [s.seconds for s in mine],
                            "delivered": [s.delivered for s in mine]}
        streamer = row[STREAMER]["median_s"]
        row["speedup_vs_sequential"] = row[SEQUENTIAL]["median_s"] / streamer
        row["times_raw"] = streamer / row[RAW]["median_s"]
        in_processes = row[STREAMER_PROCESSES]["median_s"]
        row["processes_speedup_vs_sequential"] = row[SEQUENTIAL]["median_s"] / in_processes
        row["processes_times_raw"] = in_processes / row[RAW]["median_s"]
        results[str(n)] = row
    return {"sizes": list(sizes), "settings": env, "sender": sender, "log": log,
            "processes": processes, "loops": loops,
            "results": results,
            "goals": {"n": GOAL_N, "min_speedup_vs_sequential": GOAL_VS_SEQUENTIAL,
                      "max_times_raw": GOAL_VS_RAW}}


def table(report: dict[str, Any]) -> str:
    rows = []
    for n in report["sizes"]:
        row = report["results"][str(n)]
        rows.append([n, *(row[v]["median_s"] for v in VARIANTS),
                     f"{row['processes_speedup_vs_sequential']:.2f}x",
                     f"{row['processes_times_raw']:.2f}x",
                     f"{row['speedup_vs_sequential']:.2f}x", f"{row['times_raw']:.2f}x",
                     "/".join(str(min(row[v]["delivered"], default=0)) for v in VARIANTS)])
    headers = ["N", "processes s", "threads s", "sequential s", "raw s", "seq/processes",
               "processes/raw", "seq/threads", "threads/raw", "min delivered"]
    return format_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--big-reps", type=int, default=1,
                        help="sequential-loop repetitions at N >= 10,000")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-worker", type=int, default=8,
                        help="FANOUT_SHARDS_PER_WORKER (16 shards / 8 = 2 workers, one per core)")
    parser.add_argument("--sender", choices=["fast", "boto3"], default=None)
    parser.add_argument("--processes", type=int, default=2,
                        help="worker processes of the 'Streamer, worker processes' variant "
                             "(0 skips it)")
    parser.add_argument("--json", action="store_true", help="write build/bench/fanout.json")
    args = parser.parse_args(argv)
    report = measure(args.sizes, reps=args.reps, big_reps=args.big_reps, shards=args.shards,
                     concurrency=args.concurrency, per_worker=args.per_worker,
                     sender=args.sender, processes=args.processes)
    print("\n".join(report["log"]))
    loops = ", ".join(f"{k} on {v}" for k, v in report["loops"].items())
    print(f"fan-out, median seconds to the last client (sender={report['sender']}; {loops}; "
          "Streamer's fanout workers in processes, or in threads of the gateway's process):")
    print(table(report))
    if args.json:
        write_results("fanout", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
