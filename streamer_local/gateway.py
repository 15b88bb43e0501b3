"""A local stand-in for an API Gateway WebSocket API in front of a Chalice app.

The gateway is made of one module per emulated AWS API: websocket_api.py (clients),
management_api.py (``@connections``), lambda_api.py (Invoke); this module binds them to
one port, starts and stops them, and adds the emulator's own control API.

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

A subclass adds HTTP routes of its own on the same port by overriding
:meth:`Gateway.add_routes` (local/console.py does, for the local console page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from streamer_local import events
from streamer_local.connections_api import MAX_HEAD_BYTES, ConnectionsProtocol, FrontDoor
from streamer_local.events import ApiIdentity
from streamer_local.lambda_api import LambdaApi
from streamer_local.lambda_processes import ProcessInvoker
from streamer_local.lambda_runtime import Handler, Invoker
from streamer_local.management_api import ManagementApi
from streamer_local.settings import Faults, GatewaySettings, SettingsError
from streamer_local.tls import LocalTls
from streamer_local.websocket_api import SHUTDOWN, Connection, WebSocketApi

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


# Request bodies the HTTP side reads at most (a @connections POST over the API's own
# limit is read and answered 413 with its size, as API Gateway does).
_MAX_BODY = 16 * 1024 * 1024


class Gateway(WebSocketApi, ManagementApi, LambdaApi):
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
        self.add_routes(web_app)
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

    def add_routes(self, web_app: web.Application) -> None:
        """Hook for extra HTTP routes on the gateway's port; the default adds none.

        ``start()`` calls it once, after the gateway's own routes (which therefore win
        for any path both match) and before the router is frozen. Override it to add
        routes of your own, e.g. ``web_app.router.add_get("/_dev/page", handler)``; keep
        clear of ``/``, ``/{stage}``, ``/{stage}/@connections/...``,
        ``/2015-03-31/functions/...`` and ``/_local/connections``, ``/_local/faults/...``.
        (Sockets whose first request is an ``@connections`` call are served without
        aiohttp, so a route of the form ``/{x}/@connections/{y}`` would not be reached.)
        """

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
