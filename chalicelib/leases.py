"""The lease rule of asynchronous requests, shared by the processor and ``status``.

A claimed request is ``running`` until ``lease_until``, the end of the invocation that
claimed it. One still running past its lease had its invocation die (a timeout, a
crash); whoever looks next, a redelivered stream record or a ``status`` frame, fails
it, so no request is ``running`` for ever. Pure: it speaks only to the interface.
"""

from __future__ import annotations

from chalicelib.interfaces import RequestStore
from chalicelib.model import RequestRecord, RequestState

TIME_BUDGET_MESSAGE = "did not finish within the processor's time budget"


def expire_abandoned(store: RequestStore, record: RequestRecord, now: float,
                     expires_at: int) -> bool:
    """Fail a request whose invocation died (running past its lease); False if it was
    not (it moved on, or its lease has not run out)."""
    return store.finish(record.request_id, RequestState.FAILED,
                        error=("failed", TIME_BUDGET_MESSAGE),
                        expires_at=expires_at, only_if_lease_before=now)
