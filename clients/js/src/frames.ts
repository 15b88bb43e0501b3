// Frame shapes of docs/protocol.md (streamer.v1), as the SDK uses them.
//
// These are hand-written, for readable names and a single AckFrame interface; the
// schema's own types are generated into protocol.generated.ts (npm run gen) and
// exported as the `Protocol` namespace. src/types-check.ts makes tsc prove the two
// agree: every server frame the schema allows fits these types, and every client
// frame these types allow is valid by the schema.

// ---- client -> server -------------------------------------------------------------

export interface Since {
  offset: number;
  epoch: string;
}

export interface PingFrame { action: "ping"; id?: string }
export interface SubscribeFrame { action: "subscribe"; id?: string; channel: string; since?: Since }
export interface UnsubscribeFrame { action: "unsubscribe"; id?: string; channel: string }
export interface PublishFrame {
  action: "publish"; id?: string; channel: string; data: unknown; exclude_self?: boolean;
}
export interface RequestFrame {
  action: "request"; id?: string; kind: string; payload: Record<string, unknown>;
}
export interface CancelFrame { action: "cancel"; id?: string; request_id: string }
export interface StatusFrame { action: "status"; id?: string; request_id: string }
export interface HistoryRequestFrame { action: "history"; id?: string; channel: string; limit?: number }
export interface RefreshFrame { action: "refresh"; id?: string; token: string }

export type ClientFrame =
  | PingFrame | SubscribeFrame | UnsubscribeFrame | PublishFrame | RequestFrame
  | CancelFrame | StatusFrame | HistoryRequestFrame | RefreshFrame;

// ---- server -> client -------------------------------------------------------------

export interface PongFrame { type: "pong"; id?: string }

export type AckAction =
  | "subscribe" | "unsubscribe" | "publish" | "request" | "cancel" | "refresh";

export interface AckFrame {
  type: "ack";
  id?: string;
  action: AckAction;
  channel?: string;
  message_id?: string;
  request_id?: string;
  state?: RequestState;
  /** subscribe/publish acks with continuity */
  offset?: number;
  epoch?: string;
  /** subscribe with `since` */
  recovered?: boolean;
  /** refresh */
  expires_at?: number;
}

export interface Sender { user_id: string }

export interface MessageFrame {
  type: "message";
  /** absent for a backend push to a user */
  channel?: string;
  message_id: string;
  data: unknown;
  sender: Sender;
  ts: number;
  /** absent when the server runs without continuity (HISTORY_SIZE=0) */
  offset?: number;
  epoch?: string;
}

/** The server's codes, then the client's own (see StreamerError); open for future codes. */
export type ErrorCode =
  | "bad_request" | "unknown_action" | "unauthorized" | "forbidden" | "not_found"
  | "too_large" | "limit_exceeded" | "cancelled" | "failed" | "internal"
  | "token_expired"
  | "timeout" | "disconnected" | "queue_full" | "closed" | "connect_failed" | "bad_frame"
  | (string & {});

export interface ErrorFrame {
  type: "error";
  id?: string;
  request_id?: string;
  code: ErrorCode;
  message: string;
}

export interface ProgressFrame {
  type: "progress";
  request_id: string;
  progress: number;
  detail?: unknown;
  seq?: number;
}

export interface ResultFrame {
  type: "result";
  request_id: string;
  data: unknown;
  seq?: number;
}

export type RequestState = "pending" | "running" | "succeeded" | "failed" | "cancelled";

export interface RequestStateFrame {
  type: "request";
  id?: string;
  request_id: string;
  state: RequestState;
  progress?: number;
  detail?: unknown;
  seq?: number;
  result?: unknown;
  error?: { code: ErrorCode; message: string };
}

export interface HistoryFrame {
  type: "history";
  id?: string;
  channel: string;
  offset: number;
  epoch: string;
  messages: MessageFrame[];
  complete?: boolean;
}

export interface TokenExpiringFrame {
  type: "token_expiring";
  expires_at: number;
  expires_in: number;
}

export type ServerFrame =
  | PongFrame | AckFrame | MessageFrame | ErrorFrame | ProgressFrame | ResultFrame
  | RequestStateFrame | HistoryFrame | TokenExpiringFrame;
