"""arm64's kernel VA layout per release (arch/boot.py arm64_layout; versions.py arm64_* rules),
held against what real arm64 kernels print and the real arm64 logs and dumps of tests/data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import pyvmalloc as pv
from pyvmalloc.analysis.plan import fits
from pyvmalloc.arch import PROFILES
from pyvmalloc.arch.boot import arm64_layout
from pyvmalloc.cli.main import main
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.snapshot.layout import guess_arch
from pyvmalloc.versions import resolve

DATA = Path(__file__).parent / "data"
PAGE = 4096
MiB, GiB = 1 << 20, 1 << 30
A64 = PROFILES["arm64"]

# kernel: PAGE_OFFSET, VMALLOC_START, VMALLOC_END, MODULES_VADDR, MODULES_END, BPF JIT region
ERAS = {
    # 3.7-3.16: VMALLOC_END = PAGE_OFFSET - 0x400000000 - SZ_64K (3.10/3.14.1/3.16.0 pgtable.h)
    "3.10": (0xFFFF800000000000, 0xFFFF000000000000, 0xFFFF7FFBFFFF0000,
             0xFFFF7FFFFC000000, 0xFFFF800000000000, None),
    # 3.17-4.5: - PUD_SIZE - VMEMMAP_SIZE (4 TiB) - SZ_64K; modules the 64 MiB below PAGE_OFFSET
    "4.4": (0xFFFF800000000000, 0xFFFF000000000000, 0xFFFF7BFFBFFF0000,
            0xFFFF7FFFFC000000, 0xFFFF800000000000, None),
    # 4.6: modules at VA_START, 128 MiB; the vmemmap still 4 TiB
    "4.6": (0xFFFF800000000000, 0xFFFF000008000000, 0xFFFF7BFFBFFF0000,
            0xFFFF000000000000, 0xFFFF000008000000, None),
    # 4.7-4.20: the vmemmap 2 TiB right below the linear map
    "4.19": (0xFFFF800000000000, 0xFFFF000008000000, 0xFFFF7DFFBFFF0000,
             0xFFFF000000000000, 0xFFFF000008000000, None),
    # 5.0-5.3: the BPF JIT region where the module area began
    "5.2": (0xFFFF800000000000, 0xFFFF000010000000, 0xFFFF7DFFBFFF0000,
            0xFFFF000008000000, 0xFFFF000010000000, (0xFFFF000000000000, 0xFFFF000008000000)),
    # 5.4-5.10: the flipped VA space
    "5.10": (0xFFFF000000000000, 0xFFFF800010000000, 0xFFFFFDFFBFFF0000,
             0xFFFF800008000000, 0xFFFF800010000000, (0xFFFF800000000000, 0xFFFF800008000000)),
    # 5.11-5.15: VMALLOC_END = VMEMMAP_START - SZ_256M
    "5.15": (0xFFFF000000000000, 0xFFFF800010000000, 0xFFFFFBFFF0000000,
             0xFFFF800008000000, 0xFFFF800010000000, (0xFFFF800000000000, 0xFFFF800008000000)),
    # 5.16-6.4: no BPF JIT region (the profile's own constants)
    "6.1": (0xFFFF000000000000, 0xFFFF800008000000, 0xFFFFFBFFF0000000,
            0xFFFF800000000000, 0xFFFF800008000000, None),
    # 6.5+: MODULES_VSIZE SZ_2G
    "6.12": (0xFFFF000000000000, 0xFFFF800080000000, 0xFFFFFBFFF0000000,
             0xFFFF800000000000, 0xFFFF800080000000, None),
}


@pytest.mark.parametrize("kernel", sorted(ERAS))
def test_each_era_boots_with_its_layout(kernel: str) -> None:
    po, vstart, vend, mstart, mend, bpf = ERAS[kernel]
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    lay = m.layout
    assert (lay.page_offset, m.VMALLOC_START, m.VMALLOC_END) == (po, vstart, vend)
    assert (lay.modules_start, lay.modules_end) == (mstart, mend)
    assert ((lay.bpf_jit_start, lay.bpf_jit_end) if bpf else (0, 0)) == (bpf or (0, 0))
    assert f"VmallocTotal:   {(vend - vstart) >> 10} kB" in m.meminfo()
    a = m.vmalloc(3 * PAGE)
    assert a is not None and vstart <= a < vend
    m.check()


def test_the_profile_constants_are_the_5_16_to_6_4_layout() -> None:
    # snapshot/layout.py reads arm64 dumps with the profile's constants: they must stay the
    # 5.16-6.4 layout, which arm64_layout gives for every release of that era.
    for kernel in ("5.16", "6.1", "6.4"):
        a = arm64_layout(A64, resolve(kernel))
        assert (a.page_offset, a.vmalloc_start, a.vmalloc_end, a.modules_start, a.modules_end) == (
            A64.page_offset, A64.vmalloc_start, A64.vmalloc_end, A64.modules_start, A64.modules_end)
    assert arm64_layout(A64, resolve("6.5")).vmalloc_start != A64.vmalloc_start


# arch/arm64/mm/init.c mem_init() (until 4.15) printed the layout; these lines are copied from
# real boot logs: a 4.x QEMU guest before 4.6 and Juno/QEMU/Android boots of 4.7-4.14.
# "%6ld GB" is (end - start) >> 30, "%6ld MB" >> 20.
REAL_MEM_INIT = {
    "4.4": ["    vmalloc : 0xffff000000000000 - 0xffff7bffbfff0000   (126974 GB)",
            "    modules : 0xffff7ffffc000000 - 0xffff800000000000   (    64 MB)"],
    "4.9": ["    modules : 0xffff000000000000 - 0xffff000008000000   (   128 MB)",
            "    vmalloc : 0xffff000008000000 - 0xffff7dffbfff0000   (129022 GB)"],
}
_MEM_INIT = re.compile(r"\s*(\w+) : 0x([0-9a-f]+) - 0x([0-9a-f]+)\s+\(\s*(\d+) (GB|MB)\)")


@pytest.mark.parametrize("kernel", sorted(REAL_MEM_INIT))
def test_the_layout_is_what_real_4x_kernels_printed(kernel: str) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    ranges = {"vmalloc": (m.VMALLOC_START, m.VMALLOC_END),
              "modules": (m.layout.modules_start, m.layout.modules_end)}
    for line in REAL_MEM_INIT[kernel]:
        hit = _MEM_INIT.match(line)
        assert hit is not None
        name, start, end, size, unit = hit.groups()
        assert ranges[name] == (int(start, 16), int(end, 16))
        assert (int(end, 16) - int(start, 16)) >> (30 if unit == "GB" else 20) == int(size)


# /proc/meminfo VmallocTotal of real arm64 machines (48-bit VA, 4 KiB pages), each seen in
# several public pastes: 4.7-4.20, 5.0-5.10 (the BPF JIT region takes 128 MiB more), 5.11-5.15
# and 5.16-6.4 kernels.
@pytest.mark.parametrize("kernel,total_kb", [("4.14", 135290290112), ("5.4", 135290159040),
                                             ("5.10", 135290159040), ("5.15", 133143461888),
                                             ("6.1", 133143592960)])
def test_vmalloc_total_is_what_real_machines_report(kernel: str, total_kb: int) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    assert m.layout.vmalloc_total_kb == total_kb


def test_explain_of_the_4_4_log_names_the_module_area_below_page_offset(capsys) -> None:
    log = DATA / "logs" / "arm64-zfs-module.log"          # Linux 4.4.131 (SOURCES)
    assert main(["explain", str(log), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["machine"]["arch"] == "arm64" and doc["machine"]["kernel"] == "4.4.131"
    (f,) = doc["failures"]
    assert f["range"] == "module" and f["request"] == "module_alloc"
    assert (f["range_start"], f["range_end"]) == ("0xffff7ffffc000000", "0xffff800000000000")
    assert f["fits_ever"] is True and any("(64 MiB)" in a for a in f["advice"])
    assert any("before 4.6 has no fallback" in n for n in f["notes"])
    # The log's kernel text (dump_backtrace at ffff8000000897f8) lies in 4.4's linear map,
    # above the 64 MiB module area: not in 5.16's module area, where it would be with 6.1's.
    text = int(re.search(r"\[<([0-9a-f]{16})>\] dump_backtrace", log.read_text()).group(1), 16)
    old = pv.Machine(arch="arm64", kernel="4.4.131", ram=256 * MiB).layout
    assert old.page_offset <= text < old.high_memory
    assert not old.modules_start <= text < old.modules_end
    assert not old.vmalloc_start <= text < old.vmalloc_end
    new = pv.Machine(arch="arm64", kernel="6.1", ram=256 * MiB).layout
    assert new.modules_start <= text < new.modules_end


def test_the_plt_oops_log_is_arm64_and_its_stack_in_a_5_4_to_6_4_vmalloc_area(capsys) -> None:
    log = DATA / "logs" / "arm64-module-plt-oops-no-vmalloc.log"
    assert main(["explain", str(log), "--arch", "arm64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failures"] == []
    # sp: a VMAP_STACK (4.14+) stack, so a vmalloc address: inside every 5.4-6.4 vmalloc area,
    # in the linear map of 4.x and in 6.5+'s 2 GiB module area.
    sp = int(re.search(r"sp : ([0-9a-f]{16})", log.read_text()).group(1), 16)
    for kernel in ("5.4", "5.10", "5.15", "6.1", "6.4"):
        lay = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB).layout
        assert lay.vmalloc_start <= sp < lay.vmalloc_end, kernel
    for kernel in ("4.14", "4.19", "6.5"):
        lay = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB).layout
        assert not lay.vmalloc_start <= sp < lay.vmalloc_end, kernel


def test_the_drgn_dump_is_arm64_and_inside_a_5_4_or_later_vmalloc_area() -> None:
    snap, _ = read_dump((DATA / "dumps" / "drgn-vmallocinfo.txt").read_text())
    assert guess_arch(snap)[0] == "arm64"
    lo, hi = min(ln.start for ln in snap.lines), max(ln.end for ln in snap.lines)
    for kernel in ("5.4", "5.11", "6.1", "6.5", "6.12"):
        lay = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB).layout
        assert lay.vmalloc_start <= lo and hi <= lay.vmalloc_end, kernel
    for kernel in ("4.4", "4.19", "5.3"):                # the linear map of those kernels
        lay = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB).layout
        assert lo >= lay.page_offset and not lay.vmalloc_start <= lo < lay.vmalloc_end, kernel


def _fill(m: pv.Machine, start: int, end: int) -> None:
    """Take all of [start, end) but three pages with address space only (a VM_ALLOC area)."""
    assert m.get_vm_area_range(end - start - 3 * PAGE, 0x2, start, end) is not None


def test_before_4_6_modules_have_no_fallback_and_warn() -> None:
    m = pv.Machine(arch="arm64", kernel="4.4", ram=256 * MiB)
    mstart, mend = m.layout.modules_start, m.layout.modules_end
    assert m.module_alloc(PAGE) == mstart == 0xFFFF7FFFFC000000
    _fill(m, mstart, mend)
    before = len(m.dmesg())
    assert m.module_alloc(4 * PAGE) is None
    assert any("vmap allocation for size" in line for line in m.dmesg()[before:])
    m.check()


@pytest.mark.parametrize("kernel,window,warns", [("4.9", None, True), ("4.12", None, False),
                                                 ("4.15", 4 * GiB, False), ("5.2", 2 * GiB, False),
                                                 ("6.1", 2 * GiB, False)])
def test_the_plt_fallback_of_each_release(kernel: str, window: int | None, warns: bool) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    mstart, mend = m.layout.modules_start, m.layout.modules_end
    assert m.module_alloc(PAGE) == mstart
    _fill(m, mstart, mend)
    before = len(m.dmesg())
    spill = m.module_alloc(4 * PAGE)
    assert spill is not None and mend <= spill
    if window is None:                   # 4.6-4.14: the whole vmalloc area
        assert m.VMALLOC_START <= spill < m.VMALLOC_END
    else:
        assert spill < mstart + window
    # The first try warns until 4.12 made it __GFP_NOWARN; the fallback succeeds silently.
    warned = any("vmap allocation for size 20480 failed" in line for line in m.dmesg()[before:])
    assert warned == warns
    m.check()


@pytest.mark.parametrize("kernel,exec_", [("4.4", True), ("5.2", True), ("5.3", False)])
def test_module_text_is_mapped_exec_until_5_3(kernel: str, exec_: bool) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    a = m.module_alloc(PAGE)
    assert a is not None and ("PXN" not in m.walk(a)[-1].flags) == exec_


@pytest.mark.parametrize("kernel", ["4.19", "5.2", "5.10", "5.15", "6.1"])
def test_bpf_jit_images_go_where_each_release_puts_them(kernel: str) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    lay = m.layout
    a = m.bpf_jit_alloc(64)
    assert a is not None
    (answer,) = fits(m, ["64K"], "bpf")
    assert answer.ok and answer.address is not None
    if kernel == "4.19":                 # module_alloc
        where = (lay.modules_start, lay.modules_end)
        assert m.bpf_jit_limit() == (lay.modules_end - lay.modules_start) >> 2
    elif kernel in ("5.2", "5.10", "5.15"):   # BPF_JIT_REGION_START..END
        where = (lay.bpf_jit_start, lay.bpf_jit_end)
        assert where[1] - where[0] == 128 * MiB and lay.bpf_jit_end <= lay.modules_start
        assert m.bpf_jit_limit() == (128 * MiB) >> 2
    else:                                # 5.16+: vmalloc()
        where = (m.VMALLOC_START, m.VMALLOC_END)
        assert m.bpf_jit_limit() == (m.VMALLOC_END - m.VMALLOC_START) >> 2
    assert where[0] <= a < where[1] and where[0] <= answer.address < where[1]
    m.check()


def test_kvmalloc_objects_sit_in_the_release_linear_map() -> None:
    # 4.x: the linear map is the top half; a kmalloc'ed object must not read as a vmalloc
    # address (the vmalloc area is where 5.4+ put the linear map).
    m = pv.Machine(arch="arm64", kernel="4.19", ram=256 * MiB)
    p = m.kvmalloc(100)
    assert p is not None and p >= m.layout.page_offset and not m.VMALLOC_START <= p < m.VMALLOC_END
    m.kvfree(p)
    m.check()


# A BPF JIT failure as 5.x arm64 kernels log it (mm/vmalloc.c's message, dump_backtrace's trace
# format); no public arm64 log of one was found, so the lines are assembled from those formats.
_BPF_LOG = """\
[    0.000000] Linux version {kernel}-arm64 (debian-kernel@lists.debian.org) #1 SMP Debian
[ 1234.567890] vmap allocation for size 8192 failed: use vmalloc=<size> to increase size
[ 1234.567900] Call trace:
[ 1234.567901]  dump_backtrace+0x0/0x1e0
[ 1234.567902]  __vmalloc_node_range+0x1c0/0x2a0
[ 1234.567903]  bpf_jit_alloc_exec+0x60/0x70
[ 1234.567904]  bpf_jit_binary_alloc+0x60/0x110
[ 1234.567905]  bpf_int_jit_compile+0x2a0/0x5a0
"""


@pytest.mark.parametrize("kernel,start,end", [
    ("4.19.0", "0xffff000000000000", "0xffff000008000000"),      # module_alloc: the module area
    ("5.10.0", "0xffff800000000000", "0xffff800008000000"),      # the BPF JIT region
    ("6.1.0", "0xffff800008000000", "0xfffffbfff0000000")])      # vmalloc()
def test_explain_puts_an_arm64_jit_failure_in_its_release_range(capsys, tmp_path: Path,
                                                                 kernel: str, start: str,
                                                                 end: str) -> None:
    log = tmp_path / "bpf.log"
    log.write_text(_BPF_LOG.format(kernel=kernel))
    assert main(["explain", str(log), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = doc["failures"]
    assert doc["machine"]["arch"] == "arm64" and f["range"] == "bpf"
    assert (f["range_start"], f["range_end"]) == (start, end)


def test_kernels_before_48_bit_va_say_the_layout_is_evaluated_at_48_bits() -> None:
    """3.7-3.17 arm64 kernels had 39- or 42-bit VA: the model boots them at 48 bits and its
    boot log says so; from 3.18 it says nothing."""
    old = pv.Machine(arch="arm64", kernel="3.10").dmesg()
    assert any("Linux 3.10 had no 48-bit VA" in line for line in old)
    assert not any("48-bit VA" in line for line in pv.Machine(arch="arm64", kernel="3.18").dmesg())


def test_the_command_line_is_logged_once() -> None:
    lines = pv.Machine(arch="arm64", kernel="6.1", cmdline="mem=512M").dmesg()
    assert sum("Kernel command line:" in line for line in lines) == 1


def test_analyze_takes_arm64_bounds_of_the_dumps_kernel() -> None:
    """infer_bounds (analyze, from_snapshot) uses the given release's arm64 VMALLOC_START/END:
    the drgn dump fits 6.1's and 5.10's, each named; without a version, the profile's."""
    from pyvmalloc.snapshot.layout import infer_bounds

    snap, _ = read_dump((DATA / "dumps" / "drgn-vmallocinfo.txt").read_text())
    for kernel in ("5.10", "6.1"):
        b = infer_bounds(snap, "arm64", kernel=resolve(kernel))
        lay = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB).layout
        assert b is not None and (b.start, b.end) == (lay.vmalloc_start, lay.vmalloc_end)
        assert f"Linux {kernel}" in b.how
    plain = infer_bounds(snap, "arm64")
    assert plain is not None and "not known" in plain.how


def test_an_arm64_dump_is_dated_by_the_layouts_its_addresses_fit() -> None:
    """The drgn dump's areas lie only in 5.4+'s ranges (the flipped VA space): infer_kernel says
    5.4 or later; one area low in 4.4's vmalloc area fits every layout before the flip."""
    from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
    from pyvmalloc.snapshot.layout import infer_kernel

    snap, _ = read_dump((DATA / "dumps" / "drgn-vmallocinfo.txt").read_text())
    rng, why = infer_kernel(snap, arch="arm64")
    assert (str(rng.lo), rng.hi) == ("5.4", None) and "5.4+" in why
    lay = pv.Machine(arch="arm64", kernel="4.4", ram=256 * MiB).layout
    base = lay.vmalloc_start + 0x10000000
    old = parse_vmallocinfo(f"0x{base:x}-0x{base + 0x3000:x}   12288 f+0x1/0x2 pages=2 vmalloc\n")
    rng, why = infer_kernel(old, arch="arm64")
    assert (str(rng.lo), str(rng.hi)) == ("3.7", "5.4"), why
    assert why.count("lie in the module and vmalloc ranges") == 1
