"""API Gateway's frame and message size limits, enforced on the raw client byte stream.

API Gateway closes a connection with 1009 when a client sends a *frame* over 32 KB or a
*message* (all fragments together) over 128 KB. aiohttp has one limit (``max_msg_size``,
the assembled message), and its parser is private, so this module watches the bytes
before aiohttp sees them:

- :class:`FrameGuard` is a sans-I/O scanner of RFC 6455 frame headers. It is fed the
  bytes a client sends and returns the bytes to pass on. Once a limit is exceeded it
  records the violation and from then on passes on only close frames, so the closing
  handshake still completes while the oversized data never reaches the application.
- :class:`GuardedProtocol` sits between the asyncio transport and aiohttp's protocol
  (installed with the public ``transport.set_protocol``) and feeds the guard.

Why hand-written: neither aiohttp nor websockets' asyncio server can apply a per-frame
and a per-message limit on a port that also serves plain HTTP (websockets' tuple
``max_size`` does both, but its server cannot serve the ``@connections`` POSTs).
Permessage-deflate is never negotiated (API Gateway does not either), so a frame's
length on the wire is its payload size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
MESSAGE_TOO_BIG = 1009


class FrameGuard:
    """Scan client frames; flag a frame over ``max_frame`` or a message over ``max_message``."""

    def __init__(self, max_frame: int, max_message: int) -> None:
        self.max_frame = max_frame
        self.max_message = max_message
        self.violation: str | None = None
        self._header = bytearray()
        self._remaining = 0  # payload bytes left in the current frame
        self._forward = True  # pass the current frame's bytes on?
        self._message_size = 0

    def _header_length(self) -> int | None:
        """The full header length once enough of it has arrived to know it."""
        if len(self._header) < 2:
            return None
        length7 = self._header[1] & 0x7F
        extra = 2 if length7 == 126 else 8 if length7 == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extra + mask

    def _payload_length(self) -> int:
        length7 = self._header[1] & 0x7F
        if length7 == 126:
            return int.from_bytes(self._header[2:4], "big")
        if length7 == 127:
            return int.from_bytes(self._header[2:10], "big")
        return length7

    def _judge(self, opcode: int, length: int) -> bool:
        """Account for a frame whose header is complete; say whether to pass it on."""
        if self.violation is not None:
            return opcode == OP_CLOSE
        if opcode in (OP_TEXT, OP_BINARY):
            self._message_size = length
        elif opcode == OP_CONTINUATION:
            self._message_size += length
        else:
            return True  # control frames: at most 125 bytes, checked by aiohttp
        if length > self.max_frame:
            self.violation = f"frame of {length} bytes exceeds {self.max_frame}"
            return False
        if self._message_size > self.max_message:
            self.violation = f"message of {self._message_size} bytes exceeds {self.max_message}"
            return False
        return True

    def feed(self, data: bytes) -> bytes:
        """Consume bytes from the client; return the ones the WebSocket parser may see."""
        out = bytearray()
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._remaining:
                take = min(self._remaining, len(view) - pos)
                if self._forward:
                    out += view[pos:pos + take]
                self._remaining -= take
                pos += take
                continue
            self._header.append(view[pos])
            pos += 1
            needed = self._header_length()
            if needed is None or len(self._header) < needed:
                continue
            opcode = self._header[0] & 0x0F
            self._remaining = self._payload_length()
            self._forward = self._judge(opcode, self._remaining)
            if self._forward:
                out += self._header
            self._header.clear()
        return bytes(out)


class GuardedProtocol(asyncio.Protocol):
    """A transport protocol that filters incoming bytes through a :class:`FrameGuard`."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        guard: FrameGuard,
        on_violation: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._guard = guard
        self._on_violation = on_violation
        self._reported = False

    def data_received(self, data: bytes) -> None:
        passed = self._guard.feed(data)
        if passed:
            self._inner.data_received(passed)
        if self._guard.violation is not None and not self._reported:
            self._reported = True
            self._on_violation(self._guard.violation)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def install_guard(
    transport: asyncio.BaseTransport,
    guard: FrameGuard,
    on_violation: Callable[[str], None],
) -> None:
    """Put ``guard`` in front of the protocol currently reading ``transport``.

    Call it after the handshake request was read and before the 101 response is sent:
    every byte the client sends from then on is a WebSocket frame.
    """
    inner = transport.get_protocol()
    assert isinstance(inner, asyncio.Protocol)
    transport.set_protocol(GuardedProtocol(inner, guard, on_violation))
