"""``fiumatch synth``: write a synthetic multi-jurisdiction dataset with its ground truth.

A thin shell over :func:`fiumatch.synth.generate` and :func:`fiumatch.synth.write`.
Deterministic given ``--seed``. Exit codes: 0 written, 2 usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from fiumatch.synth.profiles import PROFILES

    parser = subparsers.add_parser(
        "synth",
        help="generate synthetic FIU datasets for N jurisdictions with a known overlap",
        description=(
            "Generate realistic synthetic records for several jurisdictions, each written in "
            "its own script, date, phone and IBAN formats, with a controlled share of subjects "
            "that appear in several jurisdictions written the way each would write them. "
            "Writes one file per jurisdiction and format, and ground_truth.csv saying which "
            f"records are the same subject. Jurisdictions available: {', '.join(PROFILES)}."
        ),
    )
    parser.add_argument(
        "--jurisdictions", "-j", default="DE,RU,CN",
        help="comma-separated jurisdiction codes (default: DE,RU,CN)",
    )  # fmt: skip
    parser.add_argument(
        "--subjects", "-n", type=int, default=1000, help="records per jurisdiction (default 1000)"
    )
    parser.add_argument(
        "--overlap", type=float, default=0.2,
        help="share of each jurisdiction's records that are shared subjects (default 0.2)",
    )  # fmt: skip
    parser.add_argument(
        "--spread", type=int, default=None,
        help="jurisdictions each shared subject appears in (default: all)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--format", default="csv",
        help="comma-separated output formats: csv, ftm, goaml, or all (default: csv)",
    )  # fmt: skip
    parser.add_argument("--out", "-o", type=Path, required=True, help="output directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fiumatch.cli._util import shown
    from fiumatch.synth import generate, write

    console = Console(stderr=True)
    formats = ("csv", "ftm", "goaml") if args.format == "all" else tuple(
        f.strip() for f in args.format.split(",") if f.strip()
    )  # fmt: skip
    bad = [f for f in formats if f not in ("csv", "ftm", "goaml")]
    if bad or not formats:
        console.print(f"[red]unknown format:[/red] {shown(', '.join(bad)) or '(none)'}")
        return 2
    if args.subjects < 1:
        console.print("[red]--subjects must be at least 1[/red]")
        return 2
    codes = [j.strip().upper() for j in args.jurisdictions.split(",") if j.strip()]
    try:
        with console.status("generating"):
            dataset = generate(
                codes, subjects=args.subjects, overlap=args.overlap, seed=args.seed,
                spread=args.spread,
            )  # fmt: skip
            paths = write(dataset, args.out, formats)
    except ValueError as exc:
        console.print(f"[red]{shown(exc)}[/red]")
        return 2
    shared = len({t.truth_id for t in dataset.truth if t.shared})
    print(
        f"wrote {len(paths)} files to {args.out}: {len(dataset.truth)} records, "
        f"{shared} shared subjects across {', '.join(dataset.jurisdictions)}"
    )
    return 0
