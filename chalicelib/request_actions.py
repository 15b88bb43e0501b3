"""The request actions of PROTOCOL.md section 4: ``request``, ``cancel``, ``status``.

``request`` stores a ``pending`` row and acks at once; the processor (chalicelib/
processor.py), driven by the table's stream, does the work. A request belongs to the
pair (tenant, user): ``cancel`` and ``status`` for anyone else's request answer
``not_found`` exactly as for a request that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib import protocol
from chalicelib.dispatch import ActionContext, ActionTable, Reply
from chalicelib.errors import BadRequest, LimitExceeded, NotFound, StorageError
from chalicelib.leases import expire_abandoned
from chalicelib.model import RequestRecord, RequestState
from chalicelib.protocol import Frame, ack

# Longer ids cannot exist (ours are 32 hex digits); whatever their length (the frame
# bounds it), they answer not_found like any unknown id, as docs/protocol.md says, and
# are never looked up.
MAX_LOOKUP_ID_CHARS = 64


def register(table: ActionTable) -> None:
    table.add("request", request, permission="write")
    table.add("cancel", cancel)
    table.add("status", status)


def request(ctx: ActionContext, frame: Frame) -> Reply:
    kind = frame.string("kind", max_chars=64)
    payload = frame.object("payload")
    tasks = ctx.services.tasks
    task = tasks.get(kind)
    if task is None:
        raise BadRequest(f"unknown kind '{kind}'; known kinds: {', '.join(tasks.kinds())}")
    if task.validate is not None:
        task.validate(payload)
    services, conn = ctx.services, ctx.connection
    now = services.now()
    record = RequestRecord(
        request_id=uuid.uuid4().hex, tenant_id=conn.tenant_id, user_id=conn.user_id,
        connection_id=conn.connection_id, kind=kind, payload=payload, state=RequestState.PENDING,
        endpoint=services.endpoint(), created_at_ms=int(now * 1000),
        expires_at=int(now) + services.settings.result_ttl_seconds,
    )
    # Unfinished requests per connection are bounded: each can hold a processor for
    # minutes and send thousands of frames.
    if not services.storage.reserve_request(conn.connection_id,
                                            services.settings.max_active_requests):
        raise LimitExceeded(
            f"at most {services.settings.max_active_requests} unfinished requests "
            "per connection")
    try:
        services.requests.create(record)
    except StorageError:
        services.storage.release_request(conn.connection_id)
        raise
    return ack(frame.id, "request", request_id=record.request_id)


def _owned(ctx: ActionContext, frame: Frame) -> RequestRecord:
    request_id = frame.string("request_id", max_chars=protocol.MAX_MESSAGE_BYTES)
    if len(request_id) > MAX_LOOKUP_ID_CHARS:
        raise NotFound("no such request")
    record = ctx.services.requests.get(request_id)
    conn = ctx.connection
    if record is None or not record.owned_by(conn.tenant_id, conn.user_id):
        raise NotFound("no such request")
    return record


def cancel(ctx: ActionContext, frame: Frame) -> Reply:
    record = _owned(ctx, frame)
    moved, state = ctx.services.requests.cancel(record.request_id)
    if moved:
        ctx.services.storage.release_request(record.connection_id)
        ctx.services.reply(record.connection_id, protocol.error(
            "cancelled", "request cancelled", request_id=record.request_id))
    return ack(frame.id, "cancel", request_id=record.request_id, state=state or record.state)


def status(ctx: ActionContext, frame: Frame) -> Reply:
    record = _owned(ctx, frame)
    services = ctx.services
    if record.lease_expired(services.now()) and expire_abandoned(
            services.requests, record, services.now(),
            int(services.now()) + services.settings.result_ttl_seconds):
        services.storage.release_request(record.connection_id)
        record = services.requests.get(record.request_id) or record
    return _status_frame(frame.id, _take_over(ctx, record))


def _take_over(ctx: ActionContext, record: RequestRecord) -> RequestRecord:
    """A live request whose connection is gone follows the requester's new connection
    (its progress and result go there), when ``REQUEST_RECONNECT_GRACE_SECONDS`` kept
    it alive. Its connection counts as gone once detached, or once its row is gone
    (``$disconnect`` may come after the reconnect, or never). It takes one of the new
    connection's ``MAX_ACTIVE_REQUESTS`` slots; with none free it is left as it is."""
    services, conn = ctx.services, ctx.connection
    if (services.settings.request_reconnect_grace_seconds <= 0
            or record.state not in (RequestState.PENDING, RequestState.RUNNING)
            or record.connection_id == conn.connection_id):
        return record
    if record.detached_until is None and services.storage.get_connection(
            record.connection_id) is not None:
        return record  # another live connection of the same user holds it
    if not services.storage.reserve_request(conn.connection_id,
                                            services.settings.max_active_requests):
        return record
    adopted = services.requests.adopt(record.request_id, conn.connection_id,
                                      services.endpoint())
    if adopted is None:
        services.storage.release_request(conn.connection_id)
        return services.requests.get(record.request_id) or record
    return adopted


def _status_frame(frame_id: str | None, record: RequestRecord) -> dict[str, Any]:
    """The latest state, with what a client reconnecting mid-job needs to catch up:
    ``seq`` (frames sent so far) and the last progress ``detail``."""
    if record.state == RequestState.SUCCEEDED:
        frame = protocol.request_state(frame_id, record.request_id, record.state,
                                       record.progress, result=record.result)
    else:
        error = None
        if record.state == RequestState.FAILED:
            error = (record.error_code or "failed", record.error_message or "failed")
        frame = protocol.request_state(frame_id, record.request_id, record.state,
                                       record.progress, error=error)
    return protocol.request_catch_up(frame, record.seq, record.detail)
