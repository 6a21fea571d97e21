"""The teachers' worked example prints exactly its stored transcript."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_worked_example_prints_its_transcript() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "course" / "teach_vmalloc.py")],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out == (ROOT / "examples" / "course" / "teach_vmalloc.txt").read_text()
    assert "<> 2.6.22: p2 = 0xc8800000" in out and "<> 6.1:    p2 = 0xc8809000" in out
