"""The benchmark harness: ``python -m benchmarks.run [--long]`` (``make bench``, ``bench-long``).

One command reproduces every figure in ``benchmarks/results/`` (psi.*, micro.*, epoch.*):

1. ``micro``: per-element cost of each group operation, pysodium against rbcl
   (``benchmarks.micro_group``).
2. ``psi``: balanced PSI at n = 2^10, 2^12, 2^14, 2^16 (``--long``: and 2^18; and 2^20 once,
   for OpenMined GCS and the filter in process and over HTTP), every system side by side on the
   same sets in the same run (``benchmarks.systems``): OpenMined GCS and RAW, fiumatch filter
   (with and without proofs, and on one core), mutual, cardinality, in process and over HTTP
   between two node processes.
3. ``epoch``: epoch encoding of 2^17 keys (``--long``: 10^6) on one core, a process pool,
   threads and a Dask cluster (a LocalCluster, or ``--dask tcp://scheduler:8786``), and a
   projection to 10^8 keys.

Each figure is the median of ``--repeats`` runs. Progress bars (stderr) show rate and ETA.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import epoch_bench, micro_group, report
from benchmarks.machine import describe, load_average
from benchmarks.psi_ladder import run_ladder
from benchmarks.systems import ALL_SYSTEMS, FP_RATE, make_systems
from fiumatch.engine import ProcessPoolChunkExecutor, progress_bar

RESULTS = Path(__file__).resolve().parent / "results"
SHORT_SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16]
LONG_SIZES = [*SHORT_SIZES, 1 << 18, 1 << 20]
HUGE = 1 << 18
HUGE_SYSTEMS = ("openmined-gcs", "fiumatch-filter", "fiumatch-http-filter")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--long",
        action="store_true",
        help="sizes up to 2^18 (and 2^20, once, for OpenMined GCS and the filter in process and "
        "over HTTP), 10^6 epoch keys",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--repeats-large",
        type=int,
        default=1,
        help="repeats above 2^16 (default 1: a 2^18 ladder takes about 10 minutes per repeat)",
    )
    parser.add_argument(
        "--huge-systems",
        nargs="*",
        choices=ALL_SYSTEMS,
        help=f"systems run at 2^20 (default: {' '.join(HUGE_SYSTEMS)})",
    )
    parser.add_argument("--sizes", type=int, nargs="*", help="set sizes (default: the ladder)")
    parser.add_argument("--systems", nargs="*", choices=ALL_SYSTEMS, help="default: all")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=("micro", "psi", "epoch", "unbalanced"),
        default=None,
        help="parts to run (default: micro psi epoch; with --long also unbalanced, the "
        "64-key query against 10^6 keys over HTTP, which takes minutes)",
    )
    parser.add_argument("--epoch-keys", type=int, help="default 2^17, --long 10^6")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cluster")
    parser.add_argument(
        "--no-threads", action="store_true", help="epoch: skip the thread executor"
    )
    parser.add_argument(
        "--dask", metavar="ADDRESS", help="epoch encoding on this Dask scheduler (tcp://host:8786)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = ["micro", "psi", "epoch"] + (["unbalanced"] if args.long else [])
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    machine = describe()
    machine["workers"] = args.workers
    sizes = args.sizes or (LONG_SIZES if args.long else SHORT_SIZES)
    epoch_keys = args.epoch_keys or (10**6 if args.long else 1 << 17)
    print(
        f"benchmarks -> {out}  ({machine['cpu_model']}, {machine['cores']} cores)", file=sys.stderr
    )

    if "micro" in args.only:
        micro = micro_group.measure(max(args.repeats, 5), batch=512)
        machine["load_average_end"] = load_average()
        report.write_micro(out, machine, micro)
        print(micro_group._format(micro), file=sys.stderr)

    if "psi" in args.only:
        with ProcessPoolChunkExecutor(args.workers) as pool:
            systems = make_systems(pool, args.systems)
            # Sizes above 2^16 run --repeats-large times (a 2^18 ladder is ~10 min per repeat);
            # 2^20 (the long run) once, for the HTTP filter target (time, linear growth, each
            # node's peak RSS) against OpenMined and the in-process filter (--huge-systems).
            groups = [
                (systems, [n for n in sizes if n <= 1 << 16], args.repeats),
                (systems, [n for n in sizes if 1 << 16 < n <= HUGE], args.repeats_large),
                (
                    [s for s in systems if s.name in (args.huge_systems or HUGE_SYSTEMS)],
                    [n for n in sizes if n > HUGE],
                    1,
                ),
            ]
            groups = [g for g in groups if g[0] and g[1]]
            runs = sum(
                r * len(ns) * sum(1 for s in ss if s.available() is None) for ss, ns, r in groups
            )
            started = time.perf_counter()
            psi: dict[str, Any] = {"rows": [], "skipped": {}, "unit_costs": {}}
            repeats_by_size: dict[int, int] = {}
            with progress_bar("psi", total=runs, unit="runs") as advance:
                for group_systems, group_sizes, repeats in groups:
                    part = run_ladder(
                        group_systems,
                        group_sizes,
                        repeats,
                        cores=args.workers,
                        advance=lambda label: advance(0, label),
                        done=lambda: advance(1),
                    )
                    psi["rows"] += part["rows"]
                    psi["skipped"].update(part["skipped"])
                    psi["unit_costs"] = psi["unit_costs"] or part["unit_costs"]
                    repeats_by_size.update(dict.fromkeys(group_sizes, repeats))
            psi["repeats_by_size"] = repeats_by_size
            for s in systems:
                s.close()
        psi.update(
            repeats=args.repeats,
            fp_rate=FP_RATE,
            sizes=sizes,
            elapsed_seconds=time.perf_counter() - started,
        )
        machine["load_average_end"] = load_average()
        report.write_psi(out, machine, psi)
        print((out / "psi.md").read_text(), file=sys.stderr)

    if "epoch" in args.only:
        dask = not args.no_dask and epoch_bench.dask_available()
        steps = args.repeats * 2 * (2 + (not args.no_threads) + dask)
        with progress_bar("epoch", total=steps, unit="steps") as advance:
            epoch = epoch_bench.run_epoch(
                epoch_keys,
                args.repeats,
                workers=args.workers,
                dask=dask,
                dask_address=args.dask,
                threads=not args.no_threads,
                advance=lambda label: advance(0, label),
                done=lambda: advance(1),
            )
        pool_name = next(k for k in epoch["executors"] if k.startswith("process-pool"))
        eff = epoch["executors"][pool_name]["speedup_vs_serial"]["encode"] / args.workers
        projections = [
            epoch_bench.project(epoch, 10**8, w, min(eff, 1.0)) for w in (args.workers, 16, 64, 256)
        ]
        machine["load_average_end"] = load_average()
        report.write_epoch(out, machine, epoch, projections)
        print((out / "epoch.md").read_text(), file=sys.stderr)

    if "unbalanced" in args.only:
        from benchmarks import unbalanced

        unbalanced.main(["--out", str(out)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
