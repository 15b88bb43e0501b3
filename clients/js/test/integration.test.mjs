// Integration tests against the real local stack (python -m local): one stack for
// this file, started in before() and stopped in after().
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { StreamerError } from "../dist/index.js";
import { SKIP, mintToken, sleep, waitFor, within, useStack } from "./stack.mjs";

const T = { timeout: 30_000, skip: SKIP ?? false };
let tokens;
const use = useStack({
  defaults: { getToken: () => tokens.rw, backoff: { minMs: 100, maxMs: 500 }, ackTimeoutMs: 10_000 },
});

before(() => {
  if (SKIP) {
    return;
  }
  tokens = {
    rw: mintToken({ user: "u1", tenant: "t1", permissions: "read,write" }),
    readOnly: mintToken({ user: "u1", tenant: "t1", permissions: "read" }),
    longer: mintToken({ user: "u1", tenant: "t1", permissions: "read,write", ttl: 7200 }),
    otherUser: mintToken({ user: "u2", tenant: "t1", permissions: "read,write", ttl: 7200 }),
  };
});

/** A client of the stack; closed in after(). */
const makeClient = (options) => use.client(options);

const unique = (name) => `${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

test("connects with subprotocol streamer.v1 and emits state events", T, async () => {
  const client = makeClient();
  const states = [];
  client.on("state", (s) => states.push(s));
  await within(client.connect(), 10_000, "connect");
  assert.equal(client.state, "connected");
  assert.deepEqual(states, ["connecting", "connected"]);
  assert.equal(client["ws"].protocol, "streamer.v1");
  const pong = await client.ping();
  assert.equal(pong.type, "pong");
  client.close();
  assert.equal(client.state, "closed");
  assert.deepEqual(states, ["connecting", "connected", "closed"]);
});

test("publish/subscribe round trip with offsets", T, async () => {
  const publisher = makeClient();
  const subscriber = makeClient();
  await within(Promise.all([publisher.connect(), subscriber.connect()]), 10_000, "connect");
  const channel = unique("room");
  const got = [];
  const sub = await within(subscriber.subscribe(channel, (m) => got.push(m)), 10_000, "subscribe");
  assert.equal(sub.channel, channel);
  assert.equal(sub.offset, 0);
  assert.equal(typeof sub.epoch, "string");

  const ack1 = await publisher.publish(channel, { n: 1 });
  const ack2 = await publisher.publish(channel, { n: 2 });
  assert.equal(typeof ack1.messageId, "string");
  assert.equal(ack1.offset, 1);
  assert.equal(ack2.offset, 2);
  assert.equal(ack1.epoch, sub.epoch);

  await waitFor(() => got.length >= 2, 10_000, "two messages");
  assert.deepEqual(got.map((m) => m.data), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(got.map((m) => m.offset), [1, 2]);
  assert.equal(got[0].sender.user_id, "u1");
  assert.equal(got[0].message_id, ack1.messageId);
  assert.equal(sub.offset, 2);

  await sub.unsubscribe();
  await publisher.publish(channel, { n: 3 });
  await sleep(300);
  assert.equal(got.length, 2, "no delivery after unsubscribe");
});

test("request count: progress callbacks in seq order, then the result", T, async () => {
  const client = makeClient();
  await client.connect();
  const progress = [];
  const handle = client.request("count", { steps: 5, interval_ms: 20 }, { onProgress: (f) => progress.push(f) });
  const requestId = await within(handle.requestId, 10_000, "request ack");
  assert.equal(typeof requestId, "string");
  const result = await within(handle.result, 20_000, "result");
  assert.deepEqual(result, { count: 5 });
  assert.deepEqual(progress.map((f) => f.seq), [1, 2, 3, 4, 5]);
  assert.ok(progress.every((f) => f.request_id === requestId));
  assert.ok(progress.every((f, i) => i === 0 || f.progress >= progress[i - 1].progress));
  // echo too
  assert.deepEqual(await client.request("echo", { a: [1, 2] }).result, { a: [1, 2] });
});

test("cancel() on a long count rejects with code cancelled", T, async () => {
  const client = makeClient();
  await client.connect();
  const progress = [];
  const handle = client.request("count", { steps: 50, interval_ms: 100 }, { onProgress: (f) => progress.push(f) });
  await within(handle.requestId, 10_000, "request ack");
  await waitFor(() => progress.length >= 1, 15_000, "first progress");
  await handle.cancel();
  await assert.rejects(within(handle.result, 10_000, "result"), (e) => e instanceof StreamerError && e.code === "cancelled");
  assert.ok(progress.length < 50);
});

test("AbortSignal on a long count rejects with code cancelled and cancels on the server", T, async () => {
  const client = makeClient();
  await client.connect();
  const controller = new AbortController();
  const progress = [];
  const frames = [];
  client.on("frame", (e) => frames.push(e));
  const handle = client.request("count", { steps: 50, interval_ms: 100 }, {
    signal: controller.signal,
    onProgress: (f) => progress.push(f),
  });
  const requestId = await within(handle.requestId, 10_000, "request ack");
  await waitFor(() => progress.length >= 1, 15_000, "first progress");
  controller.abort();
  await assert.rejects(within(handle.result, 10_000, "result"), (e) => e instanceof StreamerError && e.code === "cancelled");
  // The cancel frame went out and the server answered its ack with state cancelled.
  await waitFor(
    () => frames.some((e) => e.direction === "in" && e.frame.type === "ack" && e.frame.action === "cancel"),
    10_000,
    "cancel ack",
  );
  const cancelAck = frames.find((e) => e.direction === "in" && e.frame.action === "cancel").frame;
  assert.equal(cancelAck.request_id, requestId);
  assert.equal(cancelAck.state, "cancelled");

  // A signal aborted before the call never sends anything.
  const sentBefore = frames.filter((e) => e.direction === "out").length;
  const early = client.request("count", { steps: 5 }, { signal: AbortSignal.abort() });
  await assert.rejects(early.result, (e) => e.code === "cancelled");
  assert.equal(frames.filter((e) => e.direction === "out").length, sentBefore);
});

test("request timeoutMs rejects with code timeout", T, async () => {
  const client = makeClient();
  await client.connect();
  const handle = client.request("count", { steps: 50, interval_ms: 100 }, { timeoutMs: 500 });
  await assert.rejects(within(handle.result, 10_000, "result"), (e) => e.code === "timeout");
});

test("error frames reject with their typed code", T, async () => {
  const reader = makeClient({ getToken: () => tokens.readOnly });
  await reader.connect();
  await assert.rejects(reader.publish("room", 1), (e) => e instanceof StreamerError && e.code === "forbidden");
  // A rejected frame leaves the connection open.
  assert.equal((await reader.ping()).type, "pong");

  const writer = makeClient();
  await writer.connect();
  await assert.rejects(writer.publish("bad channel!", 1), (e) => e.code === "bad_request");
  await assert.rejects(writer.subscribe("", () => {}), (e) => e.code === "bad_request");
  const unknownKind = writer.request("no-such-kind", {});
  await assert.rejects(unknownKind.requestId, (e) => e.code === "bad_request");
  await assert.rejects(unknownKind.result, (e) => e.code === "bad_request");
  await assert.rejects(writer.history("room", 0), (e) => e.code === "bad_request");
  assert.equal(writer.state, "connected");
});

test("refresh(): a longer token is acknowledged, another user's is forbidden", T, async () => {
  let current = tokens.rw;
  const client = makeClient({ getToken: () => current });
  await client.connect();

  const ack = await client.refresh(tokens.longer);
  assert.equal(ack.type, "ack");
  assert.equal(ack.action, "refresh");
  const exp = JSON.parse(Buffer.from(tokens.longer.split(".")[1], "base64url")).exp;
  assert.equal(ack.expires_at, exp);

  await assert.rejects(client.refresh(tokens.otherUser), (e) => e instanceof StreamerError && e.code === "forbidden");
  await assert.rejects(client.refresh("not-a-jwt"), (e) => e.code === "unauthorized");

  // Without an argument it asks getToken().
  current = tokens.longer;
  const again = await client.refresh();
  assert.equal(again.expires_at, exp);
  // The connection is intact and still u1's.
  assert.equal((await client.ping()).type, "pong");
});

test("offline queue is bounded (queue_full) and flushed on connect", T, async () => {
  const client = makeClient({ offlineQueueSize: 2 });
  const channel = unique("queued");
  const first = client.publish(channel, 1);
  const second = client.publish(channel, 2);
  await assert.rejects(client.publish(channel, 3), (e) => e instanceof StreamerError && e.code === "queue_full");
  await client.connect();
  const acks = await within(Promise.all([first, second]), 10_000, "queued publishes");
  assert.deepEqual(acks.map((a) => a.offset).sort(), [1, 2]);
});
