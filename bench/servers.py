"""The servers the benchmarks drive, each run in a child process (see common.ServerProcess).

- :func:`app_server`: the real ``app.py`` behind the local gateway (``GatewayThread``),
  with in-memory storage (``local.memory.MemoryStorage``): moto's TransactWriteItems
  deep-copies whole tables, so 10,000 subscribes through moto cost O(n^2) and the
  measurement would be moto's. Large publishes go to ``fanout`` workers through the
  gateway's Lambda Invoke API when ``FANOUT_FUNCTION_NAME`` is set. Commands: ``seed``
  subscriptions straight into the store, ``sequential`` (Chalice's wschat way of
  sending: ``app.websocket_api.send`` in a loop), ``rss``, ``connections``.
- :func:`app_server_processes`: the real ``app.py`` behind the local gateway with its
  asynchronous invocations (the ``fanout`` workers) in worker processes
  (``GatewaySettings.lambda_processes``), as separate Lambda instances would run them;
  storage is therefore DynamoDB on moto (``local.dynamodb_server``), since memory is
  per process. Connections are real ``$connect``s (rows written by the app); ``seed``
  writes subscription rows straight to moto with BatchWriteItem, in the shape
  ``chalicelib/storage.py`` writes them.
- :func:`raw_server`: a plain aiohttp WebSocket server, no Lambda layer, that writes
  one frame to the first N clients on ``broadcast``: the machine's limit.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from bench.common import RESULTS_DIR, SECRET, raise_open_files, rss_kib, serve_commands

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


def sender_factory(settings: Any, kind: str) -> Callable[[str], Any]:
    """The @connections sender: ``fast`` (chalicelib.fast_sender) or ``boto3``.

    Mirrors runtime.build's ``SENDER`` setting: the benchmark builds its own Streamer
    (in-memory storage), so it chooses the sender the same way here.
    """
    from chalicelib.sending import ManagementApiSender

    if kind == "fast":
        from chalicelib.fast_sender import FastSender

        return lambda endpoint: FastSender(endpoint, settings.region,
                                           pool_size=settings.fanout_concurrency)
    return lambda endpoint: ManagementApiSender.for_endpoint(
        endpoint, settings.region, settings.fanout_concurrency)


def fast_sender_available() -> bool:
    try:
        from chalicelib.fast_sender import FastSender  # noqa: F401
    except ImportError:
        return False
    return True


def build_streamer(env: Mapping[str, str], storage: Any) -> Any:
    """The app's Streamer over ``storage``, with workers invoked through the gateway."""
    import json

    import boto3

    from chalicelib.service import Streamer
    from chalicelib.settings import Settings
    from local.memory import MemoryRequestStore

    settings = Settings.from_env(env)
    invoke = None
    if settings.fanout_function_name:
        client = boto3.client("lambda", endpoint_url=settings.lambda_endpoint_url,
                              region_name=settings.region)

        def invoke(function_name: str, payload: dict[str, Any]) -> None:
            client.invoke(FunctionName=function_name, InvocationType="Event",
                          Payload=json.dumps(payload).encode())

    kind = str(getattr(settings, "sender", env.get("SENDER", "fast")))
    # No idempotency store: it lives in DynamoDB, and this run has none (workers are
    # never retried here, so it would only add writes).
    return Streamer(settings, storage, sender_factory(settings, kind),
                    requests=MemoryRequestStore(), invoke=invoke)


