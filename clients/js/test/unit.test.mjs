// Unit tests: no server; a FakeSocket plays the server's part.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { StreamerClient, StreamerError, backoffDelay, jwtExp } from "../dist/index.js";
import { FakeSocket, fakeJwt, tick, until } from "./fake-socket.mjs";

const T = { timeout: 10_000 };

// Every client a test makes is closed afterwards, even when the test fails.
const made = [];
class TrackedClient extends StreamerClient {
  constructor(options) {
    super(options);
    made.push(this);
  }
}

beforeEach(() => FakeSocket.reset());
afterEach(() => {
  for (const client of made.splice(0)) {
    client.close();
  }
});

/** A client on a FakeSocket; connect() and open the first socket unless told not to. */
async function connected(options = {}) {
  const client = new TrackedClient({
    url: "ws://fake/",
    getToken: () => "tok",
    WebSocket: FakeSocket,
    backoff: { minMs: 5, maxMs: 20 },
    ackTimeoutMs: 500,
    ...options,
  });
  const done = client.connect();
  await until(() => FakeSocket.instances.length > 0, 2000, "socket");
  FakeSocket.last.open();
  await done;
  return { client, ws: FakeSocket.last };
}

/** Answer the last subscribe frame with an ack. */
function ackSubscribe(ws, fields = {}) {
  const frame = ws.lastFrame("subscribe");
  ws.receive({ type: "ack", id: frame.id, action: "subscribe", channel: frame.channel, ...fields });
  return frame;
}

const msg = (channel, offset, epoch = "e1", data = offset) => ({
  type: "message",
  channel,
  message_id: `m${offset}`,
  data,
  sender: { user_id: "u1" },
  ts: 0,
  offset,
  epoch,
});

// ---- backoff ------------------------------------------------------------------------

test("backoff is full-jitter and bounded by min(maxMs, minMs * 2^attempt)", () => {
  for (let attempt = 0; attempt < 30; attempt++) {
    const ceiling = Math.min(20_000, 500 * 2 ** attempt);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, 500, 20_000);
      assert.ok(d >= 0 && d <= ceiling, `attempt ${attempt}: ${d}`);
    }
    assert.equal(backoffDelay(attempt, 500, 20_000, () => 0), 0);
    assert.equal(backoffDelay(attempt, 500, 20_000, () => 1), ceiling);
  }
  assert.equal(backoffDelay(0, 500, 20_000, () => 1), 500);
  assert.equal(backoffDelay(5, 500, 20_000, () => 1), 16_000);
  assert.equal(backoffDelay(6, 500, 20_000, () => 1), 20_000);
  assert.equal(backoffDelay(1000, 500, 20_000, () => 0.5), 10_000);
});

test("defaults: subprotocol streamer.v1, token in the query string, backoff 0.5-20 s, ping every 4 min", T, async () => {
  const client = new TrackedClient({ url: "ws://fake/x?a=1", getToken: async () => "t/k", WebSocket: FakeSocket });
  assert.deepEqual(client["options"].backoff, { minMs: 500, maxMs: 20_000 });
  assert.ok(client["options"].pingIntervalMs < 10 * 60_000);
  const connecting = client.connect();
  connecting.catch(() => {}); // close() below rejects it with "closed"
  await until(() => FakeSocket.instances.length === 1);
  assert.equal(FakeSocket.last.url, "ws://fake/x?a=1&Authorization=t%2Fk");
  assert.deepEqual(FakeSocket.last.protocols, ["streamer.v1"]);
  client.close();
});

// ---- state machine and reconnect ----------------------------------------------------

