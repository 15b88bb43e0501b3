"""FastSender against a real local @connections HTTP server, side by side with boto3.

The server speaks the Management API's shapes (``x-amzn-ErrorType`` plus a JSON
``{"message": ...}``), recomputes every request's SigV4 signature with botocore, and
records which client port each request came on (one port = one kept-alive socket).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.auth import SIGV4_TIMESTAMP
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.errors import (
    ForbiddenSend,
    GoneError,
    PayloadTooLarge,
    SendError,
    ServerError,
    ThrottledError,
)
from chalicelib.fast_sender import FastSender, StaticCredentials
from chalicelib.management_api import ManagementApiSender
from chalicelib.sending import Fanout
from tests.unit.test_fast_sender import botocore_headers

REGION = "us-east-1"
AKID = "AKIDFUNCTIONAL"
SECRET = "functional/secret/0123456789"
TOKEN = "FwoGZXIvYXdzEBYaDH/session+token=="
SECRETS = {AKID: SECRET, "testing": "testing"}

# id prefix -> (status, x-amzn-ErrorType or None, body)
CANNED: dict[str, tuple[int, str | None, bytes]] = {
    "gone": (410, "GoneException", b'{"message":"Gone"}'),
    "toolarge": (413, "PayloadTooLargeException", b'{"message":"Request entity too large"}'),
    "limit": (429, "LimitExceededException", b'{"message":"Limit exceeded"}'),
    "toomany": (429, "TooManyRequestsException", b'{"message":"Too many requests"}'),
    "throttled": (429, None, b'{"message":"slow down"}'),
    "forbidden": (403, "ForbiddenException", b'{"message":"Forbidden"}'),
    "internal": (500, "InternalServerErrorException", b'{"message":"Internal error"}'),
    "badgateway": (502, None, b""),
    "unavailable": (503, None, b"<html><body>Service Unavailable</body></html>"),
    "badrequest": (400, "BadRequestException", b'{"message":"Invalid connectionId"}'),
    "notfound": (404, None, b"Not Found"),
    "redirect": (302, None, b""),
}
RAW: dict[str, bytes] = {
    # A 410 whose JSON body is chunked.
    "chunked": (b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\nd\r\nsage\":\"Gone\"}\r\n"
                b"0\r\nX-Trailer: y\r\n\r\n"),
    # An interim 100 Continue, then the real answer.
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    # A 429 whose body ends when the server closes the connection.
    "toclose": (b"HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: LimitExceededException"
                b"\r\nConnection: close\r\n\r\n{\"message\":\"x\"}"),
    # The connection dies halfway through the body.
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial",
    "truncated410": (b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\n"
                     b"Content-Length: 50\r\n\r\n{\"partial"),
    "garbage": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@dataclass
class Seen:
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None


class Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()  # set when a "close" request's socket is shut
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.httpd.server_port}/dev"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
        self.closed.clear()

    def ports(self) -> set[int]:
        with self.lock:
            return {s.port for s in self.seen}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    server.seen.append(Seen(self.client_address[1], self.path,
                                            dict(self.headers.items()), body,
                                            verify(server.scheme, self.path,
                                                   dict(self.headers.items()), body)))
                connection_id = unquote(self.path.rsplit("/", 1)[1])
                kind = connection_id.split("-", 1)[0]
                if kind in RAW:
                    self.wfile.write(RAW[kind])
                    self.close_connection = kind != "continue"
                    return
                if kind == "sleep":
                    time.sleep(1.0)
                status, error_type, payload = CANNED.get(kind, (200, None, b""))
                self.send_response(status)
                if error_type:
                    self.send_header("x-amzn-ErrorType", f"{error_type}:http://internal/")
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                if kind == "close":  # as a server timing out an idle connection: no header
                    self.close_connection = True

            def finish(self) -> None:
                super().finish()
                if self.close_connection:
                    server.closed.set()

        return Handler


def verify(scheme: str, path: str, headers: dict[str, str], body: bytes) -> bool | None:
    """Recompute the request's SigV4 signature with botocore; None for unknown keys."""
    authorization = headers.get("Authorization", "")
    access_key = authorization.partition("Credential=")[2].partition("/")[0]
    if access_key not in SECRETS:
        return None
    when = dt.datetime.strptime(headers["X-Amz-Date"], SIGV4_TIMESTAMP)
    expected = botocore_headers(f"{scheme}://{headers['Host']}{path}", body, when, access_key,
                                SECRETS[access_key], headers.get("X-Amz-Security-Token"),
                                REGION)
    return expected["Authorization"] == authorization


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    instance = Server()
    yield instance
    instance.stop()


