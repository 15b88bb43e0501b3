"""$connect and $disconnect through chalice.test.Client, on DynamoDB over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import jwt
import pytest

from local import testkit
from tests.functional.conftest import SECRET, Harness, Output


def test_accepted_handshake_writes_connection_record(harness: Harness) -> None:
    """A valid token is accepted and its connection row holds the claims and a 24 h TTL."""
    before = int(time.time())
    connection_id = harness.connect("alice", "acme", ("read",))
    record = harness.storage.get_connection(connection_id)
    assert record is not None
    assert (record.user_id, record.tenant_id, record.permissions) == ("alice", "acme",
                                                                       frozenset({"read"}))
    assert before + 86_400 <= record.expires_at <= int(time.time()) + 86_400
    assert record.token_expires_at > before
    assert record.connected_at_ms >= before * 1000


def test_header_token_is_accepted(harness: Harness) -> None:
    """A token in an Authorization: Bearer header connects like a query token."""
    status = harness.invoke_connect("hdr1", headers={"authorization": f"Bearer {harness.token()}"})
    assert status == 200
    assert harness.storage.get_connection("hdr1") is not None


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("missing", {}),
        ("garbage", {"token": "not-a-jwt"}),
        ("bad signature", {"token": testkit.make_token("x" * 40, user_id="u", tenant_id="t")}),
        ("expired", {"token": testkit.make_token(SECRET, user_id="u", tenant_id="t",
                                                 ttl_seconds=-10)}),
        ("permissions not a list", {"token": jwt.encode(
            {"user_id": "u", "tenant_id": "t", "permissions": "read",
             "iat": int(time.time()), "exp": int(time.time()) + 60}, SECRET)}),
        ("bad user id", {"token": testkit.make_token(SECRET, user_id="a#b", tenant_id="t")}),
        ("tokens differ", {"token": testkit.make_token(SECRET, user_id="u", tenant_id="t"),
                           "headers": {"Authorization": "Bearer "
                                       + testkit.make_token(SECRET, user_id="v", tenant_id="t")}}),
    ],
)
def test_refused_handshake_is_401_and_writes_nothing(harness: Harness, case: str,
                                                     kwargs: dict[str, object]) -> None:
    """Bad tokens are refused with 401 and no connection row is written."""
    assert harness.invoke_connect("refused1", **kwargs) == 401, case
    assert harness.rows("connections") == []


def test_missing_claim_is_refused(harness: Harness) -> None:
    """A token without tenant_id is refused with 401."""
    now = int(time.time())
    token = jwt.encode({"user_id": "u", "permissions": [], "iat": now, "exp": now + 60}, SECRET)
    assert harness.invoke_connect("c", token=token) == 401


@pytest.mark.parametrize("env_change", [{"ALLOWED_ORIGINS": "https://app.example.com"}])
def test_origin_outside_allow_list_is_403(env: dict[str, str], env_change: dict[str, str],
                                          harness_factory: Callable[[], Harness]) -> None:
    """With ALLOWED_ORIGINS set, a foreign Origin is refused 403; none or an allowed one passes."""
    env.update(env_change)
    h = harness_factory()
    token = h.token()
    assert h.invoke_connect("o1", token=token, headers={"Origin": "https://evil.example"}) == 403
    assert h.rows("connections") == []
    assert h.invoke_connect("o2", token=token, headers={"Origin": "https://app.example.com"}) == 200
    assert h.invoke_connect("o3", token=token) == 200


def test_token_never_reaches_the_logs(harness: Harness, output: Output) -> None:
    """Neither an accepted nor a refused token appears in any log line."""
    good = harness.token()
    bad = testkit.make_token("y" * 40, user_id="u", tenant_id="t")
    assert harness.invoke_connect("g1", token=good) == 200
    assert harness.invoke_connect("b1", token=bad) == 401
    out = json.dumps(output())
    assert "handshake refused" in out and "connection established" in out
    for token in (good, bad):
        assert token not in out
        assert token.split(".")[2] not in out


def test_connect_logs_and_metrics(harness: Harness, output: Output) -> None:
    """An accepted connect logs connection, user and tenant and emits ConnectionEstablished."""
    connection_id = harness.connect("bob", "acme")
    lines = output()
    logs = [line for line in lines if line.get("message") == "connection established"]
    assert logs and logs[0]["connection_id"] == connection_id
    assert (logs[0]["user_id"], logs[0]["tenant_id"]) == ("bob", "acme")
    assert logs[0]["request_id"]
    assert any(line.get("ConnectionEstablished") == [1.0] for line in lines)


def test_disconnect_leaves_no_rows(harness: Harness, output: Output) -> None:
    """Disconnect deletes the connection and all its subscriptions and emits duration metrics."""
    connection_id = harness.connect()
    other = harness.connect("u2")
    for n in range(30):  # more than one BatchWriteItem's worth, across shards
        reply = harness.send(connection_id, {"action": "subscribe", "channel": f"ch{n}"})
        assert reply["type"] == "ack"
    harness.send(other, {"action": "subscribe", "channel": "ch1"})
    harness.disconnect(connection_id)
    assert [r["connection_id"]["S"] for r in harness.rows("connections")] == [other]
    assert [r["connection_id"]["S"] for r in harness.rows("subscriptions")] == [other]
    lines = output()
    metric = [line for line in lines if "ConnectionDisconnected" in line]
    assert metric and metric[0]["ConnectionDuration"][0] >= 0
    assert any(line.get("message") == "connection closed" for line in lines)


def test_disconnect_of_unknown_connection_is_harmless(harness: Harness) -> None:
    """A $disconnect for a connection with no row (already cleaned up) succeeds."""
    harness.disconnect("never-connected")
    assert harness.rows("connections") == []
