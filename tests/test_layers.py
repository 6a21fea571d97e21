"""The layer contract of pyproject.toml is checked: lint-imports passes on the tree and fails,
naming the contract, on a copy with one upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "layers: each package imports only the ones below it"
LINT_IMPORTS = shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="lint-imports is not installed")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``root``'s pyproject, importing pyvmalloc from ``root/src``."""
    assert LINT_IMPORTS is not None
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_tree_keeps_the_layer_contract() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{CONTRACT} KEPT" in run.stdout


def test_an_upward_import_breaks_the_contract_by_name(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "pyvmalloc", tmp_path / "src" / "pyvmalloc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    profiles = tmp_path / "src" / "pyvmalloc" / "arch" / "profiles.py"
    # arch sits below kernel: a bottom layer reaching up to the machine.
    profiles.write_text(profiles.read_text() + "\nimport pyvmalloc.kernel.machine\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0, run.stdout
    assert f"{CONTRACT} BROKEN" in run.stdout
    assert "pyvmalloc.arch.profiles -> pyvmalloc.kernel.machine" in run.stdout
