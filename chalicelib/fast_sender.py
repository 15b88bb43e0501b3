"""A fast :class:`~chalicelib.sending.Sender`: hand-signed SigV4 POSTs on kept-alive sockets.

:class:`FastSender` posts to the Management API (``POST {stage}/@connections/{id}``)
and raises the same :class:`~chalicelib.errors.SendError` subclasses as
:class:`~chalicelib.sending.ManagementApiSender` for the same responses: error
responses are parsed the way botocore's rest-json parser reads them and classified by
the very same :func:`~chalicelib.sending.translate_client_error`; a connection error
or timeout is a :class:`~chalicelib.errors.ServerError`, as botocore's are there.

Why hand-written, measured on this machine (``python -m bench.sender_cpu``: client CPU
per delivery, sink in another process on loopback; bench/README.md has the table):

- boto3 ``post_to_connection`` costs about 1,100 us: parameter validation, the
  serializer, the event hooks, the retry handler and the response parser all run
  for a request whose shape never changes. FastSender costs about 95 us (12x less).
- botocore's ``SigV4Auth.add_auth`` alone costs about 105 us: it needs an
  ``AWSRequest``, re-parses the URL, copies the headers into ``HTTPHeaders`` twice,
  re-normalises the path and re-derives the signing key (four HMACs) on every call.
  :class:`SigV4Signer` costs about 7 us: the canonical request is a format string
  over at most three signed headers, and the derived key is cached per (secret, date).
  Tests prove its ``Authorization`` is byte-equal to ``SigV4Auth``'s.
- urllib3's ``urlopen`` alone costs about 280 us per kept-alive POST (http.client's
  ``putheader`` per header, two sends, the ``email`` header parser, Retry and Timeout
  objects): twice the 150 us budget, so our signer on urllib3 still costs ~350 us.
  A request written with one ``sendall`` and a response read with one ``recv`` costs
  about 25 us, most of it the kernel's. :class:`ConnectionPool` is that: HTTP/1.1
  keep-alive over stdlib ``socket``/``ssl`` (TLS verified against botocore's CA
  bundle), bounded like urllib3's ``block=True`` pool, idle connections the server
  dropped detected before reuse as urllib3 does; Content-Length, chunked and
  read-to-close bodies.
- ``RefreshableCredentials.get_frozen_credentials()`` (what Lambda's chain returns)
  costs about 48 us, a tz-aware clock read per call; frozen credentials are therefore
  taken at most once a second, far inside botocore's 10-15 minute refresh window.

No proxy support (botocore honours ``HTTPS_PROXY``): use ManagementApiSender there.
"""

from __future__ import annotations

import hmac
import json
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from http.client import responses
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.exceptions import ClientError
from botocore.httpsession import get_cert_path

from chalicelib.errors import ConfigError, ServerError
from chalicelib.sending import translate_client_error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


# --- credentials ---------------------------------------------------------------------

class FrozenCredentials(Protocol):
    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


class CredentialSource(Protocol):
    """What botocore's ``Credentials`` and ``RefreshableCredentials`` both offer."""

    def get_frozen_credentials(self) -> FrozenCredentials: ...


@dataclass(frozen=True)
class StaticCredentials:
    """Fixed credentials (tests, benchmarks)."""

    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


def botocore_credentials() -> CredentialSource:
    """Credentials from botocore's chain (environment, profile, container, role...)."""
    credentials: CredentialSource | None = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ConfigError("no AWS credentials found for the @connections sender")
    return credentials


# --- SigV4 ---------------------------------------------------------------------------

def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal plus collapsed slashes, exactly as botocore's."""
    if not path:
        return ""
    out: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if out:
                    out.pop()
            else:
                out.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and out else ""
    return first + "/".join(out) + last


def canonical_uri(path: str) -> str:
    """The canonical URI botocore signs for an (already percent-encoded) request path."""
    return quote(remove_dot_segments(path) or "/", safe="/~")


