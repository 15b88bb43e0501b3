"""``python -m local``: run the local stack, or print a development token.

    python -m local [--port 8080] [--app app:app] [fault flags ...]
    python -m local token --user u1 --tenant t1 --permissions read,write [--ttl 3600]

Every flag's default comes from an environment variable, so ``make run`` can be tuned
without editing the Makefile; local/flags.py declares them all, and docs/local.md's
tables are written from it. Once everything is up
the stack prints exactly one line on stdout,
``Streamer local gateway ready: ws://127.0.0.1:<port>``, and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

import jwt

from chalicelib.errors import ConfigError
from chalicelib.settings import Settings
from local import flags
from local.stack import LocalStack, StackOptions, jwt_secret
from streamer_local import eventloop
from streamer_local.settings import SettingsError

READY_LINE = "Streamer local gateway ready: {url}"
DYNAMODB_LINE = ("DynamoDB: {endpoint} (tables {prefix}*; any credentials, region {region}: "
                 "aws dynamodb list-tables --endpoint-url {endpoint} --region {region})")
log = logging.getLogger("local")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run Streamer's app.py behind a local API Gateway, DynamoDB and "
                    "stream poller.",
    )
    flags.add_to(parser, env)

    sub = parser.add_subparsers(dest="command")
    token = sub.add_parser("token", help="print a development JWT signed with JWT_SECRET")
    token.add_argument("--user", required=True, help="user_id claim")
    token.add_argument("--tenant", required=True, help="tenant_id claim")
    token.add_argument("--permissions", default="read,write",
                       help="comma-separated permissions claim (default read,write)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    token.add_argument("--audience", default=env.get("JWT_AUDIENCE") or None,
                       help="aud claim (env JWT_AUDIENCE)")
    token.add_argument("--issuer", default=env.get("JWT_ISSUER") or None,
                       help="iss claim (env JWT_ISSUER)")
    return parser


def make_token(
    secret: str,
    *,
    user: str,
    tenant: str,
    permissions: Sequence[str],
    ttl: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    now: int | None = None,
) -> str:
    """An HS256 token with the claims PROTOCOL.md requires."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, object] = {
        "user_id": user,
        "tenant_id": tenant,
        "permissions": list(permissions),
        "iat": issued,
        "exp": issued + ttl,
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def check_token_secret(secret: str, env: Mapping[str, str]) -> None:
    """ConfigError if the app would refuse this secret (for its ``JWT_ALGORITHMS``)."""
    # A token signed with a secret the app refuses is of no use, and signing would hide
    # the misconfiguration until the first handshake.
    Settings.from_env({"JWT_SECRET": secret,
                       "JWT_ALGORITHMS": env.get("JWT_ALGORITHMS") or "HS256"})


def _config_error(exc: ConfigError) -> int:
    """Report a setting the app would refuse, as one line on stderr; exit status 2."""
    print(f"python -m local: error: {exc}", file=sys.stderr)
    return 2


def options_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> StackOptions:
    return StackOptions(
        host=args.host, port=args.port, app_spec=args.app, table_prefix=args.table_prefix,
        secret=jwt_secret(dict(env)), region=args.region,
        dynamodb_endpoint_url=args.dynamodb_endpoint,
        settings=flags.gateway_settings(args), faults=flags.faults(args),
    )


async def serve(options: StackOptions) -> None:
    stack = LocalStack(options)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        gateway = await stack.start()
        log.info("@connections endpoint %s; Lambda endpoint %s; tables %s*",
                 gateway.connections_url, gateway.http_url, options.table_prefix)
        log.info("console: %s/_local/console/", gateway.http_url)
        # stdout carries exactly these two lines (docs/local.md); logs go to stderr.
        print(READY_LINE.format(url=gateway.url), flush=True)
        print(DYNAMODB_LINE.format(endpoint=stack.dynamodb_endpoint_url,
                                   prefix=options.table_prefix, region=options.region),
              flush=True)
        await stopping.wait()
        log.info("stopping")
    finally:
        await stack.stop()


def _check_file_limit(wanted: int = 20_000) -> None:
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        if soft < wanted:
            log.warning("open file limit is %d: fewer than %d connections fit", soft, wanted)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if args.command == "token":
        secret = jwt_secret(dict(env))
        try:
            check_token_secret(secret, env)
        except ConfigError as exc:
            return _config_error(exc)
        permissions = [p.strip() for p in args.permissions.split(",") if p.strip()]
        print(make_token(secret, user=args.user, tenant=args.tenant,
                         permissions=permissions, ttl=args.ttl, audience=args.audience,
                         issuer=args.issuer))
        return 0
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args, env)
        eventloop.loop_kind()
    except (SettingsError, ValueError) as exc:
        parser.error(str(exc))
    _check_file_limit()
    try:
        eventloop.run(serve(options))
    except ConfigError as exc:  # raised by LocalStack.start before anything started
        return _config_error(exc)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"python -m local: error: {options.host}:{options.port} is already in use; "
              "stop what holds it or pick another port (--port N, PORT=N)", file=sys.stderr)
        return 2
    return 0
