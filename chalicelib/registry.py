"""The action and task tables an app is built with: built-ins first, then custom.py's.

Each call builds new tables, so a test adds what it needs to its own copy and never
to anyone else's.
"""

from __future__ import annotations

from chalicelib import actions, continuity_actions, custom, request_actions, tasks
from chalicelib.dispatch import ActionTable
from chalicelib.tasks import TaskTable


def default_actions() -> ActionTable:
    table = ActionTable()
    actions.register(table)
    request_actions.register(table)
    continuity_actions.register(table)
    custom.register_actions(table)
    return table


def default_tasks() -> TaskTable:
    table = TaskTable()
    tasks.register(table)
    custom.register_tasks(table)
    return table
