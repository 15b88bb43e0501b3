"""Client CPU per @connections delivery: boto3 vs botocore's signer on urllib3 vs FastSender.

A sink that answers ``POST /{stage}/@connections/{id}`` with 200 on kept-alive
connections runs in a child process on loopback (aiohttp's low-level server), so its
CPU is not counted. This process posts sequentially and measures its own CPU
(``time.process_time``) per delivery after a warm-up, for several runs, and prints
medians and the ratio against boto3's ``post_to_connection`` (what Chalice's
``app.websocket_api.send`` uses).

    .venv/bin/python -m bench.sender_cpu [--runs 5] [--posts 2000] [--json out.json] [--check]

``--check`` exits 1 when FastSender's median exceeds 150 us or is less than 6 times
below boto3's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import platform
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.report import SENDER_MAX_US as GOAL_US
from bench.report import SENDER_MIN_RATIO as GOAL_RATIO

REGION = "us-east-1"
STAGE = "bench"
ACCESS_KEY = "AKIDBENCHEXAMPLE"
SECRET_KEY = "bench/secret/key/example/0123456789abcdef"
# Lambda's role credentials carry a session token of about this size.
TOKEN = "IQoJb3JpZ2luX2VjE" + "A" * 900 + "=="
PAYLOAD = json.dumps({"type": "message", "channel": "bench", "data": "x" * 400}).encode()
CONNECTION_IDS = [base64.b64encode(i.to_bytes(11, "big")).decode() + "=" for i in range(64)]

Post = Callable[[str, bytes], None]


# --- the sink (child process) -------------------------------------------------------

def _serve(conn: Connection) -> None:
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        await request.read()
        return web.Response(status=200)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(web.Server(handle), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)  # any message (or EOF) stops us
        server.close()

    with contextlib.suppress(EOFError):  # the parent went away: stop too
        asyncio.run(main())


class Sink:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), daemon=True)

    def __enter__(self) -> str:
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the sink did not start")
        port = self._conn.recv()
        return f"http://127.0.0.1:{port}/{STAGE}"

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()


# --- the three paths ----------------------------------------------------------------

def boto3_path(endpoint: str) -> Post:
    import boto3
    from botocore.config import Config

    # The configuration chalicelib.management_api.ManagementApiSender uses.
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        aws_session_token=TOKEN,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      max_pool_connections=10, connect_timeout=3, read_timeout=5))

    def post(connection_id: str, data: bytes) -> None:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
    return post


def sigv4auth_path(endpoint: str) -> Post:
    """botocore's SigV4Auth on an AWSRequest, sent on the same urllib3 pool FastSender uses."""
    import urllib3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from chalicelib.fast_sender import encode_connection_id

    credentials = Credentials(ACCESS_KEY, SECRET_KEY, TOKEN)
    pool = urllib3.connection_from_url(endpoint, maxsize=10, block=True, retries=False)
    prefix = f"/{STAGE}/@connections/"

    def post(connection_id: str, data: bytes) -> None:
        path = prefix + encode_connection_id(connection_id)
        request = AWSRequest(method="POST", url=endpoint.rsplit("/", 1)[0] + path, data=data)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", REGION).add_auth(request)
        response = pool.urlopen("POST", path, body=data, headers=dict(request.headers.items()),
                                retries=False, redirect=False, assert_same_host=False)
        if response.status != 200:
            raise RuntimeError(response.status)
    return post


def signer_urllib3_path(endpoint: str) -> Post:
    """FastSender's request signing, sent through urllib3 instead of its own pool."""
    import urllib3
    from botocore.credentials import Credentials

    from chalicelib.fast_sender import FastSender

    sender = FastSender(endpoint, REGION, credentials=Credentials(ACCESS_KEY, SECRET_KEY, TOKEN))
    pool = urllib3.connection_from_url(endpoint, maxsize=10, block=True, retries=False)

    def post(connection_id: str, data: bytes) -> None:
        head, _, body = sender.request_bytes(connection_id, data).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = dict(line.split(": ", 1) for line in lines[1:])
        response = pool.urlopen("POST", path, body=body, headers=headers, retries=False,
                                redirect=False, assert_same_host=False)
        if response.status != 200:
            raise RuntimeError(response.status)
    return post


def fast_path(endpoint: str) -> Post:
    from botocore.credentials import Credentials

    from chalicelib.fast_sender import FastSender

    sender = FastSender(endpoint, REGION, pool_size=10,
                        credentials=Credentials(ACCESS_KEY, SECRET_KEY, TOKEN))
    return sender.post