test("state machine: connecting, connected, disconnected, reconnecting, connected, closed", T, async () => {
  let tokenCalls = 0;
  const events = [];
  const client = new TrackedClient({
    url: "ws://fake/",
    getToken: () => `tok${++tokenCalls}`,
    WebSocket: FakeSocket,
    backoff: { minMs: 5, maxMs: 10 },
  });
  for (const name of ["connecting", "connected", "disconnected", "reconnecting", "closed"]) {
    client.on(name, (arg) => events.push([name, arg]));
  }
  const states = [];
  client.on("state", (s) => states.push(s));

  const done = client.connect();
  await until(() => FakeSocket.instances.length === 1);
  FakeSocket.last.open();
  await done;
  FakeSocket.last.drop(1006);
  await until(() => FakeSocket.instances.length === 2, 2000, "reconnect");
  assert.ok(FakeSocket.last.url.endsWith("Authorization=tok2"), "getToken() called again");
  FakeSocket.last.open();
  client.close();

  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected", "closed"]);
  assert.deepEqual(events.map(([name]) => name), ["connecting", "connected", "disconnected", "reconnecting", "connected", "closed"]);
  const reconnecting = events.find(([name]) => name === "reconnecting")[1];
  assert.equal(reconnecting.attempt, 1);
  assert.ok(reconnecting.delayMs >= 0 && reconnecting.delayMs <= 5);
  assert.equal(events.find(([name]) => name === "disconnected")[1].code, 1006);
});

test("maxAttempts: gives up with connect_failed after that many failed attempts", T, async () => {
  const client = new TrackedClient({
    url: "ws://fake/",
    getToken: () => "t",
    WebSocket: FakeSocket,
    backoff: { minMs: 1, maxMs: 2, maxAttempts: 3 },
  });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const done = client.connect();
  // Every handshake fails.
  const failer = setInterval(() => {
    for (const ws of FakeSocket.instances) {
      ws.drop(1006);
    }
  }, 1);
  await assert.rejects(done, (e) => e instanceof StreamerError && e.code === "connect_failed");
  clearInterval(failer);
  assert.equal(FakeSocket.instances.length, 4, "the first attempt and 3 retries");
  assert.equal(client.state, "closed");
  assert.equal(errors[0].code, "connect_failed");
});

test("a pending call rejects with disconnected when the connection drops", T, async () => {
  const { client, ws } = await connected();
  const publish = client.publish("a", 1);
  ws.drop();
  await assert.rejects(publish, (e) => e.code === "disconnected");
  client.close();
});

// ---- replies, errors, timeouts, offline queue ---------------------------------------

test("replies are matched by id; error frames reject with a typed StreamerError; timeouts", T, async () => {
  const { client, ws } = await connected({ ackTimeoutMs: 100 });
  const a = client.publish("ch", 1);
  const b = client.publish("ch", 2);
  const [fa, fb] = ws.frames("publish");
  assert.notEqual(fa.id, fb.id);
  // Replies out of order.
  ws.receive({ type: "error", id: fb.id, code: "forbidden", message: "write permission required" });
  ws.receive({ type: "ack", id: fa.id, action: "publish", channel: "ch", message_id: "m1", offset: 7, epoch: "e" });
  assert.deepEqual(await a, { messageId: "m1", offset: 7, epoch: "e" });
  await assert.rejects(b, (e) => {
    assert.ok(e instanceof StreamerError);
    assert.equal(e.code, "forbidden");
    assert.equal(e.message, "write permission required");
    assert.equal(e.frame.type, "error");
    return true;
  });
  await assert.rejects(client.history("ch"), (e) => e.code === "timeout");
  // An error frame for nobody is an "error" event.
  const errors = [];
  client.on("error", (e) => errors.push(e));
  ws.receive({ type: "error", code: "bad_request", message: "not JSON" });
  ws.onmessage({ data: "not json" });
  assert.deepEqual(errors.map((e) => e.code), ["bad_request", "bad_frame"]);
  client.close();
});

test("offline queue: bounded, queue_full beyond it, flushed in order on connect", T, async () => {
  const client = new TrackedClient({ url: "ws://fake/", getToken: () => "t", WebSocket: FakeSocket, offlineQueueSize: 3 });
  const calls = [client.publish("q", 1), client.publish("q", 2), client.publish("q", 3)];
  await assert.rejects(client.publish("q", 4), (e) => e instanceof StreamerError && e.code === "queue_full");
  const done = client.connect();
  await until(() => FakeSocket.instances.length === 1);
  const ws = FakeSocket.last;
  assert.equal(ws.sent.length, 0);
  ws.open();
  await done;
  assert.deepEqual(ws.frames("publish").map((f) => f.data), [1, 2, 3]);
  for (const f of ws.frames("publish")) {
    ws.receive({ type: "ack", id: f.id, action: "publish", channel: "q", message_id: `m${f.data}` });
  }
  assert.deepEqual((await Promise.all(calls)).map((r) => r.messageId), ["m1", "m2", "m3"]);

  // Offline again: the queue fills again up to its bound; close() rejects what waits.
  ws.drop();
  const waiting = client.publish("q", 5);
  client.close();
  await assert.rejects(waiting, (e) => e.code === "closed");
  await assert.rejects(client.publish("q", 6), (e) => e.code === "closed");
});