def quiet_output(name: str) -> None:
    """Send this process's stdout/stderr (the app's JSON logs and EMF metrics, which it
    still formats and writes: that cost is part of the app) to build/bench/<name>.log."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(RESULTS_DIR / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def app_server(conn: Connection, extra_env: dict[str, str]) -> None:
    raise_open_files()
    quiet_output("app_server")
    from chalice.app import Chalice

    from chalicelib import runtime
    from local.memory import MemoryStorage
    from local.settings import GatewaySettings
    from local.stack import load_app
    from local.testing import GatewayThread

    app: Chalice = load_app("app:app")
    gateway = GatewayThread(app, settings=GatewaySettings(
        max_concurrency=GATEWAY_MAX_CONCURRENCY, idle_timeout=3600.0, lambda_timeout=120.0,
    )).start()
    env = bench_env(gateway.connections_url, gateway.http_url, extra_env)
    os.environ.update(env)  # boto3 clients read the dummy credentials from here
    storage = MemoryStorage(int(env.get("SUBSCRIPTION_SHARDS", "4")))
    runtime.configure(build_streamer(env, storage))
    lock = threading.Lock()

    def receivers(count: int) -> list[Any]:
        """The first ``count`` benchmark receivers (user ids r0, r1, ...), in order."""
        found = [c for c in list(storage.connections.values())
                 if c.user_id.startswith(RECEIVER_PREFIX)]
        found.sort(key=lambda c: int(c.user_id[len(RECEIVER_PREFIX):]))
        if len(found) < count:
            raise RuntimeError(f"only {len(found)} receivers connected, {count} asked")
        return found[:count]

    def seed(channel: str, count: int) -> int:
        """Subscribe the first ``count`` receivers to ``channel`` straight in the store
        (the same rows the subscribe action writes, without 10,000 round trips)."""
        with lock:
            return sum(storage.subscribe(c, channel, 1_000_000) for c in receivers(count))

    def sequential(count: int, message: str) -> tuple[float, float]:
        """Chalice's wschat way: ``app.websocket_api.send`` per connection, in order."""
        import boto3

        api = app.websocket_api
        if api.session is None:
            api.session = boto3.session.Session()
            # Chalice builds https://{domain}/{stage} only; the gateway is plain http.
            api._endpoint = gateway.connections_url
        ids = [c.connection_id for c in receivers(count)]
        start = time.monotonic()
        for connection_id in ids:
            api.send(connection_id, message)
        return start, time.monotonic()

    _announce(conn, gateway, env)
    serve_commands(conn, {
        "seed": seed,
        "sequential": sequential,
        "rss": lambda: rss_kib(os.getpid()),
        "connections": lambda: len(storage.connections),
    })
    # No graceful gateway stop: it would run 10,000 $disconnects for nothing.
    os._exit(0)


def _announce(conn: Any, gateway: Any, env: dict[str, str]) -> None:
    """Tell the benchmark process where the gateway listens (never the secret)."""
    conn.send({"url": gateway.url, "http_url": gateway.http_url, "pid": os.getpid(),
               "env": {k: v for k, v in env.items() if "SECRET" not in k}})


def _batch_write(client: Any, table: str, items: list[dict[str, Any]],
                 delete: bool = False) -> None:
    """BatchWriteItem (puts, or deletes of keys) in 25s, resending unprocessed ones."""
    for start in range(0, len(items), 25):
        requests: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": item}} if delete else {"PutRequest": {"Item": item}}
            for item in items[start:start + 25]]
        for _ in range(20):
            answer = client.batch_write_item(RequestItems={table: requests})
            requests = answer.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("BatchWriteItem left items unprocessed")


