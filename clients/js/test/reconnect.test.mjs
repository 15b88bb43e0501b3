// Forced disconnects against the real local stack: the subscriber's connection is
// closed through @connections (as API Gateway does after 2 h, or on a deploy) while a
// second client keeps publishing numbered messages. One stack for this file.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { SKIP, deleteConnection, listConnections, mintToken, sleep, waitFor, within, useStack } from "./stack.mjs";

let token;
const use = useStack({ defaults: { getToken: () => token, backoff: { minMs: 100, maxMs: 400 } } });

before(() => {
  if (!SKIP) {
    token = mintToken({ user: "u1", tenant: "t1", permissions: "read,write" });
  }
});

const makeClient = (options) => use.client(options);

/** Connect a client and return the gateway's id for its connection. */
async function connectAndIdentify(client) {
  const before = new Set(await listConnections(use.stack.httpBase));
  await within(client.connect(), 10_000, "connect");
  const ids = (await listConnections(use.stack.httpBase)).filter((id) => !before.has(id));
  assert.equal(ids.length, 1, "exactly one new connection");
  return ids[0];
}

test("forced disconnect: reconnect, resubscribe with since, recover every message once, in order", {
  timeout: 60_000,
  skip: SKIP ?? false,
}, async () => {
  const N = 40;
  const channel = `ticks-${Date.now().toString(36)}`;
  let tokenCalls = 0;
  const subscriber = makeClient({
    getToken: () => {
      tokenCalls++;
      return token;
    },
  });
  const events = [];
  const recoveries = [];
  const outFrames = [];
  subscriber.on("state", (s) => events.push(s));
  subscriber.on("disconnected", () => events.push("disconnected"));
  subscriber.on("recovery", (r) => recoveries.push(r));
  subscriber.on("frame", (e) => {
    if (e.direction === "out") {
      outFrames.push(e.frame);
    }
  });

  const subscriberId = await connectAndIdentify(subscriber);
  const received = [];
  const sub = await subscriber.subscribe(channel, (m) => received.push(m));
  assert.equal(sub.offset, 0);

  const publisher = makeClient();
  await publisher.connect();

  for (let i = 0; i < N; i++) {
    if (i === 10) {
      // Wait until the subscriber has what was sent so far, then cut it off.
      await waitFor(() => received.length === 10, 10_000, "first 10 messages");
      await deleteConnection(use.stack.httpBase, subscriberId);
    }
    const ack = await within(publisher.publish(channel, { i }), 10_000, `publish ${i}`);
    assert.equal(ack.offset, i + 1);
    await sleep(15);
  }

  await waitFor(() => received.length >= N, 20_000, `all ${N} messages (got ${received.length})`);
  await sleep(300); // anything extra (a duplicate) would show up now
  assert.deepEqual(received.map((m) => m.data.i), Array.from({ length: N }, (_, i) => i));
  assert.deepEqual(received.map((m) => m.offset), Array.from({ length: N }, (_, i) => i + 1));

  assert.ok(events.includes("disconnected"), `events: ${events}`);
  const reconnectAt = events.indexOf("reconnecting");
  assert.ok(reconnectAt > 0 && events.indexOf("connected", reconnectAt) > reconnectAt, `events: ${events}`);
  assert.equal(tokenCalls, 2, "getToken() on connect and on reconnect");

  // One resubscribe with since after the reconnect (a slow machine may add a gap-fill
  // resubscribe, also with since and also recovered).
  const resubscribe = outFrames.filter((f) => f.action === "subscribe" && f.since);
  assert.ok(resubscribe.length >= 1);
  assert.equal(resubscribe[0].channel, channel);
  assert.equal(resubscribe[0].since.offset, 10);
  assert.equal(resubscribe[0].since.epoch, sub.epoch);

  assert.equal(recoveries.length, resubscribe.length);
  assert.equal(recoveries[0].channel, channel);
  assert.ok(recoveries.every((r) => r.recovered === true), JSON.stringify(recoveries));
  assert.equal(recoveries[0].epoch, sub.epoch);
  assert.ok(recoveries[0].offset >= 10 && recoveries[0].offset <= N);
  assert.equal(sub.offset, N);
});

test("forced disconnect mid-request: the request ends (cancelled by the server), not hanging", {
  timeout: 60_000,
  skip: SKIP ?? false,
}, async () => {
  const client = makeClient();
  const id = await connectAndIdentify(client);
  const progress = [];
  const handle = client.request("count", { steps: 50, interval_ms: 100 }, { onProgress: (f) => progress.push(f) });
  await within(handle.requestId, 10_000, "request ack");
  await waitFor(() => progress.length >= 1, 15_000, "first progress");
  await deleteConnection(use.stack.httpBase, id);
  // docs/protocol.md section 4: the requester's disconnect cancels the request; after the
  // reconnect the client asks `status` and learns it.
  await assert.rejects(within(handle.result, 20_000, "result"), (e) => e.code === "cancelled");
  assert.equal(client.state, "connected");
});
