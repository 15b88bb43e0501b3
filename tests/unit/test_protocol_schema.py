"""docs/protocol.schema.json against the code and the prose of docs/protocol.md.

Frames the builders in chalicelib/protocol.py produce, the example frames of the doc
and hand-written client frames are validated with ``jsonschema`` (draft 2020-12).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from chalicelib import errors, protocol
from chalicelib.registry import default_actions

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA: dict[str, Any] = json.loads((DOCS / "protocol.schema.json").read_text())


def validator(name: str) -> Draft202012Validator:
    root = {**SCHEMA, "$ref": f"#/$defs/{name}"}
    return Draft202012Validator(root)


SERVER = validator("ServerFrame")
CLIENT = validator("ClientFrame")


def assert_valid(v: Draft202012Validator, frame: Any) -> None:
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in v.iter_errors(frame)]
    assert not problems, f"{frame!r}: {problems}"


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# -- builders of chalicelib/protocol.py ------------------------------------------

BUILT_TODAY = [
    protocol.pong(None),
    protocol.pong("p1"),
    protocol.ack("s1", "subscribe", channel="prices"),
    protocol.ack(None, "unsubscribe", channel="prices"),
    protocol.ack("m1", "publish", channel="prices", message_id="a" * 32),
    protocol.ack("r1", "request", request_id="b" * 32),
    protocol.ack("c1", "cancel", request_id="b" * 32, state="cancelled"),
    protocol.error("bad_request", "frame is not valid JSON"),
    protocol.error("forbidden", "write permission required", "m1"),
    protocol.error("cancelled", "request cancelled", request_id="b" * 32),
    protocol.error("failed", "task raised RuntimeError", request_id="b" * 32),
    protocol.message("prices", "a" * 32, {"p": 1}, "u1", 1764000000123),
    protocol.message(None, "a" * 32, [1, None, "x"], "system", 1764000000123),
    protocol.request_catch_up(protocol.request_state("q0", "b" * 32, "pending", 0.0), 0, None),
    protocol.request_catch_up(protocol.request_state(None, "b" * 32, "running", 0.5), 3,
                              {"step": 3}),
    protocol.request_catch_up(protocol.request_state("q2", "b" * 32, "succeeded", 1.0,
                                                     result={"count": 3}), 4, {"step": 3}),
    protocol.request_catch_up(protocol.request_state("q3", "b" * 32, "failed", 0.5,
                                                     error=("failed", "boom")), 1, None),
    protocol.progress("b" * 32, 0.5, {"step": 1}, 1),
    protocol.progress("b" * 32, 1.0, {}, 2),
    protocol.result("b" * 32, {"count": 3}, 3),
    protocol.with_position(protocol.message("prices", "a" * 32, 1, "u1", 1), 42, "e" * 12),
    protocol.ack("p", "publish", channel="p", message_id="m", offset=42, epoch="e"),
    protocol.ack("s", "subscribe", channel="p", offset=0, epoch="e", recovered=False),
    protocol.ack("t", "refresh", expires_at=1764003600),
    protocol.token_expiring(1764003600, 1764003360.5),
    protocol.error("token_expired", "token expired; reconnect with a new token"),
    json.loads(protocol.history("h1", "p", 42, "e", [protocol.encode(protocol.with_position(
        protocol.message("p", "m", {}, "u1", 1), 42, "e"))])),
    json.loads(protocol.history(None, "p", 0, "e", [])),
]


@pytest.mark.parametrize("frame", BUILT_TODAY, ids=lambda f: f"{f['type']}-{f.get('action', '')}")
def test_builder_frames_match_server_frame(frame: dict[str, Any]) -> None:
    assert_valid(SERVER, json.loads(protocol.encode(frame)))


# -- the examples of docs/protocol.md ---------------------------------------------


def doc_examples() -> list[str]:
    """Every indented JSON object of the doc (continuation lines joined)."""
    out: list[str] = []
    current: list[str] | None = None
    for line in (DOCS / "protocol.md").read_text().splitlines():
        stripped = line.strip()
        if line.startswith("    ") and stripped.startswith("{"):
            if current is not None:
                out.append(" ".join(current))
            current = [stripped]
        elif current is not None and line.startswith("    ") and stripped:
            current.append(stripped)
        else:
            if current is not None:
                out.append(" ".join(current))
            current = None
    if current is not None:
        out.append(" ".join(current))
    return out


def fill(text: str) -> Any:
    """The example with its placeholders filled, or None when it cannot be completed."""
    text = text.replace('"<new JWT>"', '"header.payload.sig"')
    text = text.replace('"..."', '"' + "f" * 32 + '"').replace("{...}", "{}")
    if "..." in text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


EXAMPLES = [obj for obj in map(fill, doc_examples()) if obj is not None]


def test_the_doc_has_examples_of_both_directions() -> None:
    assert sum("type" in e for e in EXAMPLES) >= 15
    assert sum("action" in e and "type" not in e for e in EXAMPLES) >= 3


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: str(f.get("type", f.get("action"))))
def test_doc_examples_match_the_schema(frame: dict[str, Any]) -> None:
    assert_valid(SERVER if "type" in frame else CLIENT, frame)


# -- client frames ------------------------------------------------------------------

VALID_CLIENT = [
    {"action": "ping"},
    {"action": "ping", "id": "p" * 64},
    {"action": "subscribe", "channel": "a.b:c-d_e"},
    {"action": "subscribe", "channel": "x" * 128, "since": {"offset": 0, "epoch": "e"}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 40, "epoch": "e" * 64}},
    {"action": "unsubscribe", "channel": "p"},
    {"action": "publish", "channel": "p", "data": None},
    {"action": "publish", "channel": "p", "data": {"a": [1]}, "exclude_self": True},
    {"action": "request", "kind": "count", "payload": {"steps": 2}},
    {"action": "cancel", "request_id": "r"},
    {"action": "status", "request_id": "r", "id": "q"},
    {"action": "history", "channel": "p"},
    {"action": "history", "channel": "p", "limit": 10},
    {"action": "refresh", "token": "a.b.c"},
]

INVALID_CLIENT = [
    {},
    {"action": "nope"},
    {"action": "ping", "id": ""},
    {"action": "ping", "id": "p" * 65},
    {"action": "ping", "id": 1},
    {"action": "subscribe"},
    {"action": "subscribe", "channel": "t#p"},
    {"action": "subscribe", "channel": ""},
    {"action": "subscribe", "channel": "x" * 129},
    {"action": "subscribe", "channel": "p", "since": {"offset": -1, "epoch": "e"}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 1.5, "epoch": "e"}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 1, "epoch": ""}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 1, "epoch": "e" * 65}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 1}},
    {"action": "subscribe", "channel": "p", "since": {"offset": 1, "epoch": "e", "x": 1}},
    {"action": "publish", "channel": "p"},
    {"action": "publish", "channel": "p", "data": 1, "exclude_self": "yes"},
    {"action": "request", "kind": "echo", "payload": []},
    {"action": "request", "kind": "", "payload": {}},
    {"action": "cancel"},
    {"action": "status", "request_id": ""},
    {"action": "history", "channel": "p", "limit": 0},
    {"action": "refresh"},
    {"action": "refresh", "token": ""},
]


@pytest.mark.parametrize("frame", VALID_CLIENT, ids=lambda f: str(f["action"]))
def test_valid_client_frames(frame: dict[str, Any]) -> None:
    assert_valid(CLIENT, frame)


@pytest.mark.parametrize("frame", INVALID_CLIENT, ids=lambda f: str(f.get("action")))
def test_invalid_client_frames(frame: dict[str, Any]) -> None:
    assert not CLIENT.is_valid(frame)


INVALID_SERVER = [
    {"type": "pong", "extra": 1},
    {"type": "ack", "action": "publish", "channel": "p"},
    {"type": "ack", "action": "cancel", "request_id": "r", "state": "done"},
    {"type": "error", "code": "oops", "message": "m"},
    {"type": "message", "channel": "p", "message_id": "m", "data": 1, "ts": 1},
    {"type": "token_expiring", "expires_at": 1},
    {"type": "unknown"},
]


@pytest.mark.parametrize("frame", INVALID_SERVER, ids=lambda f: str(f["type"]))
def test_invalid_server_frames(frame: dict[str, Any]) -> None:
    assert not SERVER.is_valid(frame)


# -- the schema covers the code --------------------------------------------------------


def _const(defn: dict[str, Any], field: str) -> Any:
    return defn.get("properties", {}).get(field, {}).get("const")


def test_every_registered_action_has_a_client_frame() -> None:
    refs = [r["$ref"].rsplit("/", 1)[1] for r in SCHEMA["$defs"]["ClientFrame"]["oneOf"]]
    covered = {_const(SCHEMA["$defs"][name], "action") for name in refs}
    assert set(default_actions().names()) <= covered


def test_every_error_code_is_in_the_enum() -> None:
    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.FrameError)}
    codes |= {"cancelled", "failed", "internal"}  # sent by the processor and the dispatcher
    assert codes <= set(SCHEMA["$defs"]["ErrorCode"]["enum"])
