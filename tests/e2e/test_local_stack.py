"""``LocalStack`` in-process: the app's settings are checked before anything starts."""

from __future__ import annotations

import asyncio

import pytest

from chalicelib.errors import ConfigError
from local.stack import LocalStack, StackOptions


def test_start_refuses_a_secret_the_app_would_refuse() -> None:
    """``start`` raises the app's ConfigError before it starts a DynamoDB server."""
    stack = LocalStack(StackOptions(port=0, secret="short"), env={})

    async def run() -> None:
        try:
            with pytest.raises(ConfigError, match="JWT_SECRET"):
                await stack.start()
            assert stack.dynamodb is None and stack.gateway is None and stack.poller is None
        finally:
            await stack.stop()

    asyncio.run(run())
