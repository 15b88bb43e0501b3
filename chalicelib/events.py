"""API Gateway WebSocket events, parsed at the edge into typed values. Pure."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WsContext:
    """The parts of ``requestContext`` that Streamer uses."""

    connection_id: str
    request_id: str
    domain_name: str
    stage: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WsContext:
        ctx = event.get("requestContext") or {}
        return cls(
            connection_id=str(ctx.get("connectionId", "")),
            request_id=str(ctx.get("requestId", "")),
            domain_name=str(ctx.get("domainName", "")),
            stage=str(ctx.get("stage", "")),
        )

    def endpoint_url(self) -> str:
        """The @connections endpoint of the API that sent the event."""
        return f"https://{self.domain_name}/{self.stage}"


def query_values(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every query parameter with all its values. API Gateway's single-value map keeps
    only the last of a repeated parameter, so the multi-value map is read when present."""
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        return {str(name): [str(v) for v in values] for name, values in multi.items()}
    single = event.get("queryStringParameters") or {}
    return {str(name): [str(value)] for name, value in single.items()}


def header_values(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every header's values under its lower-cased name. HTTP names are
    case-insensitive, and API Gateway keeps the client's spelling, so ``Authorization``
    and ``authorization`` arrive as two keys: here they are one name with two values."""
    multi = event.get("multiValueHeaders")
    pairs: list[tuple[str, str]]
    if multi:
        pairs = [(name, value) for name, values in multi.items() for value in values]
    else:
        pairs = list((event.get("headers") or {}).items())
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        merged.setdefault(str(name).lower(), []).append(str(value))
    return merged


def body(event: Mapping[str, Any]) -> bytes | str | None:
    """The frame: ``bytes`` for a binary frame, ``str`` for a text frame."""
    raw = event.get("body")
    if raw is None:
        return None
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw)
    return str(raw)
