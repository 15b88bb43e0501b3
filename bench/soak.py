"""``make soak``: many clients on the real local stack, with its faults on, for minutes.

The stack runs as a developer runs it (``python -m local`` with its moto DynamoDB, in
child processes, loopback only; :mod:`bench.soak_stack`). This process holds the
clients (:mod:`bench.soak_clients`): ``--connections`` subscribers spread over
``--tenants`` tenants, each subscribed to 2-3 of its tenant's channels (the same
channel names in every tenant, so a leak across tenants would show), one publisher per
tenant sending ``--rate`` publishes a second in all, each with a sequence number, and
``count`` requests, some cancelled. The fault switches are on: a 410 on some posts to
live connections (the server then forgets the connection), 429s, dropped
``$disconnect``, stream records delivered twice.

Phases, each bounded, under one overall deadline:

1. ramp-up: subscribers connect and subscribe, at most ``--ramp-concurrency`` at once
   (moto serves one request at a time; see docs/soak.md for the rate it allows);
   publishing already runs, at 1/s, so that publishes race subscribes;
2. steady: ``--minutes`` of publishing at ``--rate``, plus requests and cancels;
3. settle: until every acknowledged publish has been fanned out (the app logs
   ``published`` after its last post), and every request is final (or the grace ends);
4. probe: ``status`` for every request, a ``ping`` from every client (a client the
   server forgot answers "not registered");
5. leave: every client closes, at the pace the stack absorbs; rows left are counted;
   then the sweep (a publish to every channel, whose 410s make the app delete rows of
   connections that are gone: the project's only cleanup besides TTL), and rows are
   counted again.

The report (a table on stdout, and ``build/bench/soak.json``) gives each figure with
its goal; the exit status is 1 when a goal is missed.

    .venv/bin/python -m bench.soak [--minutes 2] [--connections 1000] [--rate 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException

from bench import soak_report
from bench.common import (
    RESULTS_DIR,
    machine_info,
    median,
    raise_open_files,
    write_results,
)
from bench.soak_clients import NOT_REGISTERED, SUBSCRIBE_PREFIX, Client, Ledger, Publish
from bench.soak_stack import Faults, LocalStackProcesses, Tables

SECRET = "streamer-soak-secret-of-at-least-32-bytes-long"
# Measured here (2 cores): moto's TransactWriteItems copies both tables it touches, so a
# subscribe costs ~40 us per row already stored, and joining N subscribers with 2-3
# channels each takes about 3e-4 * N**2 seconds (1,000: 340-390 s). Used only to aim
# the 410 fault at --gone-share of the connections; the share reached is measured.
RAMP_SECONDS_PER_N2 = 3e-4
KEEPALIVE_SECONDS = 240.0  # the gateway closes a connection idle for 600 s, as AWS does
FRAME_TIMEOUT = 60.0  # any one reply; moto's queue can hold one up for seconds
SETTLE_SECONDS = 180.0  # the bound on waiting for the last answers and fan-outs
LEAVE_WINDOW = 16  # $disconnect runs outstanding at most while clients leave
LEAVE_PATIENCE = 20.0  # seconds after which a close no longer counts as outstanding
LEAVE_BOUND_S = 600.0  # past this, the remaining clients close without waiting


@dataclass(frozen=True)
class SoakConfig:
    connections: int = 1000
    tenants: int = 3
    channels_per_tenant: int = 8
    rate: float = 10.0  # publishes per second, all publishers together
    minutes: float = 2.0  # the steady phase, after the ramp-up
    ramp_concurrency: int = 8
    ramp_rate: float = 100.0  # new connections per second at most
    ramp_deadline_s: float | None = None  # default: 0.6 s per connection, at least 60 s
    # Publishes per second during the ramp-up: enough to race subscribes with publishes,
    # little enough to leave moto (one request at a time) to the subscribes.
    ramp_rate_publishes: float = 1.0
    request_rate: float = 0.5  # requests per second, steady phase
    cancel_fraction: float = 0.3
    gone_share: float = 0.05  # aim: this share of connections gets a 410
    gone_fraction: float | None = None  # or: this fraction of posts (overrides the aim)
    throttle_fraction: float = 0.01
    drop_disconnect: float = 0.05
    redeliver_fraction: float = 0.1
    seed: int = 1
    request_grace_s: float = 120.0
    rss_interval_s: float = 5.0
    table_prefix: str = "soak_"
    # The DynamoDB server, run as `python -m <module> --host H --port 0`: the stack's own
    # by default; another one (a fixed moto, say) to compare against it.
    dynamodb_module: str = "streamer_local.dynamodb_server"
    deadline: float | None = None  # seconds; default: every phase's bound added up

    def gone_per_post(self) -> float:
        """The per-post 410 fraction that makes about ``gone_share`` of the subscribers
        get one: 1 - (1 - f) ** posts = share, for the posts one subscriber receives."""
        if self.gone_fraction is not None:
            return self.gone_fraction
        channels = 2.5  # 2 or 3 per subscriber
        share = channels / self.tenants / self.channels_per_tenant  # of all publishes
        ramp = min(RAMP_SECONDS_PER_N2 * self.connections ** 2, self.ramp_bound_s())
        # A subscriber joins half-way through the ramp-up on average; + its replies.
        posts = (share * (self.rate * self.minutes * 60 + self.ramp_rate_publishes * ramp / 2)
                 + channels + 2)
        return -math.log(1 - self.gone_share) / max(posts, 1.0)

    def faults(self) -> Faults:
        return Faults(gone_fraction=self.gone_per_post(),
                      throttle_fraction=self.throttle_fraction,
                      drop_disconnect=self.drop_disconnect,
                      redeliver_fraction=self.redeliver_fraction, seed=self.seed)

    def ramp_bound_s(self) -> float:
        if self.ramp_deadline_s is not None:
            return self.ramp_deadline_s
        return max(60.0, 0.6 * self.connections)

    def deadline_s(self) -> float:
        """The whole run's bound: every phase's own bound, added up, plus slack (or
        ``deadline``, when given)."""
        if self.deadline is not None:
            return self.deadline
        return (self.ramp_bound_s() + self.minutes * 60 + self.request_grace_s
                + SETTLE_SECONDS + 2 * LEAVE_BOUND_S + 3 * 240 + 300)


def token(user: str, tenant: str, permissions: list[str], ttl: int) -> str:
    from local.cli import make_token  # what `python -m local token` signs with

    return make_token(SECRET, user=user, tenant=tenant, permissions=permissions, ttl=ttl)


@dataclass
class Publisher:
    name: str
    tenant: str
    client: Client
    seq: int = 0
    generation: int = 0
    retired: list[Client] = field(default_factory=list)  # connections the server forgot


async def _bounded(coros: Iterable[Awaitable[Any]], limit: int, timeout: float) -> None:
    """Run ``coros`` at most ``limit`` at a time; give up on the rest after ``timeout``."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> None:
        try:
            async with semaphore:
                await coro
        finally:
            if inspect.iscoroutine(coro):
                coro.close()  # a no-op once it ran; spares "never awaited" if cancelled first

    tasks = [asyncio.ensure_future(one(c)) for c in coros]
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Soak:
    """One soak run: its clients, its phases, and what it saw (the report's inputs)."""

    def __init__(self, cfg: SoakConfig, stack: LocalStackProcesses, tables: Tables) -> None:
        self.cfg = cfg
        self.stack = stack
        self.tables = tables
        self.ledger = Ledger()
        self.rng = random.Random(cfg.seed)
        self.ttl = int(cfg.deadline_s()) + 3600
        self.started = time.monotonic()
        self.phase = "ramp"
        self.timeline: dict[str, float] = {}
        self.publish_until = math.inf
        self.channels = [f"ch{n}" for n in range(cfg.channels_per_tenant)]
        self.tenant_names = [f"soak-t{n}" for n in range(cfg.tenants)]
        self.subscribers = [self._subscriber(i) for i in range(cfg.connections)]
        self.publishers: list[Publisher] = []
        self.sweepers: list[Client] = []
        self.subscribe_ms: list[float] = []
        self.ramp_s = 0.0
        self.ramp_joined = 0
        self.requests_sent = 0
        self.requests_refused: Counter[str] = Counter()
        self.request_rows: list[dict[str, Any]] = []
        self.request_rows_final: list[dict[str, Any]] = []
        self.traffic_ended: float | None = None  # monotonic; then only probes and leaving
        self.probe: Counter[str] = Counter()
        self.orphans: dict[str, Any] = {}
        self.sweep_publishes = 0
        self.rss_samples: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.request_tasks: set[asyncio.Task[Any]] = set()

    def _subscriber(self, index: int) -> Client:
        tenant = self.tenant_names[index % self.cfg.tenants]
        channels = self.rng.sample(self.channels, self.rng.choice((2, 3)))
        return Client(self.ledger, "subscriber", f"s{index}", tenant, channels)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def mark(self, name: str) -> None:
        self.timeline[name] = round(self.elapsed(), 1)
        print(f"[{self.elapsed():7.1f} s] {name}", file=sys.stderr, flush=True)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- the run -----------------------------------------------------------------------

    async def run(self) -> None:
        self.spawn(self.sample_rss())
        await self.open_publishers()
        publishing = [self.spawn(self.publish_loop(p)) for p in self.publishers]
        keepalive = self.spawn(self.keepalive())
        self.mark("ramp-up")
        await self.ramp()
        self.ledger.ramp_ended = True
        self.phase = "steady"
        self.mark(f"steady ({self.joined()} subscribers joined)")
        steady_end = time.monotonic() + self.cfg.minutes * 60
        self.publish_until = steady_end
        requesting = self.spawn(self.request_loop(steady_end))
        await asyncio.gather(*publishing, requesting)
        self.phase = "settle"
        self.mark("settle")
        await self.settle()
        await self.requests_grace()
        self.traffic_ended = time.monotonic()
        self.mark("probe")
        await self.status_checks()
        await self.probe_all()
        keepalive.cancel()
        self.phase = "leave"
        self.mark("leave")
        await self.leave([*self.subscribers, *(p.client for p in self.publishers)])
        self.orphans["before_sweep"] = await self.count_orphans()
        self.mark("sweep")
        await self.sweep()
        self.orphans["after_sweep"] = await self.count_orphans()
        self.request_rows_final = await asyncio.to_thread(self.tables.scan, "requests")
        self.mark("done")

    def joined(self) -> int:
        """Subscribers connected and subscribed to every channel they asked for."""
        return sum(1 for s in self.subscribers if s.ws is not None and s.join_error is None)

    def opened(self) -> int:
        """Subscribers whose handshake succeeded."""
        return sum(1 for s in self.subscribers if s.ws is not None)

    async def sample_rss(self) -> None:
        while True:
            self.rss_samples.append({"t_s": round(self.elapsed(), 1), "phase": self.phase,
                                     **self.stack.rss()})
            await asyncio.sleep(self.cfg.rss_interval_s)

    # -- ramp-up -----------------------------------------------------------------------

    async def open_client(self, client: Client, permissions: list[str]) -> None:
        await client.open(self.stack.url, token(client.user, client.tenant, permissions,
                                                self.ttl), FRAME_TIMEOUT)

    async def open_publishers(self) -> None:
        for tenant in self.tenant_names:
            name = f"P-{tenant}"
            publisher = Publisher(name, tenant, Client(self.ledger, "publisher", f"{name}.c0",
                                                       tenant))
            await self.open_client(publisher.client, ["read", "write"])
            self.publishers.append(publisher)

    async def join(self, index: int, client: Client, start: float,
                   semaphore: asyncio.Semaphore) -> None:
        await asyncio.sleep(max(0.0, start + index / self.cfg.ramp_rate - time.monotonic()))
        async with semaphore:
            try:
                await self.open_client(client, ["read", "write"])
            except (OSError, WebSocketException, TimeoutError) as exc:
                client.join_error = f"connect: {exc!r}"[:200]
                return
            for channel in client.wanted:
                began = time.monotonic()
                reply = await self.ask(client, {"action": "subscribe", "channel": channel,
                                                "id": f"{SUBSCRIBE_PREFIX}{channel}"})
                if reply is None or reply.get("type") != "ack":
                    client.join_error = f"subscribe {channel}: {reply!r}"[:200]
                    if self.is_forgotten(client) or (
                            reply is not None and NOT_REGISTERED in str(reply.get("message"))):
                        return  # a 410 on one of its replies: the rest would be refused
                    continue
                self.subscribe_ms.append((time.monotonic() - began) * 1000)
            self.ramp_joined += 1
            if self.ramp_joined % 100 == 0:
                print(f"[{self.elapsed():7.1f} s]   {self.ramp_joined} joined, subscribe "
                      f"{median(self.subscribe_ms[-50:]):.0f} ms", file=sys.stderr, flush=True)

    def is_forgotten(self, client: Client) -> bool:
        """Whether the app deleted this connection's rows after a 410 (from its log)."""
        watch = self.stack.watch
        with watch.lock:
            return watch.connection_of.get(client.user) in watch.forgotten

    async def ask(self, client: Client, frame: dict[str, Any]) -> dict[str, Any] | None:
        """``client.call``, but given up as soon as the server has forgotten the client:
        the 410 that made it forget may have been this very reply's, which never comes."""
        call = asyncio.ensure_future(client.call(frame, FRAME_TIMEOUT))
        while not call.done():
            await asyncio.wait({call}, timeout=0.5)
            if not call.done() and self.is_forgotten(client):
                call.cancel()
        return None if call.cancelled() else call.result()

    async def ramp(self) -> None:
        start = time.monotonic()
        semaphore = asyncio.Semaphore(self.cfg.ramp_concurrency)
        await _bounded((self.join(i, c, start, semaphore) for i, c in enumerate(self.subscribers)),
                       limit=len(self.subscribers) or 1, timeout=self.cfg.ramp_bound_s())
        self.ramp_s = time.monotonic() - start

    # -- traffic -----------------------------------------------------------------------

    async def publish_loop(self, publisher: Publisher) -> None:
        next_at = time.monotonic()
        while (now := time.monotonic()) < self.publish_until:
            rate = self.cfg.rate if self.ledger.ramp_ended else self.cfg.ramp_rate_publishes
            interval = len(self.publishers) / rate if rate > 0 else 1.0
            if rate <= 0:  # no publishing in this phase
                next_at = now
                await asyncio.sleep(0.5)
                continue
            if next_at > now:
                await asyncio.sleep(min(next_at - now, 1.0))
                continue
            # Behind schedule (a reconnect, a busy loop): skip ahead instead of bursting.
            next_at = max(next_at + interval, now - 1.0)
            client = publisher.client
            if client.refused or not client.is_open:
                if not await self.reconnect(publisher):
                    continue
                client = publisher.client
            publisher.seq += 1
            channel = self.rng.choice(self.channels)
            publish = Publish(publisher.name, publisher.seq, publisher.tenant, channel,
                              time.monotonic(), steady=self.ledger.ramp_ended,
                              connection=client.user)
            frame_id = self.ledger.new_publish(publish)
            data = {"seq": publisher.seq, "pub": publisher.name, "t": time.time(),
                    "tenant": publisher.tenant, "ch": channel}
            if not await client.send({"action": "publish", "channel": channel,
                                      "id": frame_id, "data": data}):
                publish.error = "send failed"

    async def reconnect(self, publisher: Publisher) -> bool:
        """A publisher the server forgot (410 on an ack) connects again, as a client
        told "reconnect" does; the old connection is closed, its rows already gone."""
        old = publisher.client
        publisher.retired.append(old)
        publisher.generation += 1
        fresh = Client(self.ledger, "publisher", f"{publisher.name}.c{publisher.generation}",
                       publisher.tenant)
        self.spawn(old.close())
        try:
            await self.open_client(fresh, ["read", "write"])
        except (OSError, WebSocketException, TimeoutError):
            return False
        publisher.client = fresh
        return True

    async def request_loop(self, until: float) -> None:
        if self.cfg.request_rate <= 0:
            return
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) / self.cfg.request_rate)
            live = [s for s in self.subscribers if s.is_open and not s.refused]
            if live:
                task = self.spawn(self.one_request(self.rng.choice(live)))
                self.request_tasks.add(task)
                task.add_done_callback(self.request_tasks.discard)

    async def one_request(self, client: Client) -> None:
        payload = {"steps": self.rng.randint(2, 4), "interval_ms": self.rng.choice((50, 100, 200))}
        self.requests_sent += 1
        reply = await self.ask(client, {"action": "request", "kind": "count",
                                        "payload": payload, "id": client.next_id("r.")})
        if reply is None or reply.get("type") != "ack":
            self.requests_refused[str(reply.get("code")) if reply else "no reply"] += 1
            return
        request = self.ledger.request(str(reply["request_id"]))
        request.client, request.acked_mono = client, time.monotonic()
        if self.rng.random() >= self.cfg.cancel_fraction:
            return
        await asyncio.sleep(self.rng.uniform(0.0, 1.5))
        request.cancel_sent = True
        answer = await self.ask(client, {"action": "cancel", "request_id": request.request_id,
                                         "id": client.next_id("c.")})
        if answer is not None:
            request.cancel_state = str(answer.get("state") or answer.get("code"))

    async def keepalive(self) -> None:
        """The protocol's ping, as a client that wants to stay connected sends it.

        Sent without waiting for the pong: the gateway counts a connection active when a
        frame arrives, whatever its handler then takes, and a reply saying "not
        registered" is still seen by the client's reader.
        """
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            for client in [s for s in self.subscribers if s.is_open]:
                await client.send({"action": "ping", "id": client.next_id("k.")})

    # -- settling, probing ---------------------------------------------------------------

    async def settle(self) -> None:
        """Until every publish is answered and every acked one fanned out (the app logs
        ``published`` after its last post), bounded: an overloaded stack answers late."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            publishes = list(self.ledger.publishes.values())
            acked = {p.message_id for p in publishes if p.message_id}
            watch = self.stack.watch
            with watch.lock:
                # A reply lost to a 410 never comes: its publisher's connection was
                # forgotten (reconnected from, or forgotten after its last publish).
                forgotten = {user for user, cid in watch.connection_of.items()
                             if cid in watch.forgotten}
                fanned_out = acked <= watch.published.keys()
            forgotten |= {c.user for p in self.publishers for c in p.retired}
            answered = all(p.acked_mono is not None or p.error or p.connection in forgotten
                           for p in publishes)
            if answered and fanned_out:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # the last posts' frames still on their way to the clients
        # Requests (and their cancels) still waiting for a reply finish first.
        if self.request_tasks:
            await asyncio.wait(set(self.request_tasks), timeout=2 * FRAME_TIMEOUT)

    async def requests_grace(self) -> None:
        """Requests must all reach a final state while their requesters are still
        connected (leaving cancels unfinished ones, which would hide a stuck one)."""
        deadline = time.monotonic() + self.cfg.request_grace_s
        while True:
            rows = await asyncio.to_thread(self.tables.scan, "requests")
            live = [r for r in rows if r["state"]["S"] in soak_report.LIVE_STATES]
            if not live or time.monotonic() > deadline:
                self.request_rows = rows
                return
            await asyncio.sleep(3.0)

    async def status_checks(self) -> None:
        async def check(request_id: str, client: Client) -> None:
            reply = await self.ask(client, {"action": "status", "request_id": request_id,
                                            "id": client.next_id("q.")})
            if reply is not None and reply.get("type") == "request":
                self.ledger.requests[request_id].status_state = str(reply.get("state"))

        await _bounded((check(r.request_id, r.client) for r in self.ledger.requests.values()
                        if r.client is not None and r.client.is_open and not r.client.refused),
                       limit=16, timeout=120)

    async def probe_all(self) -> None:
        async def probe(client: Client) -> None:
            # Not ask(): a forgotten client's "not registered" answer is what is probed for.
            reply = await client.call({"action": "ping", "id": client.next_id("x.")},
                                      FRAME_TIMEOUT)
            if reply is None:
                self.probe["no answer"] += 1
            elif reply.get("type") == "pong":
                self.probe["registered"] += 1
            elif NOT_REGISTERED in str(reply.get("message")):
                self.probe["not registered"] += 1
            else:
                self.probe[f"error {reply.get('code')}"] += 1

        await _bounded((probe(s) for s in self.subscribers if s.is_open), limit=32, timeout=180)

    # -- leaving, orphans ----------------------------------------------------------------

    async def leave(self, clients: list[Client]) -> None:
        """Every client closes, at the pace the stack absorbs: at most LEAVE_WINDOW
        ``$disconnect`` runs outstanding, as at most ``ramp_concurrency`` joins were.
        All at once, moto (one request at a time, each ``$disconnect`` a few O(rows)
        calls) queued them past the 30 s Lambda timeout: 637 of 1,000 timed out in a
        run that closed 64 at a time. A dropped ``$disconnect`` never logs, so a close
        stops counting as outstanding after LEAVE_PATIENCE seconds."""
        deadline = time.monotonic() + LEAVE_BOUND_S
        outstanding: dict[str, float] = {}  # user -> when it closed
        for client in clients:
            if client.ws is None:
                continue  # never connected
            while time.monotonic() < deadline:
                now = time.monotonic()
                with self.stack.watch.lock:
                    done = self.stack.watch.disconnected
                    connection_of = self.stack.watch.connection_of
                    for user in [u for u, at in outstanding.items()
                                 if connection_of.get(u) in done or now - at > LEAVE_PATIENCE]:
                        del outstanding[user]
                if len(outstanding) < LEAVE_WINDOW:
                    break
                await asyncio.sleep(0.1)
            await client.close()
            outstanding[client.user] = time.monotonic()
        await self.wait_disconnects()

    async def wait_disconnects(self, quiet: float = 4.0, bound: float = 240.0) -> None:
        """Until no ``$disconnect`` has run for ``quiet`` seconds (bounded): the gateway
        runs them after each close, and dropped ones leave no trace to wait for."""
        start = time.monotonic()
        while time.monotonic() - start < bound:
            with self.stack.watch.lock:
                last = max(self.stack.watch.last_disconnect, start)
            if time.monotonic() - last >= quiet:
                return
            await asyncio.sleep(0.5)

    async def count_orphans(self) -> dict[str, Any]:
        connections = await asyncio.to_thread(self.tables.scan, "connections")
        subscriptions = await asyncio.to_thread(self.tables.scan, "subscriptions")
        never_opened = {s.user for s in self.subscribers
                        if s.join_error and s.join_error.startswith("connect")}
        return soak_report.orphans(connections, subscriptions, self.stack.watch, never_opened)

    async def sweep(self) -> None:
        """A publish to every channel of every tenant, from a fresh connection each: the
        posts to connections that are gone answer 410, and the app deletes their rows."""
        message_ids: set[str] = set()
        for tenant in self.tenant_names:
            sweeper = Client(self.ledger, "sweeper", f"w-{tenant}", tenant)
            await self.open_client(sweeper, ["write"])
            self.sweepers.append(sweeper)
            for channel in self.channels:
                reply = await sweeper.call({"action": "publish", "channel": channel,
                                            "data": {"sweep": True},
                                            "id": sweeper.next_id("w.")}, FRAME_TIMEOUT)
                if reply is not None and reply.get("message_id"):
                    message_ids.add(str(reply["message_id"]))
        self.sweep_publishes = len(message_ids)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.stack.watch.lock:
                if message_ids <= self.stack.watch.published.keys():
                    break
            await asyncio.sleep(0.5)
        await self.leave(self.sweepers)

    # -- the report ----------------------------------------------------------------------

    def report(self, error: str | None) -> dict[str, Any]:
        watch = self.stack.watch
        with watch.lock:
            levels = dict(watch.levels)
            errors = list(watch.errors)
            fanout = asdict(watch.fanout)
            replies_lost = watch.replies_lost
            forgotten_connections = len(watch.forgotten)
        ms = self.subscribe_ms
        report: dict[str, Any] = {
            "config": asdict(self.cfg),
            "faults": asdict(self.cfg.faults()),
            "error": error,
            "timeline_s": self.timeline,
            "duration_s": round(self.elapsed(), 1),
            "connections": {
                "wanted": self.cfg.connections, "subscribers": len(self.subscribers),
                "opened": self.opened(), "joined": self.joined(), "ramp_s": self.ramp_s,
                "join_rate_per_s": self.opened() / self.ramp_s if self.ramp_s else 0.0,
                "subscriptions": sum(len(s.subscribed) for s in self.subscribers),
                "join_errors": dict(Counter(s.join_error.split(":")[0] for s in self.subscribers
                                            if s.join_error)),
                "subscribe_ms_first": median(ms[:100]),
                "subscribe_ms_last": median(ms[-100:]),
                "publishers": len(self.publishers),
                "publisher_reconnects": sum(p.generation for p in self.publishers),
                "probe": dict(self.probe),
            },
            "publishes": soak_report.publishes(self.ledger),
            "deliveries": soak_report.deliveries(
                self.subscribers, self.ledger, soak_report.ServerView.of(watch),
                self.traffic_ended or math.inf),
            "latency_ms": {phase: soak_report.distribution(list(values))
                           for phase, values in self.ledger.latency_ms.items()},
            "server": {**fanout, "replies_lost": replies_lost,
                       "connections_forgotten_by_410": forgotten_connections},
            "requests": soak_report.requests(self.ledger, self.requests_sent,
                                             self.requests_refused, self.request_rows,
                                             self.request_rows_final, watch),
            "rss": {"samples": self.rss_samples,
                    "summary": soak_report.rss_summary(self.rss_samples)},
            "log": {"lines": sum(levels.values()), "levels": levels,
                    "errors": levels.get("ERROR", 0) + levels.get("CRITICAL", 0),
                    "error_lines": errors, "path": str(self.stack.log_path)},
            "orphans": {**self.orphans, "sweep_publishes": self.sweep_publishes},
        }
        goals = soak_report.goals(report)
        if error is not None:
            goals.append(soak_report.Goal("finished within its bounds", error, "yes", False))
        report["goals"] = [g.as_dict() for g in goals]
        report["passed"] = all(g.met for g in goals)
        return report


async def _drive(run: Soak) -> str | None:
    """Run the phases under the overall deadline; why it stopped early, if it did."""
    try:
        async with asyncio.timeout(run.cfg.deadline_s()):
            await run.run()
    except TimeoutError:
        return f"overall deadline of {run.cfg.deadline_s():.0f} s passed in phase {run.phase}"
    except asyncio.CancelledError:  # Ctrl-C: report what was seen so far
        return f"interrupted in phase {run.phase}"
    finally:
        for task in list(run.tasks):
            task.cancel()
        await asyncio.gather(*run.tasks, return_exceptions=True)
        for client in [*run.subscribers, *run.sweepers,
                       *(c for p in run.publishers for c in (p.client, *p.retired))]:
            if client.ws is not None:
                client.ws.transport.abort()
    return None


def soak(cfg: SoakConfig, log_path: Path) -> dict[str, Any]:
    """The whole soak; the report. The stack's processes are started from this (the main)
    thread: they are told to die with it (PR_SET_PDEATHSIG names the thread), so a
    soak that is killed, by a test's timeout say, leaves no servers behind."""
    raise_open_files()
    stack = LocalStackProcesses(cfg.faults(), table_prefix=cfg.table_prefix, secret=SECRET,
                                log_path=log_path, dynamodb_module=cfg.dynamodb_module)
    try:
        stack.start()
        tables = Tables(stack.dynamodb_url, cfg.table_prefix)
        run = Soak(cfg, stack, tables)
        try:
            from streamer_local import eventloop

            error = eventloop.run(_drive(run))
            run.rss_samples.append({"t_s": round(run.elapsed(), 1), "phase": "end",
                                    **stack.rss()})
        finally:
            tables.close()
    finally:
        stack.stop()
    return run.report(error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = SoakConfig()
    parser.add_argument("--minutes", type=float, default=defaults.minutes,
                        help="steady phase after the ramp-up (default %(default)s)")
    parser.add_argument("--connections", type=int, default=defaults.connections,
                        help="subscriber connections (default %(default)s)")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help="publishes per second, in all (default %(default)s)")
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument("--channels", type=int, default=defaults.channels_per_tenant,
                        help="channels per tenant (default %(default)s)")
    parser.add_argument("--ramp-concurrency", type=int, default=defaults.ramp_concurrency)
    parser.add_argument("--request-rate", type=float, default=defaults.request_rate)
    parser.add_argument("--gone-share", type=float, default=defaults.gone_share,
                        help="aim the 410 fault at this share of connections")
    parser.add_argument("--gone-fraction", type=float, default=None,
                        help="410 on this fraction of posts instead (overrides --gone-share)")
    parser.add_argument("--throttle-fraction", type=float, default=defaults.throttle_fraction)
    parser.add_argument("--drop-disconnect", type=float, default=defaults.drop_disconnect)
    parser.add_argument("--redeliver-fraction", type=float,
                        default=defaults.redeliver_fraction)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--dynamodb-module", default=defaults.dynamodb_module,
                        help="DynamoDB server module, run with -m (default %(default)s)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds for the whole run (default: its phases' bounds "
                             "added up); past it, the report says where it stopped")
    parser.add_argument("--json", action="store_true",
                        help="also print the whole report as JSON on stdout")
    parser.add_argument("--json-path", type=Path, default=None,
                        help="where to write the report (default build/bench/soak.json)")
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        connections=args.connections, tenants=args.tenants, channels_per_tenant=args.channels,
        rate=args.rate, minutes=args.minutes, ramp_concurrency=args.ramp_concurrency,
        request_rate=args.request_rate, gone_share=args.gone_share,
        gone_fraction=args.gone_fraction, throttle_fraction=args.throttle_fraction,
        drop_disconnect=args.drop_disconnect, redeliver_fraction=args.redeliver_fraction,
        seed=args.seed, dynamodb_module=args.dynamodb_module, deadline=args.deadline)
    print(f"soak: {cfg.connections} subscribers, {cfg.tenants} tenants, {cfg.rate}/s, "
          f"{cfg.minutes} min steady; faults {cfg.faults().flags()}; bounded to "
          f"{cfg.deadline_s():.0f} s", file=sys.stderr, flush=True)
    log_path = (RESULTS_DIR / "soak.log" if args.json_path is None
                else args.json_path.with_suffix(".log"))
    report = soak(cfg, log_path)
    if args.json_path is None:
        path = write_results("soak", report)
    else:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps({"benchmark": "soak", "machine": machine_info(),
                                              **report}, indent=2) + "\n")
        path = args.json_path
    goals = [soak_report.Goal(**g) for g in report["goals"]]
    print(soak_report.table(report, goals))
    print("\nRSS over time:")
    print(soak_report.rss_table(report["rss"]["samples"]))
    if args.json:
        print(json.dumps(report, indent=2))
    print(f"{'PASS' if report['passed'] else 'MISS'}: report in {path}, stack log in "
          f"{report['log']['path']}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
