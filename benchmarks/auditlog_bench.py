"""Audit log speed: offline bundle verification, inclusion proofs, appends (pure core only).

Builds an in-memory log of up to ``--entries`` (default 10^6) realistic entries (a mix of
evaluations, sessions, filter fetches, queries and logins, each with its own request and
response digests) in a :class:`~fiumatch.auditlog.tree.MerkleTree` over the dict node store,
signs a checkpoint every ``--checkpoint-every`` entries (default 1,000) with Ed25519, exports
bundles and measures:

* ``verify`` of a whole bundle offline (every entry decoded and schema-checked, every leaf
  hashed, every checkpoint signature, every consistency proof), at 10^3 .. 10^6 entries;
* inclusion proofs from the dict ``get_node`` backend at each size (build and verify);
* consistency proofs between random sizes;
* appends: ``Entry`` construction + canonical encoding + tree append (node work per event,
  without the SQLite write, which the node benchmarks), and the bare tree append.

Targets (issue): verify 10^6 entries in <= 30 s; an inclusion proof at 10^6 in < 5 ms.
Durable appends (2,000/s with SQLite) are the node's measurement.

Run:  python -m benchmarks.auditlog_bench [--entries N] [--checkpoint-every K]
Writes benchmarks/results/auditlog.{json,md,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.auditlog import (
    Checkpoint,
    DictNodeStore,
    Direction,
    Entry,
    EventType,
    MerkleTree,
    NoteSigner,
    Outcome,
    encode_entry,
    export_bundle,
    inclusion_proof,
    leaf_hash,
    root_at,
    sign_checkpoint,
    verify,
    verify_consistency,
    verify_inclusion,
)
from fiumatch.auditlog.proofs import consistency_proof

RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_700_000_000_000
_SEQ_TIME = struct.Struct(">QQ")  # entry bytes 3..19: seq, time_ms


def _templates() -> list[tuple[bytes, list[int]]]:
    """Canonical entries to stamp with a fresh seq, time and digests (offsets of digests)."""
    req, resp = b"\xaa" * 32, b"\xbb" * 32
    common = dict(actor="node:fiu-a", peer="fiu-b", session="9f86d081884c7d659a2feaa0c55ad015",
                  agreement="agr-ab-1", epoch=12, mode="filter", request_sha256=req,
                  response_sha256=resp)
    entries = [
        Entry(seq=0, time_ms=0, event=EventType.EVALUATION, direction=Direction.IN,
              count_in=50_000, count_out=50_000, **common),  # type: ignore[arg-type]
        Entry(seq=0, time_ms=0, event=EventType.EVALUATION, direction=Direction.OUT,
              count_in=20_000, count_out=20_000, **common),  # type: ignore[arg-type]
        Entry(seq=0, time_ms=0, event=EventType.SESSION_OPENED, direction=Direction.IN,
              id_type="iban", **common),  # type: ignore[arg-type]
        Entry(seq=0, time_ms=0, event=EventType.FILTER_FETCHED, direction=Direction.OUT,
              count_out=1_000_000, **common),  # type: ignore[arg-type]
        Entry(seq=0, time_ms=0, event=EventType.QUERY, actor="analyst:ann", peer="fiu-b",
              purpose="Suspected layering via shell companies", legal_basis="Wwft art. 17",
              case_ref="CASE-2024-0117", count_in=300),
        Entry(seq=0, time_ms=0, event=EventType.LOGIN, actor="analyst:ann", outcome=Outcome.OK),
    ]
    out = []
    for e in entries:
        data = encode_entry(e)
        offsets = [i for i in (data.find(req), data.find(resp)) if i >= 0]
        out.append((data, offsets))
    return out


def make_entries(n: int, rng: random.Random) -> list[bytes]:
    """``n`` valid canonical entries, times increasing by 0-50 ms."""
    templates = _templates()
    weights = [40, 20, 10, 10, 10, 10]
    picks = rng.choices(range(len(templates)), weights=weights, k=n)
    out: list[bytes] = []
    t = T0
    for seq, k in enumerate(picks):
        data, offsets = templates[k]
        buf = bytearray(data)
        t += rng.randrange(50)
        _SEQ_TIME.pack_into(buf, 3, seq, t)
        for off in offsets:
            buf[off : off + 32] = hashlib.sha256(b"%d:%d" % (seq, off)).digest()
        out.append(bytes(buf))
    return out


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(samples) * 1e3, 4),
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1e3, 4),
        "max_ms": round(ordered[-1] * 1e3, 4),
    }


def measure_verify(signer: NoteSigner, entries: list[bytes], checkpoints: list[bytes],
                   store: DictNodeStore) -> dict[str, Any]:
    """Export a bundle, then time verify() on it (wall and CPU)."""
    t0 = time.perf_counter()
    bundle = b"".join(export_bundle(origin=signer.name, entries=entries,
                                    checkpoints=checkpoints, get_node=store.get_node))
    export_s = time.perf_counter() - t0
    wall, cpu = time.perf_counter(), time.process_time()
    report = verify(bundle, signer.verifier)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.size == len(entries) and report.checkpoints == len(checkpoints)
    return {"entries": len(entries), "checkpoints": len(checkpoints),
            "bundle_mib": round(len(bundle) / 2**20, 1), "export_s": round(export_s, 2),
            "verify_s": round(wall, 2), "verify_cpu_s": round(cpu, 2),
            "entries_per_s": round(len(entries) / wall)}


def bench_appends(n: int) -> dict[str, object]:
    """Entry construction + encoding + tree append, and the tree append alone."""
    tree = MerkleTree(DictNodeStore())
    req = hashlib.sha256(b"r").digest()

    def build() -> None:
        for i in range(n):
            e = Entry(seq=i, time_ms=T0 + i, event=EventType.EVALUATION, actor="node:fiu-a",
                      peer="fiu-b", session="9f86d081884c7d659a2feaa0c55ad015",
                      agreement="agr-ab-1", epoch=12, mode="filter", direction=Direction.IN,
                      count_in=50_000, count_out=50_000, request_sha256=req,
                      response_sha256=req)
            tree.append(encode_entry(e))

    wall, cpu = _timed(build)
    return {"entries": n, "seconds": round(wall, 3), "per_second": round(n / wall),
            "per_cpu_second": round(n / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-every", type=int, default=1_000)
    parser.add_argument("--proofs", type=int, default=2_000, help="proofs sampled per size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(2024)
    every = args.checkpoint_every
    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000, args.entries) if s <= args.entries]
    sizes = sorted({s - s % every for s in sizes if s >= every})
    n = sizes[-1]

    print(f"building {n:,} entries ...", flush=True)
    entries = make_entries(n, rng)
    signer = NoteSigner("fiu-a.example/audit", Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"benchmark only").digest()))
    store = DictNodeStore()
    tree = MerkleTree(store)
    checkpoints: list[bytes] = []

    def append_all() -> None:
        for data in entries:
            tree.append(data)
            if tree.size % every == 0:
                checkpoints.append(sign_checkpoint(
                    Checkpoint(signer.name, tree.size, tree.root()), signer))

    append_wall, append_cpu = _timed(append_all)
    print(f"  tree appends + {len(checkpoints):,} checkpoints: {append_wall:.1f} s", flush=True)

    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "entries": n, "checkpoint_every": every,
        "tree_append": {"entries": n, "seconds": round(append_wall, 2),
                        "per_second": round(n / append_wall),
                        "per_cpu_second": round(n / append_cpu),
                        "note": "leaf hash + frontier + dict store + a signed checkpoint "
                                f"every {every}"},
    }
    print("appends with entry construction ...", flush=True)
    results["entry_append"] = bench_appends(min(n, 100_000))

    verify_rows: list[dict[str, Any]] = []
    proof_rows: list[dict[str, Any]] = []
    for size in sizes:
        cps = [c for c in checkpoints if int(c.split(b"\n")[1]) <= size]
        row = measure_verify(signer, entries[:size], cps, store)
        verify_rows.append(row)
        print(f"  verify {size:>9,}: {row['verify_s']:6.2f} s wall, {row['verify_cpu_s']:6.2f} s "
              f"CPU, {row['bundle_mib']} MiB", flush=True)

        root = root_at(size, store.get_node)
        build_t, verify_t = [], []
        for _ in range(args.proofs):
            index = rng.randrange(size)
            t0 = time.perf_counter()
            proof = inclusion_proof(index, size, store.get_node)
            t1 = time.perf_counter()
            verify_inclusion(index, size, leaf_hash(entries[index]), proof, root)
            t2 = time.perf_counter()
            build_t.append(t1 - t0)
            verify_t.append(t2 - t1)
        cons_t = []
        for _ in range(min(args.proofs, 500)):
            size1 = rng.randrange(1, size + 1)
            t0 = time.perf_counter()
            cproof = consistency_proof(size1, size, store.get_node)
            cons_t.append(time.perf_counter() - t0)
            verify_consistency(size1, size, root_at(size1, store.get_node), root, cproof)
        proof_rows.append({"tree_size": size, "inclusion_build": _ms(build_t),
                           "inclusion_verify": _ms(verify_t), "consistency_build": _ms(cons_t)})
        print(f"  inclusion proof at {size:>9,}: {proof_rows[-1]['inclusion_build']}",
              flush=True)

    dense_n = min(n, 100_000)
    dense_every = 10
    dense_cps = [sign_checkpoint(Checkpoint(signer.name, k, root_at(k, store.get_node)), signer)
                 for k in range(dense_every, dense_n + 1, dense_every)]
    dense = measure_verify(signer, entries[:dense_n], dense_cps, store)
    dense["every"] = dense_every
    results["dense_checkpoints"] = dense
    print(f"  dense checkpoints: {dense}", flush=True)
    del dense_cps

    results["verify"] = verify_rows
    results["proofs"] = proof_rows
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    top = verify_rows[-1]
    top_proof = proof_rows[-1]["inclusion_build"]
    assert isinstance(top_proof, dict)
    results["targets"] = {
        "verify_1e6_under_30s": top["entries"] >= 1_000_000 and float(top["verify_s"]) <= 30,
        "inclusion_proof_1e6_under_5ms": top["entries"] >= 1_000_000
        and float(top_proof["p99_ms"]) < 5,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "auditlog.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "auditlog.md").write_text(_markdown(results))
    _plot(results, args.out / "auditlog.png")
    print(f"wrote {args.out}/auditlog.{{json,md,png}}")


def _markdown(r: dict[str, object]) -> str:
    verify_rows = r["verify"]
    proof_rows = r["proofs"]
    assert isinstance(verify_rows, list) and isinstance(proof_rows, list)
    lines = [
        "# Audit log (pure core): offline verification, proofs, appends",
        "",
        f"Checkpoint signed every {r['checkpoint_every']:,} entries (Ed25519). Times are wall "
        "clock on a shared machine; CPU seconds alongside. Targets: verify 10^6 entries in "
        "<= 30 s, an inclusion proof at 10^6 in < 5 ms.",
        "",
        "## verify(bundle, pinned key)",
        "",
        "| entries | checkpoints | bundle MiB | export s | verify s (wall) | verify s (CPU) "
        "| entries/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in verify_rows:
        lines.append(f"| {v['entries']:,} | {v['checkpoints']:,} | {v['bundle_mib']} | "
                     f"{v['export_s']} | {v['verify_s']} | {v['verify_cpu_s']} | "
                     f"{v['entries_per_s']:,} |")
    lines += [
        "",
        "## Proofs from the dict node store",
        "",
        "| tree size | inclusion build p50 / p99 ms | inclusion verify p50 ms "
        "| consistency build p50 / p99 ms |",
        "|---:|---:|---:|---:|",
    ]
    for p in proof_rows:
        ib, iv, cb = p["inclusion_build"], p["inclusion_verify"], p["consistency_build"]
        lines.append(f"| {p['tree_size']:,} | {ib['p50_ms']} / {ib['p99_ms']} | {iv['p50_ms']} | "
                     f"{cb['p50_ms']} / {cb['p99_ms']} |")
    ta, ea = r["tree_append"], r["entry_append"]
    assert isinstance(ta, dict) and isinstance(ea, dict)
    lines += [
        "",
        "## Appends (in memory, no durability)",
        "",
        "| what | entries | per second (wall) | per CPU second |",
        "|---|---:|---:|---:|",
        f"| tree append (leaf hash, frontier, dict store, checkpoint every "
        f"{r['checkpoint_every']:,}) | {ta['entries']:,} | {ta['per_second']:,} | "
        f"{ta['per_cpu_second']:,} |",
        f"| Entry() + encode + tree append | {ea['entries']:,} | {ea['per_second']:,} | "
        f"{ea['per_cpu_second']:,} |",
        "",
    ]
    dense = r.get("dense_checkpoints")
    if isinstance(dense, dict):
        lines += [
            "## Checkpoint-heavy bundle",
            "",
            f"{dense['entries']:,} entries with a checkpoint every {dense['every']} entries "
            f"({dense['checkpoints']:,} signatures and consistency proofs): verify "
            f"{dense['verify_s']} s wall ({dense['verify_cpu_s']} s CPU), "
            f"{dense['bundle_mib']} MiB. Export the checkpoints auditors need (e.g. one per "
            "minute and every cosigned one), not one per receipt.",
        ]
    targets = r["targets"]
    machine = r["machine"]
    assert isinstance(targets, dict) and isinstance(machine, dict)
    lines += [
        "",
        "Targets: " + ", ".join(f"{k} = {'met' if v else 'NOT met'}" for k, v in
                                targets.items()) + ".",
        "",
        f"Python {machine['python']}, {machine['cpus']} CPUs ({machine['platform']}), shared "
        f"with other work: load average at the end {r['load_average_at_end']}.",
        "",
    ]
    return "\n".join(lines)


def _plot(r: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verify_rows = r["verify"]
    proof_rows = r["proofs"]
    assert isinstance(verify_rows, list) and isinstance(proof_rows, list)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [v["entries"] for v in verify_rows]
    left.loglog(xs, [v["verify_s"] for v in verify_rows], "o-", label="verify (wall)")
    left.loglog(xs, [v["verify_cpu_s"] for v in verify_rows], "s--", label="verify (CPU)")
    left.axhline(30, color="red", linestyle=":", label="target 30 s at 10^6")
    left.set_xlabel("entries in bundle")
    left.set_ylabel("seconds")
    left.set_title("Offline bundle verification")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    ps = [p["tree_size"] for p in proof_rows]
    right.loglog(ps, [p["inclusion_build"]["p50_ms"] for p in proof_rows], "o-",
                 label="inclusion build p50")
    right.loglog(ps, [p["inclusion_build"]["p99_ms"] for p in proof_rows], "s--",
                 label="inclusion build p99")
    right.loglog(ps, [p["consistency_build"]["p50_ms"] for p in proof_rows], "^-",
                 label="consistency build p50")
    right.axhline(5, color="red", linestyle=":", label="target 5 ms at 10^6")
    right.set_xlabel("tree size")
    right.set_ylabel("ms (dict node store)")
    right.set_title("Proofs (target < 5 ms at 10^6)")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
