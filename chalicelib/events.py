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


def query_parameters(event: Mapping[str, Any]) -> dict[str, str]:
    return dict(event.get("queryStringParameters") or {})


def headers(event: Mapping[str, Any]) -> dict[str, str]:
    return dict(event.get("headers") or {})


def body(event: Mapping[str, Any]) -> bytes | str | None:
    """The frame: ``bytes`` for a binary frame, ``str`` for a text frame."""
    raw = event.get("body")
    if raw is None:
        return None
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw)
    return str(raw)
