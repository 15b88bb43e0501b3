"""A fast :class:`~chalicelib.sending.Sender`: hand-signed SigV4 POSTs on kept-alive pools.

:class:`FastSender` posts to the Management API (``POST {stage}/@connections/{id}``)
through a urllib3 connection pool (urllib3 ships with botocore, so it is already in
the Lambda runtime) and signs each request with :class:`SigV4Signer`. It raises the
same :class:`~chalicelib.errors.SendError` subclasses as
:class:`~chalicelib.sending.ManagementApiSender` for the same responses, because its
errors are parsed the way botocore's rest-json parser reads them and then classified
by the very same :func:`~chalicelib.sending.translate_client_error`.

Why the signer is hand-written: botocore's ``SigV4Auth.add_auth`` needs an
``AWSRequest``; per call it re-parses the URL, copies and lower-cases the headers into
an ``HTTPHeaders`` twice (once for the canonical request, once for the
``Authorization`` value), re-normalises the path, and re-derives the signing key with
four HMACs. Measured on this machine (bench/sender_cpu.py, loopback sink in another
process): boto3 ``post_to_connection`` about 600-900 us of client CPU per delivery,
``SigV4Auth`` on an ``AWSRequest`` plus the same urllib3 pool about 130 us, the
signature alone about 40 us through ``SigV4Auth`` against about 6 us here. The
request shape never changes (one method, one host, no query, three signed headers at
most), so the canonical request is a format string and the derived key is cached per
(secret, date); tests prove the ``Authorization`` value is byte-equal to
``SigV4Auth``'s for the same inputs.

Credentials come from botocore's chain unless given: ``get_frozen_credentials()`` is
called on every post (a few microseconds; ``RefreshableCredentials`` refreshes
itself there, so expiring role credentials are picked up), and a session token is
sent as ``X-Amz-Security-Token`` and signed, as botocore does.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import botocore.session
import urllib3
from botocore.exceptions import ClientError
from botocore.httpsession import get_cert_path
from urllib3.exceptions import HTTPError as Urllib3Error

from chalicelib.errors import ConfigError, ServerError
from chalicelib.sending import translate_client_error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


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
    """Fixed credentials (tests, benchmarks, the local stack)."""

    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


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
    """SigV4 ``Authorization`` values for bodies POSTed to one region and service.

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


def botocore_credentials() -> CredentialSource:
    """Credentials from botocore's chain (environment, profile, container, role...)."""
    credentials: CredentialSource | None = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ConfigError("no AWS credentials found for the @connections sender")
    return credentials


def region_for(endpoint_url: str, region: str | None) -> str:
    """The signing region: given, else the one in an execute-api host name."""
    if region:
        return region
    found = _REGION_IN_HOST.search(urlsplit(endpoint_url).hostname or "")
    if found is None:
        raise ConfigError(f"AWS_REGION is required to sign requests to {endpoint_url}")
    return found.group(1)


class FastSender:
    """:class:`~chalicelib.sending.Sender` over urllib3 with a hand-written SigV4 signer.

    Thread-safe: the pool hands each thread its own kept-alive connection (``block``
    makes callers wait rather than open more than ``pool_size``).
    """

    def __init__(self, endpoint_url: str, region: str | None = None, *,
                 pool_size: int = 10, credentials: CredentialSource | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 ca_certs: str | None = None) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"endpoint must be an http(s) URL, got {endpoint_url!r}")
        self._credentials = credentials if credentials is not None else botocore_credentials()
        self._signer = SigV4Signer(region_for(endpoint_url, region))
        self._clock = clock
        self._host = host_header(endpoint_url)
        self._prefix = parts.path.rstrip("/") + "/@connections/"
        self._canonical_prefix = canonical_uri(self._prefix.rstrip("/")) + "/"
        self._second = -1
        self._amz_date = ""
        options: dict[str, Any] = {}
        if parts.scheme == "https":
            options["ca_certs"] = ca_certs or _botocore_ca_bundle()
            options["cert_reqs"] = "CERT_REQUIRED"
        self._pool = urllib3.connection_from_url(
            endpoint_url, maxsize=pool_size, block=True, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout), **options)

    @property
    def region(self) -> str:
        return self._signer.region

    def close(self) -> None:
        self._pool.close()

    def amz_date(self) -> str:
        """``X-Amz-Date`` for now, formatted at most once a second."""
        now = int(self._clock())
        if now != self._second:
            self._amz_date = time.strftime(_AMZ_DATE, time.gmtime(now))
            self._second = now
        return self._amz_date

    def request_headers(self, connection_id: str, data: bytes,
                        amz_date: str | None = None) -> tuple[str, dict[str, str]]:
        """The path and the signed headers for posting ``data`` to ``connection_id``."""
        creds = self._credentials.get_frozen_credentials()
        encoded = encode_connection_id(connection_id)
        path = self._prefix + encoded
        if encoded in {".", ".."}:  # dot segments: botocore signs the normalised path
            canonical = canonical_uri(path)
        else:
            canonical = self._canonical_prefix + encoded.replace("%", "%25")
        when = amz_date or self.amz_date()
        token = creds.token
        headers = {
            "Host": self._host,
            "X-Amz-Date": when,
            "Authorization": self._signer.authorization(
                method="POST", host=self._host, canonical_uri=canonical, amz_date=when,
                payload_hash=sha256(data).hexdigest(), access_key=creds.access_key,
                secret_key=creds.secret_key, token=token),
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return path, headers

    def post(self, connection_id: str, data: bytes) -> None:
        path, headers = self.request_headers(connection_id, data)
        try:
            response = self._pool.urlopen(
                "POST", path, body=data, headers=headers, retries=False,
                redirect=False, assert_same_host=False, preload_content=True)
        except (Urllib3Error, OSError) as exc:
            # Same class the boto3 path gives a connection error: ServerError, retryable.
            raise ServerError(connection_id, type(exc).__name__) from exc
        if response.status >= 301:  # botocore's threshold for an error response
            failure = client_error(response.status, response.reason or "",
                                   response.headers, response.data)
            raise translate_client_error(connection_id, failure) from failure


def parse_error(status: int, reason: str, headers: Mapping[str, str],
                body: bytes) -> dict[str, Any]:
    """The ``ClientError.response`` botocore's rest-json parser builds for an error."""
    metadata = {"HTTPStatusCode": status}
    stripped = body.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        return {"Error": {"Code": str(status), "Message": reason},
                "ResponseMetadata": metadata}
    parsed: Any
    try:
        parsed = json.loads(body.decode("utf-8")) if body else {}
    except ValueError:
        parsed = {"message": body.decode("utf-8", "replace")}
    if not isinstance(parsed, dict):
        parsed = {}
    code: Any = parsed.get("__type", str(status))
    if isinstance(code, str):
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    lowered = {name.lower(): value for name, value in headers.items()}
    if "x-amzn-errortype" in lowered:
        code = lowered["x-amzn-errortype"]
    elif "code" in parsed or "Code" in parsed:
        code = parsed.get("code", parsed.get("Code", ""))
    if isinstance(code, str):
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = parsed.get("message", parsed.get("Message", ""))
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}


def client_error(status: int, reason: str, headers: Mapping[str, str],
                 body: bytes) -> ClientError:
    """The ClientError boto3 raises for this response, for the shared translation."""
    return ClientError(parse_error(status, reason, headers, body), "PostToConnection")


def _botocore_ca_bundle() -> str:
    path: str = get_cert_path(True)
    return path
