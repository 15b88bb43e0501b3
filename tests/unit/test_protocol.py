"""Unit tests for chalicelib.protocol: parsing client frames and building server frames."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import BadRequest, FrameError, TooLarge
from chalicelib.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    Frame,
    ack,
    encode,
    error,
    message,
    nesting,
    parse_frame,
    pong,
    progress,
    request_state,
    result,
)

CHANNEL_CHARS = string.ascii_letters + string.digits + "_.:-"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def frame(**body: Any) -> Frame:
    """A parsed frame with ``body`` (plus action 'x' unless given)."""
    return parse_frame(json.dumps({"action": "x", **body}))


# -- parse_frame: refusals ---------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", b""])
def test_empty_frame_is_bad_request(raw: str | bytes | None) -> None:
    """A missing or empty body is bad_request."""
    with pytest.raises(BadRequest):
        parse_frame(raw)


@pytest.mark.parametrize("raw", ["{", "action", "{'action': 'ping'}", '{"action": "ping",}',
                                 b"\xff\xfe\x00", b"\x80abc", "ping"])
def test_not_json_is_bad_request(raw: str | bytes) -> None:
    """A body that is not JSON is bad_request with no frame id."""
    with pytest.raises(BadRequest) as info:
        parse_frame(raw)
    assert info.value.code == "bad_request"
    assert info.value.frame_id is None


@pytest.mark.parametrize("raw", ['["action", "ping"]', "42", '"ping"', "null", "true", "1.5"])
def test_json_non_object_is_bad_request(raw: str) -> None:
    """A JSON value other than an object is bad_request 'must be a JSON object'."""
    with pytest.raises(BadRequest, match="object"):
        parse_frame(raw)


@pytest.mark.parametrize("body", [{}, {"action": ""}, {"action": None}, {"action": 1},
                                  {"action": ["ping"]}, {"action": {"n": "ping"}}])
def test_missing_or_bad_action_is_bad_request(body: dict[str, Any]) -> None:
    """A missing, empty or non-string action is bad_request naming 'action'."""
    with pytest.raises(BadRequest, match="'action'"):
        parse_frame(json.dumps(body))


def test_bad_action_echoes_the_frame_id() -> None:
    """Once the id has been parsed, an error about the action carries it."""
    with pytest.raises(BadRequest) as info:
        parse_frame('{"id": "m7", "action": 3}')
    assert info.value.frame_id == "m7"


@pytest.mark.parametrize("frame_id", ["", 5, ["a"], {"a": 1}, True, "i" * 65])
def test_bad_id_is_bad_request_without_id(frame_id: object) -> None:
    """An id that is not a 1-64 character string is bad_request naming 'id', not echoed."""
    with pytest.raises(BadRequest, match="'id'") as info:
        parse_frame(json.dumps({"action": "ping", "id": frame_id}))
    assert info.value.frame_id is None


@given(st.text(min_size=65, max_size=200))
def test_ids_over_64_chars_rejected(frame_id: str) -> None:
    """Any id over 64 characters is refused."""
    with pytest.raises(BadRequest, match="'id'"):
        parse_frame(json.dumps({"action": "ping", "id": frame_id}))


@given(st.text(min_size=1, max_size=64))
def test_ids_of_1_to_64_chars_accepted(frame_id: str) -> None:
    """Any 1-64 character id is accepted and kept verbatim."""
    assert parse_frame(json.dumps({"action": "ping", "id": frame_id})).id == frame_id


def test_null_id_means_no_id() -> None:
    """An explicit null id is the same as no id."""
    assert parse_frame('{"action": "ping", "id": null}').id is None


def test_oversized_frame_is_too_large() -> None:
    """A frame over 128 KiB is too_large, before any JSON parsing."""
    big = json.dumps({"action": "publish", "data": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(TooLarge) as info:
        parse_frame(big)
    assert info.value.code == "too_large"
    with pytest.raises(TooLarge):
        parse_frame(b"{" * (MAX_MESSAGE_BYTES + 1))


def test_size_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    """Exactly 128 KiB of UTF-8 is accepted; a multi-byte string just over it is too_large."""
    skeleton = '{"action":"p","d":""}'
    exact = skeleton[:-2] + "x" * (MAX_MESSAGE_BYTES - len(skeleton)) + '"}'
    assert len(exact.encode()) == MAX_MESSAGE_BYTES
    assert parse_frame(exact).action == "p"
    chars = (MAX_MESSAGE_BYTES - len(skeleton)) // 2 + 1
    over = skeleton[:-2] + "é" * chars + '"}'
    assert len(over) <= MAX_MESSAGE_BYTES < len(over.encode())
    with pytest.raises(TooLarge):
        parse_frame(over)


def test_parses_text_and_bytes_alike() -> None:
    """A UTF-8 bytes body parses like the same text."""
    text = '{"action": "publish", "id": "é1", "channel": "c", "data": {"k": [1, "ü"]}}'
    assert parse_frame(text) == parse_frame(text.encode())
    parsed = parse_frame(text)
    assert (parsed.action, parsed.id) == ("publish", "é1")
    assert parsed.body["data"] == {"k": [1, "ü"]}


@given(st.text() | st.binary())
def test_parse_frame_raises_only_frame_errors_on_any_input(raw: str | bytes) -> None:
    """Arbitrary text or bytes either parse or raise a FrameError."""
    try:
        parsed = parse_frame(raw)
    except FrameError:
        return
    assert isinstance(parsed.action, str) and parsed.action


@given(st.dictionaries(st.sampled_from(["action", "id", "channel", "data"]) | st.text(max_size=6),
                       json_values, max_size=6))
def test_parse_frame_on_json_objects(body: dict[str, Any]) -> None:
    """A JSON object parses exactly when its action is a non-empty string and its id is
    absent, null or 1-64 characters; the Frame keeps the whole body."""
    action, frame_id = body.get("action"), body.get("id")
    valid = (isinstance(action, str) and action != ""
             and (frame_id is None or (isinstance(frame_id, str) and 0 < len(frame_id) <= 64)))
    if not valid:
        with pytest.raises(BadRequest):
            parse_frame(json.dumps(body))
        return
    parsed = parse_frame(json.dumps(body))
    assert (parsed.action, parsed.id) == (action, frame_id)
    assert parsed.body == body


def test_deeply_nested_json_is_bad_request() -> None:
    """A deeply nested (but small) frame is bad_request, not a RecursionError."""
    with pytest.raises(BadRequest):
        parse_frame("[" * 100_000)


def nested_publish(levels: int) -> str:
    """A publish frame of ``levels`` levels in all: the frame object, then arrays."""
    inner = levels - 1
    return '{"action":"publish","channel":"c","id":"n1","data":' + "[" * inner + "]" * inner + "}"


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 200, 900])
def test_frame_nested_past_the_bound_is_bad_request_with_its_id(levels: int) -> None:
    """A frame nesting deeper than MAX_NESTING, but parseable, is bad_request carrying
    the frame's id."""
    with pytest.raises(BadRequest) as info:
        parse_frame(nested_publish(levels))
    assert info.value.frame_id == "n1"
    assert str(MAX_NESTING) in info.value.message


