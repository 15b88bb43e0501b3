"""Fakes for unit tests: the in-memory stores (from local/memory.py) and a recording sender."""

from __future__ import annotations

import threading

from chalicelib.errors import GoneError
from local.memory import MemoryRequestStore as FakeRequestStore
from local.memory import MemoryStorage as FakeStorage

__all__ = ["FakeRequestStore", "FakeStorage", "RecordingSender"]


class RecordingSender:
    """A Sender that records posts and answers 410 for the ids in ``gone``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.gone: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release."""

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            raise GoneError(connection_id)
        with self._lock:
            self.posts.append((connection_id, data))
