"""``pyvmalloc metrics [DUMP]``: the vmalloc state as Prometheus/OpenMetrics text, or served over HTTP."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from typing import Any

from pyvmalloc.cli.monitor_args import count, guarded
from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.metrics import exposition, serve
from pyvmalloc.monitor.sample import Sample, read_sample

__all__ = ["register", "run"]

LIVE = "/proc/vmallocinfo"


def register(subparsers: Any) -> None:
    """Add the ``metrics`` subcommand."""
    p = subparsers.add_parser(
        "metrics", help="the vmalloc state as Prometheus metrics (textfile or --serve PORT)",
        description="Print the vmalloc state in the Prometheus text format (for node_exporter's "
                    "textfile collector: -o DIR/vmalloc.prom writes it atomically), or serve it "
                    "on http://BIND:PORT/metrics, read afresh at every scrape.")
    p.add_argument("dump", metavar="DUMP", nargs="?", default=LIVE,
                   help=f"a /proc/vmallocinfo dump ('-': stdin; default: the live {LIVE})")
    p.add_argument("--meminfo", metavar="FILE",
                   help="the /proc/meminfo to read VmallocTotal/Used from (default: meminfo "
                        "beside a file named vmallocinfo, or DUMP's NAME.meminfo)")
    p.add_argument("--top", metavar="N", type=count, default=10,
                   help="callers given by name, the rest summed as 'other' (10)")
    p.add_argument("--openmetrics", action="store_true",
                   help="the OpenMetrics text format instead of Prometheus 0.0.4")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (via a temporary file and a rename, as the textfile "
                        "collector needs) instead of standard output")
    p.add_argument("--serve", metavar="PORT", type=count,
                   help="serve http://BIND:PORT/metrics until interrupted (0: any free port)")
    p.add_argument("--bind", metavar="ADDR", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.set_defaults(func=guarded("metrics", run))


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    # The temporary file is ours, not the user's: an error names the output asked for.
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a folder: give a file name such as DIR/vmalloc.prom", path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vmalloc-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    """Print, write or serve the metrics; 0, or 2 with one line on bad input."""
    def read() -> Sample:
        return read_sample(args.dump, meminfo_path=args.meminfo)

    if args.serve is not None and args.dump == "-":
        raise ConfigError("--serve reads DUMP afresh at every scrape: give a file, not '-'")
    if args.serve is not None and args.serve > 65535:
        raise ConfigError(f"--serve {args.serve}: a TCP port is 0 to 65535")
    first = read()      # a bad dump is an error now, not a silent read_ok 0 at every scrape
    if args.serve is None:
        if args.bind != "127.0.0.1":
            raise ConfigError("--bind goes with --serve")
        text = exposition(first, args.top, args.openmetrics)
        if args.output:
            _write_atomically(args.output, text)
        else:
            sys.stdout.write(text)
        return 0
    if args.output or args.openmetrics:
        raise ConfigError("--serve answers each scrape in the format it asks for: "
                          "no --output or --openmetrics with it")
    server = serve(read, args.serve, args.bind, args.top)
    print(f"serving http://{args.bind}:{server.server_port}/metrics from {args.dump} "
          f"(Ctrl-C stops)", flush=True)
    stop = threading.Event()
    try:
        # Wake up now and then: a signal then always finds the main thread in Python code.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0
