"""Ingestion throughput: records per second, normalisation and key derivation included.

Writes synthetic CSV files of 10^5 and 10^6 rows (fiumatch.synth, three jurisdictions,
records interleaved across them; by default every record of both files is distinct, as in
a real FIU's file, so caches help only where names, dates and tokens really recur; a smaller
``--base`` cycles fewer distinct records), then reads each through ``fiumatch.ingest.read``
serially (``workers=1``) and with one worker
process per core, side by side, ``--repeats`` times each, encoding every match key to the
bytes the OPRF would take. Every run is a fresh process (so peak memory is that run's own):
the main process's peak RSS and the largest worker's peak RSS are recorded to show memory
stays flat as the file grows (the file is streamed and the caches are bounded). A rich
progress bar (records, records/s, ETA) shows on the terminal. goAML XML and FtM are measured
serially on 20,000 synthetic records each (``--other-records``).

With ``--before-src DIR`` (another checkout's ``src``), each repeat also makes a parallel run
on that tree's code, the same file, in turn with this tree's: the change's ratio, side by side.

Run:  python -m benchmarks.ingest_throughput [--sizes 100000,1000000] [--repeats 3]
Writes benchmarks/results/ingest_throughput.{json,md,png}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from itertools import zip_longest
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 20_000


def _peak_kib(pid: int, field: str = "VmHWM") -> int:
    """VmHWM (peak resident set; or another /proc status field) of a live process, KiB; 0 if
    it is gone. Not ru_maxrss: that survives exec, so a fresh process would report its
    parent's peak."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _WorkerWatch(threading.Thread):
    """Samples our descendant processes: CPU seconds of all of them (the fork server warms
    the libraries before it forks workers, so its CPU counts too), peak RSS of the workers
    (our descendants but the fork server and resource tracker, our direct children)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.cpu: dict[int, float] = {}
        self.peak_kib: dict[int, int] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        import psutil  # type: ignore[import-untyped]

        me = psutil.Process()
        for proc in me.children(recursive=True):
            try:
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                if proc.ppid() == me.pid:
                    continue
                self.peak_kib[proc.pid] = max(self.peak_kib.get(proc.pid, 0), _peak_kib(proc.pid))
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sample()


def run_one(path: Path, workers: int, total: int, label: str) -> dict[str, Any]:
    """One timed read in this process (called in a fresh process by :func:`main`)."""
    from fiumatch.cli.ingest import progress_bar
    from fiumatch.identifiers import Subject
    from fiumatch.ingest import IngestStats, read

    rss_start = _peak_kib(os.getpid(), "VmRSS")
    load_start = os.getloadavg()[0]
    watch = _WorkerWatch()
    watch.start()
    stats = IngestStats()
    keys = 0
    size = path.stat().st_size
    started = time.perf_counter()
    cpu_started = time.process_time()
    with progress_bar(transient=True) as progress:
        task = progress.add_task(label, total=size, records=0)
        stream = read(path, default_retention=date(2030, 1, 1), stats=stats, workers=workers)
        first = 0.0
        for n, item in enumerate(stream, 1):
            if n == 1:
                first = time.perf_counter() - started
            if isinstance(item, Subject):
                for key in item.keys:
                    key.encode()
                    keys += 1
            if n % 5000 == 0:
                progress.update(task, completed=stats.bytes_read, records=stats.records)
                if n % 50000 == 0:
                    watch.sample()
        progress.update(task, completed=size, records=stats.records)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    watch.stop.set()
    watch.join()
    worker_cpu = sum(watch.cpu.values())
    assert stats.records == total, (stats.records, total)
    return {
        "workers": workers,
        "records": stats.records,
        "subjects": stats.subjects,
        "rejects": stats.rejects,
        "keys": keys,
        "seconds": round(elapsed, 2),
        "records_per_second": round(stats.records / elapsed),
        "first_record_seconds": round(first, 2),
        "main_cpu_seconds": round(cpu, 2),
        "worker_cpu_seconds": round(worker_cpu, 2),
        "records_per_cpu_second": round(stats.records / (cpu + worker_cpu)),
        "load_average_1min_at_start": round(load_start, 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "main_rss_mib_at_start": round(rss_start / 1024, 1),
        "main_peak_rss_mib": round(_peak_kib(os.getpid()) / 1024, 1),
        "worker_peak_rss_mib": round(max(watch.peak_kib.values(), default=0) / 1024, 1),
    }


#: What the breakdown times: (label, module, attribute). Each is wrapped in a timer where
#: build_subject (or derive) looks it up, so a component's time includes its caches' hits
#: and misses and any garbage collection that happens inside it (GC is also timed alone).
_COMPONENTS = (
    ("person names -> keys (tokens, ICU, Metaphone)",
     ("fiumatch.identifiers.derive", "person_name_pairs"),
     ("fiumatch.identifiers.derive", "person_name_keys")),
    ("whole names of rows that give parts too",
     ("fiumatch.identifiers.derive", "full_name_pairs"),
     ("fiumatch.identifiers.derive", "person_name_keys")),
    ("organisation names", ("fiumatch.ingest.build", "normalise_org_name")),
    ("phone (phonenumbers)", ("fiumatch.ingest.build", "normalise_phone")),
    ("identity documents (stdnum)", ("fiumatch.ingest.build", "normalise_document")),
    ("dates", ("fiumatch.ingest.build", "parse_partial_date_iso"),
     ("fiumatch.ingest.build", "parse_partial_date")),
    ("e-mail", ("fiumatch.ingest.build", "normalise_email")),
    ("IBAN (schwifty)", ("fiumatch.ingest.build", "normalise_iban")),
    ("BIC (schwifty)", ("fiumatch.ingest.build", "normalise_bic")),
    ("LEI (stdnum)", ("fiumatch.ingest.build", "normalise_lei")),
    ("wallets", ("fiumatch.ingest.build", "normalise_wallet")),
    ("countries", ("fiumatch.ingest.build", "normalise_country")),
    ("key dedupe + MatchKey objects", ("fiumatch.identifiers.derive", "keys_from_pairs"),
     ("fiumatch.ingest.build", "dedupe")),
    ("subject id (SHA-256)", ("fiumatch.ingest.build", "subject_id")),
    ("hostile-value checks", ("fiumatch.ingest.build", "_hostile_values")),
)  # fmt: skip


def breakdown(path: Path) -> dict[str, Any]:
    """Where a serial read's time goes, microseconds per record (called in a fresh process).

    Wall-clock timers around the components above; "framing and the rest of
    build_subject" is what is left of the whole read (CSV framing, field handling, object
    construction, the generator chain). Timers cost about 0.2 us per call.
    """
    import gc
    import importlib
    from time import perf_counter

    from fiumatch.identifiers import Subject
    from fiumatch.ingest import IngestStats, read

    spent: dict[str, float] = {}

    def wrap(label: str, *where: tuple[str, str]) -> None:
        # The first place that exists: the breakdown also runs on older trees (--before).
        mod, name = next((importlib.import_module(m), n) for m, n in where
                         if hasattr(importlib.import_module(m), n))  # fmt: skip
        inner = getattr(mod, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + perf_counter() - t

        setattr(mod, name, timed)

    for label, *where in _COMPONENTS:
        wrap(label, *where)
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = perf_counter()
        else:
            spent["cyclic GC (inside the above too)"] = spent.get(
                "cyclic GC (inside the above too)", 0.0) + perf_counter() - gc_started[0]

    gc.callbacks.append(on_gc)
    stats = IngestStats()
    encode = 0.0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for item in read(path, default_retention=date(2030, 1, 1), stats=stats):
        if isinstance(item, Subject):
            t = perf_counter()
            for key in item.keys:
                key.encode()
            encode += perf_counter() - t
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    gc.callbacks.remove(on_gc)
    n = stats.records
    parts = {entry[0]: spent.get(entry[0], 0.0) for entry in _COMPONENTS}
    rest = total - encode - sum(parts.values())
    rows = [(label, secs) for label, secs in parts.items()]
    rows += [("key encoding (the consumer, as the OPRF input)", encode),
             ("framing and the rest of build_subject", rest)]  # fmt: skip
    gc_secs = spent.get("cyclic GC (inside the above too)", 0.0)
    return {
        "records": n,
        "us_per_record_total": round(total / n * 1e6, 1),
        "cpu_us_per_record": round(cpu / n * 1e6, 1),
        "gc_us_per_record": round(gc_secs / n * 1e6, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "components_us_per_record": {
            label: round(secs / n * 1e6, 1) for label, secs in sorted(rows, key=lambda r: -r[1])
        },
    }


def _subprocess(
    path: Path, workers: int, total: int, label: str, src: Path | None = None
) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:  # another tree's fiumatch ahead of this one's on the path
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(":")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_throughput", "--one", str(path),
         "--workers", str(workers), "--total", str(total), "--label", label],
        stdout=subprocess.PIPE, check=True, text=True, env=env,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _breakdown_subprocess(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_throughput", "--breakdown", str(path)],
        stdout=subprocess.PIPE, check=True, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _write_csv(base: list[dict[str, str]], path: Path, rows: int) -> float:
    from fiumatch.ingest import FIELDS

    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for i in range(rows):
            rec = dict(base[i % len(base)])
            rec["local_ref"] = f"{rec['local_ref']}-{i}"
            writer.writerow(rec)
    return path.stat().st_size / 2**20


def _median(runs: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(r[field] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="CSV rows, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="workers of the parallel runs (default: cores)")  # fmt: skip
    parser.add_argument("--base", type=int, default=None,
                        help="distinct synthetic records per jurisdiction (default: enough "
                        "that the largest file is all distinct)")
    parser.add_argument("--before-src", type=Path, default=None,
                        help="another checkout's src directory: parallel runs of its code "
                        "alternate with this tree's")  # fmt: skip
    parser.add_argument("--other-records", type=int, default=20_000,
                        help="records of the FtM and goAML files")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--before-label", default="the tree before this round of work",
                        help="what --before holds, for the text (e.g. its commit)")  # fmt: skip
    parser.add_argument("--before", type=Path, help="JSON of an earlier breakdown to show "
                        "beside this one (its 'breakdown' entry)")  # fmt: skip
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.workers, args.total, args.label)))
        return
    if args.breakdown is not None:
        print(json.dumps(breakdown(args.breakdown)))
        return

    from fiumatch.synth import generate, write

    load_start = os.getloadavg()
    sizes = [int(x) for x in args.sizes.split(",")]
    per_jurisdiction = args.base or -(-max(sizes) // 3)
    ds = generate(["DE", "RU", "CN"], subjects=per_jurisdiction, overlap=0.2, seed=7)
    # Interleaved, so any prefix of the file mixes the three jurisdictions' scripts.
    base = [rec for group in zip_longest(*(ds.records[j] for j in ds.jurisdictions))
            for rec in group if rec is not None]  # fmt: skip
    modes = (1, args.workers) if args.workers > 1 else (1,)
    csv_results: list[dict[str, Any]] = []
    other: dict[str, dict[str, Any]] = {}
    profile: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for rows in sizes:
            path = tmpdir / f"rows-{rows}.csv"
            mib = _write_csv(base, path, rows)
            if rows == sizes[0]:
                profile = _breakdown_subprocess(path)
            runs: dict[int, list[dict[str, Any]]] = {w: [] for w in modes}
            before_runs: list[dict[str, Any]] = []
            for repeat in range(args.repeats):
                for workers in modes:  # side by side: serial and parallel in each repeat
                    label = f"{rows:,} rows, workers={workers}, run {repeat + 1}"
                    runs[workers].append(_subprocess(path, workers, rows, label))
                if args.before_src is not None:
                    label = f"{rows:,} rows, workers={modes[-1]}, before, run {repeat + 1}"
                    before_runs.append(
                        _subprocess(path, modes[-1], rows, label, args.before_src)
                    )
            path.unlink()
            groups = [(w, "this tree", runs[w]) for w in modes]
            if before_runs:
                groups.append((modes[-1], "before", before_runs))
            for workers, tree, rs in groups:
                csv_results.append({
                    "tree": tree,
                    "rows": rows,
                    "file_mib": round(mib, 1),
                    "distinct_records": min(rows, len(base)),
                    "workers": workers,
                    "repeats": len(rs),
                    "median_records_per_second": round(_median(rs, "records_per_second")),
                    "median_records_per_cpu_second": round(
                        _median(rs, "records_per_cpu_second")
                    ),
                    "median_seconds": _median(rs, "seconds"),
                    "main_peak_rss_mib": max(r["main_peak_rss_mib"] for r in rs),
                    "worker_peak_rss_mib": max(r["worker_peak_rss_mib"] for r in rs),
                    "main_rss_mib_at_start": rs[0]["main_rss_mib_at_start"],
                    "keys": rs[0]["keys"],
                    "runs": rs,
                })  # fmt: skip
        small = tmpdir / "synth"
        ftm_goaml = generate(["DE"], subjects=args.other_records, overlap=0.0, seed=7)
        write(ftm_goaml, small, ("ftm", "goaml"))
        for fmt, suffix in (("ftm", "ftm.json"), ("goaml", "goaml.xml")):
            total = sum(1 for r in ftm_goaml.records["DE"] if fmt == "ftm" or r["type"] in (
                "person", "organisation", "bank_account"))  # fmt: skip
            other[fmt] = _subprocess(small / f"DE.{suffix}", 1, total, fmt)
    report = {
        "benchmark": "ingest_throughput",
        "goal_records_per_second_csv": GOAL,
        "csv": csv_results,
        "breakdown": profile,
        "breakdown_before": (
            json.loads(args.before.read_text()).get("breakdown") if args.before else None
        ),
        "breakdown_before_label": args.before_label,
        "other_formats": other,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "a 2-core machine that others may share; the load averages say how busy "
            "it was",
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest_throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (args.out / "ingest_throughput.md").write_text(text)
    plot(report, args.out / "ingest_throughput.png")
    print(text)


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# Ingestion throughput (normalisation + key derivation + key encoding)",
        "",
        f"CSV, synthetic records of three jurisdictions (DE, RU, CN). Serial (`workers=1`) and "
        f"parallel runs alternate within each repeat; figures are medians of "
        f"{report['csv'][0]['repeats']} runs, each in a fresh process. Records/s per CPU "
        "second counts the main process, the workers and the fork server (which warms the "
        "libraries once before forking the workers). Goal: "
        f"{report['goal_records_per_second_csv']:,} records/s (wall clock) on this "
        f"{env['cpus']}-core machine.",
        "",
        "| code | rows | distinct records | workers | records/s (wall, median) "
        "| records/s per CPU s | wall s | main peak RSS MiB | largest worker peak RSS MiB "
        "| goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["csv"]:
        met = "met" if row["median_records_per_second"] >= report[
            "goal_records_per_second_csv"] else "not met"  # fmt: skip
        tree = row.get("tree", "this tree")
        lines.append(
            f"| {tree} | {row['rows']:,} | {row['distinct_records']:,} | {row['workers']} | "
            f"{row['median_records_per_second']:,} | {row['median_records_per_cpu_second']:,} | "
            f"{row['median_seconds']} | {row['main_peak_rss_mib']} | "
            f"{row['worker_peak_rss_mib'] or '-'} | {met if tree == 'this tree' else '-'} |"
        )
    lines += _before_lines(report["csv"])
    lines += _start_lines(report["csv"])
    lines += [
        "",
        "Every run (records/s, wall; in brackets the 1-minute load average when it started): "
        + "; ".join(
            f"{row['rows']:,} rows x{row['workers']}"
            + (" (before)" if row.get("tree") == "before" else "") + ": "
            + ", ".join(_run_text(r) for r in row["runs"])
            for row in report["csv"]
        ) + ".",
        "",
        "Memory: each run starts at about "
        f"{report['csv'][0]['main_rss_mib_at_start']} MiB. " + _memory_sentence(report["csv"])
        + " The file is streamed (at most a few chunks in flight) and every normaliser cache "
        "is a bounded LRU (`fiumatch.identifiers.caches`: 2^16 entries per token cache, 2^14 "
        "per whole-value cache, 2^17 for dates), so a process's memory stops growing once its "
        "caches are full, whatever the file's size.",
        "",
        f"The files: {_files_sentence(report['csv'])} Records come from `fiumatch synth` "
        "(DE, RU and CN, written in their own scripts and formats), interleaved so any part "
        "of a file mixes the three; each row gets a fresh local reference. Where every "
        "record is distinct, only what really recurs in such data comes from the caches: "
        "given and family names, name tokens, dates. In parallel runs the main process only "
        "cuts the file into byte ranges (at line breaks with an even quote count, checked by "
        "the workers); each worker reads, frames and builds its own ranges and sends each "
        "record back as a `marshal` blob of plain tuples, which the main process decodes and "
        "rebuilds into a subject. They spend more CPU per record than serial runs: the pool's "
        "start-up (a fork server that imports and warms the libraries, then the workers: "
        "about half a second), the packing, encoding, decoding and rebuilding (about 10 us "
        "per record together), and each worker filling its own caches (every worker meets "
        "most distinct tokens, so some normalisation is done twice).",
        "",
        *_breakdown_lines(report),
        "",
        "| other formats (serial) | records | records/s (wall) | records/s per CPU s |",
        "|---|---|---|---|",
    ]
    for fmt, row in report["other_formats"].items():
        lines.append(f"| {fmt} | {row['records']:,} | {row['records_per_second']:,} | "
                     f"{row['records_per_cpu_second']:,} |")  # fmt: skip
    lines += [
        "",
        f"Load average at start {env['load_average_at_start']}, at end "
        f"{env['load_average_at_end']}: {env['note']}.",
        "",
    ]
    return "\n".join(lines)


def _files_sentence(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        if r.get("tree", "this tree") != "this tree" or r["workers"] != 1:
            continue
        cycled = r["rows"] > r["distinct_records"]
        parts.append(f"{r['rows']:,} rows, " + (
            f"cycling {r['distinct_records']:,} distinct records" if cycled
            else "every record distinct"))  # fmt: skip
    return "; ".join(parts) + "."


def _start_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Time to the first record, and the rate after it: start-up is a fixed cost (imports,
    and in parallel runs the fork server's warm-up and the first chunk), which a small
    file's rate carries more of."""
    parts = []
    for r in rows:
        firsts = [x.get("first_record_seconds") for x in r["runs"]]
        if r.get("tree", "this tree") != "this tree" or None in firsts:
            continue
        after = [(r["rows"] - 1) / (x["seconds"] - x["first_record_seconds"]) for x in r["runs"]]
        parts.append(f"{r['rows']:,} rows x{r['workers']}: first record after "
                     f"{statistics.median(firsts):.2f} s, then {statistics.median(after):,.0f} "
                     "records/s")  # fmt: skip
    if not parts:
        return []
    return ["", "Start-up (medians): " + "; ".join(parts) + "."]


