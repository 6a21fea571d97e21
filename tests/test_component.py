"""mm/vmalloc.c is a component handed its kernel services (vmalloc/env.py), behind Machine's facade."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyvmalloc as pv
from pyvmalloc.kernel.env import KernelEnv
from pyvmalloc.vmalloc.allocator import make_allocator
from pyvmalloc.vmalloc.api import Vmalloc


class CountingEnv:
    """A harness environment: the machine's services, each call counted (tools/testing/vma style)."""

    def __init__(self, inner: KernelEnv) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.interrupt = False

    def __getattr__(self, name: str) -> Any:
        got = getattr(self.inner, name)
        if not callable(got):
            return got
        calls = self.calls

        def counted(*args: Any) -> Any:
            calls[name] += 1
            return got(*args)
        return counted

    def in_interrupt(self) -> bool:
        self.calls["in_interrupt"] += 1
        return self.interrupt


def test_machine_is_a_facade_over_its_core() -> None:
    m = pv.Machine(ram="64M")
    assert not isinstance(m, Vmalloc) and isinstance(m.vm, Vmalloc) and m.vm.env is m.env
    assert m.vmap_allocator is m.vm.vmap_allocator and m.vm_stats is m.vm.vm_stats
    a = m.vmalloc(3 * 4096)
    assert a is not None and m.vm.find_vm_area(a) is m.find_vm_area(a)
    assert pv.Machine.vmalloc.__doc__ == Vmalloc.vmalloc.__doc__


def test_the_core_runs_on_an_environment_of_its_own() -> None:
    m = pv.Machine(ram="64M", kernel="6.1")
    env = CountingEnv(m.env)
    core = Vmalloc(env, make_allocator("kva", m.PAGE_SIZE), lazy_purge=True)  # type: ignore[arg-type]
    a = core.vmalloc(5 * 4096)
    assert a is not None and core.vmap_allocator.find(a) is not None and m.find_vm_area(a) is None
    assert env.calls["fault_allow"] == 1          # one address search, one jiffy
    env.interrupt = True
    core.vfree(a)                                 # 3.10+: deferred from interrupt context
    assert core.find_vm_area(a) is not None
    env.interrupt = False
    core.run_workers()
    assert core.find_vm_area(a) is None and len(core.lazy_areas()) == 1
    core.vfree(a + 1)                             # a bad address: printk and WARN_ON, through env
    assert env.calls["printk"] >= 1 and env.calls["warn_on"] == 1
    core.set_tracing(True)
    core.vm_unmap_aliases()
    assert env.calls["trace"] == 1                # purge_vmap_area_lazy
