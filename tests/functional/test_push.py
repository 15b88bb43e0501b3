"""Backend push: the ``publish`` Lambda function and the chalicelib.push API."""

from __future__ import annotations

import pytest
from chalice.test import Client

from app import app
from chalicelib import push, runtime
from local import testkit
from tests.functional.conftest import SECRET, Harness


def test_publish_function_fans_out_to_a_channel(harness: Harness) -> None:
    """Invoking publish with a channel delivers to that tenant's subscribers only."""
    mine, other = harness.connect("a", "t1"), harness.connect("b", "t2")
    for conn in (mine, other):
        harness.send(conn, {"action": "subscribe", "channel": "alerts"})
    harness.sink.reset()
    result = harness.push({"tenant_id": "t1", "channel": "alerts", "data": {"level": 3}})
    message = harness.sink.last(mine)
    assert message["type"] == "message" and message["data"] == {"level": 3}
    assert message["sender"] == {"user_id": "system"}
    assert result.payload == {"message_id": message["message_id"]}
    assert harness.sink.received(other) == []


def test_publish_function_sends_to_every_connection_of_a_user(harness: Harness) -> None:
    """Invoking publish with a user_id reaches each of that user's connections in that tenant."""
    phone, laptop = harness.connect("ann", "t1"), harness.connect("ann", "t1")
    namesake, someone = harness.connect("ann", "t2"), harness.connect("bob", "t1")
    result = harness.push({"tenant_id": "t1", "user_id": "ann", "data": "hello"})
    assert result.payload == {"delivered": 2}
    for conn in (phone, laptop):
        assert harness.sink.last(conn)["data"] == "hello"
    assert harness.sink.received(namesake) == [] and harness.sink.received(someone) == []


@pytest.mark.parametrize(
    "event",
    [
        {"channel": "c", "data": 1},
        {"tenant_id": "t1", "data": 1},
        {"tenant_id": "t1", "channel": "c", "user_id": "u", "data": 1},
        {"tenant_id": "t1", "channel": "bad channel", "data": 1},
        {"tenant_id": "t1", "channel": "c"},
        {"tenant_id": "t#1", "channel": "c", "data": 1},
    ],
)
def test_publish_function_refuses_bad_events(harness: Harness, event: dict[str, object]) -> None:
    """A push event without a valid tenant, exactly one target, and data is refused."""
    from chalicelib.errors import BadRequest

    with pytest.raises(BadRequest):
        harness.push(event)


def test_push_api_publishes_and_sends(harness: Harness) -> None:
    """chalicelib.push.publish and send_to_user work from plain Python."""
    conn = harness.connect("zed", "t9")
    harness.send(conn, {"action": "subscribe", "channel": "feed"})
    message_id = push.publish("t9", "feed", [1, 2])
    assert harness.sink.last(conn)["message_id"] == message_id
    assert push.send_to_user("t9", "zed", {"x": 1}) == 1
    assert harness.sink.last(conn)["data"] == {"x": 1}


def test_app_builds_itself_from_the_environment(env: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With only environment variables set, the app wires itself on first invocation."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime.reset()
    try:
        token = testkit.make_token(SECRET, user_id="u", tenant_id="t")
        with Client(app) as client:
            response = client.lambda_.invoke("connect", testkit.connect_event("env1", token=token))
        assert response.payload == {"statusCode": 200}
        assert runtime.streamer().services.storage.get_connection("env1") is not None
    finally:
        runtime.reset()


def test_short_secret_is_refused_at_start(env: dict[str, str]) -> None:
    """A JWT_SECRET under 32 bytes stops the app from building, naming the key."""
    from chalicelib.errors import ConfigError

    with pytest.raises(ConfigError, match="JWT_SECRET"):
        runtime.build({**env, "JWT_SECRET": "short"})


def test_push_data_nested_too_deeply_is_bad_request(harness: Harness) -> None:
    """A backend push whose data cannot be encoded for nesting is BadRequest, not a crash."""
    from chalicelib.errors import BadRequest

    data: list[object] = []
    for _ in range(100_000):  # past every Python's JSON recursion bound (3.13: ~10,000)
        data = [data]
    with pytest.raises(BadRequest, match="nests too deeply"):
        harness.streamer.services.prepare_message("t1", "system", "c", data)
