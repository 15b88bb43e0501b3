"""``--reload``: edit, save, see. A changed ``.py`` file in the project re-imports the app,
and the gateway and the poller serve the new one from their next invocation, with every
open WebSocket kept (Chalice's own AWS tests check that a redeploy keeps connections).

Polling the files' modification times (every half second) rather than inotify: it needs
nothing installed, works on every filesystem, and a project has few files. A reload
that fails (a syntax error, say) is logged and the previous app keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamer_local import project

log = logging.getLogger("streamer_local.reload")
_SKIPPED = {".venv", "venv", ".git", "__pycache__", "node_modules", ".chalice", "build"}


def snapshot(root: Path) -> dict[Path, int]:
    """Each Python file under ``root`` (virtualenvs and caches aside) and its mtime."""
    found = {}
    for path in root.rglob("*.py"):
        if _SKIPPED.isdisjoint(path.relative_to(root).parts):
            try:
                found[path] = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue  # removed while we looked
    return found


def reimport(root: Path, spec: str) -> Any:
    """Forget every module loaded from ``root`` (the app and its chalicelib/), then
    import the app again."""
    resolved = root.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(resolved):
            del sys.modules[name]
    return project.load_app(spec, root)


async def watch(root: Path, spec: str, on_reload: Callable[[Any], None],
                interval: float = 0.5) -> None:
    """Until cancelled: on any change under ``root``, re-import and hand the new app over."""
    seen = await asyncio.to_thread(snapshot, root)
    while True:
        await asyncio.sleep(interval)
        now = await asyncio.to_thread(snapshot, root)
        if now == seen:
            continue
        seen = now
        try:
            app = reimport(root, spec)
        except Exception:
            log.exception("reload failed; the previous app keeps serving")
            continue
        on_reload(app)
        log.warning("reloaded %s", spec)