_opened: list[Any] = []  # FastSenders and boto3 clients made by a test, closed after it


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture
def http(server: Server) -> Server:
    server.reset()
    return server


def fast(server: Server | str, token: str | None = TOKEN, **options: Any) -> FastSender:
    endpoint = server if isinstance(server, str) else server.endpoint
    sender = FastSender(endpoint, REGION, credentials=StaticCredentials(AKID, SECRET, token),
                        **options)
    _opened.append(sender)
    return sender


def boto3_sender(endpoint: str, **config: Any) -> ManagementApiSender:
    """ManagementApiSender with the client for_endpoint builds, plus explicit credentials."""
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1, "mode": "standard"},
                               "max_pool_connections": 4, "connect_timeout": 3,
                               "read_timeout": 5, **config}
    client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=REGION,
                          aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                          aws_session_token=TOKEN, config=Config(**options))
    _opened.append(client)
    return ManagementApiSender(client)


def outcome(post: Callable[[str, bytes], None], connection_id: str) -> type[SendError] | None:
    try:
        post(connection_id, b'{"type":"message"}')
    except SendError as exc:
        assert exc.connection_id == connection_id
        return type(exc)
    return None


SIDE_BY_SIDE = [
    ("ok", None), ("gone", GoneError), ("toolarge", PayloadTooLarge),
    ("limit", ThrottledError), ("toomany", ThrottledError), ("throttled", ThrottledError),
    ("forbidden", ForbiddenSend), ("internal", ServerError), ("badgateway", ServerError),
    ("unavailable", ServerError), ("badrequest", SendError), ("notfound", SendError),
    ("redirect", SendError), ("chunked", GoneError), ("continue", None),
    ("toclose", ThrottledError), ("truncated", None), ("truncated410", GoneError),
    ("garbage", ServerError),
]


@pytest.mark.parametrize(("kind", "expected"), SIDE_BY_SIDE)
def test_same_error_class_as_boto3(http: Server, kind: str,
                                   expected: type[SendError] | None) -> None:
    """Each response maps to the SendError class ManagementApiSender (boto3) raises for it."""
    connection_id = f"{kind}-L0SM9cOFvHcCIhw="
    assert outcome(boto3_sender(http.endpoint).post, connection_id) is expected
    assert outcome(fast(http).post, connection_id) is expected


def test_connection_refused_is_server_error_on_both_paths() -> None:
    """Nothing listening is a retryable ServerError, for boto3 and FastSender alike."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}/dev"
    assert outcome(boto3_sender(endpoint).post, "c") is ServerError
    assert outcome(fast(endpoint).post, "c") is ServerError


def test_read_timeout_is_server_error_on_both_paths(http: Server) -> None:
    """A response slower than the read timeout is a ServerError on both paths."""
    assert outcome(boto3_sender(http.endpoint, read_timeout=0.3).post, "sleep-1") is ServerError
    assert outcome(fast(http, read_timeout=0.3).post, "sleep-1") is ServerError


def test_one_kept_alive_connection_for_many_posts(http: Server) -> None:
    """Sequential posts, failures included, reuse one TCP connection."""
    sender = fast(http)
    for i in range(30):
        outcome(sender.post, f"{'gone' if i % 3 else 'ok'}-{i}")
    assert len(http.seen) == 30
    assert len(http.ports()) == 1
    assert sender.pool.opened == 1


def test_server_verifies_signature_with_and_without_token(http: Server) -> None:
    """The server recomputes each request's signature with botocore and it matches."""
    for token in (TOKEN, None):
        for connection_id in ("ok-L0SM9cOFvHcCIhw=", "ok-a+b/c d", "ok-é%"):
            fast(http, token=token).post(connection_id, b"\x00payload\xff")
    assert [s.signature_ok for s in http.seen] == [True] * 6
    assert [s.headers.get("X-Amz-Security-Token") for s in http.seen] == [TOKEN] * 3 + [None] * 3


