"""Write the documentation's generated tables: ``python -m local.docs_tables [--check]``.

Each table sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
its file and is written from the one declaration of what it lists, so the docs cannot
drift from the code: ``make docs`` rewrites them, ``--check`` (and
``tests/unit/test_docs_tables.py``) fails when one is stale.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from chalicelib import settings
from local import flags

ROOT = Path(__file__).resolve().parents[1]
TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("README.md", settings.markdown_table),
    "local-options": ("docs/local.md",
                      lambda: flags.markdown_table(("stack", "gateway", "env"))),
    "local-faults": ("docs/local.md", lambda: flags.markdown_table(("fault",))),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)",
                      re.DOTALL)


def render(text: str, name: str, table: str) -> str:
    """``text`` with block ``name`` holding ``table``; ValueError if it has no such block."""
    pattern = _block(name)
    if pattern.search(text) is None:
        raise ValueError(f"no <!-- generated:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text, count=1)


def stale(root: Path = ROOT) -> list[str]:
    """The names of the tables whose file does not hold what the code declares."""
    found = []
    for name, (path, make) in TABLES.items():
        text = (root / path).read_text()
        if render(text, name, make()) != text:
            found.append(f"{path}: {name}")
    return found


def write(root: Path = ROOT) -> None:
    for name, (path, make) in TABLES.items():
        file = root / path
        file.write_text(render(file.read_text(), name, make()))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        outdated = stale()
        for entry in outdated:
            print(f"stale generated table: {entry} (run make docs)", file=sys.stderr)
        return 1 if outdated else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