def host_header(url: str) -> str:
    """The ``host`` value botocore signs: lower-case, port only when not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def encode_connection_id(connection_id: str) -> str:
    """Percent-encode a ConnectionId as botocore renders the URI label (UTF-8, '-._~' kept)."""
    return quote(connection_id, safe="-._~")


class SigV4Signer:
    """SigV4 ``Authorization`` values for requests to one region and service.

    Signs ``host``, ``x-amz-date`` and, with a session token, ``x-amz-security-token``
    (the set botocore signs for ``post_to_connection``). The signing key is cached for
    the last (secret, date); replacing the cached tuple is atomic, so threads share it.
    """

    def __init__(self, region: str, service: str = SERVICE) -> None:
        self.region = region
        self.service = service
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._key: tuple[str, str, bytes] = ("", "", b"")

    def signing_key(self, secret_key: str, datestamp: str) -> bytes:
        cached = self._key
        if cached[1] == datestamp and cached[0] == secret_key:
            return cached[2]
        key = hmac.digest(f"AWS4{secret_key}".encode(), datestamp.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._key = (secret_key, datestamp, key)
        return key

    def authorization(self, *, method: str, host: str, canonical_uri: str, amz_date: str,
                      payload_hash: str, access_key: str, secret_key: str,
                      token: str | None = None) -> str:
        """The ``Authorization`` header value for one request at ``amz_date``."""
        if token:
            # botocore trims and collapses whitespace in signed header values.
            headers = (f"host:{host}\nx-amz-date:{amz_date}\n"
                       f"x-amz-security-token:{' '.join(token.split())}\n")
            signed = "host;x-amz-date;x-amz-security-token"
        else:
            headers = f"host:{host}\nx-amz-date:{amz_date}\n"
            signed = "host;x-amz-date"
        request = f"{method}\n{canonical_uri}\n\n{headers}\n{signed}\n{payload_hash}"
        scope = amz_date[:8] + self._scope_tail
        to_sign = (f"{ALGORITHM}\n{amz_date}\n{scope}\n"
                   f"{sha256(request.encode()).hexdigest()}")
        signature = hmac.new(self.signing_key(secret_key, amz_date[:8]),
                             to_sign.encode(), sha256).hexdigest()
        return (f"{ALGORITHM} Credential={access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature}")


# --- HTTP/1.1 keep-alive transport ------------------------------------------------------

class ProtocolError(Exception):
    """The peer broke HTTP/1.1 framing or closed the connection mid-response."""


class Response(NamedTuple):
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    reusable: bool


class _Connection:
    """One kept-alive socket."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def dropped(self) -> bool:
        """True when an idle connection has become readable: EOF, or stray bytes."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def _more(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError("connection closed before the response ended")
        return chunk

    def exchange(self, request: bytes) -> Response:
        self.sock.sendall(request)
        response, rest = self._read_response(b"")
        while response.status < 200:  # 1xx: informational, the real one follows
            response, rest = self._read_response(rest)
        if rest:  # bytes nobody asked for: do not trust this connection again
            return response._replace(reusable=False)
        return response

    def _read_response(self, data: bytes) -> tuple[Response, bytes]:
        end = data.find(b"\r\n\r\n")
        while end < 0:
            if len(data) > _MAX_HEAD:
                raise ProtocolError("response head too long")
            data += self._more()
            end = data.find(b"\r\n\r\n")
        lines = data[:end].decode("latin-1").split("\r\n")
        rest = data[end + 4:]
        version, _, status_reason = lines[0].partition(" ")
        code, _, reason = status_reason.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError("bad header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        connection = headers.get("connection", "").lower()
        reusable = ("close" not in connection if version == "HTTP/1.1"
                    else "keep-alive" in connection)
        if status < 200 or status in {204, 304}:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, rest = self._chunked(rest)
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise ProtocolError("bad Content-Length")
            size = int(length)
            while len(rest) < size:
                chunk = self.sock.recv(65536)
                if not chunk:
                    # The status is in; a body cut short changes nothing for boto3
                    # (a 200 still delivered, a 410 still gone), so not here either.
                    reusable = False
                    break
                rest += chunk
            body, rest = rest[:size], rest[size:]
        else:  # delimited by the server closing the connection
            chunks = [rest]
            while chunk := self.sock.recv(65536):
                chunks.append(chunk)
            body, rest, reusable = b"".join(chunks), b"", False
        return Response(status, reason, headers, body, reusable), rest

    def _line(self, data: bytes) -> tuple[bytes, bytes]:
        end = data.find(b"\r\n")
        while end < 0:
            if len(data) > _MAX_HEAD:
                raise ProtocolError("chunk line too long")
            data += self._more()
            end = data.find(b"\r\n")
        return data[:end], data[end + 2:]

    def _chunked(self, data: bytes) -> tuple[bytes, bytes]:
        body = bytearray()
        while True:
            line, data = self._line(data)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:  # optional trailers, then an empty line
                while line:
                    line, data = self._line(data)
                return bytes(body), data
            if len(body) + size > _MAX_BODY:
                raise ProtocolError("chunked body too large")
            while len(data) < size + 2:
                data += self._more()
            body += data[:size]
            data = data[size + 2:]


class ConnectionPool:
    """At most ``size`` kept-alive connections to one host, shared by threads."""

    def __init__(self, scheme: str, host: str, port: int, *, size: int,
                 connect_timeout: float, read_timeout: float,
                 ca_bundle: str | None = None) -> None:
        self._address = (host, port)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._https = scheme == "https"
        self._ca_bundle = ca_bundle
        self._tls: ssl.SSLContext | None = None  # built at the first connection
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections ever opened (tests and metrics)

    def request(self, data: bytes) -> Response:
        """Send one serialised request and read its response, on a kept-alive socket."""
        with self._slots:
            connection = self._checkout()
            try:
                response = connection.exchange(data)
            except BaseException:
                connection.sock.close()
                raise
            with self._lock:
                keep = response.reusable and not self._closed
                if keep:
                    self._idle.append(connection)
            if not keep:
                # Not reusable, or the pool was closed while this request was out.
                connection.sock.close()
            return response

    def _checkout(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open()
            if not connection.dropped():
                return connection
            connection.sock.close()

    def _open(self) -> _Connection:
        sock = socket.create_connection(self._address, timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._read_timeout)
            if self._https:
                sock = self._tls_context().wrap_socket(sock, server_hostname=self._address[0])
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self.opened += 1
        return _Connection(sock)

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                # Verified against the CA bundle botocore would use (loading it is ~10 ms).
                self._tls = ssl.create_default_context(
                    cafile=self._ca_bundle or get_cert_path(True))
            return self._tls

    def close(self) -> None:
        """Close idle connections now and busy ones when their request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.sock.close()


