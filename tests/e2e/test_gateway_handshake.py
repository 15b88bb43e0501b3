"""The handshake: the ``$connect`` handler decides, and its event looks like AWS's."""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from streamer_local.testing import GatewayThread
from tests.e2e.conftest import Recorder, connection_id_of

AWS_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")


def test_accepts_when_connect_handler_returns_200(gateway: GatewayThread,
                                                   recorder: Recorder) -> None:
    """A 200 from ``$connect`` completes the handshake and messages flow."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send("echo:hello")
        assert ws.recv(timeout=5) == "hello"


@pytest.mark.parametrize("status", [401, 403, 429])
def test_refuses_with_the_handlers_status(gateway: GatewayThread, recorder: Recorder,
                                          status: int) -> None:
    """A non-2xx from ``$connect`` refuses the handshake with that HTTP status."""
    with pytest.raises(InvalidStatus) as info:
        connect(f"{gateway.url}/?status={status}", open_timeout=5)
    assert info.value.response.status_code == status
    assert gateway.gateway.connection_ids() == []


def test_refused_handshake_runs_no_disconnect(gateway: GatewayThread,
                                              recorder: Recorder) -> None:
    """A refused handshake never was a connection, so no ``$disconnect`` follows."""
    with pytest.raises(InvalidStatus):
        connect(f"{gateway.url}/?status=401", open_timeout=5)
    with connect(gateway.url, open_timeout=5):
        pass
    recorder.wait_for("$disconnect")
    assert len(recorder.events["$disconnect"]) == 1


def test_crashing_connect_handler_refuses_with_500(gateway: GatewayThread,
                                                   recorder: Recorder) -> None:
    """A ``$connect`` handler that raises refuses the handshake with 500."""
    with pytest.raises(InvalidStatus) as info:
        connect(f"{gateway.url}/?crash=1", open_timeout=5)
    assert info.value.response.status_code == 500


def test_subprotocol_echoed_only_when_handler_returns_it(gateway: GatewayThread,
                                                         recorder: Recorder) -> None:
    """``Sec-WebSocket-Protocol`` is answered only when the handler's headers name it."""
    offered = [Subprotocol("streamer.v1")]
    with connect(f"{gateway.url}/?subprotocol=streamer.v1", subprotocols=offered,
                 open_timeout=5) as ws:
        assert ws.subprotocol == "streamer.v1"
    with connect(gateway.url, subprotocols=offered, open_timeout=5) as ws:
        assert ws.subprotocol is None


def test_connect_event_has_aws_shape(gateway: GatewayThread, recorder: Recorder) -> None:
    """The ``$connect`` event carries AWS's request context, headers and query string."""
    with connect(f"{gateway.url}/?Authorization=abc&tag=a&tag=b",
                 additional_headers={"X-Custom": "1", "Origin": "http://example.test"},
                 user_agent_header="e2e-agent/1", open_timeout=5):
        pass
    event = recorder.wait_for("$connect")
    context = event["requestContext"]
    assert context["routeKey"] == "$connect"
    assert context["eventType"] == "CONNECT"
    assert context["messageDirection"] == "IN"
    assert AWS_ID.match(context["connectionId"])
    assert AWS_ID.match(context["requestId"])
    assert context["extendedRequestId"] == context["requestId"]
    assert context["stage"] == "local"
    assert context["apiId"] == "localapi01"
    assert context["domainName"] == f"127.0.0.1:{gateway.gateway.port}"
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "e2e-agent/1"}
    assert isinstance(context["connectedAt"], int)
    assert context["requestTimeEpoch"] >= context["connectedAt"]
    assert re.match(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$", context["requestTime"])
    assert "messageId" not in context
    assert event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"Authorization": "abc", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"Authorization": ["abc"],
                                                        "tag": ["a", "b"]}
    headers = event["headers"]
    assert headers["X-Custom"] == "1"
    assert headers["Origin"] == "http://example.test"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert "Upgrade" not in headers and "Connection" not in headers
    assert event["multiValueHeaders"]["X-Custom"] == ["1"]


def test_connect_event_without_query_has_no_query_maps(gateway: GatewayThread,
                                                       recorder: Recorder) -> None:
    """Without a query string the query parameter maps are absent, as on AWS."""
    with connect(gateway.url, open_timeout=5):
        pass
    event = recorder.wait_for("$connect")
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event


def test_connection_ids_are_unique(gateway: GatewayThread, recorder: Recorder) -> None:
    """Each connection gets its own AWS-shaped id."""
    for _ in range(5):
        with connect(gateway.url, open_timeout=5):
            pass
    ids = {e["requestContext"]["connectionId"] for e in recorder.events["$connect"]}
    assert len(ids) == 5


def test_stage_path_is_accepted(gateway: GatewayThread, recorder: Recorder) -> None:
    """Clients may connect at ``/{stage}`` as with an AWS URL."""
    with connect(f"{gateway.url}/local", open_timeout=5) as ws:
        ws.send("echo:staged")
        assert ws.recv(timeout=5) == "staged"
    assert connection_id_of(recorder)


def test_plain_http_get_is_told_to_upgrade(gateway: GatewayThread) -> None:
    """A GET without the upgrade headers gets 426 and reaches no handler."""
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(gateway.http_url + "/", timeout=5)
    assert info.value.code == 426
    info.value.close()
