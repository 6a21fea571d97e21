"""A sample as Prometheus metrics: the text for node_exporter's textfile collector, and an HTTP endpoint.

Built on the official ``prometheus_client``: a :class:`VmallocCollector` reads a fresh sample at
every collection (so a served endpoint is live), and the text comes from its
``generate_latest`` (Prometheus 0.0.4) or the OpenMetrics one.  Every metric is a gauge:

===================================  =====================================================
``vmalloc_kind_areas{kind}``         areas per primary kind (vmalloc, ioremap, vmap, ...)
``vmalloc_kind_bytes{kind}``         bytes per kind (size column, guard pages included)
``vmalloc_caller_areas{caller}``     areas of the top N callers by bytes, the rest as "other"
``vmalloc_caller_bytes{caller}``     bytes likewise (so cardinality stays at N + 1)
``vmalloc_unpurged_bytes``           lazily freed, not yet purged
``vmalloc_largest_hole_bytes{range}`` largest free hole of the vmalloc range / module area
``vmalloc_free_bytes``               free bytes of the vmalloc range
``vmalloc_fragmentation_ratio``      1 - largest hole / free bytes
``vmalloc_meminfo_total_bytes``      /proc/meminfo VmallocTotal
``vmalloc_meminfo_used_bytes``       /proc/meminfo VmallocUsed
``vmalloc_addresses_hashed``         1 when %pK hides the addresses (no hole metrics then)
``vmalloc_read_ok``                  0 when the last read failed (nothing else is given then)
===================================  =====================================================

A metric whose value cannot be known (holes of hashed dumps, meminfo without a meminfo) is left
out rather than given a made-up value, as Prometheus exporters do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from pyvmalloc.errors import PyvmallocError
from pyvmalloc.monitor.sample import Sample, Total

__all__ = ["OTHER", "VmallocCollector", "exposition", "registry", "serve", "top_callers"]

OTHER = "other"
PREFIX = "vmalloc"


def top_callers(sample: Sample, top: int) -> dict[str, Total]:
    """The ``top`` callers by bytes, and everyone else summed as ``other`` (when there are any)."""
    ranked = sorted(sample.callers.items(), key=lambda kv: (-kv[1].bytes, -kv[1].areas, kv[0]))
    out = dict(ranked[:top])
    rest = ranked[top:]
    if rest:
        out[OTHER] = Total(sum(t.areas for _, t in rest), sum(t.bytes for _, t in rest))
    return out


def _gauge(name: str, doc: str, value: float | None) -> Iterator[GaugeMetricFamily]:
    if value is not None:
        yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _families(s: Sample, top: int) -> Iterator[GaugeMetricFamily]:
    for label, totals, what in (("kind", s.kinds, "primary kind"),
                                ("caller", top_callers(s, top), f"caller (top {top} by bytes, "
                                                                f"the rest as {OTHER!r})")):
        areas = GaugeMetricFamily(f"{PREFIX}_{label}_areas", f"vmalloc areas per {what}",
                                  labels=[label])
        sizes = GaugeMetricFamily(f"{PREFIX}_{label}_bytes", f"vmalloc bytes per {what} (size "
                                  "column of /proc/vmallocinfo, guard pages included)",
                                  labels=[label])
        for name, t in totals.items():
            areas.add_metric([name], t.areas)
            sizes.add_metric([name], t.bytes)
        yield areas
        yield sizes
    yield from _gauge("unpurged_bytes", "lazily freed areas not yet purged", s.unpurged_bytes)
    holes = GaugeMetricFamily(f"{PREFIX}_largest_hole_bytes", "largest free hole of a range",
                              labels=["range"])
    for name, value in (("vmalloc", s.largest_hole), ("modules", s.module_largest_hole)):
        if value is not None:
            holes.add_metric([name], value)
    if holes.samples:
        yield holes
    yield from _gauge("free_bytes", "free bytes of the vmalloc range", s.free_bytes)
    yield from _gauge("fragmentation_ratio", "1 - largest hole / free bytes of the vmalloc range",
                      s.fragmentation)
    yield from _gauge("meminfo_total_bytes", "/proc/meminfo VmallocTotal", s.vmalloc_total)
    yield from _gauge("meminfo_used_bytes", "/proc/meminfo VmallocUsed", s.vmalloc_used)
    yield from _gauge("addresses_hashed", "1 when %pK hashes the addresses (no hole metrics)",
                      0 if s.addresses_trusted else 1)


class VmallocCollector(Collector):
    """Collects a fresh sample from ``read`` at each scrape; a failed read gives only
    ``vmalloc_read_ok 0`` (the endpoint keeps answering) and keeps the error in ``last_error``."""

    def __init__(self, read: Callable[[], Sample], top: int = 10) -> None:
        self.read = read
        self.top = top
        self.last_error: str | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            sample = self.read()
        except (PyvmallocError, OSError) as exc:
            self.last_error = str(exc)
            yield from _gauge("read_ok", "1 when /proc/vmallocinfo was read and parsed", 0)
            return
        self.last_error = None
        yield from _gauge("read_ok", "1 when /proc/vmallocinfo was read and parsed", 1)
        yield from _families(sample, self.top)


def registry(read: Callable[[], Sample], top: int = 10) -> CollectorRegistry:
    """A registry of its own (not the library's global one) holding one collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(VmallocCollector(read, top))
    return reg


def exposition(sample: Sample, top: int = 10, openmetrics: bool = False) -> str:
    """The text a scrape of ``sample`` gives (Prometheus 0.0.4, or OpenMetrics with ``# EOF``)."""
    reg = registry(lambda: sample, top)
    # The OpenMetrics writer has no annotations in prometheus_client 0.26.
    data = generate_openmetrics(reg) if openmetrics else generate_latest(reg)  # type: ignore[no-untyped-call]
    return data.decode("utf-8")


def serve(read: Callable[[], Sample], port: int, addr: str = "127.0.0.1", top: int = 10
          ) -> WSGIServer:
    """Serve the metrics on ``http://addr:port/metrics`` from a daemon thread; the server (its
    ``server_port`` is the port bound, for ``port=0``).  ``shutdown()`` stops it."""
    server, _thread = start_http_server(port, addr, registry(read, top))
    return server
