"""Fault injection: each switch, set programmatically, from flags and from the environment."""

from __future__ import annotations

import asyncio
import os

import boto3
import pytest
from botocore.config import Config
from websockets.sync.client import connect

from local.cli import build_parser, options_from_args
from local.stack import LocalStack, StackOptions
from streamer_local.settings import Faults
from tests.e2e.conftest import NO_RETRIES, Recorder, StartGateway, connection_id_of


def test_drop_disconnect_skips_every_disconnect(start_gateway: StartGateway,
                                                recorder: Recorder) -> None:
    """With ``drop_disconnect=1`` closes happen but ``$disconnect`` never runs."""
    gateway = start_gateway(faults=Faults(drop_disconnect=1.0))
    for _ in range(3):
        with connect(gateway.url, open_timeout=5) as ws:
            ws.send("echo:x")
            ws.recv(timeout=5)
    with connect(gateway.url, open_timeout=5) as ws:  # by now the earlier closes are done
        ws.send("echo:y")
        ws.recv(timeout=5)
    gateway.run(_settle())
    assert recorder.events["$disconnect"] == []
    assert len(recorder.events["$connect"]) == 4


async def _settle() -> None:
    await asyncio.sleep(0.2)


def test_gone_connection_answers_410_while_open(start_gateway: StartGateway,
                                                recorder: Recorder) -> None:
    """A connection listed as gone answers 410 to @connections though it stays open."""
    gateway = start_gateway()
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)
    try:
        with connect(gateway.url, open_timeout=5) as stale, \
                connect(gateway.url, open_timeout=5) as fine:
            stale_id = connection_id_of(recorder, 0)
            fine_id = connection_id_of(recorder, 1)
            gateway.faults.gone_connections.add(stale_id)
            with pytest.raises(client.exceptions.GoneException):
                client.post_to_connection(ConnectionId=stale_id, Data=b"x")
            with pytest.raises(client.exceptions.GoneException):
                client.get_connection(ConnectionId=stale_id)
            client.post_to_connection(ConnectionId=fine_id, Data=b"ok")
            assert fine.recv(timeout=5) == "ok"
            stale.send("still open")
            recorder.wait_for("$default", lambda e: e["body"] == "still open")
    finally:
        client.close()


def test_gone_fraction_one_answers_410_to_every_post(start_gateway: StartGateway,
                                                     recorder: Recorder) -> None:
    """``gone_fraction=1`` makes every POST to a live connection answer 410."""
    gateway = start_gateway(faults=Faults(gone_fraction=1.0))
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)
    try:
        with connect(gateway.url, open_timeout=5):
            with pytest.raises(client.exceptions.GoneException):
                client.post_to_connection(ConnectionId=connection_id_of(recorder), Data=b"x")
            assert client.get_connection(ConnectionId=connection_id_of(recorder))
    finally:
        client.close()


def test_throttle_fraction_one_raises_limit_exceeded(start_gateway: StartGateway,
                                                     recorder: Recorder) -> None:
    """``throttle_fraction=1`` answers every POST with 429 LimitExceededException."""
    gateway = start_gateway(faults=Faults(throttle_fraction=1.0))
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)
    try:
        with connect(gateway.url, open_timeout=5):
            with pytest.raises(client.exceptions.LimitExceededException) as info:
                client.post_to_connection(ConnectionId=connection_id_of(recorder), Data=b"x")
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    finally:
        client.close()


def _throttle_pattern(start_gateway: StartGateway, recorder: Recorder, seed: int) -> list[bool]:
    gateway = start_gateway(faults=Faults(throttle_fraction=0.5, seed=seed))
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)
    pattern = []
    try:
        with connect(gateway.url, open_timeout=5):
            connection_id = connection_id_of(recorder)
            for _ in range(40):
                try:
                    client.post_to_connection(ConnectionId=connection_id, Data=b"x")
                    pattern.append(True)
                except client.exceptions.LimitExceededException:
                    pattern.append(False)
    finally:
        client.close()
    return pattern


def test_throttle_fraction_is_seeded(start_gateway: StartGateway, recorder: Recorder) -> None:
    """A fractional throttle throttles some posts, the same ones for the same seed."""
    first = _throttle_pattern(start_gateway, recorder, seed=7)
    second = _throttle_pattern(start_gateway, recorder, seed=7)
    assert first == second
    assert 5 < first.count(False) < 35


def test_botocore_retries_through_partial_throttling(start_gateway: StartGateway,
                                                     recorder: Recorder) -> None:
    """429s are retryable for botocore, so a default client gets through a 30% throttle."""
    gateway = start_gateway(faults=Faults(throttle_fraction=0.3, seed=3))
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=Config(retries={"mode": "standard", "max_attempts": 10}))
    try:
        with connect(gateway.url, open_timeout=5) as ws:
            for n in range(10):
                client.post_to_connection(ConnectionId=connection_id_of(recorder),
                                          Data=f"{n}".encode())
            assert [ws.recv(timeout=5) for _ in range(10)] == [str(n) for n in range(10)]
    finally:
        client.close()


