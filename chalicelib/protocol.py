"""The wire format of PROTOCOL.md sections 2 and 3: parsing and building frames.

Pure: no AWS, no I/O. :func:`parse_frame` turns a raw ``$default`` body into a
:class:`Frame` or raises a :class:`FrameError`; the ``Frame`` accessors validate one
field each, so an action's handler reads exactly the fields it needs and every
missing or mistyped field becomes a ``bad_request`` naming the field. The builders
return the server frames as dicts; :func:`encode` serialises them compactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import BadRequest, TooLarge

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's message limit, also for posts to clients
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_ID_CHARS = 64
# Nesting is bounded well below Python's recursion limit: a frame that the parser
# accepts at ~990 levels still overflows the stack later, when it is re-encoded for
# fan-out or storage deeper in a handler's call stack. 32 is DynamoDB's own limit for
# nested attributes, so anything accepted here can also be stored as a document.
MAX_NESTING = 32
_MISSING = object()


@dataclass(frozen=True)
class Frame:
    """One client frame: its ``action``, optional ``id`` and the raw object."""

    action: str
    id: str | None
    body: dict[str, Any]

    def _field(self, name: str) -> Any:
        value = self.body.get(name, _MISSING)
        if value is _MISSING:
            raise BadRequest(f"field '{name}' is required")
        return value

    def string(self, name: str, *, max_chars: int = 256) -> str:
        value = self._field(name)
        if not isinstance(value, str) or not 0 < len(value) <= max_chars:
            raise BadRequest(f"field '{name}' must be a string of 1-{max_chars} characters")
        return value

    def channel(self, name: str = "channel") -> str:
        value = self._field(name)
        if not isinstance(value, str) or CHANNEL_PATTERN.fullmatch(value) is None:
            raise BadRequest(f"field '{name}' must be 1-128 characters of [A-Za-z0-9_.:-]")
        return value

    def json_value(self, name: str) -> Any:
        """Any JSON value, ``null`` included, but the field must be present."""
        return self._field(name)

    def object(self, name: str) -> dict[str, Any]:
        value = self._field(name)
        if not isinstance(value, dict):
            raise BadRequest(f"field '{name}' must be an object")
        return value

    def integer(self, name: str, low: int, high: int, default: int) -> int:
        value = self.body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(f"field '{name}' must be an integer {low}..{high}")
        return value

    def since(self) -> tuple[int, str] | None:
        """``since``: ``{"offset": integer >= 0, "epoch": 1-64 characters}`` or absent."""
        value = self.body.get("since")
        if value is None:
            return None
        offset = value.get("offset") if isinstance(value, dict) else None
        epoch = value.get("epoch") if isinstance(value, dict) else None
        if (not isinstance(value, dict) or set(value) != {"offset", "epoch"}
                or isinstance(offset, bool) or not isinstance(offset, int) or offset < 0
                or not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_ID_CHARS):
            raise BadRequest("field 'since' must be {\"offset\": integer >= 0, "
                             "\"epoch\": string of 1-64 characters}")
        return offset, epoch

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name, default)
        if not isinstance(value, bool):
            raise BadRequest(f"field '{name}' must be true or false")
        return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python's extension, not JSON (RFC 8259); clients' parsers
    # would choke on them when the value is forwarded.
    raise ValueError(f"{name} is not JSON")


def _frame_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise BadRequest(f"field 'id' must be a string of 1-{MAX_ID_CHARS} characters")
    return value


def nesting(value: Any) -> int:
    """How many levels of arrays and objects ``value`` has (a scalar has 0).

    Iterative, so it cannot itself overflow the stack it protects."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children
                       if isinstance(child, dict | list))
    return deepest