// ---- channels: order, duplicates, gaps, resume --------------------------------------

test("out-of-order and duplicate offsets: handlers see each message once, in order", T, async () => {
  const { client, ws } = await connected();
  const got = [];
  const subscribing = client.subscribe("a", (m) => got.push(m.offset));
  // A message may arrive before the subscribe ack.
  ws.receive(msg("a", 1));
  ackSubscribe(ws, { offset: 0, epoch: "e1" });
  const sub = await subscribing;
  for (const offset of [3, 2, 2, 1, 4, 3, 6, 5]) {
    ws.receive(msg("a", offset));
  }
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
  assert.equal(sub.offset, 6);
  assert.equal(sub.epoch, "e1");
  client.close();
});

test("a gap that stays open is filled by resubscribing with since", T, async () => {
  const { client, ws } = await connected({ gapTimeoutMs: 30 });
  const got = [];
  const subscribing = client.subscribe("a", (m) => got.push(m.offset));
  ackSubscribe(ws, { offset: 0, epoch: "e1" });
  await subscribing;
  ws.receive(msg("a", 1));
  ws.receive(msg("a", 3)); // 2 is missing
  assert.deepEqual(got, [1]);
  await until(() => ws.frames("subscribe").length === 2, 2000, "gap resubscribe");
  const resub = ws.lastFrame("subscribe");
  assert.deepEqual(resub.since, { offset: 1, epoch: "e1" });
  ws.receive(msg("a", 2)); // replay
  ws.receive(msg("a", 3)); // replay duplicate
  ackSubscribe(ws, { offset: 3, epoch: "e1", recovered: true });
  assert.deepEqual(got, [1, 2, 3]);
  client.close();
});

test("reconnect: resubscribe with since, recovery event, replay de-duplicated against live", T, async () => {
  const { client, ws } = await connected();
  const got = [];
  const recoveries = [];
  client.on("recovery", (r) => recoveries.push(r));
  const subscribing = client.subscribe("a", (m) => got.push(m.data));
  ackSubscribe(ws, { offset: 2, epoch: "e1" }); // joined at offset 2
  const sub = await subscribing;
  assert.equal(sub.offset, 2);
  ws.receive(msg("a", 3));
  ws.drop();

  await until(() => FakeSocket.instances.length === 2, 2000, "reconnect");
  const ws2 = FakeSocket.last;
  ws2.open();
  await until(() => ws2.frames("subscribe").length === 1, 2000, "resubscribe");
  const resub = ws2.lastFrame("subscribe");
  assert.equal(resub.channel, "a");
  assert.deepEqual(resub.since, { offset: 3, epoch: "e1" });
  // Live 6 races ahead of the replay of 4 and 5; 5 comes twice.
  ws2.receive(msg("a", 6));
  ws2.receive(msg("a", 4));
  ws2.receive(msg("a", 5));
  ws2.receive(msg("a", 5));
  ackSubscribe(ws2, { offset: 5, epoch: "e1", recovered: true });
  await tick(); // acks settle a promise: one turn
  ws2.receive(msg("a", 7));
  assert.deepEqual(got, [3, 4, 5, 6, 7]);
  assert.deepEqual(recoveries, [{ channel: "a", recovered: true, offset: 5, epoch: "e1" }]);
  client.close();
});