@pytest.mark.parametrize("levels", [980, 995, 5000])
def test_frame_nested_near_the_recursion_limit_is_bad_request(levels: int) -> None:
    """Around Python's recursion limit (~980 levels, where the parser may or may not
    give up, depending on the caller's stack) the answer is still bad_request."""
    with pytest.raises(BadRequest) as info:
        parse_frame(nested_publish(levels))
    assert str(MAX_NESTING) in info.value.message


def test_frame_at_the_nesting_bound_is_accepted() -> None:
    """A frame of exactly MAX_NESTING levels parses, and its data re-encodes."""
    parsed = parse_frame(nested_publish(MAX_NESTING))
    assert nesting(parsed.body) == MAX_NESTING
    encode(parsed.body)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """Many brackets inside a string are text, not nesting: the frame is accepted."""
    raw = json.dumps({"action": "publish", "channel": "c", "data": "[{" * 500})
    assert parse_frame(raw).body["data"] == "[{" * 500


def _recursive_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_recursive_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_recursive_depth(v) for v in value), default=0)
    return 0


@given(json_values)
def test_nesting_counts_levels_like_a_recursive_walk(value: Any) -> None:
    """nesting() agrees with the obvious recursive definition on any JSON value."""
    assert nesting(value) == _recursive_depth(value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_bad_request(constant: str) -> None:
    """NaN and Infinity are not JSON, so a frame holding them is bad_request."""
    with pytest.raises(BadRequest):
        parse_frame('{"action": "publish", "channel": "c", "data": ' + constant + "}")


@pytest.mark.parametrize("raw", [
    '{"action": "ping", "id": "\\ud800"}',
    '{"action": "\\udfff"}',
    "\ud800",
])
def test_accepted_frames_can_always_be_answered(raw: str) -> None:
    """A frame is either refused with FrameError or its id/action can be echoed in a reply."""
    try:
        parsed = parse_frame(raw)
    except FrameError:
        return
    encode(pong(parsed.id))
    encode(error("unknown_action", f"unknown action '{parsed.action}'", parsed.id))


def test_lone_surrogate_in_text_body_is_bad_request() -> None:
    """A str body that cannot be UTF-8 (a lone surrogate) is bad_request."""
    with pytest.raises(BadRequest):
        parse_frame("\ud800")


def test_encode_escapes_lone_surrogates() -> None:
    """A frame holding a lone surrogate is still encoded, as ASCII JSON that round-trips."""
    data = encode(pong("\ud800"))
    assert data == b'{"type":"pong","id":"\\ud800"}'
    assert json.loads(data) == {"type": "pong", "id": "\ud800"}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_non_json_numbers(value: float) -> None:
    """encode never writes NaN or Infinity; it raises ValueError instead."""
    with pytest.raises(ValueError):
        encode({"type": "message", "data": [value]})


# -- Frame accessors ---------------------------------------------------------


def test_string_accessor() -> None:
    """string() returns a 1..max_chars string and refuses others naming the field."""
    assert frame(kind="echo").string("kind") == "echo"
    assert frame(kind="k" * 256).string("kind") == "k" * 256
    assert frame(kind="abc").string("kind", max_chars=3) == "abc"
    for value in ["", "k" * 257, 1, None, ["a"], {"a": 1}]:
        with pytest.raises(BadRequest, match="'kind'"):
            frame(kind=value).string("kind")
    with pytest.raises(BadRequest, match="'kind'"):
        frame(kind="abcd").string("kind", max_chars=3)


def test_missing_field_is_bad_request_naming_it() -> None:
    """Every accessor of a required field refuses its absence naming the field."""
    parsed = frame()
    for read in (parsed.string, parsed.channel, parsed.json_value, parsed.object):
        with pytest.raises(BadRequest, match="'wanted' is required"):
            read("wanted")


@given(st.text(max_size=140))
def test_channel_accepts_exactly_the_charset(name: str) -> None:
    """channel() accepts exactly 1-128 characters of [A-Za-z0-9_.:-]."""
    valid = 0 < len(name) <= 128 and all(c in CHANNEL_CHARS for c in name)
    parsed = frame(channel=name)
    if valid:
        assert parsed.channel() == name
    else:
        with pytest.raises(BadRequest, match="'channel'"):
            parsed.channel()


@given(st.text(alphabet=CHANNEL_CHARS, min_size=1, max_size=128))
def test_every_charset_channel_accepted(name: str) -> None:
    """Every 1-128 character string of the channel charset is a channel."""
    assert frame(channel=name).channel() == name


@pytest.mark.parametrize("value", ["a#b", "", "c" * 129, "a b", "a/b", "prices\n", "ü",
                                   "acme#prices", 5, None, ["p"]])
def test_bad_channels_refused(value: object) -> None:
    """Channel names with other characters, wrong length or type are bad_request."""
    with pytest.raises(BadRequest, match="'channel'"):
        frame(channel=value).channel()


def test_channel_accessor_other_field_name() -> None:
    """channel(name) validates a differently named field."""
    assert frame(target="t:1").channel("target") == "t:1"
    with pytest.raises(BadRequest, match="'target'"):
        frame(target="t#1").channel("target")


@pytest.mark.parametrize("value", [None, 0, False, "", [], {}, {"a": [1, None]}, 1.5])
def test_json_value_returns_any_present_value(value: Any) -> None:
    """json_value returns whatever JSON value is present, null and falsy ones included."""
    assert frame(data=value).json_value("data") == value


def test_json_value_null_present_differs_from_missing() -> None:
    """A null field is present (returns None); an absent one is bad_request."""
    assert frame(data=None).json_value("data") is None
    with pytest.raises(BadRequest, match="'data'"):
        frame().json_value("data")


def test_object_accessor() -> None:
    """object() returns a JSON object and refuses any other value naming the field."""
    assert frame(payload={"n": 1}).object("payload") == {"n": 1}
    assert frame(payload={}).object("payload") == {}
    values: list[object] = [None, [], "x", 1, True]
    for value in values:
        with pytest.raises(BadRequest, match="'payload' must be an object"):
            frame(payload=value).object("payload")


def test_flag_accessor() -> None:
    """flag() returns a boolean, the default when absent, and refuses non-booleans."""
    assert frame(exclude_self=True).flag("exclude_self") is True
    assert frame(exclude_self=False).flag("exclude_self", default=True) is False
    assert frame().flag("exclude_self") is False
    assert frame().flag("exclude_self", default=True) is True
    values: list[object] = [None, 1, 0, "true", [], {}]
    for value in values:
        with pytest.raises(BadRequest, match="'exclude_self'"):
            frame(exclude_self=value).flag("exclude_self")


# -- builders ----------------------------------------------------------------


def test_pong_shape() -> None:
    """pong is {"type": "pong", "id": ...}, without id when the frame had none."""
    assert pong("p1") == {"type": "pong", "id": "p1"}
    assert pong(None) == {"type": "pong"}


def test_ack_shapes() -> None:
    """ack carries type, id, action and the given fields, exactly as in PROTOCOL.md."""
    assert ack("s1", "subscribe", channel="prices") == {
        "type": "ack", "id": "s1", "action": "subscribe", "channel": "prices"}
    assert ack("m1", "publish", channel="prices", message_id="abc") == {
        "type": "ack", "id": "m1", "action": "publish", "channel": "prices",
        "message_id": "abc"}
    assert ack(None, "unsubscribe", channel="c") == {
        "type": "ack", "action": "unsubscribe", "channel": "c"}


def test_error_shapes() -> None:
    """error carries type, code, message, the id when known, and extra fields."""
    assert error("forbidden", "write permission required", "m1") == {
        "type": "error", "id": "m1", "code": "forbidden",
        "message": "write permission required"}
    assert error("bad_request", "frame is not valid JSON") == {
        "type": "error", "code": "bad_request", "message": "frame is not valid JSON"}
    assert error("cancelled", "cancelled by client", request_id="r9") == {
        "type": "error", "request_id": "r9", "code": "cancelled",
        "message": "cancelled by client"}


def test_message_shape() -> None:
    """message is the PROTOCOL.md message frame with sender and ts."""
    assert message("prices", "mid", {"p": 1}, "u1", 1764000000123) == {
        "type": "message", "channel": "prices", "message_id": "mid", "data": {"p": 1},
        "sender": {"user_id": "u1"}, "ts": 1764000000123}
    assert message("c", "m", None, "u", 0)["data"] is None


def test_user_message_has_no_channel() -> None:
    """A message pushed to a user (channel None) carries no channel field."""
    assert message(None, "mid", 1, "system", 5) == {
        "type": "message", "message_id": "mid", "data": 1, "sender": {"user_id": "system"},
        "ts": 5}


def test_request_lifecycle_shapes() -> None:
    """progress, result and request (status) frames are PROTOCOL.md section 3's."""
    assert progress("r1", 0.5, {"step": 1}, 1) == {
        "type": "progress", "request_id": "r1", "progress": 0.5, "detail": {"step": 1},
        "seq": 1}
    assert result("r1", {"count": 3}, 4) == {"type": "result", "request_id": "r1",
                                             "data": {"count": 3}, "seq": 4}
    assert result("r1", None, 1) == {"type": "result", "request_id": "r1", "data": None,
                                     "seq": 1}
    assert request_state("q1", "r1", "running", 0.5) == {
        "type": "request", "id": "q1", "request_id": "r1", "state": "running", "progress": 0.5}
    assert request_state("q2", "r1", "succeeded", 1.0, result=None) == {
        "type": "request", "id": "q2", "request_id": "r1", "state": "succeeded",
        "progress": 1.0, "result": None}
    assert request_state(None, "r1", "failed", 0.2, error=("failed", "boom")) == {
        "type": "request", "request_id": "r1", "state": "failed", "progress": 0.2,
        "error": {"code": "failed", "message": "boom"}}


# -- encode ------------------------------------------------------------------


def test_encode_is_compact_utf8() -> None:
    """encode writes JSON without spaces and non-ASCII as raw UTF-8, not \\u escapes."""
    data = encode({"type": "message", "data": {"k": ["ü", 1]}, "z": "€"})
    assert data == '{"type":"message","data":{"k":["ü",1]},"z":"€"}'.encode()
    assert b"\\u" not in data
    assert isinstance(data, bytes)


@given(json_values)
def test_encode_round_trips(value: Any) -> None:
    """Whatever encode writes parses back to the same value."""
    assert json.loads(encode({"type": "message", "data": value})) == {
        "type": "message", "data": value}
