"""``pyvmalloc explain`` on real kernel logs (tests/data/logs, SOURCES gives each address)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pyvmalloc.cli.main import main
from pyvmalloc.formats._text import lines
from pyvmalloc.formats.kernel_log import parse_kernel_log, strip_prefix
from pyvmalloc.versions import vmap_failure_lines, vmalloc_failure_lines, parse_version

LOGS = Path(__file__).parent / "data" / "logs"


def _explain(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["explain", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


# file, range, vmalloc_param_helps, fits_ever, request
REAL = [
    ("armada385-module.log", "module", False, True, "module_alloc"),
    ("rpi4-module-warn-alloc.log", "module", False, True, "module_alloc"),
    ("rpi-bpf-jit-syslog.log", "bpf", False, None, "bpf_jit"),
    ("rpi-3.2-zero-size.log", "module", False, False, "module_alloc"),
    ("arm64-zfs-module.log", "module", False, True, "module_alloc"),
    ("i386-insmod-highmem.log", "vmalloc", True, True, "module_alloc"),
    ("ipq4019-openwrt-no-trace.log", "module", False, True, "module_alloc"),
]


@pytest.mark.parametrize("name,rng,helps,ever,asker", REAL)
def test_real_logs_range_and_verdict(capsys, name, rng, helps, ever, asker):
    code, doc, err = _explain(capsys, LOGS / name)
    assert code == 0, err
    (f,) = doc["failures"]
    assert (f["range"], f["vmalloc_param_helps"], f["fits_ever"], f["request"]) == \
        (rng, helps, ever, asker)
    assert (f["cmdline"] is not None) == helps
    assert f["confidence"] in ("high", "medium", "low")


def test_guard_page_and_asked_size(capsys):
    _, doc, _ = _explain(capsys, LOGS / "armada385-module.log")
    f = doc["failures"][0]
    assert f["size"] == 430080 and f["asked"] == 425984 and f["size_counts_guard_page"]
    assert doc["machine"]["arch"] == "arm" and doc["machine"]["kernel"] == "4.14.107"
    assert f["range_start"] == "0xbf000000"
    assert f["confidence"] == "high"


def test_repeated_failures_are_one_with_a_count_and_leak_advice(capsys):
    _, doc, _ = _explain(capsys, LOGS / "rpi4-module-warn-alloc.log")
    f = doc["failures"][0]
    assert f["count"] == 4
    assert any("leak" in a for a in f["advice"])


def test_i386_vmalloc_value_is_proven_on_the_model(capsys):
    _, doc, _ = _explain(capsys, LOGS / "i386-insmod-highmem.log", "--arch", "i386",
                         "--kernel", "3.13")
    f = doc["failures"][0]
    assert f["cmdline"] == "vmalloc=157M"
    assert f["proof"].startswith("booted Linux 3.13 i386")
    # one step smaller is not enough: 120 MiB full + 36.1 MiB needs 157 MiB
    assert "the lowest place that holds" in f["proof"]


def test_64bit_vmalloc_area_never_takes_vmalloc_param(capsys, tmp_path):
    log = tmp_path / "x.log"
    log.write_text("[ 5.1] vmalloc error: size 1048576, vm_struct allocation failed, "
                   "mode:0xcc0(GFP_KERNEL), nodemask=(null)\n")
    _, doc, _ = _explain(capsys, log, "--arch", "x86_64")
    f = doc["failures"][0]
    assert f["range"] == "vmalloc" and not f["vmalloc_param_helps"] and f["cmdline"] is None


def test_restricted_message_of_611_names_the_range(capsys, tmp_path):
    (line,) = vmap_failure_lines(parse_version("6.12"), 8192, 0xbf000000, 0xbfe00000)
    log = tmp_path / "x.log"
    log.write_text(f"[ 5.1] {line}\n")
    _, doc, _ = _explain(capsys, log, "--arch", "arm", "--kernel", "6.12")
    f = doc["failures"][0]
    assert f["range"] == "module" and f["range_start"] == "0xbf000000"
    assert not f["vmalloc_param_helps"]


def test_no_failure_is_said(capsys, tmp_path):
    log = tmp_path / "x.log"
    log.write_text("[ 0.0] Linux version 6.1.0 (x) #1\n")
    code = main(["explain", str(log)])
    out, _ = capsys.readouterr()
    assert code == 0 and "no vmalloc failure found" in out


@pytest.mark.parametrize("argv,words", [
    (["--arch", "foo"], "known:"),
    (["--ram", "lots"], "--ram"),
    (["--kernel", "1.0"], "kernel="),
])
def test_bad_options_are_one_line_exit_2(capsys, argv, words):
    code = main(["explain", str(LOGS / "armada385-module.log"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_exit_2(capsys, tmp_path):
    code = main(["explain", str(tmp_path / "nope.log")])
    assert code == 2 and "nope.log" in capsys.readouterr().err


# The model's own failure messages, every era, are found with the right size.
@settings(max_examples=30, deadline=None)
@given(version=st.sampled_from(["2.6.22", "2.6.30", "3.4", "4.14", "5.15", "6.1", "6.12"]),
       pages=st.integers(1, 1 << 16),
       prefix=st.sampled_from(["", "[ 1234.567890] ", "<4>[    0.100000] ",
                               "Dec  1 12:00:00 host kernel: ",
                               "Sun Jun  6 16:14:57 2021 kern.warn kernel: [  164.087315] "]))
def test_every_era_message_is_found(version, pages, prefix):
    v = parse_version(version)
    size = pages * 4096
    text = "".join(prefix + ln + "\n" for ln in vmap_failure_lines(v, size + 4096, 0xf0000000,
                                                                   0xff000000))
    text += "".join(prefix + ln + "\n" for ln in vmalloc_failure_lines(v, size, ["WAIT"], "GFP_KERNEL"))
    facts = parse_kernel_log(text)
    assert len(facts.failures) == 1
    f = facts.failures[0]
    if version != "2.6.22":
        assert f.size == size + 4096
    if vmalloc_failure_lines(v, size, ["WAIT"], "GFP_KERNEL") and version != "2.6.22":
        assert f.asked == size


def test_prefixes_are_stripped():
    assert strip_prefix("Sun Jun  6 16:14:57 2021 kern.warn kernel: [  164.087315] x") == "x"
    assert strip_prefix("<4>[    1.000000] x") == "x"


# The model's own transcripts: an i386 machine of each era runs out of vmalloc space; explain
# reads its dmesg, and the vmalloc= it gives makes the same request succeed on the model.
@pytest.mark.parametrize("version", ["3.4", "4.14", "6.12"])
def test_model_transcripts_round_trip(capsys, tmp_path, version):
    import pyvmalloc as pv

    m = pv.Machine(arch="i386", ram="1G", kernel=version)
    assert m.vmalloc(200 << 20) is None
    log = tmp_path / "dmesg.txt"
    log.write_text("\n".join(m.dmesg()) + "\n")
    _, doc, _ = _explain(capsys, log, "--arch", "i386", "--ram", "1G", "--kernel", version)
    (f,) = doc["failures"]
    assert f["range"] == "vmalloc" and f["vmalloc_param_helps"] and f["asked"] == 200 << 20
    assert f["confidence"] in ("medium", "high")
    fixed = pv.Machine(arch="i386", ram="1G", kernel=version, cmdline=f["cmdline"])
    assert fixed.vmalloc(200 << 20) is not None


def test_2622_message_has_no_size(capsys, tmp_path):
    log = tmp_path / "old.txt"
    log.write_text("allocation failed: out of vmalloc space - use vmalloc=<size> to increase size.\n")
    _, doc, _ = _explain(capsys, log, "--arch", "i386")
    f = doc["failures"][0]
    assert f["size"] is None and f["range"] == "vmalloc" and f["vmalloc_param_helps"]
    assert "2.6.22" in doc["machine"]["kernel_how"] or doc["machine"]["kernel"] == "2.6.22"


def test_pages_failure_is_not_address_space(capsys, tmp_path):
    log = tmp_path / "pages.txt"
    log.write_text("[ 9.0] foo: vmalloc error: size 8388608, failed to allocate pages, "
                   "mode:0xcc0(GFP_KERNEL), nodemask=(null)\n")
    _, doc, _ = _explain(capsys, log, "--arch", "arm")
    f = doc["failures"][0]
    assert not f["vmalloc_param_helps"] and "memory shortage" in f["advice"][0]


def test_arm64_execmem_and_x86_trace(capsys, tmp_path):
    log = tmp_path / "x.txt"
    log.write_text("[ 3.0] execmem: unable to allocate memory\n"
                   "[ 9.0] vmap allocation for size 20480 failed: use vmalloc=<size> to increase size\n"
                   "[ 9.0] Call Trace:\n"
                   "[ 9.0]  <TASK>\n"
                   "[ 9.0]  dump_stack_lvl+0x44/0x5c\n"
                   "[ 9.0]  __vmalloc_node_range+0x5f7/0x800\n"
                   "[ 9.0]  ? bpf_jit_alloc_exec+0x10/0x20\n"
                   "[ 9.0]  bpf_jit_binary_alloc+0x64/0x110\n"
                   "[ 9.0] RIP: 0033:0x7f00\n")
    _, doc, _ = _explain(capsys, log)
    a, b = doc["failures"]
    assert doc["machine"]["arch"] == "x86_64"
    assert a["range"] == "module" and not a["vmalloc_param_helps"]
    assert b["range"] == "bpf" and b["confidence"] == "high"
    assert any("bpf_jit_limit" in x for x in b["advice"])


@pytest.mark.skipif(not Path("/dev/kmsg").exists(), reason="no kernel log on this host")
def test_live_host_log(capsys):
    # This machine's own kernel log (root here; elsewhere a clear exit-2 line).
    code = main(["explain", "--json"])
    out, err = capsys.readouterr()
    if code == 2:
        assert "not readable" in err or "no /dev/kmsg" in err
        return
    doc = json.loads(out)
    assert doc["machine"]["arch"] is not None and isinstance(doc["failures"], list)


def test_vmallocinfo_given_uses_the_planner(capsys, tmp_path):
    zte = Path(__file__).parent / "data" / "vmallocinfo" / "arm32-zte-router-mt7615-4.1.25.txt"
    log = tmp_path / "x.log"
    log.write_text("[ 5.0] vmap allocation for size 2101248 failed: use vmalloc=<size> to "
                   "increase size\n[ 5.0] vmalloc: allocation failure: 2097152 bytes\n")
    _, doc, _ = _explain(capsys, log, "--arch", "arm", "--kernel", "4.1.25", "--vmallocinfo", zte)
    f = doc["failures"][0]
    assert f["proof"].startswith("the planner on --vmallocinfo: ")


_NOISE = st.text(alphabet=st.sampled_from(list("0123456789abcdefx[]().:+/- <>_vmalocsizefdtr")),
                max_size=60)
# Real failure lines of several kernels, among noise, so the property meets failures too.
_FAILURE = st.builds(lambda v, n, pre: pre + st_line(v, n),
                     st.sampled_from(["2.6.22", "2.6.38", "4.14", "6.1", "6.12"]),
                     st.integers(0, 1 << 30), st.sampled_from(["", "[  12.5] ", "<4>"]))


def st_line(version: str, size: int) -> str:
    v = parse_version(version)
    found = (vmap_failure_lines(v, size + 4096, 0xf0000000, 0xff000000)
             + vmalloc_failure_lines(v, size, ["WAIT"], "GFP_KERNEL"))
    return found[size % len(found)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_NOISE, _FAILURE), max_size=12).map("\n".join))
def test_any_text_parses_without_error(text):
    facts = parse_kernel_log(text)
    numbered = list(lines(text))
    assert facts.lines_read == len(numbered)
    # each failure names the line it was read from, in order, and its message is that line
    assert [f.lineno for f in facts.failures] == sorted({f.lineno for f in facts.failures})
    for f in facts.failures:
        assert 1 <= f.lineno <= facts.lines_read
        if f.kind != "trace":
            assert f.text == strip_prefix(numbered[f.lineno - 1][1].rstrip()).strip()


def test_ppc32_has_no_vmalloc_param(capsys, tmp_path):
    log = tmp_path / "ppc.log"
    log.write_text("[ 5.0] vmap allocation for size 1052672 failed: use vmalloc=<size> to "
                   "increase size\n")
    code, doc, _ = _explain(capsys, log, "--arch", "ppc32")
    f = doc["failures"][0]
    assert code == 0 and not f["vmalloc_param_helps"] and f["cmdline"] is None
    assert any("ppc32 has no vmalloc=" in n for n in f["notes"])


def test_dmesg_dash_t_and_stdin_and_module_area_from_dump(capsys, tmp_path, monkeypatch):
    import io
    import sys as _sys

    zte = Path(__file__).parent / "data" / "vmallocinfo" / "arm32-zte-router-mt7615-4.1.25.txt"
    text = ("[Mon Dec  1 12:00:00 2025] vmap allocation for size 6295552 failed: use "
            "vmalloc=<size> to increase size\n"
            "[Mon Dec  1 12:00:00 2025] kmodloader: vmalloc: allocation failure: 6291456 "
            "bytes, mode:0xcc0(GFP_KERNEL), nodemask=(null)\n")
    monkeypatch.setattr(_sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    _, doc, _ = _explain(capsys, "-", "--arch", "arm", "--kernel", "4.1.25", "--vmallocinfo", zte)
    f = doc["failures"][0]
    assert f["range"] == "module" and f["size"] == 6295552 and f["line"] == "<stdin>:1"
    assert any("does not fit in it" in n and "53.1% used" in n for n in f["notes"])


def test_dmesg_x_prefix():
    assert strip_prefix("kern  :warn  : [ 1.0] vmap allocation") == "vmap allocation"
    assert strip_prefix("pyvmalloc: vmalloc: allocation failure") == \
        "pyvmalloc: vmalloc: allocation failure"


@pytest.mark.parametrize("lines,arch", [
    (["[ 1.0] CPU: 0 PID: 1 Comm: modprobe Not tainted 4.19.0-5-686-pae #1 Debian"], "i386-pae"),
    (["[ 1.0] CPU: 0 PID: 1 Comm: modprobe Not tainted 5.10.17-v7l+ #1403"], "arm"),
    (["[ 1.0]  unwind_backtrace from show_stack+0x10/0x14",
      "[ 1.0]  __vmalloc_node_range from module_alloc+0x80/0xa4"], "arm"),
    (["[ 1.0] Call trace:", "[ 1.0]  dump_backtrace+0x0/0x1e0"], "arm64"),
    (["[ 1.0] EIP: 0060:[<c1234567>]", "[ 1.0] Call Trace:"], "i386"),
])
def test_arch_from_the_log(lines, arch):
    from pyvmalloc.analysis.explain import machine_facts

    text = "\n".join(["[ 1.0] vmap allocation for size 8192 failed: use vmalloc=<size> to "
                      "increase size", *lines]) + "\n"
    mf = machine_facts(parse_kernel_log(text), text.splitlines())
    assert mf.arch == arch


def test_arm_518_unwinder_trace_names_module_alloc():
    text = ("[ 1.0] vmap allocation for size 8192 failed: use vmalloc=<size> to increase size\n"
            "[ 1.0]  __vmalloc_node_range from module_alloc+0x80/0xa4\n"
            "[ 1.0]  module_alloc from load_module+0x9e8/0x2100\n")
    (f,) = parse_kernel_log(text).failures
    assert "module_alloc" in f.trace and "__vmalloc_node_range" in f.trace


@pytest.mark.parametrize("start,end,rng", [
    (0xffff800080000000, 0xfffffbfff0000000, "vmalloc"),     # arm64 6.11+, KASLR'd layout
    (0xffffffffc0000000, 0xffffffffff000000, "module"),      # x86_64 module map
    (0xbf000000, 0xbfe00000, "module"),                      # ARM, without --arch
    (0xe0000000, 0xe8000000, "restricted"),                  # a driver's own range
])
def test_restricted_ranges_without_a_layout(capsys, tmp_path, start, end, rng):
    log = tmp_path / "r.log"
    log.write_text(f"[ 2.0] vmalloc_node_range for size 8192 failed: Address range restricted "
                   f"to {start:#x} - {end:#x}\n")
    _, doc, _ = _explain(capsys, log)
    assert doc["failures"][0]["range"] == rng


def test_module_oops_without_vmalloc_failure_is_not_one(capsys):
    code = main(["explain", str(LOGS / "arm64-module-plt-oops-no-vmalloc.log")])
    out = capsys.readouterr().out
    assert code == 0 and "no vmalloc failure found" in out


def test_an_i386_request_near_the_largest_area_vmalloc_gives_can_fit(capsys, tmp_path):
    # i386 with 1 GiB: vmalloc=976M is the largest area the kernel boots with (992M leaves too
    # little lowmem); 950 MiB fits there, 980 MiB never does.
    log = tmp_path / "big.log"
    for mib, ever in ((950, True), (980, False)):
        log.write_text(f"[ 5.0] vmap allocation for size {(mib << 20) + 4096} failed: use "
                       f"vmalloc=<size> to increase size\n")
        code, doc, _ = _explain(capsys, log, "--arch", "i386", "--ram", "1G", "--kernel", "5.4")
        f = doc["failures"][0]
        assert code == 0 and f["fits_ever"] is ever and f["vmalloc_param_helps"] is ever, mib


def test_a_size_asked_fits_only_with_its_guard_page(capsys, tmp_path):
    # "vmalloc: allocation failure: M bytes" prints the size asked: the area is PAGE_ALIGN(M)
    # plus a guard page, so M = 976 MiB never fits the 976 MiB that vmalloc= gives at most.
    log = tmp_path / "asked.log"
    advice = {}
    for mib, ever in ((976, False), (975, True)):
        log.write_text(f"[ 5.0] insmod: vmalloc: allocation failure: {mib << 20} bytes, "
                       f"mode:0xcc0(GFP_KERNEL), nodemask=(null)\n")
        code, doc, _ = _explain(capsys, log, "--arch", "i386", "--ram", "1G", "--kernel", "5.4")
        f = doc["failures"][0]
        assert code == 0 and f["fits_ever"] is ever and f["vmalloc_param_helps"] is ever, mib
        advice[mib] = f["advice"][0]
    assert advice[976].startswith("the request (976 MiB and its guard page) is larger than the "
                                  "whole range (976 MiB)")
