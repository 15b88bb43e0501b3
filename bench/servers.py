"""The servers the benchmarks drive, each run in a child process (see common.ServerProcess).

- :func:`app_server`: the real ``app.py`` behind the local gateway (``GatewayThread``),
  with in-memory storage (``local.memory.MemoryStorage``): moto's TransactWriteItems
  deep-copies whole tables, so 10,000 subscribes through moto cost O(n^2) and the
  measurement would be moto's. Large publishes go to ``fanout`` workers through the
  gateway's Lambda Invoke API when ``FANOUT_FUNCTION_NAME`` is set. Commands: ``seed``
  subscriptions straight into the store, ``sequential`` (Chalice's wschat way of
  sending: ``app.websocket_api.send`` in a loop), ``rss``, ``connections``.
- :func:`app_server_processes`: the same, but the gateway's asynchronous invocations
  (the ``fanout`` workers) run in worker processes (``GatewaySettings.lambda_processes``),
  as separate Lambda instances would run them. The one ``MemoryStorage`` stays in the
  gateway's process (its Streamer uses it directly) and is served to the workers over
  a unix socket (:mod:`bench.shared_storage`); each worker builds its Streamer over a
  proxy of it in :func:`worker_setup`, the ``ProcessInvoker`` setup hook. Commands:
  ``seed`` (as above), ``rss``, ``worker_pids``.
- :func:`raw_server`: a plain aiohttp WebSocket server, no Lambda layer, that writes
  one frame to the first N clients on ``broadcast``: the machine's limit. On uvloop
  when it is installed (the loop is in its ready message).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from bench.common import RESULTS_DIR, SECRET, raise_open_files, rss_kib, serve_commands

if TYPE_CHECKING:
    from chalicelib.model import Connection as Row
    from local.memory import MemoryStorage

# Gateway settings for benchmarks: no idle/age closes during a run; a Lambda pool large
# enough for the fan-out workers next to $connect/$default invocations.
GATEWAY_MAX_CONCURRENCY = 64
RECEIVER_PREFIX = "r"


def bench_env(gateway_connections_url: str, gateway_http_url: str,
              extra: Mapping[str, str]) -> dict[str, str]:
    """The app's environment: the local stack's, plus the benchmark's settings."""
    from local.stack import app_environment

    values = app_environment(
        # Never called: the storage is in memory. A closed port makes a stray call fail.
        dynamodb_endpoint_url="http://127.0.0.1:9", table_prefix="bench_",
        ws_endpoint_url=gateway_connections_url, secret=SECRET, stream_arns={},
    )
    values["LAMBDA_ENDPOINT_URL"] = gateway_http_url
    values.update(extra)
    return values


def fast_sender_available() -> bool:
    try:
        from chalicelib.fast_sender import FastSender  # noqa: F401
    except ImportError:
        return False
    return True


def build_streamer(env: Mapping[str, str], storage: Any) -> Any:
    """The app as it ships (``runtime.build``: its sender, its fan-out workers' Lambda
    invoker and idempotency store) over in-memory ``storage`` and request store. The
    idempotency store is Powertools' DynamoDB layer on the benchmark's own moto (or an
    in-memory one, when ``env`` names no DynamoDB): it costs what it costs in a worker."""
    from chalicelib import runtime
    from chalicelib.settings import Settings
    from local.memory import MemoryHistory, MemoryIdempotencyStore, MemoryRequestStore

    settings = Settings.from_env(env)
    return runtime.build(settings=settings, storage=storage, requests=MemoryRequestStore(),
                         history=MemoryHistory(
                             settings.history_size, settings.history_ttl_seconds,
                             state_ttl_seconds=settings.channel_state_ttl_seconds),
                         idempotency=MemoryIdempotencyStore())


def quiet_output(name: str) -> None:
    """Send this process's stdout/stderr (the app's JSON logs and EMF metrics, which it
    still formats and writes: that cost is part of the app) to build/bench/<name>.log."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(RESULTS_DIR / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class Seeder:
    """Subscriptions of the benchmark's receivers, written straight into a MemoryStorage."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self._lock = threading.Lock()

    def receivers(self, count: int) -> list[Row]:
        """The first ``count`` benchmark receivers (user ids r0, r1, ...), in order."""
        found = [c for c in list(self.storage.connections.values())
                 if c.user_id.startswith(RECEIVER_PREFIX)]
        found.sort(key=lambda c: int(c.user_id[len(RECEIVER_PREFIX):]))
        if len(found) < count:
            raise RuntimeError(f"only {len(found)} receivers connected, {count} asked")
        return found[:count]

    def seed(self, channel: str, count: int) -> int:
        """Subscribe the first ``count`` receivers to ``channel`` straight in the store
        (the same rows the subscribe action writes, without 10,000 round trips)."""
        with self._lock:
            return sum(self.storage.subscribe(c, channel, 1_000_000)
                       for c in self.receivers(count))


