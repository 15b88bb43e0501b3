"""Streamer's exceptions, in one place.

    StreamerError
    ├── ConfigError            bad or missing setting; raised at start-up
    ├── AuthError              refused handshake; carries the HTTP status (401, 403)
    ├── FrameError             a client frame refused; carries a PROTOCOL.md error code
    │   ├── BadRequest         bad_request
    │   ├── UnknownAction      unknown_action
    │   ├── Unauthorized       unauthorized
    │   │   └── TokenExpired   token_expired (the connection is closed after it)
    │   ├── Forbidden          forbidden
    │   ├── NotFound           not_found
    │   ├── TooLarge           too_large
    │   └── LimitExceeded      limit_exceeded
    ├── StorageError           DynamoDB failed (translated at the adapter)
    ├── InvokeError            invoking a fan-out worker failed (translated at the adapter)
    └── SendError              the @connections API failed (translated at the adapter)
        ├── GoneError          410: the connection is gone; delete it
        ├── ThrottledError     429: retry with backoff
        ├── PayloadTooLarge    413: never retried
        ├── ForbiddenSend      403: never retried (the role may not post)
        └── ServerError        5xx: retry with backoff

Only the adapters (storage, request_store, dynamodb, management_api, fast_sender)
catch botocore errors; everything above them sees these.
"""

from __future__ import annotations


class StreamerError(Exception):
    """Base of every error Streamer raises on purpose."""


class ConfigError(StreamerError):
    """A setting is missing or invalid; the message names the key."""


class AuthError(StreamerError):
    """A handshake is refused with ``status`` (401 or 403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FrameError(StreamerError):
    """A client frame is refused; the client gets an ``error`` frame with ``code``."""

    code = "internal"

    def __init__(self, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.frame_id = frame_id


class BadRequest(FrameError):
    code = "bad_request"


class UnknownAction(FrameError):
    code = "unknown_action"


class Unauthorized(FrameError):
    code = "unauthorized"


class TokenExpired(Unauthorized):
    code = "token_expired"


class Forbidden(FrameError):
    code = "forbidden"


class NotFound(FrameError):
    code = "not_found"


class TooLarge(FrameError):
    code = "too_large"


class LimitExceeded(FrameError):
    code = "limit_exceeded"


class StorageError(StreamerError):
    """DynamoDB refused or failed a call."""


class InvokeError(StreamerError):
    """Lambda refused or failed an asynchronous invocation."""


class SendError(StreamerError):
    """The @connections API refused or failed a post."""

    status = 0
    retryable = False

    def __init__(self, connection_id: str, detail: str = "") -> None:
        super().__init__(f"{connection_id}: {detail}" if detail else connection_id)
        self.connection_id = connection_id


class GoneError(SendError):
    status = 410


class ThrottledError(SendError):
    status = 429
    retryable = True


class PayloadTooLarge(SendError):
    status = 413


class ForbiddenSend(SendError):
    status = 403


class ServerError(SendError):
    status = 500
    retryable = True
