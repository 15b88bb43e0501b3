"""Concurrent connections the local gateway holds, and its memory per connection.

The real ``app.py`` behind the local gateway in a server process (in-memory storage,
as in bench.fanout, so each connection is one ``$connect`` invocation and one stored
row); ``--clients`` websockets clients in this process. The gateway process's RSS
(/proc/<pid>/status VmRSS) is read before the first client and after the last one,
after ``--hold`` seconds in which every connection must stay open. Each process may
open 20,000 files here, which is why clients and gateway live in different processes.

    .venv/bin/python -m bench.capacity [--clients 10000] [--hold 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    Crowd,
    ServerProcess,
    format_table,
    raise_open_files,
    token_url,
    write_results,
)
from bench.fanout import app_settings
from bench.report import CAPACITY_CONNECTIONS as GOAL
from bench.servers import app_server


async def _run(clients: int, hold: float, env: dict[str, str]) -> dict[str, Any]:
    with ServerProcess(app_server, env) as server:
        base = server.ready["url"]
        await asyncio.sleep(1.0)  # let the server settle before the baseline reading
        rss_before = int(await server.call_async("rss"))
        crowd = Crowd()
        started = time.monotonic()
        error = None
        try:
            await crowd.open([token_url(base, f"r{i}") for i in range(clients)])
        except (TimeoutError, OSError) as exc:  # report how far it got, not a traceback
            error = repr(exc)
        connect_s = time.monotonic() - started
        opened = len(crowd)
        await asyncio.sleep(hold)
        held_clients = crowd.alive()
        held_server = int(await server.call_async("connections"))
        rss_after = int(await server.call_async("rss"))
        await crowd.close()
    return {
        "clients": clients, "hold_s": hold, "connect_s": connect_s,
        "connect_rate_per_s": opened / connect_s if connect_s else 0.0,
        "held_open_clients": held_clients, "held_server_connections": held_server,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after,
        "kib_per_connection": (rss_after - rss_before) / max(1, held_server),
        "error": error, "goal": {"connections": GOAL, "met": held_server >= GOAL},
        "open_files_limit_per_process": raise_open_files(),
    }


def measure(clients: int = GOAL, hold: float = 5.0) -> dict[str, Any]:
    raise_open_files()
    env = app_settings(shards=16, concurrency=16, sender="fast", per_worker=8)
    report = asyncio.run(_run(clients, hold, env))
    report["settings"] = env
    return report


def table(report: dict[str, Any]) -> str:
    return format_table(
        ["clients", "held", "connect s", "conn/s", "RSS before MiB", "RSS after MiB",
         "KiB/connection"],
        [[report["clients"], report["held_server_connections"], report["connect_s"],
          report["connect_rate_per_s"], report["rss_before_kib"] / 1024,
          report["rss_after_kib"] / 1024, report["kib_per_connection"]]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=GOAL)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="write build/bench/capacity.json")
    args = parser.parse_args(argv)
    report = measure(args.clients, args.hold)
    print("gateway capacity (real app, in-memory storage):")
    print(table(report))
    if report["error"]:
        print(f"stopped early: {report['error']}")
    if args.json:
        write_results("capacity", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
