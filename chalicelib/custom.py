"""Your application's own actions and kinds of work: this file is yours to edit.

Streamer calls :func:`register_actions` and :func:`register_tasks` once, when it builds
the app (``chalicelib/registry.py``), after the built-in ones. Add a function, then one
line here that names it; the README's "Adding an action" shows a whole example, and
chalicelib/dispatch.py and chalicelib/tasks.py what actions and tasks may do.
"""

from __future__ import annotations

from chalicelib.dispatch import ActionTable
from chalicelib.tasks import TaskTable


def register_actions(table: ActionTable) -> None:
    """Add your actions: ``table.add("name", handler, permission="read")``."""


def register_tasks(table: TaskTable) -> None:
    """Add your kinds of work: ``table.add("kind", function, validate=check)``."""
