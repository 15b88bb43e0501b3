"""A local stand-in for an API Gateway WebSocket API in front of a Chalice app.

One loopback port serves three things (aiohttp, except the ``@connections`` calls of
sockets that begin with one, which streamer_local/connections_api.py serves for speed):

- ``ws://HOST:PORT/`` (or ``/{stage}``): WebSocket clients. The handshake waits for the
  app's ``$connect`` handler and is refused with its status code if that is not 2xx;
  every message goes to ``$default``; ``$disconnect`` follows every close.
- ``http://HOST:PORT/{stage}/@connections/{id}``: the management API (POST, GET,
  DELETE) that boto3's ``apigatewaymanagementapi`` client speaks.
- ``http://HOST:PORT/2015-03-31/functions/{name}/invocations``: Lambda's Invoke API for
  the app's ``@app.lambda_function()`` handlers, for boto3's ``lambda`` client.

Handlers run in :class:`streamer_local.lambda_runtime.Invoker`'s thread pool; with
``settings.lambda_processes`` > 0, asynchronous (``Event``) invocations of plain Lambda
functions run in that many worker processes instead
(:class:`streamer_local.lambda_processes.ProcessInvoker`), which import the app from
``app_spec`` with ``lambda_env`` (default: this process's environment when they start).
The app is found
generically (``app.websocket_handlers``, ``app.handler_map``,
``app.pure_lambda_functions``), so any Chalice app works.

Use it from code::

    gateway = Gateway(app, port=0, settings=GatewaySettings(idle_timeout=1.0))
    await gateway.start()          # binds; gateway.url, gateway.connections_url
    ...
    await gateway.stop()           # closes clients (1001), runs their $disconnect
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from streamer_local import events
from streamer_local.connections_api import MAX_HEAD_BYTES, ConnectionsProtocol, FrontDoor, Reply
from streamer_local.events import ApiIdentity, ClientInfo
from streamer_local.framing import MESSAGE_TOO_BIG, FrameGuard, install_guard
from streamer_local.lambda_processes import ProcessInvoker
from streamer_local.lambda_runtime import Handler, Invocation, Invoker
from streamer_local.settings import Faults, GatewaySettings, SettingsError
from streamer_local.tls import LocalTls

log = logging.getLogger("streamer_local.gateway")


class _NoRequestText(logging.Filter):
    """aiohttp's refusal of a malformed request logs the parser's message, which quotes
    the request's bytes (a token among them): keep the fact, drop the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = ("refused a malformed HTTP request (%s, status %s); "
                                       "its text is not logged"), (type(exc).__name__,
                                                                   exc.code)
            record.exc_info, record.exc_text = None, None
        return True


_AIOHTTP_SERVER_LOG = logging.getLogger("aiohttp.server")
_AIOHTTP_SERVER_LOG.addFilter(_NoRequestText())

# Close codes and the reasons the $disconnect event reports for them.
CLIENT_NO_STATUS = (1005, "Client-side close frame status not set")
ABNORMAL = (1006, "Connection closed abnormally")
DELETED = (1000, "Connection deleted by @connections DELETE")
IDLE = (1001, "Going away (idle timeout)")
AGED = (1001, "Going away (maximum connection duration)")
SHUTDOWN = (1001, "Going away (gateway shutting down)")
TOO_BIG = (MESSAGE_TOO_BIG, "Message too big")
# API Gateway: "If a client app sends a binary frame, API Gateway rejects it and
# disconnects the client with code 1003" (WebSocket APIs take text frames only).
BINARY = (1003, "Binary frames are not supported")


@dataclass(eq=False)
class Connection:
    """One open WebSocket connection and what API Gateway tracks about it."""

    client: ClientInfo
    ws: web.WebSocketResponse
    in_flight: asyncio.Semaphore
    connected_mono: float = field(default_factory=time.monotonic)
    last_active_mono: float = field(default_factory=time.monotonic)
    last_active_ms: int = field(default_factory=events.now_ms)
    server_close: tuple[int, str] | None = None
    close_task: asyncio.Task[bool] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.client.connection_id

    def touch(self) -> None:
        self.last_active_mono = time.monotonic()
        self.last_active_ms = events.now_ms()


