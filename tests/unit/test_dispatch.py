"""Unit tests for chalicelib.dispatch: the action table, permissions and frame ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.auth import Identity
from chalicelib.dispatch import ActionContext, ActionTable, Reply, run
from chalicelib.errors import BadRequest, Forbidden, FrameError, NotFound, UnknownAction
from chalicelib.interfaces import History, RequestStore, Storage
from chalicelib.model import Connection, Outgoing
from chalicelib.protocol import Frame, parse_frame, pong
from chalicelib.registry import default_actions, default_tasks
from chalicelib.settings import Settings


class FakeServices:
    """Services for actions that touch nothing but replies; records them."""

    storage: Storage  # never used by these tests
    requests: RequestStore  # never used by these tests
    history: History | None = None

    def __init__(self) -> None:
        self.settings = Settings(jwt_secret="s" * 32)
        self.tasks = default_tasks()
        self.replies: list[tuple[str, dict[str, Any]]] = []

    def now(self) -> float:
        return 1_700_000_000.0

    def endpoint(self) -> str:
        return "https://example.invalid/dev"

    def reply(self, connection_id: str, frame: dict[str, Any]) -> None:
        self.replies.append((connection_id, frame))

    def send_raw(self, connection_id: str, payload: bytes) -> None:
        self.replies.append((connection_id, json.loads(payload)))

    def disconnect(self, connection_id: str) -> None:
        raise AssertionError("not used")

    def prepare_message(self, tenant_id: str, user_id: str, channel: str,
                        data: Any) -> Outgoing:
        raise AssertionError("not used")

    def fan_out(self, message: Outgoing, exclude: str | None = None) -> None:
        raise AssertionError("not used")


def context(*permissions: str) -> ActionContext:
    identity = Identity(user_id="u1", tenant_id="acme", permissions=frozenset(permissions),
                        expires_at=2_000_000_000, issued_at=0)
    conn = Connection.open("c1", identity, now=1_700_000_000.0, ttl_seconds=60)
    return ActionContext(connection=conn, services=FakeServices(), request_id="req-1")


def frame(action: str, frame_id: str | None = "f1") -> Frame:
    return Frame(action=action, id=frame_id, body={"action": action})


def test_registered_action_is_found() -> None:
    """An added handler is found by its action name, with its permission."""
    table = ActionTable()

    def hello(ctx: ActionContext, fr: Frame) -> Reply:
        return {"type": "hello"}

    table.add("hello", hello, permission="read")
    found = table.get(frame("hello"))
    assert (found.name, found.handler, found.permission) == ("hello", hello, "read")
    assert table.names() == ["hello"]


def test_duplicate_registration_is_value_error() -> None:
    """Registering an action name twice raises ValueError naming it."""
    table = ActionTable()
    table.add("x", lambda ctx, fr: None)
    with pytest.raises(ValueError, match="'x'"):
        table.add("x", lambda ctx, fr: None, permission="write")


def test_unknown_action_carries_frame_id() -> None:
    """An unregistered action is UnknownAction with the frame's id."""
    table = ActionTable()
    with pytest.raises(UnknownAction) as info:
        table.get(frame("nope", "q7"))
    assert info.value.frame_id == "q7"
    assert info.value.code == "unknown_action"
    assert "nope" in info.value.message


def test_unknown_action_message_is_bounded() -> None:
    """The unknown_action message quotes at most 64 characters of the action."""
    with pytest.raises(UnknownAction) as info:
        ActionTable().get(frame("a" * 500))
    assert "a" * 64 in info.value.message
    assert "a" * 65 not in info.value.message


def test_run_returns_handler_reply() -> None:
    """run() calls the handler with the context and frame and returns its reply."""
    table = ActionTable()
    seen: list[tuple[ActionContext, Frame]] = []

    def echo(ctx: ActionContext, fr: Frame) -> Reply:
        seen.append((ctx, fr))
        return {"type": "echo", "id": fr.id}
    table.add("echo", echo)

    ctx, fr = context(), frame("echo")
    assert run(table.get(fr), ctx, fr) == {"type": "echo", "id": "f1"}
    assert seen == [(ctx, fr)]


