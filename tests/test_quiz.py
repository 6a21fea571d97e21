"""``pyvmalloc quiz``: stable transcripts per seed, and every -c answer true when the model re-runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyvmalloc as pv
from pyvmalloc.cli.main import main
from pyvmalloc.course.quiz import Op, Question, QuizConfig, make_quiz, parse_ops, replay

SRC = Path(__file__).resolve().parents[1] / "src"


def _quiz(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["quiz", *argv]) == 0
    return capsys.readouterr().out


def test_same_seed_same_transcript_in_process_and_in_a_subprocess(capsys: pytest.CaptureFixture[str]) -> None:
    first = _quiz(["-s", "7", "-c", "-n", "6"], capsys)
    assert _quiz(["-s", "7", "-c", "-n", "6"], capsys) == first
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-m", "pyvmalloc", "quiz", "-s", "7", "-c", "-n", "6"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out == first
    assert _quiz(["-s", "8", "-c", "-n", "6"], capsys) != first


def test_the_transcript_echoes_every_parameter_and_hides_answers_without_c(capsys: pytest.CaptureFixture[str]) -> None:
    out = _quiz(["-s", "1", "-n", "2", "--arch", "i386", "--kernel", "3.4.5", "--topic", "fits"], capsys)
    for arg in ("seed 1", "numQuestions 2", "ops none", "topic fits", "arch i386", "ram 128M",
                "kernel 3.4.5", "allocator rbtree-cache", "lazy_purge True", "compute False"):
        assert f"ARG {arg}" in out
    assert "ANSWER ?" in out and "RULE" not in out


def _verify(cfg: QuizConfig, q: Question) -> None:
    """Re-run the model from a fresh machine and check the question's answer."""
    if q.topic == "lazy":
        for lazy, key in ((True, "lazy_on"), (False, "lazy_off")):
            m, addrs = replay(cfg, [*q.history, q.probe], lazy_purge=lazy)
            assert addrs[-1] == q.facts[key]
        return
    probe = Op(q.probe.kind, size=q.probe.size)
    m, addrs = replay(cfg, [*q.history, probe])
    addr = addrs[-1]
    assert addr == q.facts["addr"]
    if addr is None:
        return
    area = m.find_vm_area(addr)
    assert area is not None
    if q.probe.kind == "i":   # the alignment the rule names is the machine's ioremap rule
        assert addr % m.ioremap_align(q.probe.size) == 0
    if "guard" in q.facts:
        guard = q.facts["guard"]
        assert guard == area.addr + area.nr_pages * m.PAGE_SIZE == area.end - m.PAGE_SIZE
        with pytest.raises(pv.PageFault):
            m.write(guard, b"x")
    if q.topic == "pagetable":
        before, _ = replay(cfg, list(q.history))
        assert len(m.phys.pfns_owned_by("pgtable")) - len(before.phys.pfns_owned_by("pgtable")) == q.facts["new_tables"]
        for va, entry, pfn in q.facts["ptes"]:  # type: ignore[attr-defined]
            assert m.walk(va)[-1].entry == entry and m.translate(va) == pfn * m.PAGE_SIZE
    if q.topic == "fault":
        for text, where, result in q.facts["stores"]:  # type: ignore[attr-defined]
            try:
                m.write(where, b"\x5a")
                got = "no fault"
            except pv.PageFault as fault:
                got = f"faults: {fault.reason}"
            assert got == result, text


@pytest.mark.parametrize(("arch", "kernel", "seed"), [
    ("x86_64", None, 1), ("i386", "2.6.22", 2), ("arm", "4.9", 3), ("arm64", "6.12", 4), ("i386-pae", "3.4.5", 5),
])
def test_every_answer_is_what_the_model_does_when_re_run(arch: str, kernel: str | None, seed: int) -> None:
    cfg = QuizConfig(seed=seed, num=8, arch=arch, kernel=kernel, ram="64M")
    _, questions = make_quiz(cfg)
    assert len(questions) == 8
    for q in questions:
        assert q.answer and q.rule and q.function
        _verify(cfg, q)


@pytest.mark.parametrize("topic", ["placement", "pagetable", "fault", "lazy", "fits"])
def test_each_topic_answers_with_its_rule(topic: str) -> None:
    cfg = QuizConfig(seed=11, num=3, topic=topic, ram="64M", arch="i386")
    _, questions = make_quiz(cfg)
    assert {q.topic for q in questions} == {topic}
    for q in questions:
        _verify(cfg, q)
    text = "\n".join(line for q in questions for line in q.rule + [q.function])
    expect = {"placement": "the fit found", "pagetable": "vmap_pte_range", "fault": "guard page",
              "lazy": "lazy_purge", "fits": "IOREMAP_MAX_ORDER"}[topic]
    assert expect in text


def test_explicit_operations_name_the_lazily_freed_range_and_the_ioremap_alignment(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = _quiz(["-c", "-A", "a16k,a10000,f0,a8k,i6M", "--arch", "arm", "--kernel", "4.9"], capsys)
    assert "ARG ops a16384,a10000,f0,a8192,i6291456" in out
    assert "1 lazily freed area(s) still hold their ranges until the purge: [0xc8800000, 0xc8805000)" in out
    assert "alignment 8.0 MiB" in out and "IOREMAP_MAX_ORDER = 24" in out
    cfg = QuizConfig(ops=parse_ops("a16k,a10000,f0,a8k,i6M"), arch="arm", kernel="4.9")
    for q in make_quiz(cfg)[1]:
        _verify(cfg, q)


@pytest.mark.parametrize("argv", [
    ["-A", "x"], ["-A", "a16k,f3"], ["-A", "azz"], ["-A", ""], ["-n", "0"], ["--topic", "tlb"],
    ["--arch", "vax"], ["--kernel", "1.0"], ["-s", "x"], ["--ram", "12parsecs"],
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["quiz", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err


def test_the_readme_shows_real_output(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("lazy purge):\n\n```text\n", 1)[1].split("```", 1)[0]
    out = _quiz(["-c", "--topic", "fault", "-A", "a16k,f0,a8k", "--arch", "i386"], capsys)
    assert "0xc8800000 (p0+0x0, freed, waiting for the lazy purge): no fault" in shown
    assert out.split("\n", 12)[12] == shown
