"""Unit tests for chalicelib.fast_sender: paths, SigV4 and error parsing equal botocore's.

botocore is the oracle throughout: its serializer renders the @connections path, its
``SigV4Auth`` signs the same request, and its rest-json parser reads the same error
response. ``SigV4Auth.add_auth`` reads the clock itself, so :class:`PinnedSigV4Auth`
runs the same steps at a given timestamp; a test proves it equals ``add_auth``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import botocore.session
import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3 import HTTPHeaderDict

from chalicelib.errors import ConfigError
from chalicelib.fast_sender import (
    FastSender,
    SigV4Signer,
    StaticCredentials,
    encode_connection_id,
    parse_error,
)

REGION = "eu-west-2"
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJHMEUCIQ+/token=="

_SESSION = botocore.session.get_session()
_MODEL = _SESSION.get_service_model("apigatewaymanagementapi")
_POST = _MODEL.operation_model("PostToConnection")


class PinnedSigV4Auth(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4Auth, signing at a given instant instead of reading the clock."""

    def __init__(self, credentials: Any, region: str, when: dt.datetime) -> None:
        super().__init__(credentials, "execute-api", region)
        self.when = when

    def add_auth(self, request: AWSRequest) -> None:
        # SigV4Auth.add_auth's steps, with its get_current_datetime() replaced.
        request.context["timestamp"] = self.when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def botocore_headers(url: str, body: bytes, when: dt.datetime, access_key: str,
                     secret_key: str, token: str | None,
                     region: str = REGION) -> dict[str, str]:
    """The headers botocore signs onto a POST of ``body`` to ``url`` at ``when``."""
    request = AWSRequest(method="POST", url=url, data=body)
    PinnedSigV4Auth(Credentials(access_key, secret_key, token), region, when).add_auth(request)
    return dict(request.headers.items())


def sent(sender: FastSender, connection_id: str, body: bytes) -> tuple[str, dict[str, str]]:
    """The request line's path and the headers FastSender would send."""
    head = sender.request_bytes(connection_id, body).split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    return lines[0].split(" ")[1], dict(line.split(": ", 1) for line in lines[1:])


def botocore_path(connection_id: str, stage_path: str = "") -> str:
    """The request path boto3's serializer renders for PostToConnection."""
    request = create_serializer("rest-json").serialize_to_request(
        {"ConnectionId": connection_id, "Data": b""}, _POST)
    return stage_path + str(request["url_path"])


def at(when: dt.datetime) -> Any:
    stamp = when.replace(tzinfo=dt.UTC).timestamp()
    return lambda: stamp


connection_ids = st.text(
    st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["L0SM9cOFvHcCIhw=", "a+b/c=", "%41", ".", "..", "~._-", "a b", "é€😀", ""])
endpoints = st.sampled_from([
    "https://abc123.execute-api.eu-west-2.amazonaws.com/dev",
    "https://ABC123.Execute-Api.eu-west-2.amazonaws.com:443/prod/",
    "http://127.0.0.1:8080/local",
    "http://localhost/",
    "https://example.com:8443/a/b%20c/stage",
])
instants = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1))
tokens = st.none() | st.just("") | st.just(TOKEN) | st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)


@given(connection_ids)
@settings(max_examples=300)
def test_path_equals_botocore_serializer(connection_id: str) -> None:
    """The ConnectionId is percent-encoded exactly as boto3 renders the URI label."""
    sender = FastSender("http://127.0.0.1:1/dev", REGION, credentials=StaticCredentials("a", "b"))
    path, _ = sent(sender, connection_id, b"")
    assert path == botocore_path(connection_id, "/dev")


def test_equals_and_plus_are_encoded() -> None:
    """A real-looking id keeps its '=' and '+' percent-encoded on the wire and in the path."""
    assert encode_connection_id("L0SM9cOFvHcCIhw=") == "L0SM9cOFvHcCIhw%3D"
    assert encode_connection_id("a+b/c") == "a%2Bb%2Fc"


