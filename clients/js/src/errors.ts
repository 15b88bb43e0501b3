/**
 * The error every promise of the client rejects with.
 *
 * `code` is the server's error code (docs/protocol.md section 3: "bad_request",
 * "forbidden", "not_found", "limit_exceeded", "cancelled", "failed", "unauthorized",
 * "token_expired", ...) or one of the client's own:
 *   - "timeout"        no reply within ackTimeoutMs, or a request's timeoutMs passed;
 *   - "disconnected"   the connection dropped before the reply came;
 *   - "queue_full"     offline and the offline queue is full;
 *   - "closed"         close() was called;
 *   - "connect_failed" backoff.maxAttempts reconnects failed in a row;
 *   - "bad_frame"      the server sent something that is not JSON (an "error" event).
 * `frame` is the error frame itself when there was one.
 */
export class StreamerError extends Error {
  code: string;
  frame?: unknown;

  constructor(code: string, message: string, frame?: unknown) {
    super(message);
    this.name = "StreamerError";
    this.code = code;
    this.frame = frame;
  }

  /** The error an `error` frame stands for. */
  static fromFrame(frame: { code: string; message?: string }): StreamerError {
    return new StreamerError(frame.code, frame.message ?? frame.code, frame);
  }
}
