"""``pyvmalloc quiz``: seeded vmalloc problems in the OSTEP manner, answers and their rules with -c."""

from __future__ import annotations

import argparse
from typing import Any

from pyvmalloc.course.quiz import TOPICS, QuizConfig, make_quiz, parse_ops, render
from pyvmalloc.errors import ConfigError
from pyvmalloc.vmalloc.allocator import ALLOCATORS


def register(sub: Any) -> None:
    """Add the ``quiz`` subcommand."""
    p = sub.add_parser("quiz", help="vmalloc problems: -s SEED for a problem, -c for its answers",
                       description=__doc__)
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed: same seed, same transcript (default 0)")
    p.add_argument("-n", "--num", type=int, default=5, help="how many questions (default 5)")
    p.add_argument("-c", "--compute", action="store_true", help="print the answers, each with its rule")
    p.add_argument("-A", "--ops", default=None,
                   help="explicit operations instead of random ones: aSIZE vmalloc, iSIZE ioremap, fN "
                        "free pN; e.g. -A a16k,a10000,f0,a8k,i6M (each a/i is a question)")
    p.add_argument("--topic", default="all", choices=[*TOPICS, "all"],
                   help="what to ask about (default all: a mix)")
    p.add_argument("--arch", default="x86_64", help="machine profile (default x86_64)")
    p.add_argument("--ram", default="128M", help="RAM size (default 128M)")
    p.add_argument("--kernel", default=None, help="Linux version, e.g. 2.6.22, 4.9, 6.1 (default 6.1)")
    p.add_argument("--allocator", default=None, choices=list(ALLOCATORS),
                   help="override the kernel's address-space allocator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the quiz; returns the exit code."""
    if not 1 <= args.num <= 100:
        raise ConfigError(f"-n {args.num}: ask between 1 and 100 questions")
    cfg = QuizConfig(seed=args.seed, num=args.num, ops=None if args.ops is None else parse_ops(args.ops),
                     arch=args.arch, ram=args.ram, kernel=args.kernel, allocator=args.allocator,
                     topic=args.topic)
    m, questions = make_quiz(cfg)
    print(render(cfg, m, questions, args.compute), end="")
    return 0
