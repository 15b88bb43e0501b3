"""The interfaces between Streamer's pure core and the outside, in one module.

The core (protocol, dispatch, actions, model, errors, settings, tasks) is written
against these protocols and imports no adapter, so it loads without boto3 or botocore
(``tests/unit/test_imports.py`` checks). Each interface has one real adapter:

    Storage        chalicelib/storage.py        DynamoStorage
    RequestStore   chalicelib/request_store.py  DynamoRequestStore
    Sender         chalicelib/fast_sender.py    FastSender (and ManagementApiSender,
                   chalicelib/management_api.py, boto3's client)
    History        chalicelib/history_store.py  DynamoHistory
    Invoke         chalicelib/runtime.py        Lambda's asynchronous Invoke

In-memory implementations for tests and benchmarks live in ``local/memory.py``; a
contract test runs against both, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from chalicelib.model import Connection, Position, RequestRecord, RequestState

# Invoke a Lambda function asynchronously with a JSON event (the fan-out workers).
Invoke = Callable[[str, dict[str, Any]], None]


class Storage(Protocol):
    """What Streamer asks of its database."""

    def put_connection(self, connection: Connection) -> None: ...

    def get_connection(self, connection_id: str) -> Connection | None: ...

    def user_connections(self, tenant_id: str, user_id: str) -> list[str]: ...

    def subscribe(self, connection: Connection, channel: str, limit: int) -> bool:
        """Add a subscription; False if it existed. Raises LimitExceeded at ``limit``."""
        ...

    def unsubscribe(self, connection: Connection, channel: str) -> bool:
        """Remove a subscription; False if there was none."""
        ...

    def subscribers(self, tenant_id: str, channel: str,
                    shards: list[int] | None = None) -> list[str]:
        """Live subscribers of a channel, in all shards or only ``shards``."""
        ...

    @property
    def shards(self) -> int: ...

    def remove_connection(self, connection_id: str) -> Connection | None:
        """Delete a connection and all its subscriptions; the deleted record, if any."""
        ...

    def refresh(self, connection: Connection, token_expires_at: int,
                permissions: frozenset[str]) -> Connection | None:
        """Give a live connection a new token's expiry and permissions; its
        subscriptions now expire with the new token. None if the connection is gone."""
        ...

    def reserve_request(self, connection_id: str, limit: int) -> bool:
        """Count one more unfinished request on a connection; False at ``limit``."""
        ...

    def release_request(self, connection_id: str) -> None:
        """Count one unfinished request less (nothing if the connection is gone)."""
        ...


class History(Protocol):
    """Channel offsets and the last messages of each channel (docs/protocol.md 6)."""

    def position(self, tenant_id: str, channel: str) -> Position:
        """The channel's last offset and its epoch; a channel with none gets a new
        epoch at offset 0 (stored, so later offsets are counted from it)."""
        ...

    def append(self, tenant_id: str, channel: str,
               encode: Callable[[Position], bytes]) -> tuple[Position, bytes]:
        """Take the channel's next offset and keep the message ``encode`` builds for
        it, atomically: an offset is never visible without its message."""
        ...

    def read(self, tenant_id: str, channel: str, epoch: str, after: int,
             upto: int) -> list[tuple[int, bytes]]:
        """The held messages of ``epoch`` with ``after < offset <= upto``, in offset
        order (expired or dropped ones are missing)."""
        ...


class RequestStore(Protocol):
    """The request state machine's persistence (see chalicelib/request_store.py)."""

    def create(self, record: RequestRecord) -> None: ...

    def get(self, request_id: str) -> RequestRecord | None: ...

    def claim(self, request_id: str, lease_until: float) -> bool:
        """pending -> running; False if it was not pending."""
        ...

    def set_progress(self, request_id: str, progress: float, *, seq: int = 0,
                     detail: dict[str, Any] | None = None) -> RequestRecord | None:
        """Record progress (the ``seq`` of its frame and its ``detail``) while running:
        the record after it (its connection may have changed, see ``adopt``); None if
        no longer running."""
        ...

    def detach(self, request_id: str, connection_id: str, until: float) -> bool:
        """Mark a pending|running request of ``connection_id`` as without a connection
        until ``until``; False if it is final or belongs to another connection now."""
        ...

    def adopt(self, request_id: str, connection_id: str,
              endpoint: str) -> RequestRecord | None:
        """Move a pending|running request to another connection (its frames follow),
        clearing ``detached_until``: the record after it, or None if it is final."""
        ...

    def finish(self, request_id: str, state: RequestState, *, result: Any = None,
               error: tuple[str, str] | None = None, expires_at: int,
               only_if_lease_before: float | None = None, seq: int | None = None) -> bool:
        """running -> succeeded|failed (``seq``: the result frame's); False if no
        longer running."""
        ...

    def cancel(self, request_id: str) -> tuple[bool, RequestState | None]:
        """pending|running -> cancelled: whether this call moved it, and the state after
        the call (None: no such request)."""
        ...

    def abandon(self, request_id: str, message: str, expires_at: int) -> bool:
        """pending|running -> failed with ``message``, for a request the processor cannot
        handle; its payload is replaced by ``{}`` (it may be what could not be read, and
        a final request needs none). False if it was not live."""
        ...

    def for_connection(self, connection_id: str) -> list[str]: ...


class Sender(Protocol):
    """Posts frames to one @connections endpoint (see chalicelib/sending.py)."""

    def post(self, connection_id: str, data: bytes) -> None:
        """Deliver ``data`` to one connection or raise a :class:`SendError`."""
        ...

    def close(self) -> None:
        """Release connections; the sender is not used afterwards."""
        ...


@runtime_checkable
class Disconnects(Protocol):
    """A :class:`Sender` that can also close a connection (@connections DELETE): both
    real senders; test senders that cannot are skipped (the frame was still sent)."""

    def delete(self, connection_id: str) -> None:
        """Close one connection; a gone one is no error."""
        ...