def _error(status: int, error_type: str, message: str) -> web.Response:
    """An error as AWS's rest-json services send it, so botocore raises the modelled class."""
    reply = Reply.error(status, error_type, message)
    return web.Response(status=status, body=reply.body, headers=dict(reply.headers))


_OK = Reply(200)
# Request bodies the HTTP side reads at most (a @connections POST over the API's own
# limit is read and answered 413 with its size, as API Gateway does).
_MAX_BODY = 16 * 1024 * 1024


class Gateway:
    """The emulated WebSocket API, @connections API and Lambda Invoke API on one port."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: GatewaySettings | None = None,
        faults: Faults | None = None,
        region: str = "us-east-1",
        *,
        app_spec: str | None = None,
        lambda_env: Mapping[str, str] | None = None,
        lambda_setup: str | None = None,
        tls: LocalTls | None = None,
    ) -> None:
        self.app = app
        # With ``tls``, @connections is also served over https on a second port, for
        # Chalice's app.websocket_api (https only; see streamer_local/tls.py).
        self.tls = tls
        self.tls_port = 0
        self.host = host
        self.port = port
        self.settings = settings or GatewaySettings()
        self.faults = faults or Faults()
        self.region = region
        self.invoker = Invoker(self.settings.max_concurrency, self.settings.lambda_timeout, region)
        self.processes: ProcessInvoker | None = None
        if self.settings.lambda_processes:
            if app_spec is None:
                raise SettingsError("lambda_processes needs the app's spec (module:attr), "
                                    "for the worker processes to import it")
            self.processes = ProcessInvoker(self.settings.lambda_processes, app_spec,
                                            self.settings.lambda_timeout, region, lambda_env,
                                            setup=lambda_setup)
        self._connections: dict[str, Connection] = {}
        self._served: set[Connection] = set()  # open or still running $disconnect
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        # Sockets aiohttp does not track: undecided (FrontDoor) or @connections ones.
        self._management_sockets: weakref.WeakSet[FrontDoor | ConnectionsProtocol] = (
            weakref.WeakSet())
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where WebSocket clients connect."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The server's HTTP base (endpoint_url for boto3's ``lambda`` client)."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_url(self) -> str:
        """The @connections endpoint (endpoint_url for ``apigatewaymanagementapi``)."""
        return f"{self.http_url}/{self.settings.stage}"

    @property
    def tls_connections_url(self) -> str | None:
        """The @connections endpoint over https, when the gateway has ``tls``."""
        if self.tls is None:
            return None
        return f"https://{self.host}:{self.tls_port}/{self.settings.stage}"

    @property
    def api(self) -> ApiIdentity:
        return ApiIdentity(self.settings.api_id, self.settings.stage, f"{self.host}:{self.port}")

    def connection_ids(self) -> list[str]:
        return list(self._connections)

    async def start(self) -> None:
        web_app = web.Application(client_max_size=_MAX_BODY)
        stage = self.settings.stage
        # The @connections route first: aiohttp tries resources in order, and a fan-out
        # is thousands of POSTs for each handshake.
        connections = "/{stage}/@connections/{connection_id}"
        for method in ("POST", "GET", "DELETE"):
            web_app.router.add_route(method, connections, self._connections_route)
        web_app.router.add_get("/", self._websocket)
        web_app.router.add_get(f"/{stage}", self._websocket)
        web_app.router.add_post(
            "/2015-03-31/functions/{function_name}/invocations", self._invoke_function
        )
        # The emulator's own control API (not API Gateway's): faults chosen at run time.
        web_app.router.add_get("/_local/connections", self._list_connections)
        web_app.router.add_route("PUT", "/_local/faults/gone/{connection_id}", self._gone_on)
        web_app.router.add_route("DELETE", "/_local/faults/gone/{connection_id}",
                                 self._gone_off)
        # FrontDoor bounds the head at MAX_HEAD_BYTES; aiohttp's own limits must not be
        # lower, or a token the app should refuse with 401 gets aiohttp's 400 instead.
        self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=2.0,
                                     max_line_size=MAX_HEAD_BYTES,
                                     max_field_size=MAX_HEAD_BYTES)
        await self._runner.setup()
        aiohttp_protocol = self._runner.server
        assert aiohttp_protocol is not None
        max_body = max(self.settings.max_post_bytes, _MAX_BODY)

        def connections_protocol() -> ConnectionsProtocol:
            protocol = ConnectionsProtocol(self._management, max_body)
            self._management_sockets.add(protocol)
            return protocol

        def front_door() -> FrontDoor:
            door = FrontDoor(connections_protocol, aiohttp_protocol)
            self._management_sockets.add(door)
            return door

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(front_door, self.host, self.port,
                                                backlog=4096, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.tls is not None:
            self._tls_server = await loop.create_server(
                front_door, self.host, 0, backlog=4096, reuse_address=True,
                # A kept-alive client (boto3's pool) never answers close_notify while
                # idle: without a short bound, stop() would wait 30 s per socket.
                ssl=self.tls.context, ssl_shutdown_timeout=1.0)
            self.tls_port = int(self._tls_server.sockets[0].getsockname()[1])
            self._configure_websocket_api()
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("gateway listening on %s", self.url)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for connection in list(self._connections.values()):
            self._close(connection, *SHUTDOWN)
        deadline = time.monotonic() + self.settings.close_timeout + self.settings.lambda_timeout
        while self._served and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._background:
            await asyncio.wait(self._background, timeout=self.settings.lambda_timeout)
        if self._tls_server is not None:
            self._tls_server.close()
            self._tls_server = None
        if self._server is not None:
            self._server.close()
            for protocol in list(self._management_sockets):
                protocol.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.invoker.shutdown)
        if self.processes is not None:
            await loop.run_in_executor(None, self.processes.shutdown)

    def replace_app(self, app: Any) -> None:
        """Serve a reloaded ``app`` from the next invocation on; open connections stay
        (handlers are looked up per event), as an API Gateway redeploy keeps them."""
        self.app = app
        if self.tls is not None and self.tls_port:
            self._configure_websocket_api()

    def _configure_websocket_api(self) -> None:
        """Point Chalice's ``app.websocket_api`` at the https @connections endpoint, with
        its public ``configure``: Chalice would otherwise build
        ``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`` from the first event
        (it keeps the first endpoint it is given)."""
        websocket_api = getattr(self.app, "websocket_api", None)
        if websocket_api is None:
            return
        # configure() keeps the first endpoint for good, and Chalice has no public way
        # to re-point it: a second gateway for the same app object (a test's, a reload's)
        # must forget the first one's endpoint and the client built for it.
        for stale in ("_endpoint", "_client"):
            if hasattr(websocket_api, stale):
                setattr(websocket_api, stale, None)
        websocket_api.configure(f"{self.host}:{self.tls_port}", self.settings.stage)

    async def start_lambda_processes(self) -> None:
        """Start the worker processes now rather than at the first Event invocation
        (call it once the app's environment is complete). No-op without them."""
        if self.processes is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.processes.start)

    # -- the app's handlers --------------------------------------------------------

    def _route_handler(self, route_key: str) -> tuple[str, Handler] | None:
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            return None
        return config.name, self.app.handler_map[config.name]

    def _lambda_functions(self) -> dict[str, Handler]:
        return {f.name: self.app.handler_map[f.name] for f in self.app.pure_lambda_functions}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- WebSocket connections -----------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required")
        client = ClientInfo(
            connection_id=events.new_id(),
            connected_at=events.now_ms(),
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
        )
        subprotocol: str | None = None
        route = self._route_handler("$connect")
        if route is not None:
            event = events.connect_event(
                self.api, client, request.headers.items(), request.query.items(),
                server_port=self.port,
            )
            invocation = await self.invoker.invoke(route[0], route[1], event)
            if invocation.failed:
                return web.json_response({"message": "Internal server error"}, status=500)
            status, headers = self._connect_response(invocation)
            if not 200 <= status < 300:
                return web.Response(status=status)
            subprotocol = events.header_value(headers, "Sec-WebSocket-Protocol")
        return await self._serve(request, client, subprotocol)

    @staticmethod
    def _connect_response(invocation: Invocation) -> tuple[int, dict[str, Any] | None]:
        result = invocation.result
        if not isinstance(result, dict):
            return 200, None
        try:
            status = int(result.get("statusCode", 200))
        except (TypeError, ValueError):
            return 500, None
        headers = result.get("headers")
        return status, headers if isinstance(headers, dict) else None

    async def _serve(
        self, request: web.Request, client: ClientInfo, subprotocol: str | None
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            protocols=(subprotocol,) if subprotocol else (),
            compress=False,
            # Backstop only: FrameGuard closes first, with API Gateway's limits.
            max_msg_size=self.settings.max_message_bytes + 1024,
            timeout=self.settings.close_timeout,
        )
        connection = Connection(
            client, ws, asyncio.Semaphore(self.settings.max_in_flight_per_connection)
        )
        guard = FrameGuard(self.settings.max_frame_bytes, self.settings.max_message_bytes)
        assert request.transport is not None
        install_guard(request.transport, guard, lambda why: self._too_big(connection, why))
        await ws.prepare(request)
        self._connections[client.connection_id] = connection
        self._served.add(connection)
        log.debug("connected %s", client.connection_id)
        client_close: tuple[int, str] = ABNORMAL
        try:
            client_close = await self._read(connection)
        finally:
            self._connections.pop(client.connection_id, None)
            try:
                await self._finish(connection, client_close)
            finally:
                self._served.discard(connection)
        return ws

    async def _read(self, connection: Connection) -> tuple[int, str]:
        """Dispatch messages until the connection closes; return the client's close."""
        ws = connection.ws
        while True:
            message = await ws.receive()
            if message.type == WSMsgType.BINARY:
                self._close(connection, *BINARY)
                continue  # the close handshake ends the loop
            if message.type == WSMsgType.TEXT:
                connection.touch()
                # Bounded per connection: a flooding client waits (TCP back-pressure)
                # instead of queueing unbounded invocations. Tasks start in arrival
                # order, so the pool runs them in that order too.
                await connection.in_flight.acquire()
                task = asyncio.create_task(self._message(connection, message.data))
                connection.tasks.add(task)
                task.add_done_callback(lambda t: self._message_done(connection, t))
            elif message.type == WSMsgType.CLOSE:
                code = int(message.data or 0)
                if code == 0:
                    return CLIENT_NO_STATUS
                return code, str(message.extra or "")
            elif message.type == WSMsgType.ERROR:
                code = ws.close_code or ABNORMAL[0]
                return (code, TOO_BIG[1]) if code == MESSAGE_TOO_BIG else ABNORMAL
            else:  # CLOSING (a server-side close is under way) or CLOSED
                return ABNORMAL

    @staticmethod
    def _message_done(connection: Connection, task: asyncio.Task[None]) -> None:
        connection.tasks.discard(task)
        connection.in_flight.release()

    async def _finish(self, connection: Connection, client_close: tuple[int, str]) -> None:
        if connection.close_task is not None:
            with contextlib.suppress(Exception):
                await connection.close_task
        elif not connection.ws.closed:
            await connection.ws.close()
        code, reason = connection.server_close or client_close
        # Let this connection's in-flight messages finish first: AWS does not promise
        # this order, but reordering without need would only make local runs flaky.
        if connection.tasks:
            await asyncio.wait(set(connection.tasks), timeout=self.settings.lambda_timeout)
        log.debug("disconnected %s (%s %s)", connection.id, code, reason)
        route = self._route_handler("$disconnect")
        if route is None or self.faults.draw(self.faults.drop_disconnect):
            return
        event = events.disconnect_event(self.api, connection.client, code, reason)
        await self.invoker.invoke(route[0], route[1], event)

    async def _message(self, connection: Connection, data: str | bytes) -> None:
        event = events.message_event(self.api, connection.client, data)
        request_id = event["requestContext"]["requestId"]
        route = self._route_handler("$default")
        if route is None:
            frame = {"message": "Forbidden", "connectionId": connection.id,
                     "requestId": request_id}
            await self._send(connection, json.dumps(frame))
            return
        invocation = await self.invoker.invoke(route[0], route[1], event)
        if invocation.failed:
            frame = events.internal_error_frame(connection.id, request_id)
            await self._send(connection, json.dumps(frame))

    async def _send(self, connection: Connection, data: str | bytes) -> bool:
        try:
            if isinstance(data, str):
                await connection.ws.send_str(data)
            else:
                await connection.ws.send_bytes(data)
        except (ConnectionError, RuntimeError):
            return False
        return True

    def _close(self, connection: Connection, code: int, reason: str) -> None:
        """Close from the server side; the $disconnect event reports ``reason``."""
        if connection.server_close is not None or connection.ws.closed:
            return
        self._connections.pop(connection.id, None)
        connection.server_close = (code, reason)
        connection.close_task = asyncio.create_task(
            connection.ws.close(code=code, message=reason.encode()[:123])
        )

    def _too_big(self, connection: Connection, why: str) -> None:
        log.info("closing %s with 1009: %s", connection.id, why)
        self._close(connection, *TOO_BIG)

    async def _sweep(self) -> None:
        """Close connections past the idle timeout or the maximum connection age."""
        interval = min(1.0, self.settings.idle_timeout / 10, self.settings.max_age / 10)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self._connections.values()):
                if now - connection.connected_mono >= self.settings.max_age:
                    self._close(connection, *AGED)
                elif now - connection.last_active_mono >= self.settings.idle_timeout:
                    self._close(connection, *IDLE)

    # -- @connections API ----------------------------------------------------------

    async def _management(self, method: str, stage: str, connection_id: str,
                          body: bytes) -> Reply:
        """One @connections call, whichever server read it (streamer_local.connections_api)."""
        if method == "POST":
            return await self._post_to_connection(stage, connection_id, body)
        if method not in ("GET", "DELETE"):
            return Reply.error(405, "MethodNotAllowedException", f"{method} not allowed")
        target = self._target(stage, connection_id)
        if isinstance(target, Reply):
            return target
        if method == "DELETE":
            self._close(target, *DELETED)
            return Reply(204)
        return Reply.json({
            "connectedAt": events.iso8601(target.client.connected_at),
            "identity": events.identity(target.client),
            "lastActiveAt": events.iso8601(target.last_active_ms),
        })

    # -- the control API ---------------------------------------------------------

    async def _list_connections(self, request: web.Request) -> web.Response:
        """The open connections, oldest first, to pick one for a fault."""
        return web.json_response([
            {"connectionId": c.id, "connectedAt": events.iso8601(c.client.connected_at),
             "identity": events.identity(c.client)}
            for c in sorted(self._connections.values(), key=lambda c: c.client.connected_at)
        ])

    async def _gone_on(self, request: web.Request) -> web.Response:
        """From now on, @connections calls for this id answer 410 (--gone-connection)."""
        self.faults.gone_connections.add(request.match_info["connection_id"])
        return web.Response(status=204)

    async def _gone_off(self, request: web.Request) -> web.Response:
        self.faults.gone_connections.discard(request.match_info["connection_id"])
        return web.Response(status=204)

    def _target(self, stage: str, connection_id: str) -> Connection | Reply:
        """The live connection a management call names, or the error AWS would answer."""
        if stage != self.settings.stage:
            return Reply.error(403, "ForbiddenException", "Forbidden")
        connection = self._connections.get(connection_id)
        if connection is None or connection.ws.closed:
            return Reply.error(410, "GoneException", f"Connection {connection_id} is gone")
        gone = self.faults.gone_connections
        if gone and connection_id in gone:
            return Reply.error(410, "GoneException", f"Connection {connection_id} is gone (fault)")
        return connection

    async def _post_to_connection(self, stage: str, connection_id: str, body: bytes) -> Reply:
        # The fan-out hot path: one call per delivery. Fault switches are read as plain
        # attributes first (draw() only when one is set), the connection is looked up
        # once, and nothing is logged or allocated beyond the reply.
        faults = self.faults
        if faults.throttle_fraction and faults.draw(faults.throttle_fraction):
            return Reply.error(429, "LimitExceededException", "Rate exceeded (fault)")
        if len(body) > self.settings.max_post_bytes:
            return Reply.error(413, "PayloadTooLargeException",
                               f"Payload of {len(body)} bytes exceeds "
                               f"{self.settings.max_post_bytes}")
        target = self._target(stage, connection_id)
        if isinstance(target, Reply):
            return target
        if faults.gone_fraction and faults.draw(faults.gone_fraction):
            return Reply.error(410, "GoneException", f"Connection {target.id} is gone (fault)")
        ws = target.ws
        try:
            try:
                await ws.send_str(body.decode("utf-8"))
            except UnicodeDecodeError:
                await ws.send_bytes(body)
        except (ConnectionError, RuntimeError):
            return Reply.error(410, "GoneException", f"Connection {target.id} is gone")
        return _OK

    async def _connections_route(self, request: web.Request) -> web.Response:
        """The aiohttp route for @connections calls on a socket that began with another
        request (the fast path, streamer_local.connections_api, takes the others)."""
        reply = await self._management(request.method, request.match_info["stage"],
                                       request.match_info["connection_id"],
                                       await request.read())
        return web.Response(status=reply.status, body=reply.body or None,
                            headers=dict(reply.headers))

    # -- Lambda Invoke API ---------------------------------------------------------

    def _resolve_function(self, requested: str) -> str | None:
        """Accept a name, a (partial) ARN, a qualified name or Chalice's deployed name."""
        name = requested.split(":function:", 1)[-1].split(":", 1)[0]
        functions = self._lambda_functions()
        if name in functions:
            return name
        prefix = f"{self.app.app_name}-"
        if name.startswith(prefix):
            for candidate in functions:
                if name.endswith(f"-{candidate}"):
                    return candidate
        return None

    async def _invoke_function(self, request: web.Request) -> web.Response:
        requested = request.match_info["function_name"]
        name = self._resolve_function(requested)
        if name is None:
            arn = f"arn:aws:lambda:{self.region}:000000000000:function:{requested}"
            return web.json_response(
                {"Type": "User", "message": f"Function not found: {arn}"}, status=404,
                headers={"x-amzn-errortype": "ResourceNotFoundException"},
            )
        raw = await request.read()
        try:
            event = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "InvalidRequestContentException",
                          "Could not parse request body into json")
        handler = self._lambda_functions()[name]
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return web.Response(status=204)
        if invocation_type == "Event":
            if self.processes is not None:
                self._spawn(self.processes.invoke(name, event))
            else:
                self._spawn(self.invoker.invoke(name, handler, event))
            return web.Response(status=202)
        invocation = await self.invoker.invoke(name, handler, event)
        headers = {"X-Amz-Executed-Version": "$LATEST",
                   "x-amzn-RequestId": invocation.request_id}
        payload: Any = invocation.result
        if invocation.failed:
            headers["X-Amz-Function-Error"] = "Unhandled"
            payload = invocation.error
        try:
            body = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = json.dumps({"errorMessage": f"Unable to marshal response: {exc}",
                               "errorType": "Runtime.MarshalError",
                               "requestId": invocation.request_id})
        return web.Response(status=200, body=body.encode(), headers=headers,
                            content_type="application/json")