def fast_refreshable_path(endpoint: str) -> Post:
    """FastSender on RefreshableCredentials (what Lambda's chain returns), far from expiry."""
    from datetime import UTC, datetime, timedelta

    from botocore.credentials import RefreshableCredentials

    from chalicelib.fast_sender import FastSender

    def metadata() -> dict[str, str]:
        return {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "token": TOKEN,
                "expiry_time": (datetime.now(UTC) + timedelta(hours=6)).isoformat()}
    credentials = RefreshableCredentials.create_from_metadata(
        metadata(), metadata, "bench")
    sender = FastSender(endpoint, REGION, pool_size=10, credentials=credentials)
    return sender.post


PATHS: dict[str, Callable[[str], Post]] = {
    "boto3 post_to_connection": boto3_path,
    "SigV4Auth + urllib3": sigv4auth_path,
    "SigV4Signer + urllib3": signer_urllib3_path,
    "FastSender": fast_path,
    "FastSender (refreshable creds)": fast_refreshable_path,
}
FAST = "FastSender"
BASELINE = "boto3 post_to_connection"


# --- measuring ----------------------------------------------------------------------

def cpu_us_per_post(post: Post, count: int) -> float:
    ids = CONNECTION_IDS
    start = time.process_time()
    for i in range(count):
        post(ids[i % len(ids)], PAYLOAD)
    return (time.process_time() - start) / count * 1e6


def signer_only() -> dict[str, float]:
    """CPU per Authorization value, no I/O: SigV4Auth on an AWSRequest vs SigV4Signer."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from chalicelib.fast_sender import SigV4Signer

    creds = Credentials(ACCESS_KEY, SECRET_KEY, TOKEN).get_frozen_credentials()
    url = f"https://abc.execute-api.{REGION}.amazonaws.com/{STAGE}/@connections/abc%3D"
    signer = SigV4Signer(REGION)
    count = 5000
    start = time.process_time()
    for _ in range(count):
        request = AWSRequest(method="POST", url=url, data=PAYLOAD)
        SigV4Auth(creds, "execute-api", REGION).add_auth(request)
    botocore_us = (time.process_time() - start) / count * 1e6
    from hashlib import sha256
    start = time.process_time()
    for _ in range(count):
        signer.authorization(
            method="POST", host=f"abc.execute-api.{REGION}.amazonaws.com",
            canonical_uri=f"/{STAGE}/@connections/abc%253D", amz_date="20250101T000000Z",
            payload_hash=sha256(PAYLOAD).hexdigest(), access_key=creds.access_key,
            secret_key=creds.secret_key, token=creds.token)
    fast_us = (time.process_time() - start) / count * 1e6
    return {"SigV4Auth.add_auth": botocore_us, "SigV4Signer.authorization": fast_us}


def run(runs: int, posts: int, warmup: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in PATHS}
    with Sink() as endpoint:
        senders = {name: build(endpoint) for name, build in PATHS.items()}
        for post in senders.values():
            cpu_us_per_post(post, warmup)
        for _ in range(runs):  # interleaved, so drift hits every path alike
            for name, post in senders.items():
                samples[name].append(cpu_us_per_post(post, posts))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians[BASELINE]
    return {
        "benchmark": "sender_cpu",
        "unit": "us_cpu_per_delivery",
        "runs": runs, "posts_per_run": posts, "payload_bytes": len(PAYLOAD),
        "python": sys.version.split()[0], "machine": platform.machine(),
        "paths": {name: {"median": medians[name], "samples": samples[name],
                         "ratio_vs_boto3": baseline / medians[name]} for name in PATHS},
        "signer_only_us": signer_only(),
        "goal": {"max_us": GOAL_US, "min_ratio": GOAL_RATIO},
    }


def table(report: dict[str, Any]) -> str:
    lines = [f"{'path':32} {'median us':>10} {'min':>8} {'max':>8} {'x boto3':>8}"]
    for name, row in report["paths"].items():
        lines.append(f"{name:32} {row['median']:10.1f} {min(row['samples']):8.1f} "
                     f"{max(row['samples']):8.1f} {row['ratio_vs_boto3']:8.2f}")
    lines.append("")
    lines.append("signer only (no I/O), us per Authorization value:")
    for name, value in report["signer_only_us"].items():
        lines.append(f"  {name:30} {value:8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless FastSender <= {GOAL_US:g} us and "
                             f">= {GOAL_RATIO:g}x below boto3")
    args = parser.parse_args(argv)
    report = run(args.runs, args.posts, args.warmup)
    fast = report["paths"][FAST]
    report["goal"]["met"] = fast["median"] <= GOAL_US and fast["ratio_vs_boto3"] >= GOAL_RATIO
    print(table(report))
    verdict = "met" if report["goal"]["met"] else "NOT met"
    print(f"\ngoal (FastSender <= {GOAL_US:g} us, >= {GOAL_RATIO:g}x below boto3): {verdict}: "
          f"{fast['median']:.1f} us, {fast['ratio_vs_boto3']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if args.check and not report["goal"]["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
