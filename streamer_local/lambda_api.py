"""The emulated Lambda Invoke API: ``POST /2015-03-31/functions/{name}/invocations``,
for the app's ``@app.lambda_function()`` handlers, as boto3's ``lambda`` client calls it
(``RequestResponse``, ``Event``, ``DryRun``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from streamer_local.connections_api import Reply
from streamer_local.lambda_processes import ProcessInvoker
from streamer_local.lambda_runtime import Handler, Invoker


def _error(status: int, error_type: str, message: str) -> web.Response:
    """An error as AWS's rest-json services send it, so botocore raises the modelled class."""
    reply = Reply.error(status, error_type, message)
    return web.Response(status=status, body=reply.body, headers=dict(reply.headers))


class LambdaApi:
    """Invocations of the app's plain Lambda functions."""

    app: Any
    region: str
    invoker: Invoker
    processes: ProcessInvoker | None

    def _lambda_functions(self) -> dict[str, Handler]:
        raise NotImplementedError

    def _spawn(self, coro: Any) -> None:
        raise NotImplementedError

    def _resolve_function(self, requested: str) -> str | None:
        """Accept a name, a (partial) ARN, a qualified name or Chalice's deployed name."""
        name = requested.split(":function:", 1)[-1].split(":", 1)[0]
        functions = self._lambda_functions()
        if name in functions:
            return name
        prefix = f"{self.app.app_name}-"
        if name.startswith(prefix):
            for candidate in functions:
                if name.endswith(f"-{candidate}"):
                    return candidate
        return None

    async def _invoke_function(self, request: web.Request) -> web.Response:
        requested = request.match_info["function_name"]
        name = self._resolve_function(requested)
        if name is None:
            arn = f"arn:aws:lambda:{self.region}:000000000000:function:{requested}"
            return web.json_response(
                {"Type": "User", "message": f"Function not found: {arn}"}, status=404,
                headers={"x-amzn-errortype": "ResourceNotFoundException"},
            )
        raw = await request.read()
        try:
            event = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "InvalidRequestContentException",
                          "Could not parse request body into json")
        handler = self._lambda_functions()[name]
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return web.Response(status=204)
        if invocation_type == "Event":
            if self.processes is not None:
                self._spawn(self.processes.invoke(name, event))
            else:
                self._spawn(self.invoker.invoke(name, handler, event))
            return web.Response(status=202)
        invocation = await self.invoker.invoke(name, handler, event)
        headers = {"X-Amz-Executed-Version": "$LATEST",
                   "x-amzn-RequestId": invocation.request_id}
        payload: Any = invocation.result
        if invocation.failed:
            headers["X-Amz-Function-Error"] = "Unhandled"
            payload = invocation.error
        try:
            body = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = json.dumps({"errorMessage": f"Unable to marshal response: {exc}",
                               "errorType": "Runtime.MarshalError",
                               "requestId": invocation.request_id})
        return web.Response(status=200, body=body.encode(), headers=headers,
                            content_type="application/json")
