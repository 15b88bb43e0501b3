// StreamerClient: a browser and Node 18+ client for the Streamer WebSocket protocol
// (streamer.v1, docs/protocol.md). It uses only what both platforms have (timers,
// JSON, atob, AbortSignal); the WebSocket class is the global one unless the caller
// passes one in (Node: `import { WebSocket } from "ws"`).
//
// What it does, in the order the code below is laid out:
//   - connection state machine: idle -> connecting -> connected -> (reconnecting ->
//     connected)* -> closed, with an event for every state;
//   - reconnect with full-jitter exponential backoff;
//   - an application-level ping well inside API Gateway's 10-minute idle limit;
//   - replies matched to their frame by `id`, with a timeout per frame, and a bounded
//     queue for frames sent while offline;
//   - channels: ordering and de-duplication by `offset`, automatic resubscribe with
//     `since` after a reconnect, a "recovery" event with the ack's `recovered` flag;
//   - requests: progress callbacks ordered by `seq`, cancel(), AbortSignal, timeout,
//     and `status` after a reconnect;
//   - token refresh before expiry and on a `token_expiring` frame.

import { StreamerError } from "./errors.js";
import type {
  AckFrame,
  ClientFrame,
  ErrorFrame,
  HistoryFrame,
  MessageFrame,
  ProgressFrame,
  RequestStateFrame,
  ServerFrame,
  TokenExpiringFrame,
} from "./frames.js";

// ---- public types -------------------------------------------------------------------

/** The part of the WebSocket interface the client uses (browser WebSocket and `ws` both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface BackoffOptions {
  /** Base delay of the first retry, in ms (default 500). */
  minMs: number;
  /** Upper bound of any delay, in ms (default 20000). */
  maxMs: number;
  /** Give up (state "closed", an "error" event with code connect_failed) after this many failed attempts in a row. Unlimited by default. */
  maxAttempts?: number;
}

export interface StreamerClientOptions {
  /** ws:// or wss:// URL of the gateway; the token is added as `?Authorization=`. */
  url: string;
  /** Returns a JWT. Called before every (re)connect and before every refresh. */
  getToken: () => Promise<string> | string;
  /** WebSocket class to use (default: globalThis.WebSocket). Node < 22: pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Subprotocols offered in the handshake (default ["streamer.v1"]). */
  protocols?: string[];
  /** Interval of the application-level ping, in ms (default 240000 = 4 minutes). */
  pingIntervalMs?: number;
  /** How long a frame waits for its reply before rejecting with code "timeout" (default 10000). */
  ackTimeoutMs?: number;
  /** Reconnect backoff (default {minMs: 500, maxMs: 20000}). */
  backoff?: BackoffOptions;
  /** Frames kept while not connected; beyond it calls reject with "queue_full" (default 100). */
  offlineQueueSize?: number;
  /** Refresh the token this long before its `exp`, in ms (default 60000). */
  refreshLeadMs?: number;
  /** How long a gap in a channel's offsets may stay open before the client resubscribes with `since` to fill it, in ms (default 1000). */
  gapTimeoutMs?: number;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface Subscription {
  channel: string;
  /** Offset of the last message delivered to the handlers (or of the subscribe ack). */
  readonly offset: number | null;
  readonly epoch: string | null;
  unsubscribe(): Promise<void>;
}

export interface PublishResult {
  messageId: string;
  offset?: number;
  epoch?: string;
}

export interface RequestOptions {
  /** Called with every `progress` frame, in `seq` order, never twice for one seq. */
  onProgress?: (frame: ProgressFrame) => void;
  /** Aborting it cancels the request; `result` rejects with code "cancelled". */
  signal?: AbortSignal;
  /** Reject `result` with code "timeout" (and cancel on the server) after this many ms. */
  timeoutMs?: number;
}

export interface RequestHandle {
  /** Resolves with the server's request id once the request is acknowledged. */
  requestId: Promise<string>;
  /** Resolves with the result's `data`, or rejects with a StreamerError. */
  result: Promise<unknown>;
  /** Cancels the request on the server; `result` rejects with code "cancelled". */
  cancel(): Promise<void>;
}

export interface RecoveryEvent {
  channel: string;
  recovered: boolean;
  offset: number;
  epoch: string;
}

export interface FrameEvent {
  direction: "in" | "out";
  frame: unknown;
}

type Listener = (arg?: any) => void;

// ---- backoff ------------------------------------------------------------------------

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * [0, min(maxMs, minMs * 2^attempt)] (attempt 0 is the first retry).
 */
export function backoffDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  rand: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, minMs * Math.pow(2, attempt));
  return rand() * ceiling;
}

