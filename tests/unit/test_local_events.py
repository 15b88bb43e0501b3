"""The local gateway's API Gateway events: id shape and the optional userAgent."""

from __future__ import annotations

import re

from streamer_local import events
from streamer_local.events import ApiIdentity, ClientInfo

API = ApiIdentity("localapi01", "local", "127.0.0.1:8080")


def test_ids_are_url_safe_and_shaped_like_aws() -> None:
    """Connection and request ids are 16 characters of URL-safe base64 ending in '=',
    never '+' or '/', so they can sit in an @connections path unescaped."""
    ids = [events.new_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{15}=", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_user_agent_is_omitted_when_the_handshake_had_none() -> None:
    """identity carries userAgent only when the client sent a User-Agent header."""
    with_agent = ClientInfo("c1=", 0, "127.0.0.1", "agent/1")
    without = ClientInfo("c2=", 0, "127.0.0.1", None)
    assert events.connect_event(API, with_agent, [], [], server_port=8080)[
        "requestContext"]["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "agent/1"}
    for event in (events.connect_event(API, without, [], [], server_port=8080),
                  events.message_event(API, without, "x"),
                  events.disconnect_event(API, without, 1000, "bye")):
        assert event["requestContext"]["identity"] == {"sourceIp": "127.0.0.1"}
