"""``fiumatch demo``: three FIU nodes (FIU-DE, FIU-FR, FIU-LV) as real processes on loopback,
with synthetic overlapping data; runs a fan-out query, a mutual bulk match, a cardinality query
and a disclosure, prints what each side learned, and stops every node."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="run the three-node demo on loopback", description=__doc__
    )
    p.add_argument("--subjects", type=int, default=60, help="synthetic records per FIU")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", type=Path, help="work in this directory and keep it")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fiumatch.demo.run import run_demo

    return run_demo(args.keep, subjects=args.subjects, seed=args.seed)