def test_same_request_as_boto3(http: Server) -> None:
    """Path, body, token and Authorization equal boto3's own post_to_connection request."""
    boto3_sender(http.endpoint).post("ok-L0SM9cOFvHcCIhw=+/", b"same body")
    theirs = http.seen[-1]
    when = dt.datetime.strptime(theirs.headers["X-Amz-Date"], SIGV4_TIMESTAMP)
    stamp = when.replace(tzinfo=dt.UTC).timestamp()
    fast(http, clock=lambda: stamp).post("ok-L0SM9cOFvHcCIhw=+/", b"same body")
    mine = http.seen[-1]
    assert (mine.path, mine.body) == (theirs.path, theirs.body)
    for header in ("Host", "X-Amz-Date", "X-Amz-Security-Token", "Authorization"):
        assert mine.headers[header] == theirs.headers[header]
    assert theirs.signature_ok and mine.signature_ok


def test_concurrent_posts_share_a_bounded_pool(http: Server) -> None:
    """Eight threads posting at once all succeed on at most pool_size connections."""
    sender = fast(http, pool_size=3)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                sender.post(f"ok-{n}-{i}", f"{n}:{i}".encode())
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(s.body for s in http.seen) == sorted(
        f"{n}:{i}".encode() for n in range(8) for i in range(20))
    assert all(s.signature_ok for s in http.seen)
    assert sender.pool.opened <= 3
    assert len(http.ports()) == sender.pool.opened


def test_connection_closed_while_idle_is_replaced(http: Server) -> None:
    """A kept-alive socket the server closed while idle is detected and reopened."""
    sender = fast(http)
    sender.post("close-1", b"x")
    assert http.closed.wait(5)
    time.sleep(0.05)  # let the FIN reach this side of the loopback
    sender.post("ok-2", b"y")
    assert sender.pool.opened == 2
    assert len(http.ports()) == 2


def test_fanout_over_fast_sender(http: Server) -> None:
    """Fanout's workers share one FastSender: delivered, gone and failed are told apart."""
    gone: list[str] = []
    fanout = Fanout(fast(http, pool_size=4), concurrency=4, max_attempts=2,
                    backoff_seconds=0.0, on_gone=gone.append)
    targets = [f"ok-{i}" for i in range(20)] + ["gone-a", "gone-b", "forbidden-c", "internal-d"]
    report = fanout.deliver(targets, b"frame")
    assert report.delivered == 20
    assert sorted(gone) == sorted(report.gone) == ["gone-a", "gone-b"]
    assert sorted(report.failed) == ["forbidden-c", "internal-d"]
    assert report.retries == 1  # the 500 once; 403 and 410 are never retried


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    instance = Server(context)
    yield instance, cert
    instance.stop()


def test_https_verified_signed_and_kept_alive(tls_server: tuple[Server, Path]) -> None:
    """Over TLS, the certificate is verified, requests are signed for https, one socket."""
    server, cert = tls_server
    server.reset()
    sender = fast(server.endpoint, ca_bundle=str(cert))
    for i in range(5):
        sender.post(f"ok-{i}=", b"tls")
    assert outcome(sender.post, "gone-x") is GoneError
    assert [s.signature_ok for s in server.seen] == [True] * 6
    assert sender.pool.opened == 1


def test_untrusted_certificate_is_server_error_on_both_paths(
        tls_server: tuple[Server, Path]) -> None:
    """A certificate outside the CA bundle fails the post, as a ServerError on both paths."""
    server, _ = tls_server
    assert outcome(boto3_sender(server.endpoint).post, "ok-1") is ServerError
    assert outcome(fast(server.endpoint).post, "ok-1") is ServerError