// ---- internal bookkeeping -----------------------------------------------------------

/** A frame waiting for its reply. */
interface PendingCall {
  action: string;
  resolve: (reply: any) => void;
  reject: (error: StreamerError) => void;
  timer?: ReturnType<typeof setTimeout>;
  /** Internal calls (resubscribe, status) are silently dropped on disconnect. */
  internal: boolean;
}

/** A frame sent while offline, waiting for the connection. */
interface QueuedFrame {
  frame: ClientFrame & { id: string };
  call: PendingCall;
}

/** One subscribed channel. */
interface ChannelState {
  channel: string;
  handlers: Set<(message: MessageFrame) => void>;
  epoch: string | null;
  /** Offset of the last message delivered; null until the first subscribe ack. */
  last: number | null;
  /** Messages received ahead of a gap, by offset. */
  held: Map<number, MessageFrame>;
  gapTimer?: ReturnType<typeof setTimeout>;
  /** True once the first subscribe ack arrived. */
  acked: boolean;
  /** subscribe() calls waiting for the first ack. */
  waiters: { resolve: () => void; reject: (error: StreamerError) => void }[];
}

/** One request of this client that has not finished. */
interface RequestState {
  id?: string;
  /** Highest `seq` seen. */
  seq: number;
  done: boolean;
  onProgress?: (frame: ProgressFrame) => void;
  resolve: (data: unknown) => void;
  reject: (error: StreamerError) => void;
}

const OPEN = 1;
const MAX_ORPHAN_REQUESTS = 100;

// ---- the client ---------------------------------------------------------------------

export class StreamerClient {
  /** The current connection state. */
  state: ConnectionState = "idle";

  private readonly options: Required<Omit<StreamerClientOptions, "WebSocket" | "backoff">> & {
    backoff: BackoffOptions;
  };
  private readonly WebSocketClass: WebSocketConstructor | undefined;

  private ws: WebSocketLike | null = null;
  private listeners = new Map<string, Set<Listener>>();

  /** Frames sent and waiting for their reply, by id. */
  private pending = new Map<string, PendingCall>();
  /** Frames waiting for a connection (bounded by offlineQueueSize). */
  private queue: QueuedFrame[] = [];
  private channels = new Map<string, ChannelState>();
  /** Acknowledged requests that have not finished, by request id. */
  private requests = new Map<string, RequestState>();
  /** Progress/result frames that arrived before their request's ack. */
  private orphans = new Map<string, ServerFrame[]>();
  /** connect() calls waiting for the connection. */
  private connectWaiters: { resolve: () => void; reject: (error: StreamerError) => void }[] = [];

  private idCounter = 0;
  /** Failed connection attempts in a row. */
  private attempt = 0;
  /** Bumped by close(): an open() started before it must not go on. */
  private generation = 0;
  private closing = false;

  private pingTimer?: ReturnType<typeof setInterval>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  /** `exp` (seconds) of the connection's current token, 0 when unknown. */
  private tokenExp = 0;
  private refreshInFlight: Promise<unknown> | null = null;

  constructor(options: StreamerClientOptions) {
    const defaults = {
      protocols: ["streamer.v1"],
      pingIntervalMs: 240_000,
      ackTimeoutMs: 10_000,
      backoff: { minMs: 500, maxMs: 20_000 },
      offlineQueueSize: 100,
      refreshLeadMs: 60_000,
      gapTimeoutMs: 1_000,
    };
    const { WebSocket, ...rest } = options;
    this.options = { ...defaults, ...rest, backoff: { ...defaults.backoff, ...rest.backoff } };
    this.WebSocketClass = WebSocket ?? (globalThis as any).WebSocket;
  }

  // ---- events -----------------------------------------------------------------------