def app_server(conn: Connection, extra_env: dict[str, str]) -> None:
    raise_open_files()
    quiet_output("app_server")
    from chalice.app import Chalice

    from chalicelib import runtime
    from local.memory import MemoryStorage
    from local.stack import load_app
    from streamer_local.settings import GatewaySettings
    from streamer_local.testing import GatewayThread

    app: Chalice = load_app("app:app")
    gateway = GatewayThread(app, settings=GatewaySettings(
        max_concurrency=GATEWAY_MAX_CONCURRENCY, idle_timeout=3600.0, lambda_timeout=120.0,
    )).start()
    env = bench_env(gateway.connections_url, gateway.http_url, extra_env)
    os.environ.update(env)  # boto3 clients read the dummy credentials from here
    storage = MemoryStorage(int(env.get("SUBSCRIPTION_SHARDS", "4")))
    runtime.configure(build_streamer(env, storage))
    seeder = Seeder(storage)

    def sequential(count: int, message: str) -> tuple[float, float]:
        """Chalice's wschat way: ``app.websocket_api.send`` per connection, in order."""
        import boto3

        api = app.websocket_api
        if api.session is None:
            api.session = boto3.session.Session()
            # Chalice builds https://{domain}/{stage} only; the gateway is plain http.
            api._endpoint = gateway.connections_url
        ids = [c.connection_id for c in seeder.receivers(count)]
        start = time.monotonic()
        for connection_id in ids:
            api.send(connection_id, message)
        return start, time.monotonic()

    _announce(conn, gateway, env)
    serve_commands(conn, {
        "seed": seeder.seed,
        "sequential": sequential,
        "rss": lambda: rss_kib(os.getpid()),
        "connections": lambda: len(storage.connections),
    })
    # No graceful gateway stop: it would run 10,000 $disconnects for nothing.
    os._exit(0)


def _announce(conn: Any, gateway: Any, env: dict[str, str]) -> None:
    """Tell the benchmark process where the gateway listens (never the secret)."""
    conn.send({"url": gateway.url, "http_url": gateway.http_url, "pid": os.getpid(),
               "loop": _loop_name(gateway.loop),
               "env": {k: v for k, v in env.items() if "SECRET" not in k}})


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: the event loop a server runs on."""
    return type(loop).__module__.split(".")[0]


def worker_setup(env: dict[str, str]) -> None:
    """The ``ProcessInvoker`` setup hook of :func:`app_server_processes`' workers: the
    app's Streamer over the gateway process's store, reached through a proxy."""
    from bench.shared_storage import connect
    from chalicelib import runtime

    runtime.configure(build_streamer(env, connect(env)))


def app_server_processes(conn: Connection, extra_env: dict[str, str], processes: int) -> None:
    """``app.py`` behind the gateway, ``fanout`` workers in ``processes`` processes, the
    gateway process's in-memory storage shared with them (see the module docstring)."""
    raise_open_files()
    quiet_output("app_server_processes")
    from chalice.app import Chalice

    from bench.shared_storage import serve
    from chalicelib import runtime
    from local.memory import MemoryStorage
    from local.stack import load_app
    from streamer_local.settings import GatewaySettings
    from streamer_local.testing import GatewayThread

    app: Chalice = load_app("app:app")
    lambda_env: dict[str, str] = {}  # complete before the workers start, which copy it
    settings = GatewaySettings(
        max_concurrency=GATEWAY_MAX_CONCURRENCY, idle_timeout=3600.0, lambda_timeout=120.0,
        lambda_processes=processes,
    )
    gateway = GatewayThread(app, settings=settings, app_spec="app:app", lambda_env=lambda_env,
                            lambda_setup="bench.servers:worker_setup").start()
    env = bench_env(gateway.connections_url, gateway.http_url, extra_env)
    storage = MemoryStorage(int(env.get("SUBSCRIPTION_SHARDS", "4")))
    env.update(serve(storage))  # where the workers find it (its key is never announced)
    lambda_env.update(env)
    os.environ.update(env)  # boto3 clients read the dummy credentials from here
    runtime.configure(build_streamer(env, storage))
    gateway.run(gateway.gateway.start_lambda_processes(), timeout=120)
    seeder = Seeder(storage)

    _announce(conn, gateway, env)
    serve_commands(conn, {
        "seed": seeder.seed,
        "rss": lambda: rss_kib(os.getpid()),
        "connections": lambda: len(storage.connections),
        "worker_pids": lambda: dict(gateway.gateway.processes.pids
                                    if gateway.gateway.processes else {}),
    })
    # The workers are child processes: stop them (bounded). No graceful gateway stop:
    # it would run 10,000 $disconnects for nothing.
    if gateway.gateway.processes is not None:
        gateway.gateway.processes.shutdown()
    os._exit(0)


def raw_server(conn: Connection) -> None:
    """The raw broadcast server, on uvloop when it is installed (as a fast asyncio
    server would be deployed), else on asyncio's own loop."""
    raise_open_files()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_raw_main(conn, "asyncio"))
    else:
        uvloop.run(_raw_main(conn, "uvloop"))
    os._exit(0)


async def _raw_main(conn: Connection, loop_name: str) -> None:
    from aiohttp import web

    sockets: dict[int, web.WebSocketResponse] = {}

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        index = int(request.query.get("i", "-1"))
        sockets[index] = ws
        try:
            async for _ in ws:
                pass
        finally:
            sockets.pop(index, None)
        return ws

    web_app = web.Application()
    web_app.router.add_get("/", websocket)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = int(runner.addresses[0][1])
    conn.send({"url": f"ws://127.0.0.1:{port}", "pid": os.getpid(), "loop": loop_name})
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            return
        if command == "broadcast":
            count, message = args
            start = time.monotonic()
            for index in range(count):
                await sockets[index].send_str(message)
            conn.send((start, time.monotonic()))
        elif command == "connections":
            conn.send(len(sockets))
        elif command == "rss":
            conn.send(rss_kib(os.getpid()))
        else:
            conn.send(RuntimeError(f"unknown command {command!r}"))
