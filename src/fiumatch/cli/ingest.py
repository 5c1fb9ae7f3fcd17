"""``fiumatch ingest``: read FIU files into subjects and match keys, with a reject report.

A thin shell over :func:`fiumatch.ingest.read`. For now it writes the subjects and their
keys (hex) as JSON Lines and the rejects as JSON Lines, and prints a summary; the node
will later persist the same stream into its store. Exit codes: 0 all records loaded, 1 some
records were rejected (the others still loaded), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

DEFAULT_RETENTION_DAYS = 5 * 365 + 1  # five years, the AML directives' retention period


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read CSV, JSON Lines, FtM or goAML files into subjects and match keys",
        description=(
            "Read FIU files, normalise every subject and derive its match keys. Bad records "
            "never stop the load: each lands in the reject report with file, line or record, "
            "field and reason. Exit 0 if everything loaded, 1 if some records were rejected, "
            "2 on usage errors."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to read")
    parser.add_argument(
        "--format",
        choices=("csv", "jsonl", "ftm", "goaml"),
        help="file format (default: guessed from the name: .csv, .jsonl, .ftm.json, .xml)",
    )
    parser.add_argument(
        "--source",
        help="source name used in subject ids (default: each file's name); keep it stable "
        "so re-ingesting the same records gives the same ids",
    )
    parser.add_argument(
        "--out", type=Path, help="write subjects with their keys (hex) as JSON Lines here"
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        default=Path("rejects.jsonl"),
        help="reject report, JSON Lines (default: rejects.jsonl)",
    )
    parser.add_argument(
        "--retention-until",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="retention date for records that carry none (default: today + 5 years)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from fiumatch.ingest import IngestStats, Reject, RejectReport, UnknownFormatError, read
    from fiumatch.ingest.export import subject_to_dict

    console = Console(stderr=True)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        console.print(f"[red]no such file:[/red] {', '.join(missing)}")
        return 2
    retention = args.retention_until or date.today() + timedelta(days=DEFAULT_RETENTION_DAYS)
    stats = IngestStats()
    started = time.perf_counter()
    out = args.out.open("w", encoding="utf-8") if args.out else None
    try:
        with RejectReport(args.rejects) as report, Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=console,
            disable=args.no_progress,
            transient=True,
        ) as progress:
            for path in args.files:
                task = progress.add_task(f"reading {path.name}", total=None)
                done = 0
                try:
                    stream = read(
                        path, args.format, default_retention=retention,
                        source=args.source, stats=stats,
                    )  # fmt: skip
                    for item in stream:
                        if isinstance(item, Reject):
                            report.add(item)
                        elif out is not None:
                            out.write(json.dumps(subject_to_dict(item), ensure_ascii=False))
                            out.write("\n")
                        done += 1
                        if done % 2000 == 0:
                            progress.update(task, completed=stats.records)
                except UnknownFormatError as exc:
                    console.print(f"[red]{path}:[/red] {exc.reason}")
                    return 2
                progress.update(task, completed=stats.records)
    finally:
        if out is not None:
            out.close()
    elapsed = time.perf_counter() - started
    table = Table(title="fiumatch ingest", show_header=False)
    for label, value in (
        ("records read", f"{stats.records:,}"),
        ("subjects loaded", f"{stats.subjects:,}"),
        ("match keys", f"{stats.keys:,}"),
        ("records rejected", f"{stats.rejected_records:,}"),
        ("reject entries", f"{stats.rejects:,} -> {args.rejects}"),
        ("entities skipped (not subjects)", f"{stats.skipped:,}"),
        ("throughput", f"{stats.records / elapsed:,.0f} records/s" if elapsed > 0 else "-"),
    ):
        table.add_row(label, value)
    if stats.ignored_columns:
        table.add_row("ignored columns", ", ".join(sorted(stats.ignored_columns)))
    Console().print(table)
    return 1 if stats.rejects else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