def test_run_refuses_missing_permission_without_calling_handler() -> None:
    """Without the action's permission, run() raises Forbidden with the frame id, and the
    handler never runs."""
    table = ActionTable()
    calls: list[Frame] = []

    def publish(ctx: ActionContext, fr: Frame) -> Reply:
        calls.append(fr)
        return None
    table.add("publish", publish, permission="write")

    fr = frame("publish", "m1")
    with pytest.raises(Forbidden) as info:
        run(table.get(fr), context("read"), fr)
    assert info.value.message == "write permission required"
    assert info.value.frame_id == "m1"
    assert info.value.code == "forbidden"
    assert calls == []
    assert run(table.get(fr), context("read", "write"), fr) is None
    assert calls == [fr]


def test_action_without_permission_runs_for_anyone() -> None:
    """An action registered without a permission runs for a powerless connection."""
    table = ActionTable()
    table.add("open", lambda ctx, fr: {"type": "ok"})
    assert run(table.get(frame("open")), context(), frame("open")) == {"type": "ok"}


def test_frame_error_from_handler_gets_frame_id() -> None:
    """A FrameError raised without an id by a handler is given the frame's id."""
    table = ActionTable()

    def bad(ctx: ActionContext, fr: Frame) -> Reply:
        raise BadRequest("field 'channel' is required")
    table.add("bad", bad)

    with pytest.raises(BadRequest) as info:
        run(table.get(frame("bad", "b1")), context(), frame("bad", "b1"))
    assert info.value.frame_id == "b1"


def test_frame_error_keeps_its_own_id() -> None:
    """A FrameError that already names an id keeps it."""
    table = ActionTable()

    def lookup(ctx: ActionContext, fr: Frame) -> Reply:
        raise NotFound("no such request", "other-id")
    table.add("lookup", lookup)

    with pytest.raises(NotFound) as info:
        run(table.get(frame("lookup", "l1")), context(), frame("lookup", "l1"))
    assert info.value.frame_id == "other-id"


def test_other_exceptions_pass_through_unchanged() -> None:
    """run() does not wrap or swallow non-FrameError exceptions."""
    table = ActionTable()
    boom = RuntimeError("boom")

    def crash(ctx: ActionContext, fr: Frame) -> Reply:
        raise boom
    table.add("crash", crash)

    with pytest.raises(RuntimeError) as info:
        run(table.get(frame("crash")), context(), frame("crash"))
    assert info.value is boom
    assert not isinstance(info.value, FrameError)


def test_context_reply_goes_to_own_connection() -> None:
    """ActionContext.reply sends the frame to the context's connection."""
    ctx = context()
    ctx.reply({"type": "ack"})
    assert isinstance(ctx.services, FakeServices)
    assert ctx.services.replies == [("c1", {"type": "ack"})]


def test_builtin_actions_are_exactly_the_protocol_ones() -> None:
    """The default table holds exactly the nine docs/protocol.md actions (custom.py adds
    none as shipped), with their permissions."""
    actions = default_actions()
    nine = ["cancel", "history", "ping", "publish", "refresh", "request", "status",
            "subscribe", "unsubscribe"]
    assert actions.names() == nine
    permissions = {name: actions.get(frame(name)).permission for name in nine}
    assert permissions == {"ping": None, "subscribe": "read", "unsubscribe": None,
                           "publish": "write", "request": "write", "cancel": None,
                           "status": None, "history": "read", "refresh": None}


def test_builtin_ping_replies_pong_with_id() -> None:
    """The built-in ping answers pong with the frame id, for any connection."""
    fr = parse_frame('{"action": "ping", "id": "p1"}')
    assert run(default_actions().get(fr), context(), fr) == pong("p1")


def test_builtin_publish_needs_write() -> None:
    """The built-in publish refuses a read-only connection before touching services."""
    fr = parse_frame('{"action": "publish", "id": "m1", "channel": "c", "data": 1}')
    with pytest.raises(Forbidden, match="write permission required"):
        run(default_actions().get(fr), context("read"), fr)
