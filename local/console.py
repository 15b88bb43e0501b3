"""The live console page of the local stack, on the gateway's own HTTP port.

    GET  /_local/console/             the page (console/ at the repository root)
    GET  /_local/console/sdk/...      the JS SDK (clients/js/dist/, built by npm run build)
    POST /_local/console/token        a development token, signed with the stack's JWT
                                      secret: {"user", "tenant", "permissions", "ttl"}
    POST /_local/console/disconnect   deletes connections through the gateway's
                                      ``@connections`` API: {"connectionId"} for one, or
                                      {} for those of the calling browser (its source IP
                                      and User-Agent), so the page can watch a reconnect

:class:`ConsoleGateway` is the :class:`~streamer_local.gateway.Gateway` with these routes
added through its public :meth:`~streamer_local.gateway.Gateway.add_routes` hook. They
exist only in the local stack, never in chalicelib: a deployed stack has no way to mint
tokens. The two POST routes answer only loopback clients and same-origin requests with a
JSON body (a cross-site form cannot send one), and refuse bad input with 400 and a
one-line reason.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from streamer_local.gateway import Gateway

log = logging.getLogger("local.console")

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE_DIR = REPO_ROOT / "console"
SDK_DIR = REPO_ROOT / "clients" / "js" / "dist"
PREFIX = "/_local/console"

# What the app accepts (chalicelib/auth.py): ids of 1-128 of these characters, at most 64
# permissions of 1-64 characters (a narrower charset here: names, not arbitrary text).
_ID = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_PERMISSION = re.compile(r"[A-Za-z0-9_.:*-]{1,64}")
_MAX_PERMISSIONS = 64
_MAX_TTL = 24 * 3600
_CONNECTION_ID = re.compile(r"[A-Za-z0-9_=+-]{1,128}")
_MAX_JSON = 16 * 1024
_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".map": "application/json", ".json": "application/json",
    ".ts": "text/plain; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
    ".ico": "image/x-icon",
}


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=reason + "\n")


def _file_response(root: Path, relative: str) -> web.StreamResponse:
    """``root/relative`` if it is a file inside ``root``; 404 otherwise (no traversal:
    the resolved path, symlinks followed, must stay under ``root``)."""
    base = root.resolve()
    if "\x00" in relative or "\\" in relative:
        raise web.HTTPNotFound(text="not found\n")
    target = (base / (relative or "index.html")).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise web.HTTPNotFound(text="not found\n")
    return web.FileResponse(target, headers={
        "Content-Type": _TYPES.get(target.suffix, "application/octet-stream"),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def check_token_request(body: Any) -> tuple[str, str, list[str], int]:
    """(user, tenant, permissions, ttl) from a token request's JSON; HTTPBadRequest if bad.

    Defaults: user ``u1``, tenant ``t1``, permissions ``["read", "write"]``, ttl 3600.
    ``permissions`` may also be a comma-separated string.
    """
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(body) - {"user", "tenant", "permissions", "ttl"})
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}; "
                   "expected user, tenant, permissions, ttl")
    user, tenant = body.get("user", "u1"), body.get("tenant", "t1")
    for name, value in (("user", user), ("tenant", tenant)):
        if not (isinstance(value, str) and _ID.fullmatch(value)):
            raise _bad(f"{name}: 1-128 characters of A-Z a-z 0-9 _ . @ -")
    permissions = body.get("permissions", ["read", "write"])
    if isinstance(permissions, str):
        permissions = [p.strip() for p in permissions.split(",") if p.strip()]
    if not (isinstance(permissions, list) and len(permissions) <= _MAX_PERMISSIONS
            and all(isinstance(p, str) and _PERMISSION.fullmatch(p) for p in permissions)):
        raise _bad(f"permissions: a list of at most {_MAX_PERMISSIONS} names, each 1-64 "
                   "characters of A-Z a-z 0-9 _ . : * -")
    ttl = body.get("ttl", 3600)
    if not (isinstance(ttl, int) and not isinstance(ttl, bool) and 1 <= ttl <= _MAX_TTL):
        raise _bad(f"ttl: a whole number of seconds, 1-{_MAX_TTL}")
    return user, tenant, list(dict.fromkeys(permissions)), ttl


class ConsoleGateway(Gateway):
    """The gateway, plus the console page and its local-only routes (see the module's doc)."""

    def __init__(self, *args: Any, token_secret: str, audience: str | None = None,
                 issuer: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_secret = token_secret
        self._audience = audience
        self._issuer = issuer

    @property
    def console_url(self) -> str:
        return f"{self.http_url}{PREFIX}/"

    def add_routes(self, web_app: web.Application) -> None:
        router = web_app.router
        router.add_get(PREFIX, self._console_redirect)
        router.add_post(f"{PREFIX}/token", self._console_token)
        router.add_post(f"{PREFIX}/disconnect", self._console_disconnect)
        router.add_get(f"{PREFIX}/sdk/{{path:.*}}", self._console_sdk)
        router.add_get(f"{PREFIX}/{{path:.*}}", self._console_page)

    # -- the page ------------------------------------------------------------------

    async def _console_redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{PREFIX}/")

    async def _console_page(self, request: web.Request) -> web.StreamResponse:
        return _file_response(PAGE_DIR, request.match_info.get("path", ""))

    async def _console_sdk(self, request: web.Request) -> web.StreamResponse:
        if not (SDK_DIR / "index.js").is_file():
            raise web.HTTPNotFound(text="the JS SDK is not built: cd clients/js && "
                                        "npm ci && npm run build\n")
        return _file_response(SDK_DIR, request.match_info.get("path", ""))

    # -- the local-only routes -------------------------------------------------------

    async def _local_json(self, request: web.Request) -> Any:
        """The JSON body of a POST from the console page itself; 403/415/400 otherwise."""
        if not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="the console routes answer loopback clients only\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{request.host}",
                                                 f"https://{request.host}"):
            raise web.HTTPForbidden(text="the console routes are for the console page "
                                         "(same origin only)\n")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="send Content-Type: application/json\n")
        if request.content_length is not None and request.content_length > _MAX_JSON:
            raise _bad(f"the body is over {_MAX_JSON} bytes")
        raw = await request.content.read(_MAX_JSON + 1)
        if len(raw) > _MAX_JSON:
            raise _bad(f"the body is over {_MAX_JSON} bytes")
        try:
            return json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            raise _bad("the body must be JSON") from None

    async def _console_token(self, request: web.Request) -> web.Response:
        """A development token for {user, tenant, permissions, ttl} (see check_token_request)."""
        user, tenant, permissions, ttl = check_token_request(await self._local_json(request))
        from local.cli import make_token  # here: local.cli imports local.stack, this module

        token = make_token(self._token_secret, user=user, tenant=tenant,
                           permissions=permissions, ttl=ttl, audience=self._audience,
                           issuer=self._issuer)
        log.info("console: minted a token for %s@%s %s, ttl %ds", user, tenant,
                 permissions, ttl)
        return web.json_response({"token": token, "user": user, "tenant": tenant,
                                  "permissions": permissions, "ttl": ttl},
                                 headers={"Cache-Control": "no-store"})

    async def _console_disconnect(self, request: web.Request) -> web.Response:
        """DELETE connections through ``@connections``: the one named, or the caller's."""
        body = await self._local_json(request)
        if not isinstance(body, dict) or set(body) - {"connectionId"}:
            raise _bad('the body must be {} or {"connectionId": "..."}')
        wanted = body.get("connectionId")
        if wanted is not None and not (isinstance(wanted, str)
                                       and _CONNECTION_ID.fullmatch(wanted)):
            raise _bad("connectionId: 1-128 characters of A-Z a-z 0-9 _ = + -")
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if wanted is not None:
                targets = [wanted]
            else:
                # The caller's own connections: its source IP and User-Agent, as the
                # gateway's control API reports them for each connection.
                async with session.get(f"{self.http_url}/_local/connections") as reply:
                    listed = await reply.json()
                agent = request.headers.get("User-Agent")
                targets = [c["connectionId"] for c in listed
                           if c["identity"].get("sourceIp") == request.remote
                           and c["identity"].get("userAgent") == agent]
            deleted: list[str] = []
            missing: list[str] = []
            for connection_id in targets:
                url = f"{self.connections_url}/@connections/{connection_id}"
                async with session.delete(url) as reply:
                    (deleted if reply.status in (200, 204) else missing).append(connection_id)
        log.info("console: deleted connection(s) %s through @connections", deleted)
        if wanted is not None and not deleted:
            raise web.HTTPNotFound(text=f"no connection {wanted}\n")
        return web.json_response({"deleted": deleted, "missing": missing},
                                 headers={"Cache-Control": "no-store"})
