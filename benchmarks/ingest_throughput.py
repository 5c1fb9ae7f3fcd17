"""Ingestion throughput: records per second, normalisation and key derivation included.

Writes a synthetic CSV of ``--records`` rows (default 10^6) by cycling through a synthetic
dataset (fiumatch.synth, 3 jurisdictions) with fresh local references, then streams it
through ``fiumatch.ingest.read`` with a rich progress bar, encoding every match key to the
bytes the OPRF would take. Peak memory is reported to show the file is streamed, not
loaded. goAML XML and FtM readers are measured on the synthetic files themselves.

Run:  python -m benchmarks.ingest_throughput [--records N]
Writes benchmarks/results/ingest_throughput.{json,md,png}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fiumatch.identifiers import Subject
from fiumatch.ingest import FIELDS, IngestStats, read
from fiumatch.synth import generate, write

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_read(path: Path, total: int, label: str) -> dict[str, object]:
    stats = IngestStats()
    keys = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with Progress(
        TextColumn(label), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
    ) as progress:  # fmt: skip
        task = progress.add_task(label, total=total)
        for n, item in enumerate(read(path, default_retention=date(2030, 1, 1), stats=stats), 1):
            if isinstance(item, Subject):
                for key in item.keys:
                    key.encode()
                    keys += 1
            if n % 5000 == 0:
                progress.update(task, completed=stats.records)
        progress.update(task, completed=stats.records)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "records": stats.records,
        "subjects": stats.subjects,
        "rejects": stats.rejects,
        "keys": keys,
        "seconds": round(elapsed, 2),
        "records_per_second": round(stats.records / elapsed),
        "cpu_seconds": round(cpu, 2),
        "records_per_cpu_second": round(stats.records / cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=20_000, help="synthetic records per "
                        "jurisdiction to cycle through")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    ds = generate(["DE", "RU", "CN"], subjects=args.base, overlap=0.2, seed=7)
    base = [rec for j in ds.jurisdictions for rec in ds.records[j]]
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        big = tmpdir / "big.csv"
        with big.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            for i in range(args.records):
                rec = dict(base[i % len(base)])
                rec["local_ref"] = f"{rec['local_ref']}-{i}"
                writer.writerow(rec)
        size_mib = big.stat().st_size / 2**20
        rss_before = _rss_mib()
        results["csv"] = _timed_read(big, args.records, "CSV")
        results["csv"]["file_mib"] = round(size_mib, 1)  # type: ignore[index]
        results["csv"]["peak_rss_mib_before"] = round(rss_before, 1)  # type: ignore[index]
        results["csv"]["peak_rss_mib_after"] = round(_rss_mib(), 1)  # type: ignore[index]
        big.unlink()
        small = tmpdir / "synth"
        write(ds, small, ("ftm", "goaml"))
        for fmt, suffix in (("ftm", "ftm.json"), ("goaml", "goaml.xml")):
            total = args.base
            results[fmt] = _timed_read(small / f"DE.{suffix}", total, fmt)
    report = {
        "benchmark": "ingest_throughput",
        "goal_records_per_second_csv": 20000,
        "results": results,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "2-core machine shared with other work; single process, single thread",
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest_throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Ingestion throughput (normalisation + key derivation + key encoding)",
        "",
        "| format | records | subjects | keys | wall s | records/s (wall) | records/s (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, row in results.items():
        assert isinstance(row, dict)
        lines.append(f"| {fmt} | {row['records']:,} | {row['subjects']:,} | {row['keys']:,} | "
                     f"{row['seconds']} | {row['records_per_second']:,} | "
                     f"{row['records_per_cpu_second']:,} |")  # fmt: skip
    csv_row = results["csv"]
    assert isinstance(csv_row, dict)
    lines += [
        "",
        f"CSV file: {csv_row['file_mib']} MiB; peak RSS {csv_row['peak_rss_mib_before']} MiB "
        f"before reading it and {csv_row['peak_rss_mib_after']} MiB after (streamed). "
        f"Load average at the end: {report['environment']['load_average_at_end']}.",  # type: ignore[index]
        "",
    ]
    (args.out / "ingest_throughput.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(results)
    xs = range(len(names))
    wall = [results[n]["records_per_second"] for n in names]  # type: ignore[index]
    cpu = [results[n]["records_per_cpu_second"] for n in names]  # type: ignore[index]
    ax.bar([x - 0.2 for x in xs], wall, 0.4, label="wall clock")
    ax.bar([x + 0.2 for x in xs], cpu, 0.4, label="per CPU second")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names)
    ax.axhline(20000, color="grey", linestyle="--", label="CSV goal 20k/s")
    ax.set_ylabel("records / second")
    ax.set_title("fiumatch ingest throughput (one process)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "ingest_throughput.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
