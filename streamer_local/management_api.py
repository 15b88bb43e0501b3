"""The emulated Management API: ``POST``/``GET``/``DELETE /{stage}/@connections/{id}``.

One handler, :meth:`ManagementApi._management`, serves both the fast path
(connections_api.py's protocol) and aiohttp's route, so the API's answers live in one
place; the fault switches (410, 429) apply here.
"""

from __future__ import annotations

from aiohttp import web

from streamer_local import events
from streamer_local.connections_api import Reply
from streamer_local.settings import Faults, GatewaySettings
from streamer_local.websocket_api import DELETED, Connection

_OK = Reply(200)


class ManagementApi:
    """What boto3's ``apigatewaymanagementapi`` client speaks to."""

    settings: GatewaySettings
    faults: Faults
    _connections: dict[str, Connection]

    def _close(self, connection: Connection, code: int, reason: str) -> None:
        raise NotImplementedError

    async def _send(self, connection: Connection, data: str | bytes) -> bool:
        raise NotImplementedError

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
