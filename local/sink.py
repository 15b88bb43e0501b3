"""A recording @connections HTTP endpoint, for functional tests of the real sender.

It speaks the Management API's wire shape (``POST /{stage}/@connections/{id}``) on a
free loopback port, so the app's boto3 sender talks to it with only an endpoint
URL. Chosen connection ids can be answered 410 Gone, 429 LimitExceededException
(a number of times), or 500.

It also answers Lambda's asynchronous Invoke API (``InvocationType: Event``), handing
each payload to ``on_invoke`` in a new thread, as Lambda would run a worker.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

STAGE = "dev"


class ConnectionsSink:
    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.throttle: dict[str, int] = {}
        self.fail: set[str] = set()
        self.attempts: dict[str, int] = defaultdict(int)
        self.deleted: list[str] = []  # @connections DELETEs, in order
        self.on_invoke: Callable[[str, dict[str, Any]], None] | None = None
        self.refuse_invokes = False
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{STAGE}"

    @property
    def lambda_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> ConnectionsSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.frames.clear()
            self.gone.clear()
            self.throttle.clear()
            self.fail.clear()
            self.attempts.clear()
            self.invocations.clear()
            self.deleted.clear()
        self.on_invoke = None
        self.refuse_invokes = False
        self.join_workers()
        self._workers.clear()

    def invoke(self, function_name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.invocations.append((function_name, payload))
        if self.on_invoke is not None:
            worker = threading.Thread(target=self.on_invoke, args=(function_name, payload))
            worker.start()
            self._workers.append(worker)

    def join_workers(self, timeout: float = 30.0) -> None:
        for worker in list(self._workers):
            worker.join(timeout)

    def received(self, connection_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            frames = list(self.frames.get(connection_id, []))
        return [f for f in frames if type_ is None or f.get("type") == type_]

    def last(self, connection_id: str) -> dict[str, Any]:
        frames = self.received(connection_id)
        assert frames, f"nothing was sent to {connection_id}"
        return frames[-1]

    def wait_for(self, connection_id: str, count: int,
                 timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames = self.received(connection_id)
            if len(frames) >= count:
                return frames
            time.sleep(0.01)
        return self.received(connection_id)

    def _answer(self, connection_id: str, body: bytes) -> tuple[int, str | None]:
        with self._lock:
            self.attempts[connection_id] += 1
            if connection_id in self.gone:
                return 410, "GoneException"
            if connection_id in self.fail:
                return 500, "InternalServerErrorException"
            if self.throttle.get(connection_id, 0) > 0:
                self.throttle[connection_id] -= 1
                return 429, "LimitExceededException"
            self.frames[connection_id].append(json.loads(body))
            return 200, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                prefix = f"/{STAGE}/@connections/"
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.path.startswith("/2015-03-31/functions/") and sink.refuse_invokes:
                    self._reply(429, "TooManyRequestsException")
                    return
                if self.path.startswith("/2015-03-31/functions/"):
                    name = unquote(self.path.split("/")[3])
                    sink.invoke(name, json.loads(body))
                    self.send_response(202)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not self.path.startswith(prefix):
                    self._reply(404, "NotFoundException")
                    return
                status, error = sink._answer(unquote(self.path[len(prefix):]), body)
                self._reply(status, error)

            def do_DELETE(self) -> None:
                prefix = f"/{STAGE}/@connections/"
                if not self.path.startswith(prefix):
                    self._reply(404, "NotFoundException")
                    return
                with sink._lock:
                    sink.deleted.append(unquote(self.path[len(prefix):]))
                self._reply(204, None)

            def _reply(self, status: int, error: str | None) -> None:
                payload = json.dumps({"message": error}).encode() if error else b""
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the tests read what was recorded instead."""

        return Handler
