"""The soak's WebSocket clients and the ledger of what they sent, got and were promised.

Every client is a websockets asyncio connection with one reader task. Replies are
correlated by frame ``id`` (PROTOCOL.md: frames travel independently), so the reader
resolves a waiting future per id; publish replies go straight to the :class:`Ledger`
(one publisher sends thousands, nobody awaits them one by one). A message's ``data``
is ``{"seq", "pub", "t", "tenant", "ch"}``: the sequence number of its publisher, the
publisher, the wall-clock send time, and the tenant and channel it was published to,
so each subscriber can tell a duplicate, a reordering, a message of another tenant or
one of a channel it never asked for.

Received sequence numbers are kept as one ``bytearray`` of counts per (subscriber,
publisher), indexed by sequence number: about 1 byte per publish per subscriber,
where a dict of tuples would cost a hundred and grow the soak's own memory, which is
sampled beside the stack's.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

Frame = dict[str, Any]
PUBLISH_PREFIX = "p."  # publish frame ids: p.<publisher>.<seq>
SUBSCRIBE_PREFIX = "s."  # subscribe frame ids: s.<channel>
NOT_REGISTERED = "connection is not registered"  # the server forgot this connection


@dataclass
class Publish:
    """One publish frame, and what its publisher heard back."""

    publisher: str
    seq: int
    tenant: str
    channel: str
    sent_mono: float
    steady: bool  # sent after the ramp-up ended
    connection: str  # the user id of the publisher's connection that sent it
    acked_mono: float | None = None
    message_id: str | None = None
    error: str | None = None  # an error reply instead of an ack
    error_after_ack: str | None = None  # an error reply after the ack (fan-out failed)


@dataclass
class Request:
    """One asynchronous request, from the frames its requester saw."""

    request_id: str
    client: Client | None = None
    acked_mono: float | None = None
    cancel_sent: bool = False
    cancel_state: str | None = None  # the cancel ack's state
    steps: Counter[int] = field(default_factory=Counter)  # progress frames by step
    results: int = 0
    errors: list[str] = field(default_factory=list)  # codes of error frames
    final_mono: float | None = None  # first result or error frame
    status_state: str | None = None  # the state a status frame reported at the end


class Ledger:
    """Everything the soak's clients sent and received, for the report."""

    def __init__(self) -> None:
        self.publishes: dict[str, Publish] = {}  # by frame id
        self.requests: dict[str, Request] = {}  # by request id
        self.ramp_ended = False
        self.latency_ms = {"ramp": array.array("d"), "steady": array.array("d")}
        self.unknown_messages = 0  # message frames whose data the soak did not send
        self.gateway_errors = 0  # "Internal server error" frames (integration failed)

    def new_publish(self, publish: Publish) -> str:
        frame_id = f"{PUBLISH_PREFIX}{publish.publisher}.{publish.seq}"
        self.publishes[frame_id] = publish
        return frame_id

    def on_publish_reply(self, frame_id: str, frame: Frame, mono: float) -> None:
        publish = self.publishes.get(frame_id)
        if publish is None:
            return
        if frame.get("type") == "ack":
            publish.acked_mono = mono
            publish.message_id = str(frame.get("message_id"))
        elif frame.get("type") == "error":
            code = str(frame.get("code"))
            if publish.acked_mono is None:
                publish.error = code
            else:
                publish.error_after_ack = code

    def request(self, request_id: str) -> Request:
        request = self.requests.get(request_id)
        if request is None:
            request = self.requests[request_id] = Request(request_id)
        return request

    def on_request_frame(self, request_id: str, frame: Frame, mono: float) -> None:
        # Progress and results may arrive before the request's ack (PROTOCOL.md §2).
        request = self.request(request_id)
        kind = frame.get("type")
        if kind == "progress":
            detail = frame.get("detail")
            step = detail.get("step") if isinstance(detail, dict) else None
            request.steps[int(step) if isinstance(step, int) else -1] += 1
            return
        if kind == "result":
            request.results += 1
        elif kind == "error":
            request.errors.append(str(frame.get("code")))
        else:
            return
        if request.final_mono is None:
            request.final_mono = mono


