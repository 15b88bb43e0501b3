"""The app assembled by runtime.build over in-memory fakes: endpoint choice and replies."""

from __future__ import annotations

import json

from chalicelib.errors import StorageError
from chalicelib.interfaces import Sender
from chalicelib.model import Connection
from chalicelib.runtime import build
from chalicelib.settings import Settings
from chalicelib.streamer import Streamer
from local import testkit
from local.memory import MemoryHistory
from tests.support.fakes import FakeRequestStore, FakeStorage, RecordingSender

SECRET = "unit-test-secret-0123456789abcdefgh"


def make(ws_endpoint_url: str | None = None) -> tuple[Streamer, RecordingSender, list[str]]:
    sender = RecordingSender()
    endpoints: list[str] = []

    def factory(endpoint: str) -> Sender:
        endpoints.append(endpoint)
        return sender

    settings = Settings(jwt_secret=SECRET, ws_endpoint_url=ws_endpoint_url)
    streamer = build(settings=settings, storage=FakeStorage(), requests=FakeRequestStore(),
                     history=MemoryHistory(), sender_factory=factory)
    return streamer, sender, endpoints


def connect(streamer: Streamer, connection_id: str) -> None:
    token = testkit.make_token(SECRET, user_id="u", tenant_id="t")
    assert streamer.connect(testkit.connect_event(connection_id, token=token)) == {
        "statusCode": 200}


def test_endpoint_comes_from_the_event_domain_and_stage() -> None:
    """Without WS_ENDPOINT_URL the sender targets https://{domainName}/{stage} of the event."""
    streamer, sender, endpoints = make()
    connect(streamer, "c1")
    streamer.message(testkit.message_event("c1", {"action": "ping"}, domain="x.example",
                                           stage="prod"))
    assert endpoints == ["https://x.example/prod"]
    assert sender.posts == [("c1", b'{"type":"pong"}')]


def test_configured_endpoint_wins_over_the_event() -> None:
    """WS_ENDPOINT_URL, when set, is the endpoint whatever the event says."""
    streamer, _, endpoints = make("http://127.0.0.1:9/local")
    connect(streamer, "c1")
    streamer.message(testkit.message_event("c1", {"action": "ping"}))
    assert endpoints == ["http://127.0.0.1:9/local"]


def test_reply_to_a_gone_client_removes_it() -> None:
    """A 410 on a connection's own reply deletes that connection."""
    streamer, sender, _ = make()
    connect(streamer, "c1")
    sender.gone.add("c1")
    streamer.message(testkit.message_event("c1", {"action": "ping"}))
    assert streamer.services.storage.get_connection("c1") is None


def test_publish_delivers_to_subscribers_in_memory() -> None:
    """Subscribe then publish over the fakes delivers one message per subscriber."""
    streamer, sender, _ = make()
    for cid in ("a", "b"):
        connect(streamer, cid)
        streamer.message(testkit.message_event(cid, {"action": "subscribe", "channel": "c"}))
    sender.posts.clear()
    streamer.message(testkit.message_event("a", {"action": "publish", "channel": "c",
                                                 "data": 1, "exclude_self": True}))
    kinds = sorted((cid, json.loads(data)["type"]) for cid, data in sender.posts)
    assert kinds == [("a", "ack"), ("b", "message")]


class BrokenStorage(FakeStorage):
    """Storage whose subscribe fails the way DynamoDB can."""

    def subscribe(self, connection: Connection, channel: str, limit: int) -> bool:
        raise StorageError("injected: TransactWriteItems failed")


def test_storage_failure_answers_internal_and_the_connection_stays_usable() -> None:
    """A DynamoDB failure inside an action gives an internal error frame with the frame's id."""
    sender = RecordingSender()
    settings = Settings(jwt_secret=SECRET)
    streamer = build(settings=settings, storage=BrokenStorage(), requests=FakeRequestStore(),
                     history=MemoryHistory(), sender_factory=lambda endpoint: sender)
    connect(streamer, "c1")
    streamer.message(testkit.message_event("c1", {"action": "subscribe", "channel": "x",
                                                  "id": "s"}))
    streamer.message(testkit.message_event("c1", {"action": "ping", "id": "p"}))
    frames = [json.loads(data) for _, data in sender.posts]
    assert frames == [{"type": "error", "code": "internal", "message": "internal error",
                       "id": "s"}, {"type": "pong", "id": "p"}]


def test_build_over_fakes_loads_no_boto3() -> None:
    """Assembling the app over given adapters builds no AWS client: the defaults that
    need one (the idempotency store) wait for their first use."""
    import subprocess
    import sys

    code = ("from chalicelib.runtime import build\n"
            "from chalicelib.settings import Settings\n"
            "from local.memory import MemoryHistory, MemoryRequestStore, MemoryStorage\n"
            "import sys\n"
            "before = set(sys.modules)\n"
            "build(settings=Settings(jwt_secret='s' * 32), storage=MemoryStorage(),\n"
            "      requests=MemoryRequestStore(), history=MemoryHistory(),\n"
            "      sender_factory=lambda endpoint: None)\n"
            "print(sorted(m for m in set(sys.modules) - before\n"
            "             if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"
