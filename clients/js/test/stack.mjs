// Test helper: runs one local Streamer stack (python -m local) per test file.
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { before, after } from "node:test";
import { WebSocket } from "ws";
import { StreamerClient } from "../dist/index.js";

/** The repository root: clients/js/test/ -> ../../.. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PY = process.env.STREAMER_PYTHON ?? resolve(ROOT, ".venv/bin/python");
/** Why the integration tests cannot run here, or null. */
export const SKIP = existsSync(PY) ? null : `no Python venv at ${PY} (make the venv, or set STREAMER_PYTHON)`;

/** A development JWT from `python -m local token`. */
export function mintToken({ user = "u1", tenant = "t1", permissions = "read,write", ttl } = {}) {
  const args = ["-m", "local", "token", "--user", user, "--tenant", tenant, "--permissions", permissions];
  if (ttl !== undefined) {
    args.push("--ttl", String(ttl));
  }
  return execFileSync(PY, args, { cwd: ROOT, env: { ...process.env, PYTHONUNBUFFERED: "1" } }).toString().trim();
}

/**
 * Start a stack on a free port (--port 0; the ready line names the port). Resolves
 * with {url, httpBase, stop()} once "Streamer local gateway ready: ws://..." is printed.
 */
export function startStack(extraArgs = [], { readyTimeoutMs = 60_000 } = {}) {
  const proc = spawn(PY, ["-m", "local", "--port", "0", ...extraArgs], {
    cwd: ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // own process group, so stop() also ends its worker processes
  });
  let log = "";
  let exited = false;
  proc.on("exit", () => {
    exited = true;
  });

  const stop = () =>
    new Promise((done) => {
      if (exited) {
        done();
        return;
      }
      const kill = (signal) => {
        try {
          process.kill(-proc.pid, signal);
        } catch {
          // already gone
        }
      };
      const hard = setTimeout(() => kill("SIGKILL"), 5_000);
      proc.once("exit", () => {
        clearTimeout(hard);
        done();
      });
      kill("SIGTERM");
    });

  const ready = new Promise((resolveReady, rejectReady) => {
    const timer = setTimeout(() => {
      rejectReady(new Error(`stack not ready within ${readyTimeoutMs} ms; log:\n${log.slice(-4000)}`));
    }, readyTimeoutMs);
    const onData = (chunk) => {
      log += chunk;
      const match = /Streamer local gateway ready: (ws:\/\/[^\s]+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        const url = match[1].replace(/\/$/, "");
        resolveReady({ url: url + "/", httpBase: url.replace(/^ws:/, "http:"), stop, log: () => log });
      }
    };
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdout.on("data", onData);
    proc.stderr.on("data", (chunk) => {
      log += chunk;
      if (log.length > 200_000) {
        log = log.slice(-100_000);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      rejectReady(new Error(`stack exited with ${code} before it was ready; log:\n${log.slice(-4000)}`));
    });
  });
  return { ready, stop };
}

/** Open connections of the gateway, oldest first (GET /_local/connections). */
export async function listConnections(httpBase) {
  const reply = await fetch(`${httpBase}/_local/connections`);
  return (await reply.json()).map((c) => c.connectionId);
}

/** Force-close a connection through @connections, as API Gateway may. */
export async function deleteConnection(httpBase, connectionId, stage = "local") {
  const reply = await fetch(`${httpBase}/${stage}/@connections/${connectionId}`, { method: "DELETE" });
  if (reply.status !== 204 && reply.status !== 200) {
    throw new Error(`DELETE @connections/${connectionId} answered ${reply.status}`);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until predicate() is true, or throw after timeoutMs. */
export async function waitFor(predicate, timeoutMs = 10_000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** Reject after ms: race a promise against it so no await hangs a test. */
export function within(promise, ms, what = "promise") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One stack for the calling test file: started in node:test's before(), stopped in
 * after() with every client made through `client()` closed first. `defaults` are the
 * StreamerClient options of every client (`url` and `WebSocket` are filled in).
 * Returns `{ stack, client(options) }`; `stack` is set once before() has run.
 */
export function useStack({ args = [], defaults = {} } = {}) {
  const made = [];
  let stop = async () => {};
  const use = {
    stack: null,
    client(options = {}) {
      const client = new StreamerClient({ url: use.stack.url, WebSocket, ...defaults, ...options });
      made.push(client);
      return client;
    },
  };
  before(async () => {
    if (SKIP) {
      return;
    }
    const started = startStack(args);
    stop = started.stop;
    use.stack = await started.ready;
  }, { timeout: 90_000 });
  after(async () => {
    for (const client of made) {
      client.close();
    }
    await stop();
  });
  return use;
}
