"""The README's "Adding an action" example, copied verbatim, passes make test's checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n# (?P<path>\S+)\n(?P<code>.*?)```", re.DOTALL)


def readme_files() -> dict[str, str]:
    """The README's code blocks that open with a '# path' line, by path."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Adding an action"):]
    section = section[:section.index("\n## ", 1)]
    return {m["path"]: f"# {m['path']}\n{m['code']}" for m in BLOCK.finditer(section)}


def test_readme_blocks_name_the_action_file_and_its_test() -> None:
    """The example is one file of the app and one test file, nothing else."""
    assert sorted(readme_files()) == ["chalicelib/custom.py", "tests/test_greet.py"]


def test_readme_action_and_test_pass_lint_types_and_pytest(tmp_path: Path) -> None:
    """In a copy of the project with the README's two files written as shown, ruff,
    mypy --strict and pytest (the README's test) all pass."""
    for name in ("app.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("chalicelib", ".chalice", "local", "streamer_local"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests").mkdir()
    for name in ("__init__.py", "conftest.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "tests" / name)
    files = readme_files()
    for path, code in files.items():
        (tmp_path / path).write_text(code)
    bin_dir = Path(sys.executable).parent
    commands = [
        [str(bin_dir / "ruff"), "check", *files],
        [sys.executable, "-m", "mypy", "--no-incremental", *files],
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_greet.py"],
    ]
    for command in commands:
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, f"{command[1:3]}:\n{done.stdout}\n{done.stderr}"