  /**
   * Listen to an event: "state" (the new state), "connecting", "connected",
   * "disconnected" ({code, reason}), "reconnecting" ({attempt, delayMs}), "closed",
   * "frame" ({direction, frame}), "recovery" ({channel, recovered, offset, epoch}),
   * "message" (a push to the user, without channel), "token_expiring" (the frame),
   * "error" (an Error).
   */
  on(event: string, listener: Listener): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  off(event: string, listener: Listener): this {
    this.listeners.get(event)?.delete(listener);
    return this;
  }

  private emit(event: string, arg?: unknown): void {
    const set = this.listeners.get(event);
    if (!set) {
      return;
    }
    for (const listener of [...set]) {
      try {
        listener(arg);
      } catch (error) {
        // A throwing listener must not break the client; report it, but not in a loop.
        if (event !== "error") {
          this.emit("error", error);
        }
      }
    }
  }

  /**
   * Move to a state: emits "state" (the state's name) and the state's own event
   * ("connecting", "connected", "closed") on a change. "reconnecting" is emitted on
   * every retry, with {attempt, delayMs}, even while already reconnecting.
   */
  private setState(state: ConnectionState, detail?: unknown): void {
    const changed = this.state !== state;
    this.state = state;
    if (changed) {
      this.emit("state", state);
    }
    if (state === "reconnecting" || (changed && state !== "idle")) {
      this.emit(state, detail);
    }
  }

  // ---- connection lifecycle ---------------------------------------------------------

  /** Connect (or wait for the connection in progress). Resolves once connected. */
  connect(): Promise<void> {
    if (this.state === "connected") {
      return Promise.resolve();
    }
    const connected = new Promise<void>((resolve, reject) => {
      this.connectWaiters.push({ resolve, reject });
    });
    if (this.state === "idle" || this.state === "closed") {
      this.closing = false;
      this.attempt = 0;
      this.setState("connecting");
      void this.open();
    }
    return connected;
  }

  /** Close the connection for good: pending calls reject with code "closed". */
  close(): void {
    this.closing = true;
    this.generation++;
    this.stopTimers();
    clearTimeout(this.retryTimer);

    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }

    const error = new StreamerError("closed", "client closed");
    this.rejectPending(error, true);
    for (const queued of this.queue.splice(0)) {
      queued.call.reject(error);
    }
    for (const waiter of this.connectWaiters.splice(0)) {
      waiter.reject(error);
    }
    for (const request of this.requests.values()) {
      request.reject(error);
    }
    this.requests.clear();
    this.orphans.clear();
    for (const channel of this.channels.values()) {
      clearTimeout(channel.gapTimer);
      for (const waiter of channel.waiters.splice(0)) {
        waiter.reject(error);
      }
    }
    this.channels.clear();
    this.setState("closed");
  }

  /** One connection attempt: get a token, open the socket, wire its handlers. */
  private async open(): Promise<void> {
    const generation = this.generation;
    let token: string;
    try {
      token = await this.options.getToken();
    } catch (error) {
      this.emit("error", error);
      this.scheduleRetry();
      return;
    }
    if (this.closing || generation !== this.generation) {
      return;
    }

    const separator = this.options.url.includes("?") ? "&" : "?";
    const url = this.options.url + separator + "Authorization=" + encodeURIComponent(token);

    let ws: WebSocketLike;
    try {
      if (!this.WebSocketClass) {
        throw new StreamerError("no_websocket", "no WebSocket class: pass one in the WebSocket option");
      }
      ws = new this.WebSocketClass(url, this.options.protocols);
    } catch (error) {
      this.emit("error", error);
      this.scheduleRetry();
      return;
    }

    this.ws = ws;
    ws.onopen = () => {
      if (this.ws === ws) {
        this.onOpen(token);
      }
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) {
        this.onData(typeof event.data === "string" ? event.data : String(event.data));
      }
    };
    ws.onerror = () => {
      // The close event follows and drives the reconnect.
    };
    ws.onclose = (event) => {
      if (this.ws === ws) {
        this.onClose(event?.code, event?.reason);
      }
    };
  }

  private onOpen(token: string): void {
    this.attempt = 0;
    this.setState("connected");
    for (const waiter of this.connectWaiters.splice(0)) {
      waiter.resolve();
    }

    this.pingTimer = setInterval(() => {
      this.ping().catch(() => {});
    }, this.options.pingIntervalMs);
    unref(this.pingTimer);
    this.tokenExp = jwtExp(token);
    this.scheduleRefresh();

    // Resubscribe every channel (with `since` once it has an offset), ask for the
    // state of every unfinished request, then send what was queued offline.
    for (const channel of this.channels.values()) {
      this.sendSubscribe(channel);
    }
    for (const [requestId, request] of this.requests) {
      this.sendStatus(requestId, request);
    }
    for (const queued of this.queue.splice(0)) {
      this.transmit(queued.frame, queued.call);
    }
  }

  private onClose(code?: number, reason?: string): void {
    this.ws = null;
    this.stopTimers();
    this.rejectPending(new StreamerError("disconnected", "connection lost before the reply"), false);
    if (this.closing) {
      return;
    }
    this.emit("disconnected", { code, reason });
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closing) {
      return;
    }
    const backoff = this.options.backoff;
    if (backoff.maxAttempts !== undefined && this.attempt >= backoff.maxAttempts) {
      const error = new StreamerError("connect_failed", `gave up after ${this.attempt} attempts`);
      for (const waiter of this.connectWaiters.splice(0)) {
        waiter.reject(error);
      }
      this.emit("error", error);
      this.close();
      return;
    }
    const delayMs = backoffDelay(this.attempt, backoff.minMs, backoff.maxMs);
    this.attempt++;
    this.setState("reconnecting", { attempt: this.attempt, delayMs });
    this.retryTimer = setTimeout(() => {
      void this.open();
    }, delayMs);
  }

  private stopTimers(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.refreshTimer);
  }

  /** Reject the calls waiting for a reply; internal ones are dropped silently. */
  private rejectPending(error: StreamerError, includeInternal: boolean): void {
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      this.pending.delete(id);
      if (!call.internal || includeInternal) {
        call.reject(error);
      }
    }
  }

  // ---- sending and replies ----------------------------------------------------------

  private nextId(): string {
    this.idCounter++;
    return "c" + this.idCounter.toString(36) + Math.random().toString(36).slice(2, 6);
  }

  /**
   * Send a frame and resolve with its reply (matched by id), reject with a
   * StreamerError for an error reply or a timeout. While offline the frame waits in
   * the bounded queue; internal frames (resubscribe, status) are not queued because
   * onOpen() sends them anyway.
   */
  private call<T = any>(frame: ClientFrame, internal = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const withId = { ...frame, id: this.nextId() } as ClientFrame & { id: string };
      const call: PendingCall = { action: frame.action, resolve, reject, internal };

      if (this.state === "closed") {
        reject(new StreamerError("closed", "client closed"));
        return;
      }
      if (this.state === "connected" && this.ws) {
        this.transmit(withId, call);
        return;
      }
      if (internal) {
        return;
      }
      if (this.queue.length >= this.options.offlineQueueSize) {
        reject(new StreamerError("queue_full", `offline queue is full (${this.options.offlineQueueSize} frames)`));
        return;
      }
      this.queue.push({ frame: withId, call });
    });
  }

  private transmit(frame: ClientFrame & { id: string }, call: PendingCall): void {
    this.pending.set(frame.id, call);
    call.timer = setTimeout(() => {
      if (this.pending.delete(frame.id)) {
        call.reject(new StreamerError("timeout", `no reply to ${frame.action} within ${this.options.ackTimeoutMs} ms`));
      }
    }, this.options.ackTimeoutMs);
    this.emit("frame", { direction: "out", frame });
    try {
      this.ws!.send(JSON.stringify(frame));
    } catch {
      // The socket is closing: its close event rejects the call.
    }
  }

  private onData(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text);
    } catch {
      this.emit("error", new StreamerError("bad_frame", "the server sent a frame that is not JSON"));
      return;
    }
    this.emit("frame", { direction: "in", frame });

    if (frame.type === "error" && frame.code === "token_expired") {
      // The server closes the connection next; reconnect at once with a fresh token.
      this.dropConnection();
    }

    // A reply to one of our frames (a message frame never is, even with an id).
    const id = (frame as { id?: string }).id;
    const call = id !== undefined && frame.type !== "message" ? this.pending.get(id) : undefined;
    if (call) {
      this.pending.delete(id!);
      clearTimeout(call.timer);
      if (frame.type === "error") {
        call.reject(StreamerError.fromFrame(frame));
      } else {
        call.resolve(frame);
      }
      return;
    }

    switch (frame.type) {
      case "message":
        if (frame.channel !== undefined) {
          this.onChannelMessage(frame);
        } else {
          this.emit("message", frame);
        }
        return;
      case "progress":
      case "result":
        this.onRequestFrame(frame);
        return;
      case "error":
        if (frame.request_id) {
          this.onRequestFrame(frame);
        } else {
          this.emit("error", StreamerError.fromFrame(frame));
        }
        return;
      case "token_expiring":
        this.onTokenExpiring(frame);
        return;
      default:
        return;
    }
  }

  /** Close the socket now and go through the reconnect path. */
  private dropConnection(): void {
    const ws = this.ws;
    if (!ws) {
      return;
    }
    this.ws = null;
    try {
      ws.close();
    } catch {
      // already closing
    }
    this.onClose(1000, "token expired");
  }

  /** Send a ping; resolves with the pong. */
  ping(): Promise<{ type: "pong"; id?: string }> {
    return this.call({ action: "ping" });
  }

  // ---- channels ---------------------------------------------------------------------

  /**
   * Subscribe a handler to a channel. Resolves once the server acknowledged the
   * subscription. Handlers get every message once, in offset order, across reconnects.
   */
  async subscribe(channel: string, handler: (message: MessageFrame) => void): Promise<Subscription> {
    if (this.state === "closed") {
      throw new StreamerError("closed", "client closed");
    }
    let state = this.channels.get(channel);
    const subscription: Subscription = {
      channel,
      get offset() {
        return state!.last;
      },
      get epoch() {
        return state!.epoch;
      },
      unsubscribe: () => this.unsubscribe(channel, handler),
    };

    if (state) {
      state.handlers.add(handler);
      if (state.acked) {
        return subscription;
      }
    } else {
      state = {
        channel,
        handlers: new Set([handler]),
        epoch: null,
        last: null,
        held: new Map(),
        acked: false,
        waiters: [],
      };
      this.channels.set(channel, state);
      if (this.state === "connected") {
        this.sendSubscribe(state);
      }
      // Otherwise onOpen() sends it.
    }

    const channelState = state;
    await new Promise<void>((resolve, reject) => {
      channelState.waiters.push({ resolve, reject });
    });
    return subscription;
  }

  private sendSubscribe(channel: ChannelState): void {
    const resume = channel.last !== null && channel.epoch !== null;
    const frame: ClientFrame = { action: "subscribe", channel: channel.channel };
    if (resume) {
      frame.since = { offset: channel.last!, epoch: channel.epoch! };
    }
    this.call<AckFrame>(frame, true).then(
      (ack) => this.onSubscribeAck(channel, ack, resume),
      (error: StreamerError) => {
        if (this.channels.get(channel.channel) !== channel) {
          return;
        }
        if (!channel.acked) {
          // The first subscribe failed: forget the channel, reject subscribe().
          this.channels.delete(channel.channel);
          clearTimeout(channel.gapTimer);
          for (const waiter of channel.waiters.splice(0)) {
            waiter.reject(error);
          }
        } else {
          this.emit("error", error);
        }
      },
    );
  }

  private onSubscribeAck(channel: ChannelState, ack: AckFrame, resume: boolean): void {
    if (this.channels.get(channel.channel) !== channel) {
      return; // unsubscribed meanwhile
    }
    if (typeof ack.offset === "number" && typeof ack.epoch === "string") {
      if (resume) {
        const sameEpoch = ack.epoch === channel.epoch;
        if (!ack.recovered || !sameEpoch) {
          // Messages were missed (or the history is gone): carry on from the
          // channel's current offset; the app learns it from the recovery event.
          if (!sameEpoch) {
            channel.held.clear();
          }
          channel.epoch = ack.epoch;
          if (!sameEpoch || (channel.last ?? 0) < ack.offset) {
            channel.last = ack.offset;
          }
        }
        this.emit("recovery", {
          channel: channel.channel,
          recovered: ack.recovered === true,
          offset: ack.offset,
          epoch: ack.epoch,
        } satisfies RecoveryEvent);
      } else if (channel.last === null) {
        // First ack: start after the ack's offset, or just before the first message
        // that arrived ahead of the ack (frames are not ordered against each other).
        channel.epoch = ack.epoch;
        const early = [...channel.held.values()].filter((m) => m.epoch === ack.epoch).map((m) => m.offset!);
        channel.last = early.length ? Math.min(ack.offset, Math.min(...early) - 1) : ack.offset;
      }
      this.drain(channel);
    } else if (!channel.acked) {
      // No continuity on the server (HISTORY_SIZE=0): deliver what arrived early.
      for (const message of channel.held.values()) {
        this.deliver(channel, message);
      }
      channel.held.clear();
    }
    channel.acked = true;
    for (const waiter of channel.waiters.splice(0)) {
      waiter.resolve();
    }
  }

  private onChannelMessage(message: MessageFrame): void {
    const channel = this.channels.get(message.channel!);
    if (!channel) {
      return;
    }
    if (typeof message.offset !== "number") {
      // No offsets (HISTORY_SIZE=0): deliver as it comes, once subscribed.
      if (channel.acked) {
        this.deliver(channel, message);
      } else {
        channel.held.set(channel.held.size - 1_000_000, message);
      }
      return;
    }
    if (channel.epoch !== null && channel.last !== null && message.epoch !== channel.epoch) {
      // The channel's history was lost and a new epoch started: deliver from here on.
      channel.epoch = message.epoch ?? null;
      channel.last = message.offset - 1;
      channel.held.clear();
    }
    if (channel.last !== null && message.offset <= channel.last) {
      return; // a duplicate (replay overlapping live delivery)
    }
    channel.held.set(message.offset, message);
    if (channel.last !== null) {
      this.drain(channel);
    }
    // Until the first ack, messages wait in `held` (onSubscribeAck drains them).
  }

  /** Deliver held messages in offset order while there is no gap. */
  private drain(channel: ChannelState): void {
    if (channel.last === null) {
      return;
    }
    for (const offset of [...channel.held.keys()]) {
      if (offset <= channel.last) {
        channel.held.delete(offset);
      }
    }
    let next: number = channel.last + 1;
    while (channel.held.has(next)) {
      const message = channel.held.get(next)!;
      channel.held.delete(next);
      channel.last = next;
      this.deliver(channel, message);
      if (this.channels.get(channel.channel) !== channel) {
        return; // a handler unsubscribed
      }
      next = channel.last + 1;
    }

    if (channel.held.size === 0) {
      clearTimeout(channel.gapTimer);
      channel.gapTimer = undefined;
    } else if (!channel.gapTimer) {
      // A gap: the missing message may still come; if not, resubscribe with `since`.
      channel.gapTimer = setTimeout(() => {
        channel.gapTimer = undefined;
        if (channel.held.size > 0 && this.state === "connected" && this.channels.get(channel.channel) === channel) {
          this.sendSubscribe(channel);
        }
      }, this.options.gapTimeoutMs);
    }
  }

  private deliver(channel: ChannelState, message: MessageFrame): void {
    for (const handler of [...channel.handlers]) {
      try {
        handler(message);
      } catch (error) {
        this.emit("error", error);
      }
    }
  }

  private async unsubscribe(channel: string, handler: (message: MessageFrame) => void): Promise<void> {
    const state = this.channels.get(channel);
    if (!state) {
      return;
    }
    state.handlers.delete(handler);
    if (state.handlers.size > 0) {
      return; // other handlers still listen
    }
    this.channels.delete(channel);
    clearTimeout(state.gapTimer);
    if (this.state === "connected") {
      await this.call({ action: "unsubscribe", channel });
    }
  }

  /** Publish `data` to a channel; resolves with the ack's message id, offset and epoch. */
  async publish(channel: string, data: unknown, options: { excludeSelf?: boolean } = {}): Promise<PublishResult> {
    const frame: ClientFrame = { action: "publish", channel, data };
    if (options.excludeSelf) {
      frame.exclude_self = true;
    }
    const ack = await this.call<AckFrame>(frame);
    return { messageId: ack.message_id!, offset: ack.offset, epoch: ack.epoch };
  }

  /** The last `limit` messages the server holds for a channel. */
  history(channel: string, limit?: number): Promise<HistoryFrame> {
    const frame: ClientFrame = { action: "history", channel };
    if (limit !== undefined) {
      frame.limit = limit;
    }
    return this.call<HistoryFrame>(frame);
  }

  // ---- requests ---------------------------------------------------------------------

  /**
   * Start an asynchronous request (`kind`, `payload`). `requestId` resolves on the ack;
   * `result` resolves with the result's data or rejects with a StreamerError
   * (its code: the error frame's, "cancelled", "timeout", "disconnected", ...).
   */
  request(kind: string, payload: Record<string, unknown>, options: RequestOptions = {}): RequestHandle {
    const signal = options.signal;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let settle!: { resolve: (data: unknown) => void; reject: (error: StreamerError) => void };
    const result = new Promise<unknown>((resolve, reject) => {
      settle = { resolve, reject };
    });
    result.catch(() => {}); // the app may only look at requestId

    // The request's bookkeeping; resolve/reject settle `result` once.
    const request: RequestState = {
      seq: 0,
      done: false,
      onProgress: options.onProgress,
      resolve: (data) => {
        if (finish()) {
          settle.resolve(data);
        }
      },
      reject: (error) => {
        if (finish()) {
          settle.reject(error);
        }
      },
    };
    const finish = (): boolean => {
      if (request.done) {
        return false;
      }
      request.done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (request.id !== undefined) {
        this.requests.delete(request.id);
      }
      return true;
    };

    const onAbort = (): void => {
      const id = request.id;
      request.reject(new StreamerError("cancelled", "request aborted"));
      if (id !== undefined) {
        this.call({ action: "cancel", request_id: id }).catch(() => {});
      }
      // Before the ack: the ack handler sends the cancel once it knows the id.
    };
    if (signal?.aborted) {
      const error = new StreamerError("cancelled", "aborted before the request was sent");
      request.reject(error);
      const requestId = Promise.reject(error);
      requestId.catch(() => {});
      return { requestId, result, cancel: async () => {} };
    }

    const requestId = this.call<AckFrame>({ action: "request", kind, payload }).then(
      (ack) => {
        const id = ack.request_id!;
        request.id = id;
        if (!request.done) {
          this.requests.set(id, request);
          // Progress or result that came before the ack.
          for (const frame of this.orphans.get(id) ?? []) {
            this.onRequestFrame(frame);
          }
        } else {
          // Aborted or timed out before the ack: cancel on the server now.
          this.call({ action: "cancel", request_id: id }).catch(() => {});
        }
        this.orphans.delete(id);
        return id;
      },
      (error: StreamerError) => {
        request.reject(error);
        throw error;
      },
    );
    requestId.catch(() => {});

    const cancel = async (): Promise<void> => {
      if (request.done) {
        return;
      }
      let id: string;
      try {
        id = await requestId;
      } catch {
        return; // never started
      }
      if (request.done) {
        return;
      }
      const ack = await this.call<AckFrame>({ action: "cancel", request_id: id });
      if (ack.state === "cancelled" || ack.state === undefined) {
        request.reject(new StreamerError("cancelled", "request cancelled"));
      } else if (!request.done) {
        // It had already finished: its result or error frame is on its way; ask anyway.
        this.sendStatus(id, request);
      }
    };

    if (options.timeoutMs) {
      timer = setTimeout(() => {
        request.reject(new StreamerError("timeout", `request ${kind} did not finish within ${options.timeoutMs} ms`));
        if (request.id !== undefined) {
          this.call({ action: "cancel", request_id: request.id }).catch(() => {});
        }
      }, options.timeoutMs);
    }

    signal?.addEventListener("abort", onAbort, { once: true });

    return { requestId, result, cancel };
  }

  /** A progress, result or error frame of a request, in `seq` order. */
  private onRequestFrame(frame: ServerFrame): void {
    const requestId = (frame as { request_id?: string }).request_id;
    if (!requestId) {
      return;
    }
    const request = this.requests.get(requestId);
    if (!request) {
      // Its ack has not arrived yet; keep the frame for a while.
      const list = this.orphans.get(requestId) ?? [];
      list.push(frame);
      this.orphans.set(requestId, list);
      if (this.orphans.size > MAX_ORPHAN_REQUESTS) {
        this.orphans.delete(this.orphans.keys().next().value!);
      }
      return;
    }
    if (request.done) {
      return;
    }
    const seq = (frame as { seq?: number }).seq;
    if (typeof seq === "number") {
      if (seq <= request.seq) {
        return; // already seen
      }
      request.seq = seq;
    }
    if (frame.type === "progress") {
      try {
        request.onProgress?.(frame);
      } catch (error) {
        this.emit("error", error);
      }
    } else if (frame.type === "result") {
      request.resolve(frame.data);
    } else if (frame.type === "error") {
      request.reject(StreamerError.fromFrame(frame));
    }
  }

  /** After a reconnect: ask for a request's state and catch up from the answer. */
  private sendStatus(requestId: string, request: RequestState): void {
    this.call<RequestStateFrame>({ action: "status", request_id: requestId }, true).then(
      (status) => {
        if (request.done) {
          return;
        }
        if (status.state === "succeeded") {
          request.resolve(status.result);
        } else if (status.state === "failed" || status.state === "cancelled") {
          const code = status.error?.code ?? status.state;
          const message = status.error?.message ?? `request ${status.state}`;
          request.reject(new StreamerError(code, message, status));
        } else if (typeof status.seq === "number" && status.seq > request.seq) {
          this.onRequestFrame({
            type: "progress",
            request_id: requestId,
            progress: status.progress ?? 0,
            detail: status.detail ?? {},
            seq: status.seq,
          } as ProgressFrame);
        }
      },
      (error: StreamerError) => {
        if (!request.done && error.code === "not_found") {
          request.reject(error);
        }
      },
    );
  }

  // ---- token refresh ----------------------------------------------------------------

  /**
   * Send `refresh` with a new token (default: getToken()) and resolve with the ack
   * (`expires_at`). Rejects with "unauthorized" (invalid token) or "forbidden"
   * (another user or tenant); the connection then keeps its current token.
   */
  async refresh(token?: string): Promise<AckFrame> {
    const next = token ?? (await this.options.getToken());
    const ack = await this.call<AckFrame>({ action: "refresh", token: next });
    this.tokenExp = typeof ack.expires_at === "number" ? ack.expires_at : jwtExp(next);
    this.scheduleRefresh();
    return ack;
  }

  private onTokenExpiring(frame: TokenExpiringFrame): void {
    this.emit("token_expiring", frame);
    if (typeof frame.expires_at === "number") {
      this.tokenExp = Math.min(this.tokenExp || frame.expires_at, frame.expires_at);
    }
    this.autoRefresh();
  }

  /**
   * Refresh if getToken() offers a token that expires later than the current one.
   * (Sending the same token again would make the server warn again, in a loop.)
   */
  private autoRefresh(): void {
    if (this.refreshInFlight || this.state !== "connected") {
      return;
    }
    const run = async () => {
      const token = await this.options.getToken();
      const exp = jwtExp(token);
      if (exp !== 0 && this.tokenExp !== 0 && exp <= this.tokenExp) {
        return; // nothing newer to offer
      }
      await this.refresh(token);
    };
    this.refreshInFlight = run()
      .catch((error) => this.emit("error", error))
      .finally(() => {
        this.refreshInFlight = null;
      });
  }

  /** Arm the timer that refreshes `refreshLeadMs` before the token's exp. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.tokenExp) {
      return;
    }
    const delay = this.tokenExp * 1000 - this.options.refreshLeadMs - Date.now();
    // setTimeout holds at most 2^31-1 ms; a later refresh is re-armed on reconnect.
    const bounded = Math.min(Math.max(delay, 1000), 2 ** 31 - 1);
    this.refreshTimer = setTimeout(() => this.autoRefresh(), bounded);
    unref(this.refreshTimer);
  }
}

/**
 * Let Node exit while only this timer is left (the socket itself keeps a live
 * connection's process running). Browsers' timers are numbers: nothing to do.
 */
function unref(timer: unknown): void {
  const handle = timer as { unref?: () => void } | undefined;
  handle?.unref?.();
}

/** The `exp` claim of a JWT (seconds), 0 when it cannot be read. Not verified. */
export function jwtExp(token: string): number {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "===".slice((part.length + 3) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.exp === "number" ? claims.exp : 0;
  } catch {
    return 0;
  }
}
