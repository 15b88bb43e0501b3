"""streamer_local.connections_api's protocols against a recording transport (no sockets)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from streamer_local.connections_api import (
    MAX_HEAD_BYTES,
    ConnectionsProtocol,
    FrontDoor,
    Handler,
    Reply,
)


class Transport(asyncio.Transport):
    """Records writes, closes and pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.paused = 0
        self.resumed = 0
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol  # type: ignore[no-any-return]


def post(connection_id: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST /dev/@connections/{connection_id} HTTP/1.1\r\nContent-Length: {len(body)}"
            f"\r\n{extra}\r\n").encode() + body


def statuses(written: bytes | bytearray) -> list[int]:
    """Status codes of the replies in ``written`` (bodies here never contain "HTTP/1.1")."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(written))]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def recording(calls: list[str]) -> Handler:
    """A handler that records the connection ids it is called for and answers 200."""

    async def handler(method: str, stage: str, connection_id: str, body: bytes) -> Reply:
        calls.append(connection_id)
        return Reply(200)

    return handler


def exchange(handler: Handler, data: bytes, max_body: int, wait: float = 0.0) -> Transport:
    """Feed ``data`` to a ConnectionsProtocol over ``handler``; the transport afterwards."""

    async def scenario() -> Transport:
        transport = Transport()
        protocol = ConnectionsProtocol(handler, max_body=max_body)
        protocol.connection_made(transport)
        protocol.data_received(data)
        await asyncio.sleep(wait)
        await settle()
        return transport

    return asyncio.run(scenario())


def test_replies_keep_request_order_when_handlers_finish_out_of_order() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    async def handler(method: str, stage: str, connection_id: str, body: bytes) -> Reply:
        seen.append((method, stage, connection_id, body))
        if connection_id == "slow":
            await asyncio.sleep(0.05)
            return Reply.error(410, "GoneException", "gone")
        return Reply(200)

    transport = exchange(handler, post("slow", b"a") + post("fast", b"b")
                         + post("id%3D", b"c"), max_body=1024, wait=0.1)
    assert statuses(transport.written) == [410, 200, 200]
    assert seen == [("POST", "dev", "slow", b"a"), ("POST", "dev", "fast", b"b"),
                    ("POST", "dev", "id=", b"c")]  # percent-decoded id
    assert not transport.closed


def test_body_over_the_limit_is_413_and_closes_without_calling_the_handler() -> None:
    calls: list[str] = []
    handler = recording(calls)
    transport = exchange(handler, post("big", b"123456789") + post("next", b"x"), max_body=8)
    assert statuses(transport.written) == [413]
    assert b"Connection: close" in transport.written
    assert transport.closed
    assert calls == []


def test_a_raising_handler_answers_500_and_the_socket_goes_on() -> None:
    async def handler(method: str, stage: str, connection_id: str, body: bytes) -> Reply:
        if connection_id == "boom":
            raise RuntimeError("boom")
        return Reply.json({"ok": True})

    transport = exchange(handler, post("boom", b"") + post("fine", b""), max_body=64)
    assert statuses(transport.written) == [500, 200]
    assert json.loads(transport.written.rsplit(b"\r\n\r\n", 1)[1]) == {"ok": True}
    assert not transport.closed


def test_an_upgrade_request_is_400_once_and_closes() -> None:
    calls: list[str] = []
    handler = recording(calls)
    upgrade = (b"GET /dev/@connections/abc HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n\x81\x05hello")
    transport = exchange(handler, upgrade, max_body=64)
    assert statuses(transport.written) == [400]
    assert b"does not upgrade" in transport.written
    assert transport.closed
    assert calls == []


def test_reading_pauses_while_too_many_requests_wait() -> None:
    release = asyncio.Event

    async def scenario() -> Transport:
        gate = release()

        async def handler(method: str, stage: str, connection_id: str, body: bytes) -> Reply:
            await gate.wait()
            return Reply(200)

        transport = Transport()
        protocol = ConnectionsProtocol(handler, max_body=64)
        protocol.connection_made(transport)
        protocol.data_received(b"".join(post(str(i), b"x") for i in range(100)))
        await settle()
        assert transport.paused == 1 and transport.resumed == 0
        gate.set()
        await settle()
        return transport

    transport = asyncio.run(scenario())
    assert statuses(transport.written) == [200] * 100
    assert transport.resumed == 1


def test_front_door_waits_for_the_request_line_then_hands_everything_over() -> None:
    received: dict[str, bytearray] = {}

    class Sink(asyncio.Protocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            received[self.name] = bytearray()

        def data_received(self, data: bytes) -> None:
            received[self.name] += data

    for first, expected in ((b"POST /dev/@connections/abc HTTP/1.1\r\n", "fast"),
                            (b"GET /dev HTTP/1.1\r\n", "aiohttp"),
                            (b"PUT /dev/@connections/abc HTTP/1.1\r\n", "aiohttp")):
        received.clear()
        transport = Transport()
        door = FrontDoor(lambda: Sink("fast"), lambda: Sink("aiohttp"))
        door.connection_made(transport)
        door.data_received(first[:6])
        assert received == {}  # no line yet: no decision
        door.data_received(first[6:] + b"Host: x\r\n\r\n")
        assert received == {expected: bytearray(first + b"Host: x\r\n\r\n")}
        assert isinstance(transport.protocol, Sink)


def test_front_door_refuses_a_head_over_the_limit_without_handing_it_over() -> None:
    """A request line and headers over MAX_HEAD_BYTES, whole or in pieces, get one 431
    and a closed socket; a head just under the limit goes to aiohttp whole."""
    handed: list[bytes] = []

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            handed.append(data)

    line = b"GET /?Authorization=" + b"t" * (MAX_HEAD_BYTES - 40) + b" HTTP/1.1\r\n"
    for pieces in ([line + b"X: " + b"y" * 100 + b"\r\n\r\n"],
                   [line, b"X: " + b"y" * 100, b"0" * 100]):
        transport, handed[:] = Transport(), []
        door = FrontDoor(Sink, Sink)
        door.connection_made(transport)
        for piece in pieces:
            door.data_received(piece)
        assert statuses(transport.written) == [431]
        assert b"tttt" not in transport.written
        assert transport.closed and handed == []
    under = line + b"\r\n"
    transport = Transport()
    door = FrontDoor(Sink, Sink)
    door.connection_made(transport)
    door.data_received(under)
    assert handed == [under] and transport.written == b""


async def ok(method: str, stage: str, connection_id: str, body: bytes) -> Reply:
    return Reply(204) if method == "DELETE" else Reply(200)


def test_http10_keep_alive_is_said_and_plain_http10_closes() -> None:
    kept = exchange(ok, post("a", b"x").replace(b"HTTP/1.1", b"HTTP/1.0", 1)[:-3]
                    + b"Connection: keep-alive\r\n\r\nx", max_body=64)
    assert b"Connection: keep-alive" in kept.written
    assert not kept.closed
    plain = exchange(ok, post("a", b"x").replace(b"HTTP/1.1", b"HTTP/1.0", 1), max_body=64)
    assert statuses(plain.written) == [200]
    assert b"Connection: close" in plain.written
    assert plain.closed


def test_a_non_websocket_upgrade_is_served_then_closed() -> None:
    """curl --http2 on http:// asks for h2c: served as HTTP/1.1, then the socket closes."""
    transport = exchange(ok, post("a", b"x", extra="Connection: Upgrade, HTTP2-Settings\r\n"
                                  "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"),
                         max_body=64)
    assert statuses(transport.written) == [200]
    assert transport.closed


def test_204_has_no_content_length_and_a_query_string_is_ignored() -> None:
    transport = exchange(ok, b"DELETE /dev/@connections/abc?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                         max_body=64)
    assert statuses(transport.written) == [204]
    assert b"Content-Length" not in transport.written