def parse_frame(body: str | bytes | None) -> Frame:
    """Parse a raw frame, or raise ``FrameError`` (with ``frame_id`` once it is known)."""
    if body is None or body in {"", b""}:
        raise BadRequest("empty frame")
    try:
        raw = body.encode() if isinstance(body, str) else body
    except UnicodeEncodeError:
        raise BadRequest("frame is not valid UTF-8") from None
    if len(raw) > MAX_MESSAGE_BYTES:
        raise TooLarge(f"frame exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("frame is not valid JSON") from None
    except RecursionError:
        raise BadRequest(f"frame nests deeper than {MAX_NESTING} levels") from None
    if not isinstance(obj, dict):
        raise BadRequest("frame must be a JSON object")
    frame_id = _frame_id(obj)
    action = obj.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("field 'action' must be a non-empty string", frame_id)
    # Counting brackets is C-speed; only a frame with enough of them is walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and nesting(obj) > MAX_NESTING:
        raise BadRequest(f"frame nests deeper than {MAX_NESTING} levels", frame_id)
    return Frame(action=action, id=frame_id, body=obj)


# -- server frames -----------------------------------------------------------


def _with_id(frame: dict[str, Any], frame_id: str | None) -> dict[str, Any]:
    if frame_id is not None:
        frame["id"] = frame_id
    return frame


def pong(frame_id: str | None) -> dict[str, Any]:
    return _with_id({"type": "pong"}, frame_id)


def ack(frame_id: str | None, action: str, **fields: Any) -> dict[str, Any]:
    return _with_id({"type": "ack", "action": action, **fields}, frame_id)


def error(code: str, message: str, frame_id: str | None = None,
          **fields: Any) -> dict[str, Any]:
    return _with_id({"type": "error", "code": code, "message": message, **fields}, frame_id)


def message(channel: str | None, message_id: str, data: Any, user_id: str,
            ts_ms: int) -> dict[str, Any]:
    """A channel message, or (``channel`` None) a message pushed to a user."""
    frame: dict[str, Any] = {"type": "message"}
    if channel is not None:
        frame["channel"] = channel
    frame.update(message_id=message_id, data=data, sender={"user_id": user_id}, ts=ts_ms)
    return frame


def progress(request_id: str, fraction: float, detail: dict[str, Any],
             seq: int) -> dict[str, Any]:
    return {"type": "progress", "request_id": request_id, "progress": fraction,
            "detail": detail, "seq": seq}


def result(request_id: str, data: Any, seq: int) -> dict[str, Any]:
    return {"type": "result", "request_id": request_id, "data": data, "seq": seq}


def with_position(frame: dict[str, Any], offset: int, epoch: str) -> dict[str, Any]:
    """A channel message carrying its place in the channel (docs/protocol.md 6)."""
    return {**frame, "offset": offset, "epoch": epoch}


# Room the offset and epoch take in an encoded message: ',"offset":<20 digits>,
# "epoch":"<64 characters>"' is under 110 bytes.
POSITION_BYTES = 110


def token_expiring(expires_at: int, now: float) -> dict[str, Any]:
    return {"type": "token_expiring", "expires_at": expires_at,
            "expires_in": max(0, int(expires_at - now))}


def history(frame_id: str | None, channel: str, offset: int, epoch: str,
            payloads: list[bytes]) -> bytes:
    """The ``history`` reply: the held message frames, oldest first, spliced in as
    they were stored (each is already encoded JSON). The oldest are left out, and
    ``complete`` is false, when all would not fit in one message."""
    def build(kept: list[bytes]) -> bytes:
        head = encode(_with_id({"type": "history", "channel": channel, "offset": offset,
                                "epoch": epoch, "complete": len(kept) == len(payloads),
                                "messages": []}, frame_id))
        # The frame ends with the empty list: '"messages":[]}' (or the id after it).
        cut = head.rindex(b'"messages":[]') + len(b'"messages":[')
        return head[:cut] + b",".join(kept) + head[cut:]

    kept = list(payloads)
    frame = build(kept)
    while len(frame) > MAX_MESSAGE_BYTES and kept:
        kept.pop(0)
        frame = build(kept)
    return frame


def request_state(frame_id: str | None, request_id: str, state: str, progress: float, *,
                  result: Any = _MISSING,
                  error: tuple[str, str] | None = None) -> dict[str, Any]:
    """The answer to ``status``: a request's state, with its result or error when final."""
    frame: dict[str, Any] = {"type": "request", "request_id": request_id, "state": state,
                             "progress": progress}
    if result is not _MISSING:
        frame["result"] = result
    if error is not None:
        frame["error"] = {"code": error[0], "message": error[1]}
    return _with_id(frame, frame_id)


def request_catch_up(frame: dict[str, Any], seq: int,
                     detail: dict[str, Any] | None) -> dict[str, Any]:
    """``status``'s extras: the frame count so far and the last progress detail."""
    frame["seq"] = seq
    if detail is not None:
        frame["detail"] = detail
    return frame


def encode(frame: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. Text holding a lone surrogate (legal as a JSON escape, but
    not encodable as UTF-8) falls back to ASCII escapes, so every frame can be sent."""
    try:
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    except UnicodeEncodeError:
        return json.dumps(frame, separators=(",", ":"), allow_nan=False).encode()
