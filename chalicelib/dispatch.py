"""Routing on the frame's ``action``: a table of actions and the context they get.

An action is a function ``(ActionContext, Frame) -> Reply`` added to an
:class:`ActionTable` by name, explicitly: the built-in ones by
:func:`chalicelib.actions.register` and :func:`chalicelib.request_actions.register`,
an application's own by ``chalicelib/custom.py`` (see the README), all assembled by
:func:`chalicelib.registry.default_actions`. Nothing registers itself on import, so a
test builds the table it needs and no test's action leaks into another's.

The handler returns the reply frame (or ``None`` for no reply) and raises a
:class:`FrameError` to refuse; the dispatcher checks the permission first, sends the
reply, and turns ``FrameError`` into an ``error`` frame with the frame's ``id``.
Pure: no AWS here; the context reaches the outside through the :class:`Services`
interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.errors import Forbidden, FrameError, UnknownAction
from chalicelib.interfaces import History, RequestStore, Storage
from chalicelib.model import Connection, Outgoing
from chalicelib.protocol import Frame
from chalicelib.settings import Settings
from chalicelib.tasks import TaskTable

Reply = dict[str, Any] | None
Handler = Callable[["ActionContext", Frame], Reply]


class Services(Protocol):
    """What actions may use beyond the connection itself."""

    settings: Settings
    storage: Storage
    requests: RequestStore
    tasks: TaskTable
    history: History | None  # None: continuity off (HISTORY_SIZE=0)

    def now(self) -> float: ...

    def endpoint(self) -> str:
        """The @connections endpoint the current event came through."""
        ...

    def reply(self, connection_id: str, frame: dict[str, Any]) -> None: ...

    def send_raw(self, connection_id: str, payload: bytes) -> None: ...

    def disconnect(self, connection_id: str) -> None: ...

    def prepare_message(self, tenant_id: str, user_id: str, channel: str,
                        data: Any) -> Outgoing:
        """Build a channel message; raises TooLarge above the message limit."""
        ...

    def fan_out(self, message: Outgoing, exclude: str | None = None) -> None:
        """Deliver a message to its channel's subscribers (but ``exclude``)."""
        ...


@dataclass(frozen=True)
class ActionContext:
    connection: Connection
    services: Services
    request_id: str

    def reply(self, frame: dict[str, Any]) -> None:
        """Send a frame to this connection now (before the handler returns)."""
        self.services.reply(self.connection.connection_id, frame)


@dataclass(frozen=True)
class Action:
    name: str
    handler: Handler
    permission: str | None


class ActionTable:
    """Actions by name."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def add(self, name: str, handler: Handler, *, permission: str | None = None) -> None:
        """Route frames whose ``action`` is ``name`` to ``handler``, for connections
        holding ``permission`` (any connection when None)."""
        if name in self._actions:
            raise ValueError(f"action {name!r} is registered twice")
        self._actions[name] = Action(name, handler, permission)

    def get(self, frame: Frame) -> Action:
        found = self._actions.get(frame.action)
        if found is None:
            raise UnknownAction(f"unknown action '{frame.action[:64]}'", frame.id)
        return found

    def names(self) -> list[str]:
        return sorted(self._actions)


def run(action: Action, ctx: ActionContext, frame: Frame) -> Reply:
    """Check the action's permission and run it; FrameErrors carry the frame's id."""
    try:
        if action.permission is not None and not ctx.connection.can(action.permission):
            raise Forbidden(f"{action.permission} permission required")
        return action.handler(ctx, frame)
    except FrameError as exc:
        if exc.frame_id is None:
            exc.frame_id = frame.id
        raise

