"""Every ``pyvmalloc analyze ...`` command of README.md's "Command line" section, run through the
CLI entry point as written there, gives the right headline answer for its device's kernel."""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path


from pyvmalloc.cli.main import main

ROOT = Path(__file__).parent.parent


def _analyze_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if line.startswith("pyvmalloc analyze "):
            out.append(shlex.split(line.split("#", 1)[0])[1:])
    return out


COMMANDS = _analyze_commands()


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    cwd = os.getcwd()
    os.chdir(ROOT)                      # the README's paths are relative to the repository
    try:
        start = time.perf_counter()
        code = main(argv)
        elapsed = time.perf_counter() - start
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert elapsed < 5, f"{' '.join(argv)} took {elapsed:.1f} s"
    return code, out, err


def _command(fragment: str) -> list[str]:
    found = [c for c in COMMANDS if any(fragment in a for a in c)]
    assert len(found) == 1, f"README has {len(found)} analyze commands on {fragment}"
    return found[0]


def test_the_readme_has_the_two_analyze_examples():
    assert len(COMMANDS) == 2


def test_router_summary(capsys):
    code, out, err = _run(capsys, _command("arm32-zte-router-mt7615-4.1.25.txt"))
    assert code == 0 and err == ""
    assert out.startswith("examples/vmallocinfo/arm32-zte-router-mt7615-4.1.25.txt: 91 areas, ")
    assert "\narch: arm (" in out


def test_tablet_plan_is_right_for_linux_3_4_5(capsys):
    argv = _command("arm32-mediatek-goclever-i5-3.4.5.txt")
    assert argv[argv.index("--kernel") + 1] == "3.4.5"
    code, out, err = _run(capsys, argv)
    assert code == 0 and err == ""
    assert "\nkernel: Linux 3.4.5 (given: --kernel 3.4.5)\n" in out
    plan = out.split("\nplan (", 1)[1]
    # 3.4.5 predates "arm: make the size of vmalloc in cmdline and meminfo uniform": vmalloc=600M
    # gives the 592 MiB area; 592M would give 584 MiB, which the same run shows is not enough.
    headline = plan.splitlines()[1]
    assert headline.startswith("  vmalloc=600M: vmalloc area 0xda000000-0xff000000 (592 MiB); "
                               "everything fits;"), headline
    assert "one step smaller, vmalloc=592M: 0xda800000-0xff000000 (584M): NOT enough" in plan
    assert "\n  #1     8M: fits: " in out and "\n  #2   200M: FAILS: " in out


def test_tablet_without_kernel_infers_it_and_gives_the_same_plan(capsys):
    argv = [a for a in _command("arm32-mediatek-goclever-i5-3.4.5.txt")]
    at = argv.index("--kernel")
    del argv[at:at + 2]
    code, out, _ = _run(capsys, argv)
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("kernel: "))
    assert line.startswith("kernel: Linux 2.6.28 to before 4.2 (inferred from the dump: ")
    assert re.search(r"\n  vmalloc=600M: vmalloc area 0xda000000-0xff000000 \(592 MiB\)", out)
