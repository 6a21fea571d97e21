"""Layer analysis (see docs/design.md): summaries of /proc/vmallocinfo snapshots."""

from pyvmalloc.snapshot.layout import Bounds, HoleStats, KaslrGuess, guess_arch, infer_bounds
from pyvmalloc.analysis.summary import Summary, format_summary, summarize, to_json
from pyvmalloc.formats.vmalloc_meminfo import VmallocMeminfo, generation_for, vmalloc_meminfo

__all__ = ["Bounds", "HoleStats", "KaslrGuess", "Summary", "VmallocMeminfo", "format_summary",
           "generation_for", "guess_arch", "infer_bounds", "summarize", "to_json",
           "vmalloc_meminfo"]