def test_flags_set_every_fault() -> None:
    """Each fault flag lands in the stack's :class:`Faults`."""
    args = build_parser({}).parse_args([
        "--drop-disconnect", "--gone-connection", "AAAAAAAAAAAAAAA=", "--gone-connection",
        "BBBBBBBBBBBBBBB=", "--gone-fraction", "0.25", "--throttle-fraction", "0.5",
        "--redeliver-fraction", "0.75", "--seed", "42",
    ])
    faults = options_from_args(args, {}).faults
    assert faults.drop_disconnect == 1.0
    assert faults.gone_connections == {"AAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBB="}
    assert (faults.gone_fraction, faults.throttle_fraction) == (0.25, 0.5)
    assert (faults.redeliver_fraction, faults.seed) == (0.75, 42)


def test_environment_sets_every_fault() -> None:
    """Each fault environment variable lands in the stack's :class:`Faults`."""
    env = {
        "FAULT_DROP_DISCONNECT": "0.5", "FAULT_GONE_CONNECTIONS": "AAAAAAAAAAAAAAA=, x",
        "FAULT_GONE_FRACTION": "0.1", "FAULT_THROTTLE_FRACTION": "0.2",
        "FAULT_REDELIVER_FRACTION": "1", "FAULT_SEED": "9",
        "GATEWAY_IDLE_TIMEOUT": "2.5", "GATEWAY_MAX_AGE": "30", "PORT": "0",
    }
    options = options_from_args(build_parser(env).parse_args([]), env)
    faults = options.faults
    assert faults.drop_disconnect == 0.5
    assert faults.gone_connections == {"AAAAAAAAAAAAAAA=", "x"}
    assert (faults.gone_fraction, faults.throttle_fraction) == (0.1, 0.2)
    assert (faults.redeliver_fraction, faults.seed) == (1.0, 9)
    assert (options.settings.idle_timeout, options.settings.max_age) == (2.5, 30.0)
    assert options.port == 0


def test_fraction_out_of_range_is_refused() -> None:
    """A fault fraction above 1 is refused with a clear error."""
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["--throttle-fraction", "1.5"])
    with pytest.raises(ValueError, match="gone_fraction"):
        Faults(gone_fraction=2.0)


def test_redeliver_switch_reaches_the_poller(dynamodb_endpoint: str, table_prefix: str) -> None:
    """The redeliver fraction and seed are handed to the stack's stream poller."""
    env: dict[str, str] = dict(os.environ)
    options = StackOptions(port=0, app_spec="tests.e2e.conftest:stack_app",
                           table_prefix=table_prefix, dynamodb_endpoint_url=dynamodb_endpoint,
                           faults=Faults(redeliver_fraction=1.0, seed=5))
    stack = LocalStack(options, env=env)

    async def run() -> tuple[float, str, str]:
        await stack.start()
        try:
            assert stack.poller is not None and stack.gateway is not None
            return (stack.poller.redeliver_fraction, env["WS_ENDPOINT_URL"],
                    stack.gateway.connections_url)
        finally:
            await stack.stop()

    fraction, ws_endpoint, connections_url = asyncio.run(run())
    assert fraction == 1.0
    assert ws_endpoint == connections_url
    assert env["TABLE_PREFIX"] == table_prefix
    assert env["REQUESTS_STREAM_ARN"].startswith("arn:aws:dynamodb:")


def test_a_gone_connection_chosen_at_run_time(start_gateway: StartGateway,
                                              recorder: Recorder) -> None:
    """GET /_local/connections lists the open ids; PUT /_local/faults/gone/{id} makes that
    one answer 410 from then on, and DELETE puts it back."""
    import json
    import urllib.request

    gateway = start_gateway()
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)

    def control(method: str, path: str) -> bytes:
        request = urllib.request.Request(gateway.http_url + path, method=method)
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bytes(answer.read())

    try:
        with connect(gateway.url, open_timeout=5, user_agent_header=None) as ws:
            listed = json.loads(control("GET", "/_local/connections"))
            chosen = listed[0]["connectionId"]
            assert [c["connectionId"] for c in listed] == [connection_id_of(recorder, 0)]
            assert listed[0]["identity"] == {"sourceIp": "127.0.0.1"}
            control("PUT", f"/_local/faults/gone/{chosen}")
            with pytest.raises(client.exceptions.GoneException):
                client.post_to_connection(ConnectionId=chosen, Data=b"x")
            control("DELETE", f"/_local/faults/gone/{chosen}")
            client.post_to_connection(ConnectionId=chosen, Data=b"back")
            assert ws.recv(timeout=5) == "back"
    finally:
        client.close()
