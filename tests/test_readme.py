"""The README's promises: the two commands first, and the table of kernel names."""

from __future__ import annotations

import re
from pathlib import Path

from pyvmalloc.vmalloc.api import KERNEL_NAMES

README = Path(__file__).resolve().parents[1] / "README.md"
CI = Path(__file__).resolve().parents[1] / ".ci" / "run"


def test_readme_opens_with_the_install_and_test_commands_and_ci_runs_the_second() -> None:
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block and text.index("```sh") < text.index("\n## ")
    run_cmd, test_cmd = block.group(1).strip().splitlines()
    assert "pyvmalloc tour" in run_cmd and "pip install" in run_cmd
    assert "pytest" in test_cmd and "[test]" in test_cmd
    for check in ("lint-imports", "ruff check", "mypy --strict"):
        assert check in test_cmd
    # Besides the test command, CI may only install the browser the map's test draws in.
    commands = [ln for ln in CI.read_text().splitlines()
                if ln and not ln.startswith(("#", "set ", "cd ", "command -v chromium "))]
    assert commands == [test_cmd]


def test_readme_maps_every_double_underscore_name_to_its_python_spelling() -> None:
    rows = dict(re.findall(r"^\| `(__\w+)` \| `(\w+)` \|$", README.read_text(), re.M))
    assert rows == KERNEL_NAMES