def _before_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The ratio of this tree's parallel time to the before tree's, per size."""
    before = {r["rows"]: r for r in rows if r.get("tree") == "before"}
    if not before:
        return []
    out = ["", "This tree against the tree before (`--before-src`), parallel runs in turn, "
           "the same file: "]  # fmt: skip
    parts = []
    for r in rows:
        b = before.get(r["rows"])
        if b is None or r.get("tree", "this tree") != "this tree" or r["workers"] != b["workers"]:
            continue
        pairs = [x["seconds"] / y["seconds"] for x, y in zip(r["runs"], b["runs"], strict=False)]
        parts.append(
            f"{r['rows']:,} rows: {r['median_records_per_second']:,} against "
            f"{b['median_records_per_second']:,} records/s, time ratio (this / before) "
            f"{statistics.median(pairs):.3f} (median of {len(pairs)} repeats: "
            + ", ".join(f"{p:.3f}" for p in pairs) + ")"
        )
    out[-1] += "; ".join(parts) + "."
    return out


def _run_text(run: dict[str, Any]) -> str:
    return f"{run['records_per_second']:,} [{run.get('load_average_1min_at_start', '?')}]"


def _breakdown_lines(report: dict[str, Any]) -> list[str]:
    after = report.get("breakdown") or {}
    if not after:
        return []
    before = report.get("breakdown_before") or {}
    b_parts = before.get("components_us_per_record", {})
    has_before = bool(b_parts)
    lines = [
        f"## Where the time goes (serial, {after['records']:,} rows, microseconds per record)",
        "",
        "Wall-clock timers around each component of a serial read (see `breakdown()`); a "
        "component's figure includes its caches' hits and misses and any garbage collection "
        "inside it. Cyclic GC is also shown alone. "
        + (f"*Before* is {report.get('breakdown_before_label') or 'an earlier run'}, "
           "measured with the same timers (on a file made the same way). "
           if has_before else "")
        + "The machine is shared, so absolute figures move with its load; the split is what "
        "this table is for.",
        "",
        "| component | " + ("before | " if has_before else "") + "after |",
        "|---|" + ("---|" if has_before else "") + "---|",
    ]  # fmt: skip
    for label, us in after["components_us_per_record"].items():
        prev = f"{b_parts[label]} | " if has_before and label in b_parts else (
            "- | " if has_before else "")  # fmt: skip
        lines.append(f"| {label} | {prev}{us} |")
    for label, key in (("cyclic GC (inside the above)", "gc_us_per_record"),
                       ("**total, wall**", "us_per_record_total"),
                       ("**total, CPU**", "cpu_us_per_record")):  # fmt: skip
        prev = f"{before.get(key, '-')} | " if has_before else ""
        lines.append(f"| {label} | {prev}{after[key]} |")
    lines.append("| 1-minute load average | " + (f"{before.get('load_average_1min')} | "
                 if has_before else "") + f"{after['load_average_1min']} |")  # fmt: skip
    lines.append("")
    return lines


def _memory_sentence(rows: list[dict[str, Any]]) -> str:
    rows = [r for r in rows if r.get("tree", "this tree") == "this tree"]
    sizes = sorted({r["rows"] for r in rows})
    if len(sizes) < 2:
        return ""
    small, large = sizes[0], sizes[-1]
    by = {(r["rows"], r["workers"]): r for r in rows}
    parts = []
    for w in sorted({r["workers"] for r in rows}):
        a, b = by[(small, w)], by[(large, w)]
        which = "main" if w == 1 else "largest worker"
        field = "main_peak_rss_mib" if w == 1 else "worker_peak_rss_mib"
        parts.append(f"workers={w}: {which} peak {a[field]} MiB at {small:,} rows, "
                     f"{b[field]} MiB at {large:,} rows ({b[field] / a[field]:.2f}x for "
                     f"{large // small}x the rows)")  # fmt: skip
    return "Peak RSS, " + "; ".join(parts) + "."


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["csv"] if r.get("tree", "this tree") == "this tree"]
    before = {r["rows"]: r for r in report["csv"] if r.get("tree") == "before"}
    sizes = sorted({r["rows"] for r in rows})
    modes = sorted({r["workers"] for r in rows})
    by = {(r["rows"], r["workers"]): r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if before:
        left.scatter([x + 0.8 / len(modes) * (len(modes) - 1) for x in range(len(sizes))],
                     [before[s]["median_records_per_second"] if s in before else float("nan")
                      for s in sizes], marker="_", s=600, color="black", zorder=3,
                     label=f"workers={modes[-1]}, before")  # fmt: skip
    width = 0.8 / len(modes)
    for i, w in enumerate(modes):
        xs = [x + i * width for x in range(len(sizes))]
        left.bar(xs, [by[(s, w)]["median_records_per_second"] for s in sizes], width,
                 label=f"workers={w}")  # fmt: skip
        right.bar(xs, [by[(s, w)]["main_peak_rss_mib"] for s in sizes], width,
                  label=f"main, workers={w}")  # fmt: skip
        if w > 1:
            right.bar([x + 0.02 for x in xs], [by[(s, w)]["worker_peak_rss_mib"] for s in sizes],
                      width * 0.5, label=f"largest worker, workers={w}", alpha=0.7)  # fmt: skip
    left.axhline(report["goal_records_per_second_csv"], color="grey", linestyle="--",
                 label="goal 20k/s")  # fmt: skip
    for ax in (left, right):
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(sizes))])
        ax.set_xticklabels([f"{s:,} rows" for s in sizes])
        ax.legend(fontsize=8)
    left.set_ylabel("records / second (wall, median)")
    left.set_title("CSV ingest throughput")
    right.set_ylabel("peak RSS (MiB)")
    right.set_title("Peak memory at 10^5 and 10^6 rows (bounded caches)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
