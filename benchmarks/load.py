"""Load: 32 concurrent analysts query a peer holding ~10^5 match keys while a bulk mutual session
runs beside them and one greedy client hammers its node past its rate limit.

Three real nodes on 127.0.0.1 (``fiumatch node serve``, TLS): FIU-P (the owner, ~10^5 keys),
FIU-A (the analysts' node, one analyst user per analyst, each with its own token) and FIU-B
(runs back-to-back mutual sessions with P over ~10^4 keys). Two phases of analysts, each
analyst running filter queries of a few subjects against P, one after the other:

1. unloaded: the analysts alone, for a third of ``--seconds`` (at least 10 s);
2. loaded: the analysts, the bulk mutual sessions and the greedy client (an extra analyst of
   A calling ``GET /api/v1/queries`` as fast as it can, over A's per-token limit), for
   ``--seconds``.

Records per phase the number of queries, throughput, p50/p95/p99 latency and failures, the
greedy client's 200s and 429s, and whether the analysts' loaded p99 stays within 2x the
unloaded one. Bounded: every worker stops at its phase's deadline, every query has a timeout,
every thread is joined with a timeout and every node is killed in ``finally``.

Run:  python -m benchmarks.load [--seconds 60] [--keys 100000] [--analysts 32]
Writes benchmarks/results/load.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fiumatch import synth
from fiumatch.client.api import ApiClient, ApiError
from fiumatch.demo.run import DemoNode, connect, make_node, wait_query
from fiumatch.store import User, issue_token

KEYS_PER_SUBJECT = 4.85  # synth data, two jurisdictions: 18,000 subjects gave 89,780 keys
ANALYST_RATE = 20  # FIU-A's per-token limit (requests/s) and burst during the run
ANALYST_BURST = 40
QUERY_TIMEOUT = 60.0
SESSIONS_PER_PEER = 64
QUERY = {"purpose": "money_laundering", "legal_basis": "AMLD art. 53", "case_ref": "LOAD-1"}


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _stats(latencies: list[float], failures: dict[str, int], seconds: float) -> dict[str, Any]:
    return {
        "queries": len(latencies),
        "failures": failures,
        "seconds": round(seconds, 2),
        "throughput_per_s": round(len(latencies) / seconds, 2) if seconds else None,
        "p50_ms": None if not latencies else round(statistics.median(latencies) * 1000, 1),
        "p95_ms": None if not latencies else round((_pct(latencies, 95) or 0) * 1000, 1),
        "p99_ms": None if not latencies else round((_pct(latencies, 99) or 0) * 1000, 1),
        "max_ms": None if not latencies else round(max(latencies) * 1000, 1),
    }


def _add_analysts(node: DemoNode, n: int) -> list[str]:
    tokens = []
    with node.dir.open_store() as store:
        for i in range(n):
            t = issue_token(os.urandom)
            store.users.add(
                User(
                    name=f"load-analyst-{i}",
                    role="analyst",
                    token_id=t.token_id,
                    token_hash=t.token_hash,
                    created_at=int(time.time()),
                )
            )
            tokens.append(t.token)
    return tokens


def _run_for(
    deadline: float, body: Callable[[], None], stop: threading.Event, bound: int = 1_000_000
) -> None:
    for _ in range(bound):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        body()


class Analysts:
    """``n`` analysts of node A, each querying P with ``per_query`` subjects at a time."""

    def __init__(self, a: DemoNode, tokens: list[str], subjects: list[str], per_query: int) -> None:
        self.a, self.tokens, self.subjects, self.per_query = a, tokens, subjects, per_query

    def run(self, seconds: float, peer: str) -> dict[str, Any]:
        latencies: list[float] = []
        failures: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()
        deadline = time.monotonic() + seconds

        def analyst(i: int) -> None:
            with ApiClient(self.a.url, self.tokens[i], cacert=self.a.dir.settings.tls_cert) as c:
                k = 0

                def one() -> None:
                    nonlocal k
                    start = (i * 7 + k * self.per_query) % max(1, len(self.subjects))
                    chosen = (self.subjects * 2)[start : start + self.per_query]
                    k += 1
                    t0 = time.monotonic()
                    try:
                        q = c.create_query(**QUERY, subject_ids=chosen, peers=[peer])
                        q = wait_query(c, q, timeout=QUERY_TIMEOUT)
                        ok = q["status"] == "done" and not q["partial"]
                        code = "ok" if ok else f"query_{q['status']}_partial"
                    except ApiError as exc:
                        code = exc.error_code
                    took = time.monotonic() - t0
                    with lock:
                        if code == "ok":
                            latencies.append(took)
                        else:
                            failures[code] = failures.get(code, 0) + 1

                _run_for(deadline, one, stop)

        threads = [threading.Thread(target=analyst, args=(i,)) for i in range(len(self.tokens))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + QUERY_TIMEOUT + 30)
        stop.set()
        return _stats(latencies, failures, time.monotonic() - t0)


def _bulk(
    b: DemoNode, peer: str, deadline: float, stop: threading.Event, out: dict[str, Any]
) -> threading.Thread:
    def run() -> None:
        with b.client("analyst") as c:

            def one() -> None:
                t0 = time.monotonic()
                try:
                    q = c.create_query(**QUERY, mode="mutual", all_subjects=True, peers=[peer])
                    q = wait_query(c, q, timeout=max(5.0, deadline - time.monotonic() + 60))
                    out.setdefault("sessions", []).append(
                        {
                            "seconds": round(time.monotonic() - t0, 2),
                            "status": q["status"],
                            "partial": q["partial"],
                            "reason": q["peers"][0]["reason"][:120],
                        }
                    )
                except ApiError as exc:
                    out.setdefault("errors", []).append(exc.error_code)

            _run_for(deadline, one, stop, bound=1000)

    return threading.Thread(target=run)


def _greedy(
    a: DemoNode, token: str, deadline: float, stop: threading.Event, out: dict[str, int]
) -> threading.Thread:
    def run() -> None:
        with ApiClient(a.url, token, cacert=a.dir.settings.tls_cert) as c:

            def one() -> None:
                try:
                    c.queries()
                    out["ok"] = out.get("ok", 0) + 1
                except ApiError as exc:
                    out[str(exc.status)] = out.get(str(exc.status), 0) + 1
                    if exc.status == 429:
                        out["retry_after"] = int(exc.error_details.get("retry_after", 0))

            _run_for(deadline, one, stop)

    return threading.Thread(target=run)


def run(seconds: float, keys: int, n_analysts: int, workdir: Path) -> dict[str, Any]:
    owner_subjects = max(100, int(keys / KEYS_PER_SUBJECT))
    ds = synth.generate(["DE", "FR"], subjects=owner_subjects, overlap=0.05, seed=41)
    synth.write(ds, workdir / "data", formats=("csv",))
    lines = (workdir / "data" / "FR.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (workdir / "A.csv").write_text("".join(lines[:401]), encoding="utf-8")
    (workdir / "B.csv").write_text(lines[0] + "".join(lines[401:2201]), encoding="utf-8")
    t0 = time.monotonic()
    p = make_node(workdir, "FIU-P", workdir / "data" / "DE.csv", "csv", scrypt_log2_n=10)
    a = make_node(workdir, "FIU-A", workdir / "A.csv", "csv", scrypt_log2_n=10)
    b = make_node(workdir, "FIU-B", workdir / "B.csv", "csv", scrypt_log2_n=10)
    tokens = _add_analysts(a, n_analysts + 1)
    greedy_token, tokens = tokens[-1], tokens[:-1]
    with p.dir.open_store() as store:
        held = store.db.connection().execute("SELECT COUNT(*) FROM match_keys").fetchone()[0]
    with a.dir.open_store() as store:
        subjects_a = store.subjects.ids()
    env = dict(os.environ)
    nodes = (p, a, b)
    try:
        os.environ["FIUMATCH_LIMITS_REQUESTS_PER_SECOND"] = str(ANALYST_RATE)
        os.environ["FIUMATCH_LIMITS_BURST"] = str(ANALYST_BURST)
        a.process.start(timeout=60)
        os.environ["FIUMATCH_LIMITS_REQUESTS_PER_SECOND"] = "100000"
        os.environ["FIUMATCH_LIMITS_BURST"] = "100000"
        # P serves A's 32 analysts: up to 8 of A's queries run at once (A's query pool), each
        # with an open session; the default of 4 open sessions per peer would refuse half.
        os.environ["FIUMATCH_SESSIONS_MAX_OPEN_PER_PEER"] = str(SESSIONS_PER_PEER)
        p.process.start(timeout=60)
        b.process.start(timeout=60)
        os.environ.clear()
        os.environ.update(env)
        connect([p, a, b], budget=100_000_000, max_set=1_000_000)
        setup_s = time.monotonic() - t0
        # Warm up: P precomputes its epochs for A and B (10^5 OPRF evaluations each).
        t1 = time.monotonic()
        for querier in (a, b):
            with querier.client("analyst") as c:
                q = c.create_query(
                    **QUERY,
                    subject_ids=subjects_a[:1] if querier is a else [],
                    all_subjects=querier is b,
                    peers=[p.node_id],
                    mode="cardinality",
                )
                wait_query(c, q, timeout=600)
        precompute_s = time.monotonic() - t1

        analysts = Analysts(a, tokens, subjects_a, per_query=3)
        unloaded = analysts.run(max(10.0, seconds / 3), p.node_id)

        stop = threading.Event()
        deadline = time.monotonic() + seconds
        bulk_out: dict[str, Any] = {}
        greedy_out: dict[str, int] = {}
        side = [
            _bulk(b, p.node_id, deadline, stop, bulk_out),
            _greedy(a, greedy_token, deadline, stop, greedy_out),
        ]
        for t in side:
            t.start()
        loaded = analysts.run(seconds, p.node_id)
        stop.set()
        for t in side:
            t.join(QUERY_TIMEOUT + 120)
    finally:
        os.environ.clear()
        os.environ.update(env)
        for n in nodes:
            n.process.stop()
    ratio = (
        loaded["p99_ms"] / unloaded["p99_ms"] if loaded["p99_ms"] and unloaded["p99_ms"] else None
    )
    return {
        "config": {
            "seconds": seconds,
            "analysts": n_analysts,
            "owner_keys": int(held),
            "owner_subjects": owner_subjects,
            "analyst_node_subjects": len(subjects_a),
            "subjects_per_query": 3,
            "analyst_rate_limit": {"per_second": ANALYST_RATE, "burst": ANALYST_BURST},
            "mode": "filter",
            "owner_sessions_max_open_per_peer": SESSIONS_PER_PEER,
        },
        "setup_seconds": round(setup_s, 1),
        "precompute_seconds": round(precompute_s, 1),
        "unloaded": unloaded,
        "loaded": loaded,
        "bulk_mutual": bulk_out,
        "greedy_client": greedy_out,
        "p99_ratio": None if ratio is None else round(ratio, 2),
        "p99_within_2x": ratio is not None and ratio <= 2.0,
    }


def write(out: Path, result: dict[str, Any]) -> None:
    from benchmarks.machine import describe, summary_line

    machine = describe()
    result = {"machine": machine, **result}
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    cfg, un, lo = result["config"], result["unloaded"], result["loaded"]
    bulk = result["bulk_mutual"].get("sessions", [])
    greedy = result["greedy_client"]
    rows = [
        "# Load: analysts, a bulk mutual session and a greedy client against one peer",
        "",
        summary_line(machine),
        "",
        f"{cfg['analysts']} analysts of FIU-A run filter queries ({cfg['subjects_per_query']}"
        f" subjects each, one after another) against FIU-P holding {cfg['owner_keys']:,} match"
        f" keys; all three nodes are real processes on 127.0.0.1 (TLS). Setup"
        f" {result['setup_seconds']} s, P's epoch precompute {result['precompute_seconds']} s."
        " A runs at most 8 queries at once (its query pool): a query's latency includes its"
        " wait for a free worker.",
        "",
        "| phase | seconds | queries | per s | p50 ms | p95 ms | p99 ms | max ms | failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in (("unloaded (analysts alone)", un), ("loaded (+ bulk + greedy)", lo)):
        rows.append(
            f"| {name} | {s['seconds']} | {s['queries']} | {s['throughput_per_s']} |"
            f" {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['max_ms']} |"
            f" {s['failures'] or 0} |"
        )
    rows += [
        "",
        f"Loaded p99 / unloaded p99: **{result['p99_ratio']}** (target at most 2:"
        f" {'met' if result['p99_within_2x'] else 'NOT met'}).",
        "",
        f"Bulk mutual sessions FIU-B -> FIU-P beside them: {len(bulk)} finished"
        + (f" ({', '.join(str(s['seconds']) + ' s' for s in bulk[:5])})" if bulk else "")
        + (
            f"; errors {result['bulk_mutual'].get('errors')}"
            if result["bulk_mutual"].get("errors")
            else ""
        )
        + ".",
        "",
        f"Greedy client (an extra analyst over FIU-A's per-token limit of"
        f" {cfg['analyst_rate_limit']['per_second']}/s,"
        f" burst {cfg['analyst_rate_limit']['burst']}):"
        f" {greedy.get('ok', 0)} answered, {greedy.get('429', 0)} refused with 429"
        f" (Retry-After {greedy.get('retry_after', '-')} s).",
        "",
        "Run: `python -m benchmarks.load --seconds {}`.".format(int(cfg["seconds"])),
        "",
    ]
    (out / "load.md").write_text("\n".join(rows))
    _plot(out / "load.png", result)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = ["p50", "p95", "p99"]
    un = [result["unloaded"][f"{k}_ms"] or 0 for k in labels]
    lo = [result["loaded"][f"{k}_ms"] or 0 for k in labels]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], un, width=0.4, label="unloaded")
    ax.bar([x + 0.2 for x in xs], lo, width=0.4, label="loaded (+bulk, +greedy)")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("query latency (ms)")
    ax.set_title(
        f"{result['config']['analysts']} analysts vs a peer with "
        f"{result['config']['owner_keys']:,} keys"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--analysts", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fiumatch-load-") as tmp:
        result = run(args.seconds, args.keys, args.analysts, Path(tmp))
    write(args.out, result)
    print((args.out / "load.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
