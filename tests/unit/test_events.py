"""Unit tests for chalicelib.events: reading API Gateway WebSocket events."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chalicelib import events
from local import testkit


def test_context_from_event() -> None:
    """WsContext takes the connection id, request id, domain and stage from requestContext."""
    event = {"requestContext": {"connectionId": "c1=", "requestId": "r1",
                                "domainName": "x.example", "stage": "prod", "other": 1}}
    assert events.WsContext.from_event(event) == events.WsContext(
        connection_id="c1=", request_id="r1", domain_name="x.example", stage="prod")


def test_context_of_empty_event_is_empty_strings() -> None:
    """An event without requestContext gives empty strings, not an exception."""
    for event in ({}, {"requestContext": None}):
        ctx = events.WsContext.from_event(event)
        assert (ctx.connection_id, ctx.request_id, ctx.domain_name, ctx.stage) == (
            "", "", "", "")


def test_endpoint_url_is_https_domain_and_stage() -> None:
    """endpoint_url is the @connections endpoint https://domain/stage."""
    ctx = events.WsContext("c", "r", "abc.execute-api.eu-west-1.amazonaws.com", "dev")
    assert ctx.endpoint_url() == "https://abc.execute-api.eu-west-1.amazonaws.com/dev"


def test_context_from_kit_events() -> None:
    """The testing kit's events give WsContext the values they were built with."""
    for event in (testkit.connect_event("c1", domain="d.example", stage="s"),
                  testkit.message_event("c1", {"action": "ping"}, domain="d.example",
                                        stage="s"),
                  testkit.disconnect_event("c1", domain="d.example", stage="s")):
        ctx = events.WsContext.from_event(event)
        assert (ctx.connection_id, ctx.domain_name, ctx.stage) == ("c1", "d.example", "s")
        assert ctx.request_id == event["requestContext"]["requestId"]


def test_query_values_keep_every_value_of_a_repeated_parameter() -> None:
    """query_values reads the multi-value map (the single one keeps only the last)."""
    event: dict[str, Any] = {"queryStringParameters": {"a": "2"},
                             "multiValueQueryStringParameters": {"a": ["1", "2"]}}
    assert events.query_values(event) == {"a": ["1", "2"]}
    assert events.query_values({"queryStringParameters": {"a": "1"}}) == {"a": ["1"]}
    for empty in ({}, {"queryStringParameters": None,
                       "multiValueQueryStringParameters": None}):
        assert events.query_values(empty) == {}


def test_header_values_merge_names_that_differ_in_case() -> None:
    """header_values gives each lower-cased name every value, from the multi-value map."""
    event: dict[str, Any] = {
        "headers": {"Authorization": "a", "authorization": "b", "Host": "h"},
        "multiValueHeaders": {"Authorization": ["a"], "authorization": ["b"], "Host": ["h"]},
    }
    assert events.header_values(event) == {"authorization": ["a", "b"], "host": ["h"]}
    assert events.header_values({"headers": {"Origin": "o", "ORIGIN": "p"}}) == {
        "origin": ["o", "p"]}
    assert events.header_values({"headers": None, "multiValueHeaders": None}) == {}



def test_text_body_is_str() -> None:
    """A text frame's body is returned as str."""
    assert events.body({"body": '{"action":"ping"}', "isBase64Encoded": False}) == (
        '{"action":"ping"}')


def test_missing_body_is_none() -> None:
    """An event without a body gives None."""
    assert events.body({}) is None
    assert events.body({"body": None, "isBase64Encoded": True}) is None


@given(st.binary(max_size=200))
def test_base64_body_is_decoded_to_bytes(data: bytes) -> None:
    """A base64-encoded (binary) frame is decoded to its bytes."""
    event = {"body": base64.b64encode(data).decode(), "isBase64Encoded": True}
    assert events.body(event) == data


def test_kit_binary_message_round_trips() -> None:
    """A binary message_event from the kit decodes back to the same bytes."""
    assert events.body(testkit.message_event("c1", b"\x00\xffhi")) == b"\x00\xffhi"
