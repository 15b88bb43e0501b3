"""The emulated WebSocket API: handshakes through ``$connect``, messages to ``$default``,
``$disconnect`` after every close, API Gateway's limits and timeouts.

:class:`WebSocketApi` is one of the three APIs :class:`~streamer_local.gateway.Gateway`
is made of (the others: management_api.py, lambda_api.py); it reads what it needs of
the gateway through the attributes it declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from streamer_local import events
from streamer_local.events import ApiIdentity, ClientInfo
from streamer_local.framing import MESSAGE_TOO_BIG, FrameGuard, install_guard
from streamer_local.lambda_runtime import Handler, Invocation, Invoker
from streamer_local.settings import Faults, GatewaySettings

log = logging.getLogger("streamer_local.gateway")

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


class WebSocketApi:
    """WebSocket clients on ``ws://HOST:PORT/`` (or ``/{stage}``)."""

    app: Any
    settings: GatewaySettings
    faults: Faults
    invoker: Invoker
    port: int
    _connections: dict[str, Connection]
    _served: set[Connection]

    @property
    def api(self) -> ApiIdentity:
        raise NotImplementedError

    def _route_handler(self, route_key: str) -> tuple[str, Handler] | None:
        raise NotImplementedError

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        # The probe only checks that this is an upgrade; the offers are what $connect
        # decides on. Giving it them keeps aiohttp from warning that none overlap.
        offered = request.headers.getall("Sec-WebSocket-Protocol", [])
        probe = web.WebSocketResponse(
            protocols=[p.strip() for value in offered for p in value.split(",") if p.strip()])
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