@given(connection_ids, st.binary(max_size=300), endpoints, instants, tokens)
@settings(max_examples=300)
def test_authorization_equals_sigv4auth(connection_id: str, body: bytes, endpoint: str,
                                        when: dt.datetime, token: str | None) -> None:
    """For the same inputs the Authorization header is byte-equal to botocore's SigV4Auth."""
    when = when.replace(microsecond=0)
    sender = FastSender(endpoint, REGION, credentials=StaticCredentials(AKID, SECRET, token),
                        clock=at(when))
    path, headers = sent(sender, connection_id, body)
    origin = endpoint.split("/", 3)
    expected = botocore_headers(f"{origin[0]}//{origin[2]}{path}", body, when, AKID, SECRET,
                                token)
    assert headers["Authorization"] == expected["Authorization"]
    assert headers["X-Amz-Date"] == expected["X-Amz-Date"]
    assert headers.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def test_authorization_examples_with_and_without_token() -> None:
    """Fixed examples: a session token adds one signed header, and changes the signature."""
    when = dt.datetime(2024, 2, 29, 23, 59, 59)
    bodies = [b"", b'{"type":"message"}', bytes(range(256))]
    for token in (None, TOKEN):
        sender = FastSender("https://abc.execute-api.eu-west-2.amazonaws.com/dev", None,
                            credentials=StaticCredentials(AKID, SECRET, token), clock=at(when))
        for body in bodies:
            path, headers = sent(sender, "L0SM9cOFvHcCIhw=", body)
            assert path == "/dev/@connections/L0SM9cOFvHcCIhw%3D"
            url = f"https://abc.execute-api.eu-west-2.amazonaws.com{path}"
            expected = botocore_headers(url, body, when, AKID, SECRET, token)
            assert headers["Authorization"] == expected["Authorization"]
        signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
        assert signed == ("host;x-amz-date;x-amz-security-token" if token
                          else "host;x-amz-date")


def test_pinned_signer_is_sigv4auth_add_auth() -> None:
    """The test seam signs exactly as SigV4Auth.add_auth does at the instant that used."""
    credentials = Credentials(AKID, SECRET, TOKEN)
    url = "https://abc.execute-api.eu-west-2.amazonaws.com/dev/@connections/x%3D"
    real = AWSRequest(method="POST", url=url, data=b"payload")
    SigV4Auth(credentials, "execute-api", REGION).add_auth(real)
    when = dt.datetime.strptime(real.headers["X-Amz-Date"], SIGV4_TIMESTAMP)
    pinned = botocore_headers(url, b"payload", when, AKID, SECRET, TOKEN)
    assert pinned["Authorization"] == real.headers["Authorization"]


def test_signing_key_is_cached_per_secret_and_date() -> None:
    """The derived key is reused within a day and re-derived for a new date or secret."""
    signer = SigV4Signer(REGION)
    first = signer.signing_key(SECRET, "20240101")
    assert signer.signing_key(SECRET, "20240101") is first
    assert signer.signing_key(SECRET, "20240102") != first
    assert signer.signing_key("other", "20240102") != signer.signing_key(SECRET, "20240102")


class CountingCredentials:
    """A credential source that counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def get_frozen_credentials(self) -> StaticCredentials:
        self.calls += 1
        return StaticCredentials(AKID, SECRET, f"token-{self.calls}")


def test_credentials_are_read_at_most_once_a_second() -> None:
    """Frozen credentials (48 us from RefreshableCredentials) are taken once per second."""
    now = [1_700_000_000.2]
    source = CountingCredentials()
    sender = FastSender("http://127.0.0.1:1/dev", REGION, credentials=source,
                        clock=lambda: now[0])
    for _ in range(5):
        sent(sender, "c", b"x")
    now[0] += 0.5
    assert sent(sender, "c", b"x")[1]["X-Amz-Security-Token"] == "token-1"
    now[0] += 1
    assert sent(sender, "c", b"x")[1]["X-Amz-Security-Token"] == "token-2"
    assert source.calls == 2


def test_refreshable_credentials_are_refreshed_near_expiry() -> None:
    """RefreshableCredentials from botocore's chain are renewed before they expire."""
    clock = [dt.datetime(2030, 1, 1, tzinfo=dt.UTC)]
    generation = [0]

    def metadata() -> dict[str, str]:
        generation[0] += 1
        return {"access_key": f"AKID{generation[0]}", "secret_key": SECRET,
                "token": f"t{generation[0]}",
                "expiry_time": (clock[0] + dt.timedelta(hours=1)).isoformat()}

    first = metadata()
    credentials = RefreshableCredentials(
        first["access_key"], first["secret_key"], first["token"],
        clock[0] + dt.timedelta(hours=1), metadata, "test", time_fetcher=lambda: clock[0])
    def now() -> float:
        return clock[0].timestamp()

    sender = FastSender("http://127.0.0.1:1/dev", REGION, credentials=credentials, clock=now)
    assert "Credential=AKID1/" in sent(sender, "c", b"")[1]["Authorization"]
    clock[0] += dt.timedelta(minutes=55)  # inside botocore's mandatory refresh window
    headers = sent(sender, "c", b"")[1]
    assert "Credential=AKID2/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "t2"


