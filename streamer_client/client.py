"""The asyncio client: correlation, reconnect, resume with ``since``, ordering, requests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

Frame = dict[str, Any]
Handler = Callable[[Frame], Any]
log = logging.getLogger("streamer_client")
GAP_WAIT = 1.0


class StreamerError(Exception):
    """An error frame (or a local failure: ``timeout``, ``queue_full``, ``closed``)."""

    def __init__(self, code: str, message: str = "", frame: Frame | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.frame = frame


async def _call_maybe(fn: Callable[..., Any], *args: Any) -> Any:
    value = fn(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 32))))


class Subscription:
    def __init__(self, client: Client, channel: str, handler: Handler) -> None:
        self.client = client
        self.channel = channel
        self.handler = handler
        self.offset: int | None = None
        self.epoch: str | None = None
        self.recovered: bool | None = None
        self.active = True
        self._held: dict[int, Frame] = {}
        self._gap_timer: asyncio.TimerHandle | None = None

    async def unsubscribe(self) -> Frame:
        self.active = False
        self._cancel_gap()
        self.client._subs.pop(self.channel, None)
        return await self.client._call({"action": "unsubscribe", "channel": self.channel})

    def _cancel_gap(self) -> None:
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _since(self) -> Frame | None:
        if self.offset is None or self.epoch is None:
            return None
        return {"offset": self.offset, "epoch": self.epoch}


class Request:
    def __init__(self, client: Client, request_id: str,
                 on_progress: Handler | None) -> None:
        self.client = client
        self.request_id = request_id
        self.on_progress = on_progress
        self.seq = 0
        self._result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._result.done()

    async def result(self, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise StreamerError("timeout", "no result in time") from None

    async def cancel(self) -> Frame:
        return await self.client._call({"action": "cancel", "request_id": self.request_id})

    def _finish(self, value: Any = None, error: StreamerError | None = None) -> None:
        if self._result.done():
            return
        if error is not None:
            self._result.set_exception(error)
            self._result.exception()  # never "exception was never retrieved"
        else:
            self._result.set_result(value)
        self.client._requests.pop(self.request_id, None)


class Client:
    def __init__(self, url: str, get_token: Callable[[], Any] | None = None, *,
                 subprotocols: list[str] | None = None, ping_interval: float | None = 240,
                 ack_timeout: float = 10, backoff: tuple[float, float] = (0.5, 20.0),
                 max_attempts: int | None = None, offline_queue: int = 100) -> None:
        self.url = url
        self.get_token = get_token
        self.subprotocols = ["streamer.v1"] if subprotocols is None else subprotocols
        self.ping_interval = ping_interval
        self.ack_timeout = ack_timeout
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.offline_queue = offline_queue
        self.state = "closed"
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._pending: dict[str, tuple[asyncio.Future[Frame], Callable[[Frame], None] | None]] = {}
        self._subs: dict[str, Subscription] = {}
        self._requests: dict[str, Request] = {}
        self._orphans: dict[str, list[Frame]] = {}
        self._queue: deque[str] = deque()
        self._state_cbs: list[Callable[[str], Any]] = []
        self._recovery_cbs: list[Callable[[str, bool, int | None, str | None], Any]] = []
        self._deliveries: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._connected: asyncio.Event | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self.connections = 0  # successful connects so far

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._connected = asyncio.Event()
        self._deliveries = asyncio.Queue()
        self._closing = False
        self._dispatcher = asyncio.create_task(self._dispatch())
        self._main = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._main}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            await self.close()
            raise StreamerError("connect_failed", str(self._failure))

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        for task in (self._main, self._dispatcher, *self._tasks):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._main, self._dispatcher, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._fail_all(StreamerError("closed", "client closed"))
        self._set_state("closed")

    def on_state(self, cb: Callable[[str], Any]) -> None:
        self._state_cbs.append(cb)

    def on_recovery(self, cb: Callable[[str, bool, int | None, str | None], Any]) -> None:
        self._recovery_cbs.append(cb)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            for cb in self._state_cbs:
                self._schedule(cb, state)

    def _schedule(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._deliveries is not None:
            self._deliveries.put_nowait((fn, args))

    async def _dispatch(self) -> None:
        assert self._deliveries is not None
        while True:
            fn, args = await self._deliveries.get()
            try:
                await _call_maybe(fn, *args)
            except Exception:
                log.exception("streamer_client callback failed")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background task failed: %r", task.exception())

    def _fail_calls(self, error: StreamerError) -> None:
        for fut, _ in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()
        self._pending.clear()

    def _fail_all(self, error: StreamerError) -> None:
        self._fail_calls(error)
        for req in list(self._requests.values()):
            req._finish(error=error)

    async def _url(self) -> str:
        if self.get_token is None:
            return self.url
        token = await _call_maybe(self.get_token)
        sep = "&" if "?" in self.url else ("?" if urllib.parse.urlsplit(self.url).path
                                           else "/?")
        return f"{self.url}{sep}{urllib.parse.urlencode({'Authorization': token})}"

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._set_state("connecting" if self.connections == 0 else "reconnecting")
            try:
                ws = await connect(
                    await self._url(), open_timeout=self.ack_timeout,
                    subprotocols=[Subprotocol(p) for p in self.subprotocols] or None,
                    max_size=2**20)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self._failure = exc
                attempt += 1
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    self._fail_all(StreamerError("closed", f"gave up: {exc}"))
                    self._set_state("closed")
                    return
                await asyncio.sleep(backoff_delay(attempt - 1, *self.backoff))
                continue
            attempt = 0
            self._ws = ws
            self.connections += 1
            self._set_state("connected")
            assert self._connected is not None
            self._connected.set()
            ping = asyncio.create_task(self._ping_loop())
            try:
                self._on_open()
                async for raw in ws:
                    self._on_frame(raw)
            except ConnectionClosed:
                pass
            finally:
                ping.cancel()
                self._ws = None
                self._connected.clear()
                # Replies to frames sent on this connection will never come: fail the
                # calls now rather than at their timeout. Requests stay: status after
                # the reconnect catches them up.
                self._fail_calls(StreamerError("disconnected", "connection lost before reply"))
            if not self._closing:
                await asyncio.sleep(backoff_delay(0, *self.backoff))

    async def _ping_loop(self) -> None:
        if not self.ping_interval:
            return
        while True:
            await asyncio.sleep(self.ping_interval)
            with contextlib.suppress(StreamerError):
                await self.ping()

    def _on_open(self) -> None:
        while self._queue and self._ws is not None:
            self._spawn(self._ws.send(self._queue.popleft()))
        for sub in list(self._subs.values()):
            self._spawn(self._resubscribe(sub))
        for req in list(self._requests.values()):
            self._spawn(self._status(req))

    # -- sending ---------------------------------------------------------------

    def _next_id(self) -> str:
        return f"py{next(self._ids)}"

    def _send_now(self, frame: Frame) -> None:
        text = json.dumps(frame)
        if self._ws is not None:
            self._spawn(self._ws.send(text))
        elif len(self._queue) >= self.offline_queue:
            raise StreamerError("queue_full", "offline queue is full")
        else:
            self._queue.append(text)

    async def _call(self, frame: Frame, on_reply: Callable[[Frame], None] | None = None,
                    timeout: float | None = None) -> Frame:
        frame_id = frame.setdefault("id", self._next_id())
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = (fut, on_reply)
        try:
            self._send_now(frame)
            return await asyncio.wait_for(fut, timeout or self.ack_timeout)
        except TimeoutError:
            raise StreamerError("timeout", f"no reply to {frame.get('action')}") from None
        finally:
            self._pending.pop(frame_id, None)

    # -- public API ------------------------------------------------------------

    async def ping(self) -> Frame:
        return await self._call({"action": "ping"})

    async def publish(self, channel: str, data: Any, exclude_self: bool = False) -> Frame:
        frame: Frame = {"action": "publish", "channel": channel, "data": data}
        if exclude_self:
            frame["exclude_self"] = True
        return await self._call(frame)

    async def history(self, channel: str, limit: int = 10) -> Frame:
        return await self._call({"action": "history", "channel": channel, "limit": limit})

    async def subscribe(self, channel: str, handler: Handler) -> Subscription:
        sub = Subscription(self, channel, handler)
        self._subs[channel] = sub
        try:
            await self._subscribe_frame(sub, None)
        except BaseException:
            self._subs.pop(channel, None)
            raise
        return sub

    async def request(self, kind: str, payload: Frame,
                      on_progress: Handler | None = None) -> Request:
        ack = await self._call({"action": "request", "kind": kind, "payload": payload})
        req = Request(self, ack["request_id"], on_progress)
        self._requests[req.request_id] = req
        for frame in sorted(self._orphans.pop(req.request_id, []),
                            key=lambda f: int(f.get("seq") or 0)):
            self._on_request_frame(req, frame)
        return req

    async def refresh(self) -> Frame:
        assert self.get_token is not None
        token = await _call_maybe(self.get_token)
        return await self._call({"action": "refresh", "token": token})

    # -- subscriptions and ordering --------------------------------------------

    async def _subscribe_frame(self, sub: Subscription, since: Frame | None) -> Frame:
        frame: Frame = {"action": "subscribe", "channel": sub.channel}
        if since is not None:
            frame["since"] = since

        def on_ack(ack: Frame) -> None:  # runs in order with the messages before it
            if ack.get("type") == "ack":
                self._on_subscribe_ack(sub, ack, since is not None)

        return await self._call(frame, on_ack)

    async def _resubscribe(self, sub: Subscription) -> None:
        if sub.active and self._subs.get(sub.channel) is sub:
            with contextlib.suppress(StreamerError):
                await self._subscribe_frame(sub, sub._since())

    def _on_subscribe_ack(self, sub: Subscription, ack: Frame, resumed: bool) -> None:
        """A subscribe's ack, taken in order with the replayed messages before it. A
        fresh subscribe, a lost window (``recovered: false``) or a new epoch moves the
        position to the ack's, since nothing older is coming; a recovered resume keeps
        the position its replay advanced."""
        offset, epoch = ack.get("offset"), ack.get("epoch")
        recovered = bool(ack.get("recovered")) if resumed else None
        known = isinstance(offset, int) and isinstance(epoch, str)
        if known and not (resumed and recovered and sub.epoch == epoch):
            assert isinstance(offset, int)
            if sub.epoch != epoch:
                sub._held.clear()
            if sub.offset is None or sub.epoch != epoch or offset > sub.offset:
                sub.offset, sub.epoch = offset, epoch
            self._drain(sub)
        if resumed:
            sub.recovered = recovered
            for cb in self._recovery_cbs:
                self._schedule(cb, sub.channel, bool(recovered), sub.offset, sub.epoch)

    def _on_message(self, frame: Frame) -> None:
        sub = self._subs.get(frame.get("channel") or "")
        if sub is None or not sub.active:
            return
        offset, epoch = frame.get("offset"), frame.get("epoch")
        if not isinstance(offset, int) or isinstance(offset, bool):
            self._schedule(sub.handler, frame)
            return
        if sub.offset is None or (isinstance(epoch, str) and epoch != sub.epoch):
            sub._held.clear()
            sub.offset, sub.epoch = offset - 1, epoch if isinstance(epoch, str) else sub.epoch
        if offset <= sub.offset or offset in sub._held:
            return  # duplicate
        sub._held[offset] = frame
        self._drain(sub)

    def _drain(self, sub: Subscription) -> None:
        assert sub.offset is not None
        for stale in [o for o in sub._held if o <= sub.offset]:
            del sub._held[stale]
        while sub.offset + 1 in sub._held:
            sub.offset += 1
            self._schedule(sub.handler, sub._held.pop(sub.offset))
        if not sub._held:
            sub._cancel_gap()
        elif sub._gap_timer is None:
            sub._gap_timer = asyncio.get_running_loop().call_later(
                GAP_WAIT, self._gap_expired, sub)

    def _gap_expired(self, sub: Subscription) -> None:
        sub._gap_timer = None
        if sub._held and self._ws is not None:
            self._spawn(self._resubscribe(sub))
            sub._gap_timer = asyncio.get_running_loop().call_later(
                GAP_WAIT, self._gap_expired, sub)

    # -- receiving -------------------------------------------------------------

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "message":
            self._on_message(frame)
            return
        if kind == "token_expiring" and self.get_token is not None:
            self._spawn(self.refresh())
            return
        if kind == "error" and frame.get("code") == "token_expired":
            self._reject(frame)
            if self._ws is not None:
                self._spawn(self._ws.close())
            return
        request_id = frame.get("request_id")
        if kind in ("progress", "result") or (kind == "error" and request_id
                                              and frame.get("id") is None):
            req = self._requests.get(str(request_id))
            if req is None:
                self._orphans.setdefault(str(request_id), []).append(frame)
                while len(self._orphans) > 100:
                    self._orphans.pop(next(iter(self._orphans)))
            else:
                self._on_request_frame(req, frame)
            return
        if kind == "request" and request_id in self._requests:
            self._on_status(self._requests[request_id], frame)
        frame_id = frame.get("id")
        if isinstance(frame_id, str) and frame_id in self._pending:
            if kind == "error":
                self._reject(frame)
                return
            fut, on_reply = self._pending[frame_id]
            if on_reply is not None:
                on_reply(frame)
            if not fut.done():
                fut.set_result(frame)

    def _reject(self, frame: Frame) -> None:
        entry = self._pending.get(str(frame.get("id")))
        if entry is not None and not entry[0].done():
            entry[0].set_exception(StreamerError(str(frame.get("code")),
                                                 str(frame.get("message", "")), frame))

    def _on_request_frame(self, req: Request, frame: Frame) -> None:
        kind = frame.get("type")
        seq = frame.get("seq")
        if isinstance(seq, int):
            if seq <= req.seq:
                return  # already delivered (e.g. caught up through status)
            req.seq = seq
        if kind == "progress":
            if req.on_progress is not None:
                self._schedule(req.on_progress, frame)
        elif kind == "result":
            req._finish(frame.get("data"))
        else:
            req._finish(error=StreamerError(str(frame.get("code")),
                                            str(frame.get("message", "")), frame))

    def _on_status(self, req: Request, frame: Frame) -> None:
        state = frame.get("state")
        seq = frame.get("seq")
        if state == "running" and isinstance(seq, int) and seq > req.seq:
            req.seq = seq
            if req.on_progress is not None:
                self._schedule(req.on_progress, {
                    "type": "progress", "request_id": req.request_id,
                    "progress": frame.get("progress"), "detail": frame.get("detail"),
                    "seq": seq})
        elif state == "succeeded":
            req._finish(frame.get("result"))
        elif state in ("failed", "cancelled"):
            error = frame.get("error") or {}
            req._finish(error=StreamerError(str(error.get("code", state)),
                                            str(error.get("message", "")), frame))

    async def _status(self, req: Request) -> None:
        with contextlib.suppress(StreamerError):
            await self._call({"action": "status", "request_id": req.request_id})
