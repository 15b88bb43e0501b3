"""A small HTTP/1.1 keep-alive client pool over stdlib sockets, for FastSender.

Hand-written because urllib3's ``urlopen`` costs about 280 us per kept-alive POST on
this machine, twice the sender's whole budget (chalicelib/fast_sender.py has the
measurements). One ``sendall`` per request, responses read with Content-Length,
chunked or read-to-close bodies, idle connections the server dropped detected before
reuse, TLS verified against botocore's CA bundle, at most ``size`` connections.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from typing import NamedTuple

from botocore.httpsession import get_cert_path

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


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
