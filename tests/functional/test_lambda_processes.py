"""ProcessInvoker's worker-process setup hook (``setup="module:function"``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamer_local.lambda_processes import ProcessInvoker, resolve_setup
from streamer_local.lambda_runtime import Invocation

APP = "tests.support.process_app:app"


def _invoke_all(invoker: ProcessInvoker, events: list[dict[str, Any]]) -> list[Invocation]:
    async def run() -> list[Invocation]:
        return list(await asyncio.gather(*(invoker.invoke("probe", e) for e in events)))

    try:
        return asyncio.run(run())
    finally:
        invoker.shutdown()


def test_setup_runs_in_every_worker_after_the_app_with_the_env() -> None:
    invoker = ProcessInvoker(2, APP, timeout=60, env={"PROBE_VALUE": "v1"},
                             setup="tests.support.process_app:setup")
    results = _invoke_all(invoker, [{"expect": "v1"}] * 6)
    assert [r.error for r in results] == [None] * 6
    assert sum(invoker.pids.values()) == 6


def test_without_setup_the_hook_does_not_run() -> None:
    invoker = ProcessInvoker(1, APP, timeout=60, env={"PROBE_VALUE": "v1"})
    [result] = _invoke_all(invoker, [{"expect": "v1"}])
    assert result.error is not None
    assert "did not run" in result.error["errorMessage"]


def test_a_failing_setup_fails_each_invocation_instead_of_respawning() -> None:
    invoker = ProcessInvoker(1, APP, timeout=60, env={},
                             setup="tests.support.process_app:failing_setup")
    results = _invoke_all(invoker, [{"expect": "v1"}] * 2)
    for result in results:
        assert result.error is not None
        assert "failed to start" in result.error["errorMessage"]
        assert "setup refused" in result.error["errorMessage"]
    assert len(invoker.pids) == 1  # the one worker stayed up and answered both


@pytest.mark.parametrize("spec", ["no_colon", ":function", "module:"])
def test_a_malformed_setup_spec_is_refused_at_construction(spec: str) -> None:
    with pytest.raises(ValueError, match="module:function"):
        ProcessInvoker(1, APP, timeout=1, setup=spec)


def test_resolve_setup_names_a_function() -> None:
    assert callable(resolve_setup("tests.support.process_app:setup"))
    with pytest.raises(ValueError, match="does not name a function"):
        resolve_setup("tests.support.process_app:received")
