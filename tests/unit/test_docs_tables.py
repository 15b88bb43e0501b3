"""The generated tables in README.md and docs/local.md match the declarations."""

from __future__ import annotations

import pytest

from chalicelib.settings import VARIABLES
from local import docs_tables, flags


def test_every_generated_table_is_current() -> None:
    """README's settings table and docs/local.md's option and fault tables are exactly
    what chalicelib/settings.py and local/flags.py declare (make docs rewrites them)."""
    assert docs_tables.stale() == []


def test_a_drifted_table_is_detected() -> None:
    """A table that lost a row is stale, and render() puts the row back."""
    name, (path, make) = "settings", docs_tables.TABLES["settings"]
    text = (docs_tables.ROOT / path).read_text()
    row = next(line for line in make().splitlines() if "JWT_LEEWAY_SECONDS" in line)
    drifted = text.replace(row + "\n", "")
    assert drifted != text
    assert docs_tables.render(drifted, name, make()) == text


def test_render_refuses_a_file_without_the_block() -> None:
    """A file missing its markers is an error, not a silent no-op."""
    with pytest.raises(ValueError, match="generated:settings"):
        docs_tables.render("no markers here", "settings", "| x |\n")


def test_every_variable_and_option_is_in_its_table() -> None:
    """Each declared variable and option has its own row (none is filtered out)."""
    readme = docs_tables.TABLES["settings"][1]()
    assert all(f"`{v.name}`" in readme for v in VARIABLES)
    local_tables = flags.markdown_table(("stack", "gateway", "env", "fault"))
    assert all(f"`{o.env}`" in local_tables for o in flags.OPTIONS)
