"""Python asyncio client for Streamer (docs/protocol.md)."""

from streamer_client.client import Client, Request, StreamerError, Subscription

__all__ = ["Client", "Request", "StreamerError", "Subscription"]
