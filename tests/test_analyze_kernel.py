"""analyze and the device's kernel: the versioned rules it uses (each names its commit), what a
dump tells about its kernel (``infer_kernel``), ``--kernel``/``--version-file``, answers per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvmalloc.analysis.plan import plan_by_kernel
from pyvmalloc.arch import boot_layout
from pyvmalloc.cli.main import main
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
from pyvmalloc.snapshot.layout import KernelRange, infer_kernel
from pyvmalloc.versions import CHANGES, parse_version

MiB = 1 << 20
EXAMPLES = Path(__file__).parent.parent / "examples" / "vmallocinfo"
TABLET = EXAMPLES / "arm32-mediatek-goclever-i5-3.4.5.txt"
ZTE = EXAMPLES / "arm32-zte-router-mt7615-4.1.25.txt"
HASHED = EXAMPLES / "x86_64-rhel8-sosreport-hashed.txt"


def _read(path: Path):
    snap = parse_vmallocinfo(path.read_text(), str(path))
    mi = parse_meminfo(path.with_suffix(".meminfo").read_text(), str(path))
    return snap, mi


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(["analyze", *map(str, argv)])
    except SystemExit as exc:          # argparse's own errors: one line, exit 2
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# ---- the versioned rule analyze uses --------------------------------------------------------
def test_arm_vmalloc_param_before_and_after_the_uniform_size_commit():
    """"arm: make the size of vmalloc in cmdline and meminfo uniform" (5.15 ≈): before
    it vmalloc=SIZE gave an area up to 8 MiB smaller than asked; from it, SIZE."""
    assert "make the size of vmalloc in cmdline and meminfo uniform" in \
        CHANGES["arm_vmalloc_size_uniform"].commit
    old = boot_layout("arm", 1 << 30, "vmalloc=592M", kernel="3.4.5")
    new = boot_layout("arm", 1 << 30, "vmalloc=592M", kernel="6.1")
    assert old.vmalloc_end - old.vmalloc_start == 584 * MiB
    assert new.vmalloc_end - new.vmalloc_start == 592 * MiB
    assert boot_layout("arm", 1 << 30, "vmalloc=600M", kernel="3.4.5").vmalloc_total_kb == 592 * 1024
    # The tablet's own command line on its kernel: meminfo's VmallocTotal.
    assert boot_layout("arm", 1 << 30, "vmalloc=530M", kernel="3.4.5").vmalloc_total_kb == 540672


def test_arm_vmalloc_end_commit_dates_the_tablet():
    """arm_vmalloc_end_ff800000 (4.2): VMALLOC_END 0xff000000 before, 0xff800000 after."""
    assert boot_layout("arm", 1 << 30, "", kernel="3.4.5").vmalloc_end == 0xFF000000
    assert boot_layout("arm", 1 << 30, "", kernel="6.1").vmalloc_end == 0xFF800000


# ---- infer_kernel -------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "lo", "hi", "truth"), [
    (TABLET, "2.6.28", "4.2", "3.4.5"),   # vpages; VMALLOC_END 0xff000000; VmallocChunk != 0
    (ZTE, "2.6.22", "4.4", "4.1.25"),     # VmallocChunk != 0
    (HASHED, "4.13", "5.3", "4.18"),      # unpurged among busy lines; Used and Chunk 0
])
def test_infer_kernel_from_real_dumps(path: Path, lo: str, hi: str, truth: str):
    snap, mi = _read(path)
    found, reason = infer_kernel(snap, mi)
    assert found == KernelRange(parse_version(lo), parse_version(hi)), reason
    assert found.contains(parse_version(truth))
    assert path.name not in reason          # the file name is never a source


def test_infer_kernel_reads_words_and_nothing_else():
    assert not infer_kernel(parse_vmallocinfo(ZTE.read_text()))[0].known
    sparse = "0xffffc90000000000-0xffffc90000003000   12288 bpf_arena+0x1/0x2 sparse\n"
    assert infer_kernel(parse_vmallocinfo(sparse))[0].lo == parse_version("6.9")
    lazy = ("0xffffc90000000000-0xffffc90000003000   12288 f+0x1/0x2 pages=2 vmalloc\n"
            "0xffffc90000004000-0xffffc90000006000    8192 unpurged vm_area\n"
            "0xffffc90000006000-0xffffc90000009000   12288 f+0x1/0x2 pages=2 vmalloc\n")
    got, why = infer_kernel(parse_vmallocinfo(lazy))
    assert got == KernelRange(parse_version("4.13"), parse_version("5.4")), why
    after = lazy.splitlines()
    got, why = infer_kernel(parse_vmallocinfo("\n".join([after[0], after[2], after[1]]) + "\n"))
    assert got == KernelRange(parse_version("5.4")), why
    i386 = "0xf8801000-0xf8803000    8192 hpet_enable+0x1/0x2 phys=0xfed00000 ioremap\n"
    assert infer_kernel(parse_vmallocinfo(i386))[0].lo == parse_version("2.6.25")


def test_cmdline_vmalloc_larger_than_vmalloc_total_means_the_old_arm_rule():
    """vmalloc=530M and VmallocTotal 540672 kB (528 MiB): only the rule before "arm: make the
    size of vmalloc in cmdline and meminfo uniform" gives less than asked."""
    snap = parse_vmallocinfo(ZTE.read_text())
    mi = {"VmallocTotal": 647168}
    base, _ = infer_kernel(snap, mi)
    asked, why = infer_kernel(snap, mi, cmdline="console=ttyS1 vmalloc=640M")
    assert not base.known and asked.hi == parse_version("5.15") and "smaller than asked" in why


