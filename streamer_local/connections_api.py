"""The ``@connections`` hot path: HTTP/1.1 on the gateway's port, without aiohttp's web layer.

A fan-out is one ``POST /{stage}/@connections/{id}`` per recipient, so the gateway's
cost per POST bounds how fast the app can broadcast locally. Measured on this machine
(2 cores; server CPU per kept-alive 400-byte POST, the WebSocket write included):
aiohttp's web application 166 us, aiohttp's low-level ``web.Server`` 155 us, this
module 80 us; on uvloop 120 us and 49 us. aiohttp's request objects, router,
middleware chain, response objects and writer are built for general HTTP, and none of
them can be skipped per route, hence this hand-written protocol.

Parsing is httptools' (llhttp, the parser Node.js uses); what is written here is only
the routing of one path shape and the framing of replies:

- :class:`FrontDoor` is the protocol of every accepted socket. It reads the request
  line of the connection's first request and hands the socket, bytes read so far
  included, either to :class:`ConnectionsProtocol` (``@connections`` calls) or to
  aiohttp (the WebSocket handshake, the Lambda Invoke API), with the public
  ``transport.set_protocol``. One port serves both, as one API Gateway host does: the
  app finds its ``@connections`` endpoint from its events' ``domainName`` and
  ``stage`` (Chalice's ``app.websocket_api.send`` does).
- :class:`ConnectionsProtocol` parses kept-alive, possibly pipelined requests and
  answers each, in order, with the :class:`Reply` the gateway's handler returns. The
  handler is shared with the aiohttp route (a client that sends another request first
  on the same socket still reaches it there), so the API's semantics live in one place.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

log = logging.getLogger("streamer_local.gateway")

# ``/{stage}/@connections/{id}``: the only path this protocol serves.
_PATH = re.compile(rb"^/([^/?#]+)/@connections/([^/?#]+)$")
# A first request line that goes to ConnectionsProtocol: the methods the API has.
_SNIFF = re.compile(rb"^(?:POST|GET|DELETE) /[^/ ?#]+/@connections/")
_SNIFF_BYTES = 256  # the decision is made by then (a longer request line goes to aiohttp)
# The most a request's line and headers may hold on their way to aiohttp (whose own
# limit, 8,190 bytes a line, is raised to this): a token of auth.MAX_TOKEN_CHARS (8,192)
# in the query string or a header always reaches the app, which refuses longer ones
# with 401. A longer head is refused here with 431 and closed, its text never logged
# or echoed: aiohttp's own refusal quoted the line, token included, in both.
MAX_HEAD_BYTES = 16 * 1024
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_HEAD_TOO_LARGE_BODY = f"request line and headers exceed {MAX_HEAD_BYTES} bytes\n".encode()
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                  b"Content-Type: text/plain; charset=utf-8\r\n"
                  + f"Content-Length: {len(_HEAD_TOO_LARGE_BODY)}\r\n".encode()
                  + b"Connection: close\r\n\r\n" + _HEAD_TOO_LARGE_BODY)
_MAX_QUEUED = 64  # pipelined requests queued before reading from the socket pauses


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body, and the headers besides Content-Length."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(cls, status: int, error_type: str, message: str) -> Reply:
        """An error as AWS's rest-json services send it (botocore raises the modelled class)."""
        return cls(status, json.dumps({"message": message}).encode(),
                   (("Content-Type", "application/json"), ("x-amzn-errortype", error_type)))

    @classmethod
    def json(cls, value: object) -> Reply:
        return cls(200, json.dumps(value).encode(), (("Content-Type", "application/json"),))


# (method, stage, connection id, body) -> Reply: the gateway's @connections handler.
Handler = Callable[[str, str, str, bytes], Awaitable[Reply]]