def test_botocore_chain_supplies_credentials_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without explicit credentials the botocore chain's (with session token) are used."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    sender = FastSender("http://127.0.0.1:1/dev", REGION)
    headers = sent(sender, "c", b"")[1]
    assert "Credential=AKIDFROMENV/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "env-token"


def test_no_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Any) -> None:
    """An empty credential chain fails at construction, naming the problem."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="credentials"):
        FastSender("http://127.0.0.1:1/dev", REGION)


def test_region_comes_from_an_execute_api_host() -> None:
    """The signing region defaults to the one in an execute-api host name."""
    sender = FastSender("https://abc.execute-api.ap-south-1.amazonaws.com/dev",
                        credentials=StaticCredentials(AKID, SECRET))
    assert sender.region == "ap-south-1"
    with pytest.raises(ConfigError, match="AWS_REGION"):
        FastSender("http://127.0.0.1:1/dev", credentials=StaticCredentials(AKID, SECRET))


@pytest.mark.parametrize("endpoint", ["ftp://host/dev", "dev", "http:///dev",
                                      "http://host/dev?x=1"])
def test_bad_endpoint_is_a_config_error(endpoint: str) -> None:
    """Only http(s)://host[:port][/stage] endpoints are accepted."""
    with pytest.raises(ConfigError, match="endpoint"):
        FastSender(endpoint, REGION, credentials=StaticCredentials(AKID, SECRET))


def botocore_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What botocore's rest-json parser makes of an error response (the oracle)."""
    parsed = create_parser("rest-json").parse(
        {"status_code": status, "headers": HTTPHeaderDict(headers), "body": body},
        _POST.output_shape)
    return {"Code": parsed["Error"]["Code"], "Message": parsed["Error"]["Message"]}


ERROR_RESPONSES = [
    (410, {"x-amzn-ErrorType": "GoneException:http://internal.amazon.com/"},
     b'{"message":"gone"}'),
    (413, {"x-amzn-ErrorType": "PayloadTooLargeException"}, b'{"message":"big"}'),
    (429, {"x-amzn-ErrorType": "LimitExceededException"}, b'{"message":"slow"}'),
    (403, {"x-amzn-ErrorType": "ForbiddenException"}, b'{"Message":"no"}'),
    (500, {"x-amzn-ErrorType": "InternalServerErrorException"}, b'{"message":"oops"}'),
    (502, {}, b"<html><body>Bad Gateway</body></html>"),
    (503, {"x-amzn-ErrorType": "Ignored"}, b""),
    (400, {}, b'{"__type":"com.amazon#BadRequestException","message":"bad"}'),
    (400, {}, b'{"code":"BadRequestException"}'),
    (404, {}, b"not json"),
    (418, {"X-AMZN-ERRORTYPE": "Teapot:x"}, b"{}"),
]


@pytest.mark.parametrize(("status", "headers", "body"), ERROR_RESPONSES)
def test_error_parsing_equals_botocore(status: int, headers: dict[str, str],
                                       body: bytes) -> None:
    """Error code and message are read from header and body exactly as botocore reads them."""
    assert parse_error(status, headers, body)["Error"] == botocore_error(status, headers, body)


def test_non_object_json_error_is_classified_by_status() -> None:
    """A JSON error body that is not an object (botocore raises AttributeError) reads as {}."""
    assert parse_error(429, {}, b"[1, 2]")["Error"] == {"Code": "429", "Message": ""}


@given(st.integers(301, 599), st.dictionaries(
    st.sampled_from(["__type", "code", "Code", "message", "Message"]),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30)),
    st.none() | st.text(st.characters(codec="ascii", exclude_categories=["Cc"]),
                        max_size=30))
@settings(max_examples=200)
def test_error_code_equals_botocore_for_any_json(status: int, body: dict[str, str],
                                                  error_type: str | None) -> None:
    """For any JSON error body and error-type header, code and message match botocore's."""
    headers = {} if error_type is None else {"x-amzn-ErrorType": error_type}
    raw = json.dumps(body).encode()
    assert parse_error(status, headers, raw)["Error"] == botocore_error(status, headers, raw)