# --- the sender ------------------------------------------------------------------------

def region_for(endpoint_url: str, region: str | None) -> str:
    """The signing region: given, else the one in an execute-api host name."""
    if region:
        return region
    found = _REGION_IN_HOST.search(urlsplit(endpoint_url).hostname or "")
    if found is None:
        raise ConfigError(f"AWS_REGION is required to sign requests to {endpoint_url}")
    return found.group(1)


class _PerSecond(NamedTuple):
    second: int
    amz_date: str
    credentials: FrozenCredentials


class FastSender:
    """:class:`~chalicelib.sending.Sender` with a hand-written signer and transport.

    Thread-safe: Fanout's workers share it; each takes a pooled connection of its own
    and waits when ``pool_size`` are busy.
    """

    def __init__(self, endpoint_url: str, region: str | None = None, *,
                 pool_size: int = 10, credentials: CredentialSource | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 ca_bundle: str | None = None) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"endpoint must be an http(s) URL, got {endpoint_url!r}")
        if not parts.path.isascii() or parts.query or parts.fragment:
            raise ConfigError(f"endpoint must be scheme://host[:port][/stage]: {endpoint_url}")
        self._credentials = credentials if credentials is not None else botocore_credentials()
        self._signer = SigV4Signer(region_for(endpoint_url, region))
        self._clock = clock
        self._host = host_header(endpoint_url)
        self._prefix = parts.path.rstrip("/") + "/@connections/"
        self._canonical_prefix = canonical_uri(self._prefix)
        self._now: _PerSecond | None = None
        self.pool = ConnectionPool(
            parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme],
            size=pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout,
            ca_bundle=ca_bundle)

    @property
    def region(self) -> str:
        return self._signer.region

    def close(self) -> None:
        self.pool.close()

    def _per_second(self) -> _PerSecond:
        """``X-Amz-Date`` and frozen credentials, both renewed at most once a second."""
        second = int(self._clock())
        now = self._now
        if now is None or now.second != second:
            now = _PerSecond(second, time.strftime(_AMZ_DATE, time.gmtime(second)),
                             self._credentials.get_frozen_credentials())
            self._now = now
        return now

    def request_bytes(self, connection_id: str, data: bytes) -> bytes:
        """The signed HTTP/1.1 request posting ``data`` to ``connection_id``."""
        now = self._per_second()
        creds = now.credentials
        encoded = encode_connection_id(connection_id)
        if encoded in {".", ".."}:  # dot segments: botocore signs the normalised path
            canonical = canonical_uri(self._prefix + encoded)
        else:
            canonical = self._canonical_prefix + encoded.replace("%", "%25")
        token = creds.token
        authorization = self._signer.authorization(
            method="POST", host=self._host, canonical_uri=canonical, amz_date=now.amz_date,
            payload_hash=sha256(data).hexdigest(), access_key=creds.access_key,
            secret_key=creds.secret_key, token=token)
        token_line = f"X-Amz-Security-Token: {token}\r\n" if token else ""
        head = (f"POST {self._prefix}{encoded} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"X-Amz-Date: {now.amz_date}\r\n{token_line}"
                f"Authorization: {authorization}\r\nContent-Length: {len(data)}\r\n\r\n")
        return head.encode() + data

    def post(self, connection_id: str, data: bytes) -> None:
        request = self.request_bytes(connection_id, data)
        try:
            response = self.pool.request(request)
        except (OSError, ProtocolError) as exc:
            # The class the boto3 path gives a connection error or timeout: retryable.
            raise ServerError(connection_id, type(exc).__name__) from exc
        if response.status >= 301:  # botocore's threshold for an error response
            failure = client_error(response.status, response.headers, response.body)
            raise translate_client_error(connection_id, failure) from failure


# --- errors, read as botocore's rest-json parser reads them -----------------------------

def parse_error(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The ``ClientError.response`` botocore builds for an error response."""
    metadata = {"HTTPStatusCode": status}
    stripped = body.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        return {"Error": {"Code": str(status), "Message": responses.get(status, "")},
                "ResponseMetadata": metadata}
    parsed: Any
    try:
        parsed = json.loads(body.decode("utf-8")) if body else {}
    except ValueError:
        parsed = {"message": body.decode("utf-8", "replace")}
    if not isinstance(parsed, dict):
        parsed = {}
    code: Any = parsed.get("__type", str(status))
    lowered = {name.lower(): value for name, value in headers.items()}
    if "x-amzn-errortype" in lowered:
        code = lowered["x-amzn-errortype"]
    elif "code" in parsed or "Code" in parsed:
        code = parsed.get("code", parsed.get("Code", ""))
    if isinstance(code, str):
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = parsed.get("message", parsed.get("Message", ""))
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}


def client_error(status: int, headers: Mapping[str, str], body: bytes) -> ClientError:
    """The ClientError boto3 raises for this response, for the shared translation."""
    return ClientError(parse_error(status, headers, body), "PostToConnection")
