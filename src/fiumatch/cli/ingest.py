"""``fiumatch ingest``: read FIU files into subjects and match keys, with a reject report.

A thin shell over :func:`fiumatch.ingest.read`. For now it writes the subjects and their
keys (hex) as JSON Lines and the rejects as JSON Lines, and prints a summary; the node
will later persist the same stream into its store. CSV files of at least
:data:`PARALLEL_MIN_BYTES` are normalised in one worker process per core unless
``--workers`` says otherwise. Exit codes: 0 all records loaded, 1 some records were
rejected (the others still loaded), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

__all__ = ["PARALLEL_MIN_BYTES", "progress_bar", "register", "run", "workers_for"]

DEFAULT_RETENTION_DAYS = 5 * 365 + 1  # five years, the AML directives' retention period
#: Below this size a worker pool costs more to start than it saves (the ingest package's
#: threshold: about half a second to start the pool, break-even near 2 MiB on 2 cores).
#: The same as ``fiumatch.ingest.PARALLEL_MIN_BYTES`` (a test holds them equal); repeated here
#: so that ``fiumatch --help`` does not import the normalisers.
PARALLEL_MIN_BYTES = 4 << 20


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
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes that normalise CSV records (default: one per core for CSV files of "
        "4 MiB or more, else 1); the output is the same, in the same order",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def workers_for(path: Path, fmt: str | None, requested: int | None) -> int:
    """Worker processes for one file: as requested, else ``fiumatch.ingest.default_workers``
    (one per core for a CSV file of at least ``PARALLEL_MIN_BYTES``)."""
    if requested is not None:
        return requested
    from fiumatch.ingest import default_workers

    return default_workers(path, fmt)


def progress_bar(*, disable: bool = False, transient: bool = True) -> Progress:
    """A rich progress bar over a file's bytes: percentage, records, records/s and ETA.

    Tasks take ``total`` = the file's size and are updated with ``completed`` = bytes read
    and a ``records`` field.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]:>11,} records"),
        _record_rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=disable,
        transient=transient,
    )


def _record_rate() -> ProgressColumn:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RecordRate(ProgressColumn):
        """Records per second since the task started."""

        def render(self, task: Task) -> Text:
            elapsed = task.elapsed
            if not elapsed:
                return Text("      - rec/s", style="progress.data.speed")
            rate = task.fields.get("records", 0) / elapsed
            return Text(f"{rate:>7,.0f} rec/s", style="progress.data.speed")

    return RecordRate()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fiumatch.cli._util import not_regular_files, shown
    from fiumatch.ingest import IngestStats, Reject, RejectReport, UnknownFormatError, read
    from fiumatch.ingest.export import subject_to_dict

    console = Console(stderr=True, soft_wrap=True)
    refused = not_regular_files(args.files)  # before opening: a FIFO blocks, /dev/zero never ends
    for path, why in refused:
        console.print(f"[red]{shown(path)}:[/red] {why}")
    if refused:
        return 2
    if args.workers is not None and args.workers < 1:
        console.print("[red]--workers must be at least 1[/red]")
        return 2
    retention = args.retention_until or date.today() + timedelta(days=DEFAULT_RETENTION_DAYS)
    stats = IngestStats()
    started = time.perf_counter()
    out = args.out.open("w", encoding="utf-8") if args.out else None
    try:
        with RejectReport(args.rejects) as report, progress_bar(
            disable=args.no_progress
        ) as progress:
            for path in args.files:
                size = path.stat().st_size
                task = progress.add_task(
                    f"reading {shown(path.name)}", total=size or None, records=0
                )
                stats.bytes_read = 0
                before = stats.records
                done = 0
                try:
                    stream = read(
                        path, args.format, default_retention=retention, source=args.source,
                        stats=stats, workers=workers_for(path, args.format, args.workers),
                    )  # fmt: skip
                    for item in stream:
                        if isinstance(item, Reject):
                            report.add(item)
                        elif out is not None:
                            out.write(json.dumps(subject_to_dict(item), ensure_ascii=False))
                            out.write("\n")
                        done += 1
                        if done % 2000 == 0:
                            progress.update(
                                task, completed=stats.bytes_read,
                                records=stats.records - before,
                            )  # fmt: skip
                except UnknownFormatError as exc:
                    console.print(f"[red]{shown(path)}:[/red] {shown(exc.reason)}")
                    return 2
                progress.update(task, completed=size, records=stats.records - before)
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
        ("reject entries", f"{stats.rejects:,} -> {shown(args.rejects)}"),
        ("entities skipped (not subjects)", f"{stats.skipped:,}"),
        ("throughput", f"{stats.records / elapsed:,.0f} records/s" if elapsed > 0 else "-"),
    ):
        table.add_row(label, value)
    if stats.ignored_columns:
        table.add_row("ignored columns", ", ".join(shown(c) for c in sorted(stats.ignored_columns)))
    Console().print(table)
    return 1 if stats.rejects else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
