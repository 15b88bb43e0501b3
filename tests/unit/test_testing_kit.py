"""Unit tests for local.testkit: the events and tokens it builds."""

from __future__ import annotations

import base64
import json
import re
import time

import jwt
import pytest

from local import testkit

SECRET = "kit-secret-0123456789abcdef-012345"
CONTEXT_KEYS = {"routeKey", "eventType", "extendedRequestId", "requestTime",
                "messageDirection", "stage", "connectedAt", "requestTimeEpoch", "identity",
                "requestId", "domainName", "connectionId", "apiId"}


def test_connection_id_shape() -> None:
    """connection_id() is 16 base64 characters (12 bytes), unique per call."""
    ids = {testkit.connection_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9+/]{16}", cid)
        assert len(base64.b64decode(cid)) == 12


def test_connect_event_shape() -> None:
    """connect_event is a $connect/CONNECT event with the token as Authorization query."""
    event = testkit.connect_event("c1=", token="tok", headers={"Origin": "https://a"},
                                  query={"x": "1"}, domain="d.example", stage="prod",
                                  api_id="api1", source_ip="198.51.100.1")
    ctx = event["requestContext"]
    assert set(ctx) == CONTEXT_KEYS
    assert (ctx["routeKey"], ctx["eventType"], ctx["connectionId"]) == (
        "$connect", "CONNECT", "c1=")
    assert (ctx["domainName"], ctx["stage"], ctx["apiId"]) == ("d.example", "prod", "api1")
    assert ctx["identity"] == {"sourceIp": "198.51.100.1"}
    assert ctx["messageDirection"] == "IN"
    assert "messageId" not in ctx
    assert event["queryStringParameters"] == {"x": "1", "Authorization": "tok"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1"], "Authorization": ["tok"]}
    assert event["headers"]["Origin"] == "https://a"
    assert event["headers"]["Host"] == "d.example"
    assert event["headers"]["X-Forwarded-For"] == "198.51.100.1"
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    assert event["isBase64Encoded"] is False
    assert "body" not in event


def test_connect_event_without_token_has_null_query() -> None:
    """Without token or query, the query parameters are null, as API Gateway sends them."""
    event = testkit.connect_event("c1")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None


def test_connect_event_headers_override_defaults() -> None:
    """Given headers replace the defaults of the same name."""
    event = testkit.connect_event("c1", headers={"Host": "other.example"})
    assert event["headers"]["Host"] == "other.example"


def test_context_times_and_ids_are_fresh() -> None:
    """Each event has its own requestId and a current epoch in milliseconds."""
    before = int(time.time() * 1000)
    first = testkit.connect_event("c1")["requestContext"]
    second = testkit.connect_event("c1")["requestContext"]
    after = int(time.time() * 1000)
    assert first["requestId"] != second["requestId"]
    assert before <= first["requestTimeEpoch"] <= after
    assert first["connectedAt"] == first["requestTimeEpoch"]


def test_message_event_with_dict_body() -> None:
    """A dict body is sent as JSON text on a $default/MESSAGE event with a messageId."""
    event = testkit.message_event("c2", {"action": "ping", "id": "p1"})
    ctx = event["requestContext"]
    assert set(ctx) == CONTEXT_KEYS | {"messageId"}
    assert (ctx["routeKey"], ctx["eventType"], ctx["connectionId"]) == (
        "$default", "MESSAGE", "c2")
    assert ctx["identity"] == {"sourceIp": "203.0.113.7"}
    assert ctx["domainName"] == testkit.DEFAULT_DOMAIN
    assert ctx["stage"] == testkit.DEFAULT_STAGE
    assert ctx["apiId"] == testkit.DEFAULT_API_ID
    assert json.loads(event["body"]) == {"action": "ping", "id": "p1"}
    assert event["isBase64Encoded"] is False


def test_message_event_with_text_body_is_verbatim() -> None:
    """A str body is passed through unchanged, even when it is not JSON."""
    event = testkit.message_event("c2", "not json {")
    assert event["body"] == "not json {"
    assert event["isBase64Encoded"] is False


def test_message_event_with_bytes_is_base64() -> None:
    """A bytes body becomes a base64 binary frame."""
    event = testkit.message_event("c2", b"\x00\x01binary")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01binary"


def test_message_ids_differ() -> None:
    """Every message event has its own messageId."""
    first = testkit.message_event("c", {})["requestContext"]["messageId"]
    assert first != testkit.message_event("c", {})["requestContext"]["messageId"]


def test_disconnect_event_shape() -> None:
    """disconnect_event is a $disconnect/DISCONNECT event with status code and reason."""
    event = testkit.disconnect_event("c3", status_code=1001, reason="Going away",
                                     domain="d.example")
    ctx = event["requestContext"]
    assert set(ctx) == CONTEXT_KEYS | {"disconnectStatusCode", "disconnectReason"}
    assert (ctx["routeKey"], ctx["eventType"], ctx["connectionId"]) == (
        "$disconnect", "DISCONNECT", "c3")
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
    assert event["headers"] == {"Host": "d.example"}
    assert event["multiValueHeaders"] == {"Host": ["d.example"]}
    assert event["isBase64Encoded"] is False
    assert "messageId" not in ctx


def test_disconnect_event_defaults() -> None:
    """By default a disconnect is a normal client close (1000)."""
    ctx = testkit.disconnect_event("c3")["requestContext"]
    assert ctx["disconnectStatusCode"] == 1000
    assert ctx["disconnectReason"] == "Client-side close frame status code"


def test_make_token_claims() -> None:
    """make_token signs Streamer's claims with HS256, exp = iat + ttl."""
    before = int(time.time())
    tok = testkit.make_token(SECRET, user_id="u1", tenant_id="acme", permissions=["read"],
                             ttl_seconds=60)
    assert jwt.get_unverified_header(tok)["alg"] == "HS256"
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"])
    assert set(claims) == {"user_id", "tenant_id", "permissions", "iat", "exp"}
    assert (claims["user_id"], claims["tenant_id"], claims["permissions"]) == (
        "u1", "acme", ["read"])
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60


def test_make_token_default_permissions() -> None:
    """make_token grants read and write unless told otherwise."""
    claims = jwt.decode(testkit.make_token(SECRET, user_id="u", tenant_id="t"), SECRET,
                        algorithms=["HS256"])
    assert claims["permissions"] == ["read", "write"]


def test_make_token_extra_claims_add_and_override() -> None:
    """extra_claims add claims and override the defaults."""
    tok = testkit.make_token(SECRET, user_id="u", tenant_id="t", aud="streamer", user_id_=1,
                             iat=123)
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"], options={"verify_aud": False,
                                                                    "verify_iat": False})
    assert claims["aud"] == "streamer"
    assert claims["iat"] == 123
    assert claims["user_id_"] == 1


def test_make_token_algorithm() -> None:
    """make_token signs with the requested algorithm."""
    secret = "k" * 64
    tok = testkit.make_token(secret, user_id="u", tenant_id="t", algorithm="HS512")
    assert jwt.get_unverified_header(tok)["alg"] == "HS512"
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(tok, secret, algorithms=["HS256"])
