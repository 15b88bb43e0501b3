// The application-level ping keeps a connection alive past the gateway's idle
// timeout (API Gateway: 10 minutes; this stack: --idle-timeout 2 seconds).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { SKIP, mintToken, sleep, waitFor, within, useStack } from "./stack.mjs";

let token;
const use = useStack({
  args: ["--idle-timeout", "2"],
  defaults: { getToken: () => token, backoff: { minMs: 100, maxMs: 300 } },
});

before(() => {
  if (!SKIP) {
    token = mintToken();
  }
});

const makeClient = (options) => use.client(options);

test("pinging inside the idle timeout keeps the connection; without it the gateway closes it and the client reconnects", {
  timeout: 30_000,
  skip: SKIP ?? false,
}, async () => {
  const pinging = makeClient({ pingIntervalMs: 500 });
  const silent = makeClient({ pingIntervalMs: 60_000 });
  const drops = { pinging: [], silent: [] };
  pinging.on("disconnected", (e) => drops.pinging.push(e));
  silent.on("disconnected", (e) => drops.silent.push(e));
  await within(Promise.all([pinging.connect(), silent.connect()]), 10_000, "connect");

  await sleep(4_500);
  assert.deepEqual(drops.pinging, [], "the pinging client was never closed");
  assert.equal(pinging.state, "connected");
  assert.ok(drops.silent.length >= 1, "the silent client was closed as idle");
  assert.equal(drops.silent[0].code, 1001);
  await waitFor(() => silent.state === "connected", 5_000, "silent client reconnected");
  assert.equal((await silent.ping()).type, "pong");
});
