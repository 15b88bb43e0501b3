"""Shared pieces of the benchmarks: results on disk, statistics, processes, clients.

Every benchmark writes one JSON file under ``build/bench/`` (read by
:mod:`bench.report`) and prints its own table. Servers run in child processes
(``multiprocessing`` spawn context) driven through a :class:`Pipe` of small commands:
the machine allows 20,000 open files per process, so 10,000 client sockets and the
gateway's 10,000 server sockets cannot share one process, and a server's CPU should
not be charged to the clients' event loop anyway.

Times taken in different processes are compared only through ``time.monotonic()``,
which on Linux is the system-wide CLOCK_MONOTONIC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "build" / "bench"
# The secret the benchmark servers give the app; tokens are signed with it.
SECRET = "streamer-bench-secret-of-at-least-32-bytes-long"
TENANT = "bench"

Handler = Callable[[int, str, float], None]


# --- results ---------------------------------------------------------------------------

def results_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = results_path(name)
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **data},
                               indent=2) + "\n")
    return path


def read_results(name: str) -> dict[str, Any] | None:
    path = results_path(name)
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


# --- statistics ------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency someone saw)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table for the terminal."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- processes -------------------------------------------------------------------------

def raise_open_files() -> int:
    """Raise this process's soft open-file limit to the hard limit; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerProcess:
    """A server in a spawned child process, driven by ``(command, args)`` over a pipe.

    The child's target gets its end of the pipe and ``args``; it sends one ready
    message (any picklable value), then answers each command with one reply. Stopping
    sends ``("stop", ())`` and kills the child if it has not exited within ``grace``.
    """

    def __init__(self, target: Callable[..., None], *args: Any, ready_timeout: float = 60.0,
                 grace: float = 10.0, daemon: bool = True) -> None:
        # daemon=False for a server with child processes of its own (multiprocessing
        # refuses them in a daemonic process); stop() still ends it.
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=target, args=(child, *args), daemon=daemon)
        self._ready_timeout = ready_timeout
        self._grace = grace
        self.ready: Any = None

    @property
    def pid(self) -> int:
        pid = self._process.pid
        if pid is None:
            raise RuntimeError("server not started")
        return pid

    def start(self) -> ServerProcess:
        self._process.start()
        if not self._conn.poll(self._ready_timeout):
            self.stop()
            raise RuntimeError("the server process did not become ready")
        try:
            self.ready = self._conn.recv()
        except EOFError:
            self.stop()
            raise RuntimeError("the server process exited before it was ready") from None
        return self

    def send(self, command: str, *args: Any) -> None:
        self._conn.send((command, args))

    def reply(self, timeout: float = 120.0) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"no reply from the server within {timeout}s")
        result = self._conn.recv()
        if isinstance(result, BaseException):
            raise result
        return result

    def call(self, command: str, *args: Any, timeout: float = 120.0) -> Any:
        self.send(command, *args)
        return self.reply(timeout)

    async def call_async(self, command: str, *args: Any, timeout: float = 120.0) -> Any:
        """:meth:`call` without blocking the caller's event loop (its clients keep reading)."""
        self.send(command, *args)
        return await asyncio.to_thread(self.reply, timeout)

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop", ()))
            self._process.join(self._grace)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_commands(conn: Connection, commands: Mapping[str, Callable[..., Any]]) -> None:
    """A child's command loop: run each command, send back its result or its exception."""
    while True:
        try:
            command, args = conn.recv()
        except EOFError:
            return
        if command == "stop":
            return
        try:
            result = commands[command](*args)
        except Exception as exc:  # noqa: BLE001 (sent to the parent, which re-raises it)
            result = RuntimeError(f"{command} failed: {exc!r}")
        conn.send(result)


# --- WebSocket clients -----------------------------------------------------------------

def token_url(base: str, user_id: str, permissions: tuple[str, ...] = ("read",)) -> str:
    from local.testkit import make_token

    token = make_token(SECRET, user_id=user_id, tenant_id=TENANT, permissions=permissions,
                       ttl_seconds=3600)
    return f"{base}/?{urllib.parse.urlencode({'Authorization': token})}"


class Crowd:
    """Many asyncio WebSocket clients in this process, each with a reader task.

    Every received frame goes to ``handler(index, text, monotonic time)``, set by the
    benchmark; the handler must be cheap, since it runs on the clients' one loop.
    """

    def __init__(self) -> None:
        self.clients: list[ClientConnection] = []
        self.handler: Handler | None = None
        self._readers: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self.clients)

    async def _read(self, index: int, client: ClientConnection) -> None:
        try:
            async for raw in client:
                handler = self.handler
                if handler is not None:
                    text = raw if isinstance(raw, str) else raw.decode(errors="replace")
                    handler(index, text, time.monotonic())
        except ConnectionClosed:
            return

    async def open(self, urls: Sequence[str], *, wave: int = 250,
                   deadline: float = 300.0) -> None:
        """Connect to every URL, ``wave`` handshakes at a time, within ``deadline`` s."""
        stop = time.monotonic() + deadline
        for start in range(0, len(urls), wave):
            remaining = stop - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"only {len(self.clients)} of {len(urls)} clients connected")
            batch = urls[start:start + wave]
            opened = await asyncio.wait_for(
                asyncio.gather(*(self._connect(url) for url in batch)), remaining)
            for client in opened:
                index = len(self.clients)
                self.clients.append(client)
                self._readers.append(asyncio.create_task(self._read(index, client)))

    @staticmethod
    async def _connect(url: str) -> ClientConnection:
        # No keepalive pings (10,000 timers would add noise), no compression (the
        # gateway never negotiates it), and a large queue so no reader stalls.
        return await connect(url, open_timeout=60, ping_interval=None, compression=None,
                             close_timeout=1, max_queue=1024)

    def alive(self) -> int:
        return sum(1 for c in self.clients if c.state.name == "OPEN")

    async def close(self) -> None:
        """Drop every connection at once: aborting the transports costs no handshakes."""
        for client in self.clients:
            client.transport.abort()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        self.clients.clear()
        self._readers.clear()


async def send_text(client: ClientConnection, text: str) -> None:
    try:
        await client.send(text)
    except (ConnectionClosed, WebSocketException) as exc:
        raise RuntimeError(f"send failed: {exc!r}") from exc
