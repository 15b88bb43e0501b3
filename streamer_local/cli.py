"""``streamer-local``: serve the Chalice project in the current directory, WebSockets and all.

    streamer-local [--port 8080] [--stage dev] [--resources resources.json]
                   [--project-dir .] [--app app:app] [--reload]

Run from a Chalice project's directory (the one holding ``app.py`` and
``.chalice/config.json``). It starts a DynamoDB server (moto's, with Streams) and creates
the tables of the project's CloudFormation resources (``--resources``, default
``resources.json`` when there is one: the file ``chalice package --merge-template``
takes), applies the stage's ``environment_variables``, points the app's AWS clients at
the local services through botocore's own settings (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_CA_BUNDLE``, a region and dummy credentials), imports ``app.py`` unmodified and
serves it: ``$connect``/``$default``/``$disconnect``, ``@connections`` (also over https,
where Chalice's ``app.websocket_api`` posts), Lambda Invoke for its functions, and its
``@on_dynamodb_record`` handlers from the tables' streams. Two lines on stdout, the
ready line and the DynamoDB endpoint; logs go to stderr.
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
from collections.abc import Mapping, Sequence
from pathlib import Path

from streamer_local import eventloop, project, reload
from streamer_local.dynamodb_server import DynamoDBServer
from streamer_local.gateway import Gateway
from streamer_local.poller import StreamPoller
from streamer_local.settings import GatewaySettings
from streamer_local.tls import make_local_tls

READY_LINE = "streamer-local ready: {url}"
DYNAMODB_LINE = ("DynamoDB: {endpoint} (any credentials, region {region}: "
                 "aws dynamodb list-tables --endpoint-url {endpoint} --region {region})")
log = logging.getLogger("streamer_local")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer-local", description=__doc__.split("\n")[0])
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(),
                        help="the Chalice project (default: the current directory)")
    parser.add_argument("--app", default="app:app", help="the app as module:attr")
    parser.add_argument("--stage", default="dev",
                        help="the .chalice/config.json stage whose environment to apply")
    parser.add_argument("--resources", type=Path, default=None,
                        help="a CloudFormation template whose DynamoDB tables to create "
                             "(default: resources.json in the project, if any)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free one")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--reload", action="store_true",
                        help="re-import the app when a .py file of the project changes, "
                             "keeping open connections")
    parser.add_argument("--log-level", default="WARNING")
    return parser


async def serve(args: argparse.Namespace) -> None:
    root = args.project_dir.resolve()
    stage_env = project.stage_environment(root, args.stage)
    resources = args.resources or (root / "resources.json")
    definitions = (project.table_definitions(project.load_template(resources))
                   if args.resources is not None or resources.exists() else [])
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    database = DynamoDBServer()
    endpoint = await asyncio.to_thread(database.start)
    gateway: Gateway | None = None
    poller: StreamPoller | None = None
    try:
        tls = make_local_tls()
        env = app_environment(stage_env, endpoint, args.region, str(tls.cert_path))
        os.environ.update(env)
        os.environ.pop("AWS_PROFILE", None)
        import boto3

        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=args.region)
        await asyncio.to_thread(project.create_tables, client, definitions)
        os.chdir(root)  # the app may read files next to app.py, as Lambda's cwd is its root
        app = project.load_app(args.app, root)
        settings = GatewaySettings(stage=project.api_gateway_stage(root, args.stage))
        gateway = Gateway(app, args.host, args.port, settings, region=args.region, tls=tls)
        await gateway.start()
        poller = StreamPoller(app, endpoint, "", region_name=args.region)
        await poller.start()
        watcher = None
        if args.reload:
            serving_gateway, serving_poller = gateway, poller

            def swap(new_app: object) -> None:
                serving_gateway.replace_app(new_app)
                serving_poller.replace_app(new_app)  # type: ignore[arg-type]

            watcher = asyncio.create_task(reload.watch(root, args.app, swap))
        print(READY_LINE.format(url=gateway.url), flush=True)
        print(DYNAMODB_LINE.format(endpoint=endpoint, region=args.region), flush=True)
        await stopping.wait()
        if watcher is not None:
            watcher.cancel()
    finally:
        if poller is not None:
            await poller.stop()
        if gateway is not None:
            await gateway.stop()
        await asyncio.to_thread(database.stop)


def app_environment(stage_env: Mapping[str, str], dynamodb_endpoint: str, region: str,
                    ca_bundle: str) -> dict[str, str]:
    """What the app's process gets: its stage's variables, then the local services'
    endpoints through botocore's public settings (a stage may not override these)."""
    return {
        **stage_env,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": dynamodb_endpoint,
        "AWS_CA_BUNDLE": ca_bundle,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        eventloop.run(serve(args))
    except project.ProjectError as exc:
        print(f"streamer-local: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"streamer-local: error: {args.host}:{args.port} is already in use; "
              "pick another port with --port", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