def _head(reply: Reply, keep_alive: bool, http10: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
    if reply.status != 204:  # a 204 has no body and must not say Content-Length
        lines.append(f"Content-Length: {len(reply.body)}")
    lines += [f"{name}: {value}" for name, value in reply.headers]
    if not keep_alive:
        lines.append("Connection: close")
    elif http10:  # HTTP/1.0 closes unless told otherwise
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# The replies of the hot path, framed once.
_OK_KEEP_ALIVE = _head(Reply(200), True)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class _Request:
    method: str = ""
    url: bytearray = field(default_factory=bytearray)
    body: bytearray = field(default_factory=bytearray)
    keep_alive: bool = True
    http10: bool = False
    too_large: bool = False
    expects_continue: bool = False
    websocket_upgrade: bool = False


class ConnectionsProtocol(asyncio.Protocol):
    """``@connections`` requests on one kept-alive socket, answered in order."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self._handler = handler
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current = _Request()
        self._queue: collections.deque[_Request] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._paused = False
        self._closing = False
        self._eof = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Raised once a request asked to switch protocols; on_message_complete has
            # queued it if it was whole (a WebSocket upgrade as UPGRADE, anything else,
            # such as curl's h2c, to be served as plain HTTP/1.1). Either way the socket
            # closes after its answer: the client may already be talking the new protocol.
            if not self._queue or self._queue[-1].keep_alive:
                self._queue.append(_Request(method="UPGRADE", keep_alive=False))
            self._closing = True
        except httptools.HttpParserError as exc:
            log.debug("bad @connections request: %s", exc)
            self._queue.append(_Request(method="", keep_alive=False))
            self._closing = True
        self._kick()

    def eof_received(self) -> bool | None:
        # The client half-closed: what it sent is still answered, then the socket closes.
        self._eof = True
        if self._worker is None and self._transport is not None:
            self._transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        # A request already being handled finishes (a POST is delivered, as API Gateway
        # delivers one it has read); the ones queued behind it are dropped.
        self._transport = None
        self._queue.clear()

    def close(self) -> None:
        """Close the socket (the gateway is stopping); a reply under way is dropped.
        Aborted, not closed: over TLS a close waits for the peer's close_notify, which an
        idle kept-alive client never sends."""
        if self._transport is not None:
            self._closing = True
            self._transport.abort()

    # -- httptools callbacks -----------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.strip().lower() == b"100-continue":
            self._current.expects_continue = True
        elif name == b"upgrade" and b"websocket" in value.lower():
            self._current.websocket_upgrade = True

    def on_headers_complete(self) -> None:
        # curl sends "Expect: 100-continue" with bodies over 1 KB and waits a second for
        # the interim answer. It is written only when no earlier reply is still owed on
        # this socket (it must not overtake one); a pipelining client does not wait.
        if (self._current.expects_continue and self._transport is not None
                and self._worker is None and not self._queue
                and self._parser.get_http_version() != "1.0"):
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self._current
        if len(request.body) + len(body) > self._max_body:
            request.too_large = True
        else:
            request.body += body

    def on_message_complete(self) -> None:
        request, self._current = self._current, _Request()
        request.method = self._parser.get_method().decode("latin-1")
        request.keep_alive = self._parser.should_keep_alive()
        request.http10 = self._parser.get_http_version() == "1.0"
        if self._parser.should_upgrade():
            request.keep_alive = False
            if request.websocket_upgrade:
                request.method = "UPGRADE"
        self._queue.append(request)

    # -- answering ---------------------------------------------------------------------

    def _kick(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if len(self._queue) > _MAX_QUEUED and not self._paused:
            self._paused = True
            transport.pause_reading()
        if self._queue and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        try:
            while self._queue and self._transport is not None:
                request = self._queue.popleft()
                reply = await self._reply(request)
                transport = self._transport
                if transport is None:
                    return
                if (reply.status == 200 and not reply.body and request.keep_alive
                        and not request.http10):
                    transport.write(_OK_KEEP_ALIVE)
                else:
                    transport.write(_head(reply, request.keep_alive, request.http10)
                                    + reply.body)
                if not request.keep_alive:
                    self._closing = True
                    self._queue.clear()
                    transport.close()
                    return
                if self._paused and len(self._queue) <= _MAX_QUEUED // 2:
                    self._paused = False
                    transport.resume_reading()
        finally:
            self._worker = None
            if self._eof and not self._queue and self._transport is not None:
                self._transport.close()

    async def _reply(self, request: _Request) -> Reply:
        if not request.method:
            return Reply.error(400, "BadRequestException", "Malformed HTTP request")
        if request.method == "UPGRADE":
            return Reply.error(400, "BadRequestException",
                               "@connections does not upgrade to WebSocket")
        match = _PATH.match(bytes(request.url).split(b"?", 1)[0])
        if match is None:
            # A later request on a socket this protocol took (a client mixing APIs on
            # one kept-alive socket): only the @connections API is served here.
            return Reply.error(404, "NotFoundException",
                               "Not Found (only @connections on this kept-alive socket)")
        if request.too_large:
            request.keep_alive = False  # the rest of the body was not kept: start afresh
            return Reply.error(413, "PayloadTooLargeException",
                               f"Request body over {self._max_body} bytes")
        stage, connection_id = _segment(match.group(1)), _segment(match.group(2))
        try:
            return await self._handler(request.method, stage, connection_id,
                                       bytes(request.body))
        except Exception:  # the gateway answers 500 as API Gateway does; it does not crash
            log.exception("@connections %s %s failed", request.method, connection_id)
            return Reply.error(500, "InternalServerErrorException", "Internal server error")


def _segment(raw: bytes) -> str:
    """A path segment, percent-decoded only when it has escapes (per POST: the hot path)."""
    text = raw.decode("latin-1")
    return unquote(text) if "%" in text else text


class FrontDoor(asyncio.Protocol):
    """Every accepted socket starts here: ``@connections`` or aiohttp, by the first request."""

    def __init__(self, connections: Callable[[], asyncio.Protocol],
                 other: Callable[[], asyncio.Protocol]) -> None:
        self._connections = connections
        self._other = other
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" not in self._buffer and len(self._buffer) < _SNIFF_BYTES:
            return  # not enough of the request line yet
        if _SNIFF.match(self._buffer):
            self._hand_over(self._connections)
            return
        end = _END_OF_HEAD.search(self._buffer)
        if (end.start() if end is not None else len(self._buffer)) > MAX_HEAD_BYTES:
            self._refuse_head()
        elif end is not None:
            self._hand_over(self._other)
        # else: the rest of the head is still to come

    def _refuse_head(self) -> None:
        transport, self._transport = self._transport, None
        self._buffer = bytearray()
        log.info("refused a request whose line and headers exceed %d bytes "
                 "(its text is not logged: it may hold a token)", MAX_HEAD_BYTES)
        if transport is not None:
            transport.write(HEAD_TOO_LARGE)
            transport.close()

    def eof_received(self) -> bool | None:
        if self._buffer:  # a short first request, then EOF: aiohttp answers it
            protocol = self._hand_over(self._other)
            return protocol.eof_received() if protocol is not None else None
        return None  # closes the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def close(self) -> None:
        """Close a socket still undecided (the gateway is stopping); it is handed to nobody."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()  # as ConnectionsProtocol.close does, for the same reason

    def _hand_over(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Protocol | None:
        transport = self._transport
        if transport is None:
            return None
        protocol = factory()
        data, self._buffer = bytes(self._buffer), bytearray()
        self._transport = None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)
        return protocol
