"""Resume after a reconnect: which held messages a ``subscribe`` with ``since`` replays.

Pure rules over the :class:`~chalicelib.interfaces.History` interface (docs/protocol.md
section 6). A resume recovers only when every missed message is still held: same
epoch, not ahead of the channel, at most ``size`` behind, and no hole in the held
offsets (the history transaction makes a hole final: expired or dropped, never in
flight). Otherwise nothing stale is sent and the client is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.interfaces import History
from chalicelib.model import Position


@dataclass(frozen=True)
class Resume:
    position: Position  # the channel's position the replay runs up to
    recovered: bool
    replay: list[bytes] = field(default_factory=list)


def resume(history: History, tenant_id: str, channel: str, since: Position,
           size: int) -> Resume:
    # The caller has written the subscription row already, so every message after
    # ``current`` reaches this connection live (fan-out reads subscribers after its
    # message is committed); the replay covers the rest.
    current = history.position(tenant_id, channel)
    missed = current.offset - since.offset
    if since.epoch != current.epoch or missed < 0 or missed > size:
        return Resume(current, recovered=False)
    if missed == 0:
        return Resume(current, recovered=True)
    rows = history.read(tenant_id, channel, current.epoch, since.offset, current.offset)
    if [offset for offset, _ in rows] != list(range(since.offset + 1, current.offset + 1)):
        return Resume(current, recovered=False)
    return Resume(current, recovered=True, replay=[payload for _, payload in rows])