# ---- answers per rule ---------------------------------------------------------------------------
def test_plan_with_unknown_kernel_answers_under_each_rule():
    snap, mi = _read(TABLET)
    answers = plan_by_kernel(snap, ["64M", "128M"], "25%", meminfo=mi,
                             kernels=KernelRange.everything())
    assert [(str(r), a.param) for r, a in answers] == [
        ("Linux 2.6.22 to before 5.15", "vmalloc=600M"), ("Linux 5.15 or later", "vmalloc=592M")]


def test_cli_says_under_which_rule_each_answer_holds(capsys):
    # Without meminfo nothing gives VMALLOC_END or the vmalloc= rule: 'vpages' only says 2.6.28+.
    code, out, _ = _run(capsys, TABLET, "--plan", "64M,128M", "--headroom", "25%")
    assert code == 0
    assert "\n  the answer depends on the kernel version (Linux 2.6.28 or later):\n" in out
    assert "\n  on Linux 2.6.28 to before 4.2: vmalloc=600M: vmalloc area 0xda000000-0xff000000" in out
    assert "\n  on Linux 4.2 to before 5.15 (arm: VMALLOC_END raised" in out
    assert ("\n  on Linux 5.15 or later (\"arm: make the size of vmalloc in cmdline "
            "and meminfo uniform\" (2021; hash not read off a tree) ≈, Linux 5.15): "
            "vmalloc=600M: vmalloc area 0xda000000-0xff800000") in out


def test_no_vmalloc_needed_when_the_layout_already_holds_it(capsys):
    code, out, _ = _run(capsys, TABLET, "--meminfo", TABLET.with_suffix(".meminfo"),
                        "--kernel", "3.4.5", "--plan", "8M", "--headroom", "10%")
    assert code == 0
    assert "\n  no vmalloc= needed (keep the command line the device booted with): " in out


# ---- --kernel, --version-file -------------------------------------------------------------------
def test_version_file_gives_the_kernel(capsys, tmp_path):
    version = tmp_path / "version"
    version.write_text("Linux version 3.4.5 (root@builder) (gcc version 4.6.x-google) #1 SMP "
                       "PREEMPT Mon Jun 10 2013\n")
    code, out, _ = _run(capsys, TABLET, "--version-file", version)
    assert code == 0
    assert f"\nkernel: Linux 3.4.5 (from version text: {version}:1: 'Linux version 3.4.5 " in out
    uname = tmp_path / "uname"
    uname.write_text("3.4.5-g1a2b3c4\n")
    code, out, _ = _run(capsys, TABLET, "--version-file", uname)
    assert code == 0 and f"(from version text: {uname}:1: '3.4.5-g1a2b3c4')" in out


def test_kernel_given_against_the_dump_is_flagged(capsys):
    code, out, _ = _run(capsys, TABLET, "--meminfo", TABLET.with_suffix(".meminfo"),
                        "--kernel", "6.1")
    assert code == 0
    assert "kernel: Linux 6.1 (given: --kernel 6.1; the dump suggests Linux 2.6.28 to before 4.2" in out


@pytest.mark.parametrize(("argv", "expected"), [
    (("--kernel", "9.9"), "argument --kernel: kernel='9.9' is outside what the model knows"),
    (("--kernel", "linux"), "argument --kernel: kernel='linux' is not a kernel version"),
    (("--kernel", "3.4.5", "--version-file", "x"), "not allowed with argument"),
])
def test_bad_kernel_is_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = _run(capsys, TABLET, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and expected in err, err


def test_bad_version_file_is_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "version"
    bad.write_text("\nhello world\n")
    code, out, err = _run(capsys, TABLET, "--version-file", bad)
    assert code == 2 and out == "" and err.startswith(f"{bad}:2: no kernel version here")
    old = tmp_path / "old"
    old.write_text("Linux version 2.4.37 (root@box)\n")
    code, _, err = _run(capsys, TABLET, "--version-file", old)
    assert code == 2 and err.startswith(f"{old}:1: kernel=") and "outside" in err
    code, _, err = _run(capsys, TABLET, "--version-file", tmp_path / "missing")
    assert code == 2 and "No such file" in err and len(err.splitlines()) == 1
