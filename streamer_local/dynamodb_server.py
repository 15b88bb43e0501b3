"""An embedded DynamoDB (and DynamoDB Streams) server: moto's server mode on loopback.

Run as ``python -m streamer_local.dynamodb_server --port 0``: it binds 127.0.0.1, prints one
line ``DYNAMODB_READY http://127.0.0.1:<port>`` on stdout and serves until killed.
:class:`DynamoDBServer` starts it as a child process for the local stack and tests.

Why not the ``moto_server`` command: it binds a fixed port and cannot report a free
one, and it logs every request. This serves the same moto WSGI app on port 0 and
prints the bound port. Requests run one at a time (:class:`SerializedApp`): moto's
backends are not thread-safe. Measured here: about 170-200 writes/s through boto3
whether the server keeps connections alive (waitress) or not (werkzeug); moto's own
item handling (about 2 ms in-process) is the bottleneck, so keep it off hot loops in
tests. Benchmarks and load tests use the in-memory stores of :mod:`local.memory`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

READY_PREFIX = "DYNAMODB_READY "


class SerializedApp:
    """A WSGI middleware that lets one request at a time into the wrapped app.

    moto's backends are plain dicts without locks: with werkzeug's ``threaded=True``,
    concurrent writers (``TransactWriteItems`` deep-copies whole tables while another
    thread inserts) fail with HTTP 500 "dictionary changed size during iteration".
    The response iterable is consumed inside the lock too, since moto may build the
    body lazily. Threads still accept and parse connections in parallel; only moto's
    own work is serialized, which costs nothing as it is CPU-bound under the GIL.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """One line per DynamoDB call would drown the local stack's own log."""

    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    print(f"{READY_PREFIX}http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


class DynamoDBServer:
    """A moto DynamoDB server in a child process, bound to a free loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.endpoint_url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> str:
        env = dict(os.environ)
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "streamer_local.dynamodb_server", "--host", self.host,
             "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        stdout: IO[str] | None = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                self.endpoint_url = line[len(READY_PREFIX):].strip()
                self.port = int(self.endpoint_url.rsplit(":", 1)[1])
                return self.endpoint_url
        self.stop()
        raise RuntimeError("the DynamoDB server did not start (no ready line)")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> DynamoDBServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
