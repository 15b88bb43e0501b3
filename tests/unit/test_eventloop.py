"""streamer_local.eventloop: which loop the local stack runs on."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from streamer_local import eventloop


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.VARIABLE, raising=False)
    assert eventloop.loop_kind() == "uvloop"
    loop = eventloop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.VARIABLE, " AsyncIO ")
    loop = eventloop.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.VARIABLE, "trio")
    with pytest.raises(ValueError, match="LOCAL_EVENT_LOOP must be one of uvloop, asyncio"):
        eventloop.loop_kind()


def test_run_returns_the_coroutine_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.VARIABLE, raising=False)

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(which()).startswith("uvloop")