test("recovered: false skips to the ack's offset; a new epoch replaces the old", T, async () => {
  const { client, ws } = await connected();
  const got = [];
  const recoveries = [];
  client.on("recovery", (r) => recoveries.push(r));
  const subscribing = client.subscribe("a", (m) => got.push(`${m.epoch}:${m.offset}`));
  ackSubscribe(ws, { offset: 0, epoch: "e1" });
  const sub = await subscribing;
  ws.receive(msg("a", 1));
  ws.drop();
  await until(() => FakeSocket.instances.length === 2);
  const ws2 = FakeSocket.last;
  ws2.open();
  await until(() => ws2.frames("subscribe").length === 1);
  ackSubscribe(ws2, { offset: 500, epoch: "e1", recovered: false });
  await tick();
  ws2.receive(msg("a", 500)); // stale: at or before the ack's offset
  ws2.receive(msg("a", 501));
  assert.deepEqual(got, ["e1:1", "e1:501"]);
  ws2.drop();

  await until(() => FakeSocket.instances.length === 3);
  const ws3 = FakeSocket.last;
  ws3.open();
  await until(() => ws3.frames("subscribe").length === 1);
  assert.deepEqual(ws3.lastFrame("subscribe").since, { offset: 501, epoch: "e1" });
  ackSubscribe(ws3, { offset: 2, epoch: "e2", recovered: false });
  await tick();
  ws3.receive(msg("a", 3, "e2"));
  assert.deepEqual(got, ["e1:1", "e1:501", "e2:3"]);
  assert.equal(sub.epoch, "e2");
  assert.deepEqual(recoveries.map((r) => [r.recovered, r.offset, r.epoch]), [[false, 500, "e1"], [false, 2, "e2"]]);
  client.close();
});

test("unsubscribe: the last handler sends unsubscribe; messages stop", T, async () => {
  const { client, ws } = await connected();
  const got = [];
  const subscribing = client.subscribe("a", (m) => got.push(m.offset));
  ackSubscribe(ws, { offset: 0, epoch: "e1" });
  const sub = await subscribing;
  const other = await client.subscribe("a", () => {}); // acked already: no new frame
  assert.equal(ws.frames("subscribe").length, 1);
  await other.unsubscribe();
  assert.equal(ws.frames("unsubscribe").length, 0);
  const leaving = sub.unsubscribe();
  const frame = ws.lastFrame("unsubscribe");
  ws.receive({ type: "ack", id: frame.id, action: "unsubscribe", channel: "a" });
  await leaving;
  ws.receive(msg("a", 1));
  assert.deepEqual(got, []);
  client.close();
});

// ---- requests ------------------------------------------------------------------------

test("request: progress by seq (late and duplicate frames dropped), result before ack kept", T, async () => {
  const { client, ws } = await connected();
  const progress = [];
  const handle = client.request("count", { steps: 3 }, { onProgress: (f) => progress.push(f.seq) });
  const frame = ws.lastFrame("request");
  assert.deepEqual(frame.payload, { steps: 3 });
  // Progress 1 and 2 arrive before the ack.
  ws.receive({ type: "progress", request_id: "r1", progress: 0.33, detail: {}, seq: 1 });
  ws.receive({ type: "progress", request_id: "r1", progress: 0.66, detail: {}, seq: 2 });
  ws.receive({ type: "ack", id: frame.id, action: "request", request_id: "r1" });
  assert.equal(await handle.requestId, "r1");
  ws.receive({ type: "progress", request_id: "r1", progress: 0.66, detail: {}, seq: 2 });
  ws.receive({ type: "progress", request_id: "r1", progress: 1, detail: {}, seq: 3 });
  ws.receive({ type: "result", request_id: "r1", data: { count: 3 }, seq: 4 });
  assert.deepEqual(await handle.result, { count: 3 });
  assert.deepEqual(progress, [1, 2, 3]);
  client.close();
});

test("request: cancel(), AbortSignal, error frame with request_id, timeoutMs", T, async () => {
  const { client, ws } = await connected();
  const ack = (rid) => ws.receive({ type: "ack", id: ws.lastFrame("request").id, action: "request", request_id: rid });

  const one = client.request("count", {});
  ack("r1");
  await one.requestId;
  const cancelling = one.cancel();
  await tick();
  const cancelFrame = ws.lastFrame("cancel");
  assert.equal(cancelFrame.request_id, "r1");
  ws.receive({ type: "ack", id: cancelFrame.id, action: "cancel", request_id: "r1", state: "cancelled" });
  await cancelling;
  await assert.rejects(one.result, (e) => e.code === "cancelled");

  const controller = new AbortController();
  const two = client.request("count", {}, { signal: controller.signal });
  ack("r2");
  await two.requestId;
  controller.abort();
  await assert.rejects(two.result, (e) => e.code === "cancelled");
  assert.equal(ws.lastFrame("cancel").request_id, "r2");

  const three = client.request("count", {});
  ack("r3");
  ws.receive({ type: "error", request_id: "r3", code: "failed", message: "boom" });
  await assert.rejects(three.result, (e) => e instanceof StreamerError && e.code === "failed" && e.message === "boom");

  const four = client.request("count", {}, { timeoutMs: 30 });
  ack("r4");
  await assert.rejects(four.result, (e) => e.code === "timeout");
  assert.equal(ws.lastFrame("cancel").request_id, "r4");
  client.close();
});