def _receiver_rows(db: Any, table: str, count: int) -> list[tuple[str, str]]:
    """(connection id, tenant) of receivers r0, r1, ... (a Scan: benchmark setup only)."""
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table,
                              "ProjectionExpression": "connection_id, user_id, tenant_id"}
    while True:
        page = db.scan(**kwargs)
        rows.extend(page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found = [(int(r["user_id"]["S"][len(RECEIVER_PREFIX):]), r["connection_id"]["S"],
              r["tenant_id"]["S"]) for r in rows if r["user_id"]["S"].startswith(RECEIVER_PREFIX)]
    found.sort()
    if len(found) < count:
        raise RuntimeError(f"only {len(found)} receivers connected, {count} asked")
    return [(cid, tenant) for _, cid, tenant in found[:count]]


def app_server_processes(conn: Connection, extra_env: dict[str, str], processes: int) -> None:
    """``app.py`` behind the gateway, ``fanout`` workers in ``processes`` processes, on moto."""
    raise_open_files()
    quiet_output("app_server_processes")
    import boto3
    from chalice.app import Chalice

    from chalicelib import runtime
    from chalicelib.model import channel_key, shard_of
    from chalicelib.tables import CONNECTIONS, SUBSCRIPTIONS, create_tables
    from local.dynamodb_server import DynamoDBServer
    from local.settings import GatewaySettings
    from local.stack import app_environment, load_app
    from local.testing import GatewayThread

    dynamodb = DynamoDBServer()
    endpoint = dynamodb.start()
    prefix = "bench_"
    db: Any = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
    create_tables(db, prefix)
    app: Chalice = load_app("app:app")
    lambda_env: dict[str, str] = {}  # complete before the workers start and copy it
    gateway = GatewayThread(app, settings=GatewaySettings(
        max_concurrency=GATEWAY_MAX_CONCURRENCY, idle_timeout=3600.0, lambda_timeout=120.0,
        lambda_processes=processes,
    ), app_spec="app:app", lambda_env=lambda_env).start()
    env = app_environment(dynamodb_endpoint_url=endpoint, table_prefix=prefix,
                          ws_endpoint_url=gateway.connections_url, secret=SECRET,
                          stream_arns={})
    env["LAMBDA_ENDPOINT_URL"] = gateway.http_url
    env.update(extra_env)
    lambda_env.update(env)
    os.environ.update(env)
    shards = int(env.get("SUBSCRIPTION_SHARDS", "4"))
    runtime.configure(runtime.build(env))
    gateway.run(gateway.gateway.start_lambda_processes(), timeout=120)
    connections_table = CONNECTIONS.physical_name(prefix)
    subscriptions_table = SUBSCRIPTIONS.physical_name(prefix)

    def seed(channel: str, count: int) -> int:
        """Subscription rows for the first ``count`` receivers, as storage.subscribe writes."""
        expires = str(int(time.time()) + 24 * 3600)
        items = [{"channel_key": {"S": channel_key(tenant, channel, shard_of(cid, shards))},
                  "connection_id": {"S": cid}, "tenant_id": {"S": tenant},
                  "channel": {"S": channel}, "expires_at": {"N": expires}}
                 for cid, tenant in _receiver_rows(db, connections_table, count)]
        _batch_write(db, subscriptions_table, items)
        return len(items)

    def unseed(channel: str, count: int) -> int:
        """Delete what ``seed`` wrote: moto's Query walks the whole table, so each size
        is measured with only its own rows in it."""
        keys = [{"channel_key": {"S": channel_key(tenant, channel, shard_of(cid, shards))},
                 "connection_id": {"S": cid}}
                for cid, tenant in _receiver_rows(db, connections_table, count)]
        _batch_write(db, subscriptions_table, keys, delete=True)
        return len(keys)

    _announce(conn, gateway, env)
    serve_commands(conn, {
        "seed": seed,
        "unseed": unseed,
        "rss": lambda: rss_kib(os.getpid()),
        "worker_pids": lambda: dict(gateway.gateway.processes.pids
                                    if gateway.gateway.processes else {}),
    })
    # The workers and moto are child processes: stop them (bounded); skip the gateway's
    # graceful stop, which would run 10,000 $disconnects through moto for nothing.
    if gateway.gateway.processes is not None:
        gateway.gateway.processes.shutdown()
    dynamodb.stop()
    os._exit(0)


def raw_server(conn: Connection) -> None:
    raise_open_files()
    asyncio.run(_raw_main(conn))
    os._exit(0)


async def _raw_main(conn: Connection) -> None:
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
    conn.send({"url": f"ws://127.0.0.1:{port}", "pid": os.getpid()})
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
