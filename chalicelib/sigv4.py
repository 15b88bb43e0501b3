"""SigV4 for the Management API, hand-written for speed (see chalicelib/fast_sender.py
for the measurements): credentials from botocore's chain, a cached signing key, and a
canonical request built from at most three signed headers. Tests prove the
``Authorization`` header byte-equal to botocore's ``SigV4Auth``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol
from urllib.parse import quote, urlsplit

import botocore.session

from chalicelib.errors import ConfigError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
_DEFAULT_PORTS = {"http": 80, "https": 443}


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