test("request after reconnect: status catches up (running, then the final state)", T, async () => {
  const { client, ws } = await connected();
  const progress = [];
  const handle = client.request("count", {}, { onProgress: (f) => progress.push(f.seq) });
  ws.receive({ type: "ack", id: ws.lastFrame("request").id, action: "request", request_id: "r1" });
  await handle.requestId;
  ws.drop();
  await until(() => FakeSocket.instances.length === 2);
  const ws2 = FakeSocket.last;
  ws2.open();
  await until(() => ws2.frames("status").length === 1);
  const status = ws2.lastFrame("status");
  assert.equal(status.request_id, "r1");
  ws2.receive({ type: "request", id: status.id, request_id: "r1", state: "succeeded", progress: 1, seq: 5, result: { count: 5 } });
  assert.deepEqual(await handle.result, { count: 5 });
  client.close();
});

// ---- token ---------------------------------------------------------------------------

test("token: refresh before exp, on token_expiring only with a newer token", T, async () => {
  const now = Math.floor(Date.now() / 1000);
  let token = fakeJwt(now + 3600);
  assert.equal(jwtExp(token), now + 3600);
  assert.equal(jwtExp("garbage"), 0);
  const { client, ws } = await connected({ getToken: () => token });
  const expiring = [];
  client.on("token_expiring", (f) => expiring.push(f));

  // Same token on offer: no refresh (it would only make the server warn again).
  ws.receive({ type: "token_expiring", expires_at: now + 3600, expires_in: 240 });
  await tick(20);
  assert.equal(ws.frames("refresh").length, 0);
  assert.equal(expiring.length, 1);

  token = fakeJwt(now + 7200);
  ws.receive({ type: "token_expiring", expires_at: now + 3600, expires_in: 239 });
  await until(() => ws.frames("refresh").length === 1, 2000, "refresh");
  const refresh = ws.lastFrame("refresh");
  assert.equal(refresh.token, token);
  ws.receive({ type: "ack", id: refresh.id, action: "refresh", expires_at: now + 7200 });
  await tick(5);
  assert.equal(client["tokenExp"], now + 7200);

  // refresh() rejects with the server's code, e.g. forbidden for another user.
  const other = client.refresh("other");
  ws.receive({ type: "error", id: ws.lastFrame("refresh").id, code: "forbidden", message: "another user" });
  await assert.rejects(other, (e) => e.code === "forbidden");
  client.close();
});

test("token: the refresh timer fires refreshLeadMs before exp", T, async () => {
  const now = Math.floor(Date.now() / 1000);
  let token = fakeJwt(now + 2);
  const { client, ws } = await connected({ getToken: () => token, refreshLeadMs: 1000 });
  token = fakeJwt(now + 3600);
  await until(() => ws.frames("refresh").length === 1, 3000, "timed refresh");
  assert.equal(ws.lastFrame("refresh").token, token);
  client.close();
});

test("token_expired closes the connection and reconnects with a fresh token", T, async () => {
  let n = 0;
  const { client, ws } = await connected({ getToken: () => `tok${++n}` });
  const ping = client.ping();
  ws.receive({ type: "error", id: ws.lastFrame("ping").id, code: "token_expired", message: "token expired" });
  await assert.rejects(ping, (e) => e.code === "disconnected" || e.code === "token_expired");
  await until(() => FakeSocket.instances.length === 2, 2000, "reconnect");
  assert.ok(FakeSocket.last.url.endsWith("tok2"));
  client.close();
});

test("listeners that throw do not break the client", T, async () => {
  const { client, ws } = await connected();
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.on("frame", () => {
    throw new Error("listener bug");
  });
  const p = client.ping();
  ws.receive({ type: "pong", id: ws.lastFrame("ping").id });
  assert.equal((await p).type, "pong");
  assert.ok(errors.length >= 2);
  client.close();
});
