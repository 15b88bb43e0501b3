// A scripted stand-in for the WebSocket class, for unit tests without a server.
// The client constructs it; the test drives it: open(), receive(frame), drop(code).
export class FakeSocket {
  static instances = [];

  /** The most recently constructed socket. */
  static get last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }

  static reset() {
    FakeSocket.instances = [];
  }

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    FakeSocket.instances.push(this);
  }

  /** The handshake succeeded. */
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** A frame from the server (an object, sent as JSON text). */
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server (or the network) closed the connection. */
  drop(code = 1006, reason = "") {
    if (this.readyState === 3) {
      return;
    }
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  send(text) {
    if (this.readyState !== 1) {
      throw new Error("not open");
    }
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = "") {
    if (this.readyState === 3) {
      return;
    }
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }

  /** Frames sent with this action. */
  frames(action) {
    return this.sent.filter((f) => f.action === action);
  }

  /** The last frame sent with this action. */
  lastFrame(action) {
    const list = this.frames(action);
    return list[list.length - 1];
  }
}

/** An unsigned JWT-looking token with this exp (the client only reads exp). */
export function fakeJwt(exp, extra = {}) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  return `${part({ alg: "none" })}.${part({ exp, ...extra })}.sig`;
}

export const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

export async function until(predicate, timeoutMs = 2000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await tick(2);
  }
}
