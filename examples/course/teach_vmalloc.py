"""A worked example for teachers: one problem set on two kernels, its answer key, and what changed.

Run it with ``python3 examples/course/teach_vmalloc.py``; its output is
``examples/course/teach_vmalloc.txt`` (tests/test_course_example.py checks that it still is).

The same five operations run on Linux 2.6.22 and on Linux 6.1, on an i386 machine:
two vmallocs, a vfree, a small vmalloc and a 6 MiB ioremap.  The students get the handout
(the questions only) and work out where each area lands; the key prints each answer with the
rule that produced it.  The two kernels answer differently twice, and the key says why:
6.1 keeps the freed range until a lazy purge, so the next area does not reuse it (2.6.22 frees
it at once); and an ioremap aligns to a power of two clamped to IOREMAP_MAX_ORDER, which was
19 (512 KiB) on 2.6.22's i386 and is 22 (4 MiB) on 6.1's.
"""

from __future__ import annotations

import contextlib
import io

from pyvmalloc.cli.main import main

OPS = "a16k,a10000,f0,a8k,i6M"


def quiz(*argv: str) -> str:
    """The transcript of ``pyvmalloc quiz ARGV``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["quiz", *argv]) == 0
    return out.getvalue()


def answers(transcript: str) -> list[str]:
    """The first ANSWER line of each question."""
    return [line.split("ANSWER ", 1)[1] for line in transcript.splitlines() if "ANSWER " in line]


print("=" * 30, "Handout: hand this to the class", "=" * 30)
print(quiz("-A", OPS, "--arch", "i386", "--kernel", "2.6.22"), end="")
keys = {}
for kernel in ("2.6.22", "6.1"):
    print()
    print("=" * 30, f"Answer key, Linux {kernel}", "=" * 30)
    keys[kernel] = quiz("-A", OPS, "--arch", "i386", "--kernel", kernel, "-c")
    print(keys[kernel], end="")
print()
print("=" * 30, "What changed between the kernels", "=" * 30)
for old, new in zip(answers(keys["2.6.22"]), answers(keys["6.1"])):
    mark = "   " if old == new else "<> "
    print(f"{mark}2.6.22: {old}")
    print(f"{mark}6.1:    {new}")
