"""A fast :class:`~chalicelib.interfaces.Sender`: hand-signed SigV4 POSTs on kept-alive sockets.

:class:`FastSender` posts to the Management API (``POST {stage}/@connections/{id}``)
and raises the same :class:`~chalicelib.errors.SendError` subclasses as
:class:`~chalicelib.management_api.ManagementApiSender` for the same responses: error
responses are parsed the way botocore's rest-json parser reads them and classified by
the very same :func:`~chalicelib.management_api.translate_client_error`; a connection error
or timeout is a :class:`~chalicelib.errors.ServerError`, as botocore's are there.

Why hand-written, measured on this machine (``python -m bench.sender_cpu``: client CPU
per delivery, sink in another process on loopback; docs/benchmarks.md has the figures
of the last run, and the one speed-up figure quoted anywhere):

- boto3 ``post_to_connection`` costs about 1,100 us: parameter validation, the
  serializer, the event hooks, the retry handler and the response parser all run
  for a request whose shape never changes. FastSender costs under a tenth of that.
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

import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from hashlib import sha256
from http.client import responses
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from chalicelib.errors import ConfigError, GoneError, ServerError
from chalicelib.http11 import ConnectionPool, ProtocolError
from chalicelib.management_api import translate_client_error
from chalicelib.sigv4 import (
    CredentialSource,
    FrozenCredentials,
    SigV4Signer,
    StaticCredentials,
    botocore_credentials,
    canonical_uri,
    encode_connection_id,
    host_header,
)

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

__all__ = ["FastSender", "SigV4Signer", "StaticCredentials", "encode_connection_id",
           "parse_error"]


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
    """:class:`~chalicelib.interfaces.Sender` with a hand-written signer and transport.

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

    def request_bytes(self, connection_id: str, data: bytes, method: str = "POST") -> bytes:
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
            method=method, host=self._host, canonical_uri=canonical, amz_date=now.amz_date,
            payload_hash=sha256(data).hexdigest(), access_key=creds.access_key,
            secret_key=creds.secret_key, token=token)
        token_line = f"X-Amz-Security-Token: {token}\r\n" if token else ""
        head = (f"{method} {self._prefix}{encoded} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"X-Amz-Date: {now.amz_date}\r\n{token_line}"
                f"Authorization: {authorization}\r\nContent-Length: {len(data)}\r\n\r\n")
        return head.encode() + data

    def delete(self, connection_id: str) -> None:
        """@connections DELETE: close the connection (a gone one is no error)."""
        with contextlib.suppress(GoneError):
            self._exchange(self.request_bytes(connection_id, b"", "DELETE"), connection_id)

    def post(self, connection_id: str, data: bytes) -> None:
        self._exchange(self.request_bytes(connection_id, data), connection_id)

    def _exchange(self, request: bytes, connection_id: str) -> None:
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
