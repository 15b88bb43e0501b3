"""One in-memory store, served from the process that holds it to Lambda worker processes.

The fan-out benchmark's worker-process variant runs the ``fanout`` workers in processes
of their own (``streamer_local.lambda_processes``), as separate Lambda instances. They need the
subscriptions the gateway's process holds in a :class:`local.memory.MemoryStorage`;
moto would serve them too, but its Query sorts the whole table and serializes every
item (about 4 s for 10,000 rows over 16 shards), so the benchmark would measure moto.

:func:`serve` shares the one store with a :class:`multiprocessing.managers.BaseManager`
on a unix socket in Linux's abstract namespace (no file to clean up, never a network
address), authenticated with a random key, its accepting and serving threads in the
holder's process (the store is *not* copied: there is one set of rows). It returns
the environment variables that tell a worker where to connect; :func:`connect` (in
the worker, e.g. from a ``ProcessInvoker`` setup hook) returns a
:class:`StorageClient`, a :class:`chalicelib.storage.Storage` whose every call is one
round trip to the store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from multiprocessing.managers import BaseManager, BaseProxy
from typing import Any

from chalicelib.errors import StorageError
from chalicelib.model import Connection
from local.memory import MemoryStorage

ADDRESS = "SHARED_STORAGE_ADDRESS"  # the abstract socket's name, without its leading NUL
AUTHKEY = "SHARED_STORAGE_SECRET"  # "SECRET": bench.servers never announces it
SHARDS = "SHARED_STORAGE_SHARDS"
# The Storage protocol's methods (not the shard count: an attribute, sent in the env).
EXPOSED = ("put_connection", "get_connection", "user_connections", "subscribe",
           "unsubscribe", "subscribers", "remove_connection", "reserve_request",
           "release_request")


class _Client(BaseManager):
    """The worker side: ``storage()`` returns a proxy to the served store."""


_Client.register("storage")


def serve(storage: MemoryStorage) -> dict[str, str]:
    """Serve ``storage`` from this process (daemon threads, until it exits); the
    environment variables :func:`connect` needs."""

    class Server(BaseManager):
        pass

    Server.register("storage", callable=lambda: storage, exposed=EXPOSED)
    name = f"streamer-storage-{os.getpid()}-{os.urandom(8).hex()}"
    authkey = os.urandom(32)
    server = Server(address="\0" + name, authkey=authkey).get_server()  # listening now
    threading.Thread(target=server.serve_forever, name="shared-storage",
                     daemon=True).start()
    return {ADDRESS: name, AUTHKEY: authkey.hex(), SHARDS: str(storage.shards)}


def connect(env: Mapping[str, str]) -> StorageClient:
    """A :class:`StorageClient` for the store :func:`serve` described in ``env``."""
    manager = _Client(address="\0" + env[ADDRESS], authkey=bytes.fromhex(env[AUTHKEY]))
    manager.connect()
    proxy: BaseProxy = getattr(manager, "storage")()  # noqa: B009 (registered at runtime)
    return StorageClient(proxy, int(env[SHARDS]))


class StorageClient:
    """:class:`chalicelib.storage.Storage` over a manager proxy of a MemoryStorage.

    Results cross the socket pickled and are checked back into the protocol's types
    here; a broken socket becomes :class:`StorageError`, as a database error would.
    Errors the store raises on purpose (``LimitExceeded``) arrive as themselves.
    """

    def __init__(self, proxy: BaseProxy, shards: int) -> None:
        self._proxy = proxy
        self._shards = shards

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return self._proxy._callmethod(method, args)
        except (OSError, EOFError) as exc:
            raise StorageError(f"shared storage unreachable: {exc!r}") from exc

    @property
    def shards(self) -> int:
        return self._shards

    def put_connection(self, connection: Connection) -> None:
        self._call("put_connection", connection)

    def get_connection(self, connection_id: str) -> Connection | None:
        return _connection_or_none(self._call("get_connection", connection_id))

    def user_connections(self, tenant_id: str, user_id: str) -> list[str]:
        return _strings(self._call("user_connections", tenant_id, user_id))

    def subscribe(self, connection: Connection, channel: str, limit: int) -> bool:
        return bool(self._call("subscribe", connection, channel, limit))

    def unsubscribe(self, connection: Connection, channel: str) -> bool:
        return bool(self._call("unsubscribe", connection, channel))

    def subscribers(self, tenant_id: str, channel: str,
                    shards: list[int] | None = None) -> list[str]:
        return _strings(self._call("subscribers", tenant_id, channel, shards))

    def remove_connection(self, connection_id: str) -> Connection | None:
        return _connection_or_none(self._call("remove_connection", connection_id))

    def reserve_request(self, connection_id: str, limit: int) -> bool:
        return bool(self._call("reserve_request", connection_id, limit))

    def release_request(self, connection_id: str) -> None:
        self._call("release_request", connection_id)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StorageError(f"shared storage answered {type(value).__name__}, not list[str]")
    return value


def _connection_or_none(value: Any) -> Connection | None:
    if value is not None and not isinstance(value, Connection):
        raise StorageError(f"shared storage answered {type(value).__name__}, not Connection")
    return value
