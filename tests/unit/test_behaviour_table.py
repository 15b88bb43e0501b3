"""docs/local.md's behaviour table names tests that exist, one per row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def table_rows() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "local.md").read_text()
    block = text.split("<!-- behaviour-table -->")[1].split("<!-- /behaviour-table -->")[0]
    return re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", block)


def test_every_row_names_an_existing_test() -> None:
    """Each row's test is a function of that name in that file (no row without one)."""
    rows = table_rows()
    text = (ROOT / "docs" / "local.md").read_text()
    block = text.split("<!-- behaviour-table -->")[1].split("<!-- /behaviour-table -->")[0]
    assert len(rows) == len([line for line in block.splitlines() if line.startswith("| ")]) - 1
    for path, name in rows:
        tree = ast.parse((ROOT / path).read_text())
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in names, f"{path}::{name} is not a test"
