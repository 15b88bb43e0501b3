"""The whole local stack behind ``python -m local``: DynamoDB, tables, app, gateway, poller.

:class:`LocalStack` first checks the environment it prepares for the app with the
app's own :meth:`chalicelib.settings.Settings.from_env` (the app reads it lazily, at its
first invocation, so a bad value would otherwise start a stack whose every handshake
fails with 500). Then it starts, in order: the moto DynamoDB server (or uses one given
by URL), the app's environment, the tables from :mod:`chalicelib.tables` (and the
``requests`` stream ARN), the app itself (imported from ``app.py`` or a ``module:attr``
spec), the :class:`~streamer_local.gateway.Gateway` (then the real endpoint URLs) and the
:class:`~streamer_local.poller.StreamPoller`. The stream ARN is set before the app is imported
because ``@app.on_dynamodb_record`` reads it at import time. The poller's function
timeout is the gateway's ``lambda_timeout``, so a stream handler's time budget
(``context.get_remaining_time_in_millis()``) matches ``--lambda-timeout``.

:func:`app_environment` and :func:`load_app` are also what a test uses to run the real
``app.py`` behind an in-process gateway (see docs/local.md, "From tests").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chalicelib.settings import Settings
from chalicelib.tables import TABLES, create_tables
from local.console import ConsoleGateway
from local.flags import DEFAULT_REGION, DEFAULT_TABLE_PREFIX
from streamer_local import project
from streamer_local.dynamodb_server import DynamoDBServer
from streamer_local.gateway import Gateway
from streamer_local.poller import StreamPoller
from streamer_local.settings import Faults, GatewaySettings
from streamer_local.tls import make_local_tls

log = logging.getLogger("local.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent

# For local runs only: >= 32 bytes as the app requires, and named so that nobody can
# mistake it for a real secret. `python -m local token` signs with the same default.
DEFAULT_JWT_SECRET = "streamer-local-development-secret-never-deploy"


def jwt_secret(env: MutableMapping[str, str] | None = None) -> str:
    """``JWT_SECRET`` from the environment, else the documented development default."""
    env = os.environ if env is None else env
    return env.get("JWT_SECRET") or DEFAULT_JWT_SECRET


def load_app(spec: str = "app:app") -> Any:
    """Import ``module:attr`` with the repository root first on ``sys.path``."""
    return project.load_app(spec, REPO_ROOT)


def app_environment(
    *,
    dynamodb_endpoint_url: str,
    table_prefix: str,
    ws_endpoint_url: str,
    secret: str,
    stream_arns: dict[str, str],
    region: str = DEFAULT_REGION,
) -> dict[str, str]:
    """The environment the app reads at its first invocation, for the local servers."""
    values = {
        "JWT_SECRET": secret,
        "TABLE_PREFIX": table_prefix,
        "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint_url,
        "WS_ENDPOINT_URL": ws_endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # Dummy credentials: every endpoint is local, and nothing may reach real AWS.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    if "requests" in stream_arns:
        values["REQUESTS_STREAM_ARN"] = stream_arns["requests"]
    return values


@dataclass
class StackOptions:
    """What ``python -m local`` was asked for (see local/cli.py for the flags)."""

    host: str = "127.0.0.1"
    port: int = 8080
    app_spec: str = "app:app"
    table_prefix: str = DEFAULT_TABLE_PREFIX
    secret: str = DEFAULT_JWT_SECRET
    region: str = DEFAULT_REGION
    dynamodb_endpoint_url: str | None = None
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    faults: Faults = field(default_factory=Faults)


class LocalStack:
    """Start and stop every local piece, in dependency order."""

    def __init__(self, options: StackOptions, env: MutableMapping[str, str] | None = None) -> None:
        self.options = options
        self.env = os.environ if env is None else env
        self.dynamodb: DynamoDBServer | None = None
        self.dynamodb_endpoint_url = ""  # known once start() has it
        self.gateway: Gateway | None = None
        self.poller: StreamPoller | None = None

    def app_values(
        self,
        *,
        dynamodb_endpoint_url: str,
        ws_endpoint_url: str,
        lambda_endpoint_url: str,
        stream_arns: dict[str, str],
    ) -> dict[str, str]:
        """What the stack sets in the app's environment, for these local endpoints."""
        opts = self.options
        values = app_environment(
            dynamodb_endpoint_url=dynamodb_endpoint_url, table_prefix=opts.table_prefix,
            ws_endpoint_url=ws_endpoint_url, secret=opts.secret, stream_arns=stream_arns,
            region=opts.region,
        )
        # Large publishes fan out in workers: asynchronous invocations of the app's
        # ``fanout`` function through this gateway's Lambda Invoke API, as on AWS.
        values["LAMBDA_ENDPOINT_URL"] = lambda_endpoint_url
        # Kept if set, even to "" (which turns the workers off).
        values["FANOUT_FUNCTION_NAME"] = self.env.get("FANOUT_FUNCTION_NAME", "fanout")
        return values

    def check_settings(self) -> Settings:
        """The app's settings from the environment the stack will give it; ConfigError if bad.

        Endpoint URLs not known yet (free ports) are stand-ins: the app only stores them.
        """
        opts = self.options
        base = f"http://{opts.host}:{opts.port}"
        env = {key: value for key, value in self.env.items() if key != "AWS_PROFILE"}
        env.update(self.app_values(
            dynamodb_endpoint_url=opts.dynamodb_endpoint_url or base,
            ws_endpoint_url=f"{base}/{opts.settings.stage}", lambda_endpoint_url=base,
            stream_arns={},
        ))
        return Settings.from_env(env)

    async def start(self) -> Gateway:
        opts = self.options
        # Before anything long-lived starts: the app would raise this ConfigError only
        # at its first invocation, answering every handshake with 500.
        self.check_settings()
        endpoint = opts.dynamodb_endpoint_url
        if endpoint is None:
            self.dynamodb = DynamoDBServer()
            endpoint = await asyncio.to_thread(self.dynamodb.start)
        self.dynamodb_endpoint_url = endpoint
        self.env.pop("AWS_PROFILE", None)
        http_base = f"http://{opts.host}:{opts.port}"
        self.env.update(self.app_values(
            dynamodb_endpoint_url=endpoint, ws_endpoint_url=f"{http_base}/{opts.settings.stage}",
            lambda_endpoint_url=http_base, stream_arns={},
        ))
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=opts.region)
        try:
            arns = await asyncio.to_thread(create_tables, client, opts.table_prefix)
        finally:
            client.close()
        if "requests" in arns:
            self.env["REQUESTS_STREAM_ARN"] = arns["requests"]
        # https for @connections too: Chalice's app.websocket_api posts only over TLS.
        tls = make_local_tls()
        self.env["AWS_CA_BUNDLE"] = str(tls.cert_path)
        app = load_app(opts.app_spec)
        # The gateway plus the console page (/_local/console/, local/console.py).
        self.gateway = ConsoleGateway(
            app, opts.host, opts.port, opts.settings, opts.faults, opts.region,
            app_spec=opts.app_spec, lambda_env=self.env, tls=tls, token_secret=opts.secret,
            audience=self.env.get("JWT_AUDIENCE") or None,
            issuer=self.env.get("JWT_ISSUER") or None)
        await self.gateway.start()
        # With port 0 the URLs are known only now; no invocation has run yet (the loop
        # has not turned since the socket was bound), and the app reads them lazily.
        self.env["WS_ENDPOINT_URL"] = self.gateway.connections_url
        self.env["LAMBDA_ENDPOINT_URL"] = self.gateway.http_url
        # --lambda-processes: the worker processes copy the app's environment, now complete.
        await self.gateway.start_lambda_processes()
        # A stream handler gets the same time budget as any other invocation here, so
        # the processor's deadline (get_remaining_time_in_millis) follows --lambda-timeout.
        self.poller = StreamPoller(
            app, endpoint, opts.table_prefix,
            redeliver_fraction=opts.faults.redeliver_fraction, seed=opts.faults.seed,
            function_timeout=opts.settings.lambda_timeout, region_name=opts.region,
            fallback_tables=tuple(t.name for t in TABLES if t.stream is not None),
        )
        await self.poller.start()
        return self.gateway

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
            self.poller.close()
            self.poller = None
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.dynamodb is not None:
            await asyncio.to_thread(self.dynamodb.stop)
            self.dynamodb = None