class Client:
    """One WebSocket connection of the soak: a subscriber, a publisher or a sweeper."""

    def __init__(self, ledger: Ledger, role: str, user: str, tenant: str,
                 channels: list[str] | None = None) -> None:
        self.ledger = ledger
        self.role = role
        self.user = user
        self.tenant = tenant
        self.wanted = channels or []
        self.subscribed: dict[str, float] = {}  # channel -> monotonic time of its ack
        self.ws: ClientConnection | None = None
        self.waiters: dict[str, asyncio.Future[Frame]] = {}
        self.received: dict[str, bytearray] = {}  # publisher -> count per sequence number
        self.last_seq: dict[str, int] = {}
        self.out_of_order = 0
        self.cross_tenant = 0
        self.wrong_channel = 0
        self.refused = 0  # "connection is not registered" replies: the server forgot us
        self.closed_early: str | None = None  # closed by the other side during the run
        self.join_error: str | None = None
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._ids = 0

    # -- connection ------------------------------------------------------------------

    async def open(self, base_url: str, token: str, timeout: float) -> None:
        url = f"{base_url}/?{urllib.parse.urlencode({'Authorization': token})}"
        # No websockets keepalive pings (1,000 timers of noise; the soak sends the
        # protocol's own ping), no compression (the gateway never negotiates it).
        self.ws = await connect(url, open_timeout=timeout, ping_interval=None,
                                compression=None, close_timeout=5, max_queue=4096)
        self._reader = asyncio.create_task(self._read(self.ws))

    @property
    def is_open(self) -> bool:
        return self.ws is not None and self.closed_early is None and not self._closing

    async def close(self) -> None:
        """Close with 1000, as a leaving client does (the gateway then runs $disconnect)."""
        self._closing = True
        ws, reader = self.ws, self._reader
        if ws is not None:
            with contextlib.suppress(WebSocketException, OSError, TimeoutError):
                await asyncio.wait_for(ws.close(), 10)
            ws.transport.abort()  # a no-op after a clean close
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(reader, 5)
        for future in self.waiters.values():
            future.cancel()
        self.waiters.clear()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode(errors="replace")
                self._on_frame(text, time.time(), time.monotonic())
        except ConnectionClosed as closed:
            if not self._closing:
                self.closed_early = f"{closed.rcvd.code if closed.rcvd else 'no close frame'}"
        finally:
            if not self._closing and self.closed_early is None:
                self.closed_early = "connection lost"

    # -- frames ----------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    async def send(self, frame: Frame) -> bool:
        if self.ws is None:
            return False
        try:
            await asyncio.wait_for(self.ws.send(json.dumps(frame, separators=(",", ":"))), 10)
        except (ConnectionClosed, WebSocketException, OSError, TimeoutError):
            return False
        return True

    async def call(self, frame: Frame, timeout: float) -> Frame | None:
        """Send ``frame`` (it has an ``id``) and return the reply with that id, or None."""
        frame_id = str(frame["id"])
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.waiters[frame_id] = future
        try:
            if not await self.send(frame):
                return None
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, asyncio.CancelledError):
            return None
        finally:
            self.waiters.pop(frame_id, None)

    def _on_frame(self, text: str, wall: float, mono: float) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "message":
            self._message(frame, wall)
            return
        if kind is None and frame.get("message") == "Internal server error":
            # What API Gateway (and the local gateway) sends when an integration fails or
            # times out: it names no frame id, so it is only counted.
            self.ledger.gateway_errors += 1
            return
        if kind == "error" and NOT_REGISTERED in str(frame.get("message", "")):
            self.refused += 1
        frame_id = frame.get("id")
        if isinstance(frame_id, str):
            if frame_id.startswith(PUBLISH_PREFIX):
                self.ledger.on_publish_reply(frame_id, frame, mono)
                return
            if frame_id.startswith(SUBSCRIBE_PREFIX) and kind == "ack":
                # Taken here, at arrival: a publish sent after this instant must reach us.
                self.subscribed[frame_id[len(SUBSCRIBE_PREFIX):]] = mono
            future = self.waiters.get(frame_id)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        request_id = frame.get("request_id")
        if isinstance(request_id, str):
            self.ledger.on_request_frame(request_id, frame, mono)

    def _message(self, frame: Frame, wall: float) -> None:
        data = frame.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            self.ledger.unknown_messages += 1
            return
        publisher, seq = str(data.get("pub")), int(data["seq"])
        if data.get("tenant") != self.tenant:
            self.cross_tenant += 1
        channel = frame.get("channel")
        if channel != data.get("ch") or channel not in self.wanted:
            self.wrong_channel += 1
        counts = self.received.get(publisher)
        if counts is None:
            counts = self.received[publisher] = bytearray()
        if seq >= len(counts):
            counts.extend(bytes(seq + 1024 - len(counts)))
        if counts[seq] < 255:
            counts[seq] += 1
        # One publisher's sequence numbers rise; a smaller one after a larger is reordered.
        last = self.last_seq.get(publisher, -1)
        if seq < last:
            self.out_of_order += 1
        else:
            self.last_seq[publisher] = seq
        publish = self.ledger.publishes.get(f"{PUBLISH_PREFIX}{publisher}.{seq}")
        sent = data.get("t")
        if publish is not None and isinstance(sent, int | float):
            phase = "steady" if publish.steady else "ramp"
            self.ledger.latency_ms[phase].append((wall - float(sent)) * 1000)

    def count(self, publisher: str, seq: int) -> int:
        counts = self.received.get(publisher)
        return counts[seq] if counts is not None and seq < len(counts) else 0
