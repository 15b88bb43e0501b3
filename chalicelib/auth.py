"""Handshake authentication: the JWT, its claims, and the origin allow-list.

Pure: no AWS. PyJWT verifies the signature, ``exp``, ``iat``, ``aud`` and ``iss``
with the algorithms fixed by configuration (never taken from the token's header);
this module adds what PyJWT does not know: the claim types and ranges and the ID
charset of PROTOCOL.md section 1, the rule that a query token and a header token must
match, and the refusal of ambiguity: a credential (the ``Authorization`` parameter or
header, the ``Origin`` header) given more than once is refused whatever the copies
say, because which copy a proxy, API Gateway or the app would pick is not defined.
The raw token is never put into an exception message or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from chalicelib.errors import AuthError
from chalicelib.settings import Settings

ID_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
MAX_PERMISSIONS = 64
MAX_TOKEN_CHARS = 8192
REQUIRED_CLAIMS = ("user_id", "tenant_id", "permissions", "exp", "iat")
# exp and iat are stored as DynamoDB numbers and compared with the clock: anything past
# 9999-12-31T23:59:59Z is no time a token can mean (and 1e300 is no DynamoDB number).
MAX_TIMESTAMP = 253_402_300_799
Values = Mapping[str, list[str]]  # a name to every value it was given


@dataclass(frozen=True)
class Identity:
    """Who a connection belongs to, from a verified token."""

    user_id: str
    tenant_id: str
    permissions: frozenset[str]
    expires_at: int
    issued_at: int


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _values(params: Values, name: str) -> list[str]:
    # Header names are case-insensitive; callers may give any spelling.
    lowered = name.lower()
    return [v for key, values in params.items() if key.lower() == lowered for v in values]


def _single(values: list[str], what: str, status: int) -> str | None:
    if len(values) > 1:
        raise AuthError(status, f"ambiguous credentials: {what} given more than once")
    return values[0] if values else None


def check_origin(settings: Settings, headers: Values) -> None:
    """Refuse (403) an ``Origin`` outside ``ALLOWED_ORIGINS`` when that is set, or more
    than one ``Origin``."""
    if not settings.allowed_origins:
        return
    origin = _single(_values(headers, "Origin"), "the Origin header", 403)
    if origin is not None and origin not in settings.allowed_origins:
        raise AuthError(403, "origin not allowed")


def extract_token(query: Values, headers: Values) -> str:
    """The token from ``?Authorization=`` or ``Authorization: Bearer``; both must match,
    and neither may be given twice."""
    from_query = _single(query.get("Authorization", []),
                         "the Authorization query parameter", 401) or None
    from_header: str | None = None
    header = _single(_values(headers, "Authorization"), "the Authorization header", 401)
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            from_header = value.strip()
        elif from_query is None:
            # Only a Bearer header carries a Streamer token; another scheme (Basic,
            # say, added by a proxy) is ignored when the query carries the token.
            raise AuthError(401, "malformed Authorization header")
    if from_query is not None and from_header is not None and from_query != from_header:
        raise AuthError(401, "query and header tokens differ")
    token = from_query or from_header
    if token is None:
        raise AuthError(401, "missing token")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(401, "token too long")
    return token


def verify_token(settings: Settings, token: str) -> Identity:
    """Verify signature and registered claims with PyJWT, then Streamer's claims."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={
                "require": [*REQUIRED_CLAIMS,
                            *(["aud"] if settings.jwt_audience else []),
                            *(["iss"] if settings.jwt_issuer else [])],
                "verify_aud": settings.jwt_audience is not None,
                # PROTOCOL.md: aud is checked exactly, so a list holding it is refused.
                "strict_aud": settings.jwt_audience is not None,
                "verify_iss": settings.jwt_issuer is not None,
            },
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired") from None
    except jwt.PyJWTError as exc:
        # PyJWT's messages name the failed check, never the token itself. A future iat
        # is one of them (ImmatureSignatureError, beyond JWT_LEEWAY_SECONDS): refused.
        raise AuthError(401, f"invalid token: {type(exc).__name__}") from None
    return _identity(claims)


def _identity(claims: Mapping[str, Any]) -> Identity:
    user_id = claims["user_id"]
    tenant_id = claims["tenant_id"]
    permissions = claims["permissions"]
    if not valid_id(user_id):
        raise AuthError(401, "claim user_id must be 1-128 characters of [A-Za-z0-9_.@-]")
    if not valid_id(tenant_id):
        raise AuthError(401, "claim tenant_id must be 1-128 characters of [A-Za-z0-9_.@-]")
    if (
        not isinstance(permissions, list)
        or len(permissions) > MAX_PERMISSIONS
        or not all(isinstance(p, str) and 0 < len(p) <= 64 for p in permissions)
    ):
        raise AuthError(401, "claim permissions must be a list of strings")
    for name in ("exp", "iat"):
        if isinstance(claims[name], bool) or not isinstance(claims[name], int | float):
            raise AuthError(401, f"claim {name} must be a number")
        if not 0 <= claims[name] <= MAX_TIMESTAMP:
            raise AuthError(401, f"claim {name} is out of range")
    return Identity(
        user_id=user_id,
        tenant_id=tenant_id,
        permissions=frozenset(permissions),
        expires_at=int(claims["exp"]),
        issued_at=int(claims["iat"]),
    )


def authenticate(settings: Settings, query: Values, headers: Values) -> Identity:
    """Decide a ``$connect``: the identity, or :class:`AuthError` with 401/403."""
    check_origin(settings, headers)
    return verify_token(settings, extract_token(query, headers))
