"""Unbalanced (issue #6): 64-key analyst queries against a peer holding 10^6 precomputed keys,
over HTTP, filter mode. Target: p50 <= 50 ms, p99 <= 150 ms with the filter already cached.

Two real node processes on 127.0.0.1 (TLS, signed frames, audit): FIU-O, the owner, with
``--keys`` stored subjects of one ``iban`` key each, inserted straight into its store (one
transaction, ``SubjectRepo.upsert_many``) and its epoch for
FIU-Q precomputed by an admin rotation (``wait``); FIU-Q, the analysts' node, holding
``--sets`` x 64 subjects. Query *i* names set ``i % sets`` (64 subjects, 64 keys, ``--hits`` of
them held by O) through the analyst API: ``create_query`` then the long-poll
``GET /api/v1/queries/{id}?wait=`` until done; the latency is the analyst's, end to end. Every
query's hit count is checked.

Variants (``--variants``; each starts the querier fresh, so its first query downloads the
filter):

* ``stock``: the nodes as shipped, VOPRF proofs on. Before the querier kept its replicas
  (``NodeService._replica_for``, one per peer and epoch), it built a new, empty
  ``FilterReplica`` for every session, so *every* query downloaded the whole filter; since
  then ``stock`` and ``cached`` run the same code (the patch below is not applied).
* ``cached``: the querier keeps its replica between sessions (a prototype of the change
  recommended for ``_querier_machine``: this module's launcher, ``serve``, replaces the node
  module's ``FilterReplica`` name with a per-(suite, epoch) cache; valid here because each
  querier has one peer). From the second query on, HELLO names the replica and the owner sends
  no filter bytes.
* ``stock-proofs-off``, ``cached-proofs-off``: the same from a second querier, FIU-P, whose
  agreements with FIU-O say ``proofs: false`` (filter mode without DLEQ proofs; same suite,
  outputs and filter). Only where the node supports per-agreement proofs
  (``fiumatch.demo.run.connect(proofs=...)``); before that the suite was fixed (VOPRF,
  ``fiumatch.node.service.SUITE``) and these variants are skipped. O precomputes one epoch per
  querier (epochs are per peer).

``--profile`` runs one more ``cached`` pass with both nodes under ``py-spy record`` (not
counted in the latency table) and reports where their CPU samples went. A direct probe (this
process signing as FIU-Q, ``PeerClient`` + ``service.pump``) times each peer request of a
session: open, HELLO (+ filter), QUERY/EVAL, with a fresh and with a cached replica.

Run:   python -m benchmarks.unbalanced [--keys 1000000] [--queries 200] [--warmup 5]
Smoke: python -m benchmarks.unbalanced --keys 20000 --queries 30 --out /tmp/unbalanced
Writes results/unbalanced.{json,md,png}. Nodes are killed in ``finally`` (process groups).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from fiumatch.client.api import ApiClient
from fiumatch.demo.run import DemoNode, connect, make_node

RESULTS = Path(__file__).resolve().parent / "results"
QUERY = {"purpose": "money_laundering", "legal_basis": "AMLD art. 53", "case_ref": "UNBAL-1"}
SET_SIZE = 64
TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0
VARIANTS = ("stock", "cached", "stock-proofs-off", "cached-proofs-off")
ADMIN_TIMEOUT = 1800.0  # a rotation over 10^6 keys answers only when its precompute is done


# ---------------------------------------------------------------------------------------------
# Keys and data


def owner_key(i: int) -> bytes:
    return hashlib.sha256(b"fiumatch-unbalanced-owner" + i.to_bytes(8, "big")).digest()


def querier_only_key(i: int) -> bytes:
    return hashlib.sha256(b"fiumatch-unbalanced-querier" + i.to_bytes(8, "big")).digest()


def query_sets(sets: int, hits: int) -> list[list[bytes]]:
    """``sets`` sets of 64 keys; set j holds owner keys j*hits .. j*hits+hits-1 and 64-hits keys
    the owner does not hold."""
    return [
        [owner_key(j * hits + h) for h in range(hits)]
        + [querier_only_key(j * SET_SIZE + i) for i in range(SET_SIZE - hits)]
        for j in range(sets)
    ]


def subject_id(key: bytes) -> str:
    return hashlib.sha256(b"unbalanced-subject" + key).hexdigest()[:32]


def load_keys(node: DemoNode, keys: Sequence[bytes], label: str) -> float:
    """One subject per key (type iban), stored with ``upsert_many`` (one transaction, batched
    statements); seconds taken."""
    from fiumatch.identifiers import KeyType
    from fiumatch.store import Subject
    from fiumatch.store.subjects import MatchKey

    iban = KeyType("iban").code
    until = date.today() + timedelta(days=365)
    now = int(time.time())

    def items() -> Iterator[tuple[Subject, list[MatchKey]]]:
        for i, key in enumerate(keys):
            sid = subject_id(key)
            yield (
                Subject(
                    id=sid,
                    local_ref=f"{label}-{i}",
                    subject_type="person",
                    retain_until=until,
                    source="bench",
                    source_record=str(i),
                ),
                [MatchKey(subject_id=sid, key_type=iban, key=key, strength=200)],
            )

    start = time.perf_counter()
    with node.dir.open_store() as store:
        store.subjects.upsert_many(items(), now=now)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Node processes: stock (``fiumatch node serve``) or patched (this module's ``serve``), either
# optionally under py-spy.


class Proc:
    """One node process in its own process group; ``stop()`` ends it (and py-spy, if any)."""

    def __init__(
        self,
        node: DemoNode,
        *,
        cache: bool = False,
        profile: Path | None = None,
    ) -> None:
        self.node = node
        if cache:
            cmd = [sys.executable, "-m", "benchmarks.unbalanced", "serve", str(node.root)]
        else:
            cmd = [sys.executable, "-m", "fiumatch.cli.main", "node", "serve"]
            cmd += ["--dir", str(node.root)]
        if profile is not None:
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", "-f", "raw", "-r", "200", "-o", str(profile), "--", *cmd]
        self.profile = profile
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Proc:
        log = (self.node.root / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=Path(__file__).resolve().parent.parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.node.root / "serve.log").read_text(errors="replace")[-2000:]
                self.proc = None
                raise RuntimeError(f"{self.node.node_id} exited at start:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(self.node.url + "/healthz", verify=False, timeout=1.0)
                if r.status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.node.node_id} did not become ready in {timeout} s")

    def _children(self, pid: int) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
        return found

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the node process and its children so far: less
        sensitive to the shared machine's load than a latency."""
        if self.proc is None:
            return 0.0
        pids = [self.proc.pid]
        if self.profile is not None:
            pids = self._children(self.proc.pid)  # the node, not py-spy
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if self.profile is not None:
            # End the node itself (py-spy's child): py-spy then writes its profile and exits.
            for child in self._children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def serve_patched(node_dir: Path) -> None:
    """Serve a node whose querier keeps its filter replicas (see the module docstring)."""
    from fiumatch.node import service
    from fiumatch.node.runner import serve
    from fiumatch.protocol.filters import FilterReplica

    if hasattr(service.NodeService, "_replica_for"):  # the node keeps its replicas itself
        serve(node_dir)
        return
    replicas: dict[tuple[int, int], FilterReplica] = {}

    def cached(*, suite: int, epoch: int) -> FilterReplica:
        # One peer only (the benchmark's): the real cache is keyed by peer too.
        return replicas.setdefault((suite, epoch), FilterReplica(suite=suite, epoch=epoch))

    setattr(service, "FilterReplica", cached)  # noqa: B010 - patch the name the node reads
    serve(node_dir)


# ---------------------------------------------------------------------------------------------
# Measurement


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 1),
        "p90_ms": round(pct(ms, 90), 1),
        "p99_ms": round(pct(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "min_ms": round(min(ms), 1),
    }


def run_queries(
    q: DemoNode, sets: list[list[str]], n: int, hits: int, first: int = 0
) -> dict[str, Any]:
    """``n`` sequential queries; per query: total seconds, seconds until create_query answered,
    the hit count, and whether it is the expected one."""
    rows: list[dict[str, Any]] = []
    with q.client("analyst") as c:
        for i in range(first, first + n):
            t0 = time.perf_counter()
            created = c.create_query(
                **QUERY, mode="filter", subject_ids=sets[i % len(sets)], peers=["FIU-O"]
            )
            t1 = time.perf_counter()
            done = c.wait_query(created, timeout=300)
            t2 = time.perf_counter()
            (peer,) = done["peers"]
            rows.append(
                {
                    "seconds": t2 - t0,
                    "create_seconds": t1 - t0,
                    "status": done["status"],
                    "peer_status": peer["status"],
                    "hits": peer["hit_count"],
                    "ok": done["status"] == "done"
                    and peer["status"] == "ok"
                    and peer["hit_count"] == hits,
                    "reason": peer["reason"] if peer["status"] != "ok" else "",
                }
            )
    return {"rows": rows}


def audit_size(node: DemoNode) -> int | None:
    """How many entries the node's audit log holds (None if it cannot say)."""
    try:
        with node.client("auditor") as c:
            return int(c.call("GET", "/audit/v1/entries", params={"start": 0, "limit": 1})["size"])
    except Exception:  # a count for the report, not a check
        return None


def api_read_seconds(q: DemoNode, n: int = 50) -> dict[str, float]:
    """The analyst API's own cost: ``GET /api/v1/me`` on a kept-alive connection."""
    with q.client("analyst") as c:
        c.call("GET", "/api/v1/me")
        times = []
        for _ in range(n):
            t = time.perf_counter()
            c.call("GET", "/api/v1/me")
            times.append(time.perf_counter() - t)
    return summary_ms(times)


def probe(
    q: DemoNode, o: DemoNode, keys: list[bytes], sessions: int, proofs: bool, *, reuse: bool
) -> dict[str, Any]:
    """Sessions driven from this process as FIU-Q (its identity key), timing each step: the
    ``PeerClient`` (a new one per session, as the node did before it kept one per peer, or with
    ``reuse`` one kept-alive connection, as it does now), the open request, each frames
    request, and the local crypto (blind, verify, finalize, filter apply) in between. Session 0
    has an empty replica (downloads the filter); the others reuse it. With ``reuse``, where the
    node sends its HELLO with the open request (SPEC §14.4.1), so does the probe once it keeps
    a replica: the open then carries the HELLO and one frames request (QUERY) follows."""
    from fiumatch.client.peer import PeerClient
    from fiumatch.node.pump import PeerProgress, pump
    from fiumatch.node.service import SUITE as suite_id
    from fiumatch.protocol.filters import FilterReplica
    from fiumatch.protocol.sessions.filter_mode import FilterQuerier
    from fiumatch.protocol.wire import Limits
    from fiumatch.store import Peer

    # Per-agreement proofs, where the node has them (else every session is proved).
    open_extra: dict[str, Any] = {} if proofs or not _supports_proofs() else {"proofs": False}
    machine_extra: dict[str, Any] = {} if proofs or not _supports_proofs() else {"proofs": False}
    with o.client() as c:
        info = c.well_known()
    peer = Peer(
        node_id=o.node_id,
        url=o.url,
        public_key=bytes.fromhex(info["public_key"]),
        fingerprint=info["fingerprint"],
        added_at=0,
    )
    identity = q.dir.keys().identity
    replicas: dict[int, FilterReplica] = {}
    epoch_keys: dict[int, bytes] = {}
    early_hello = reuse and _supports_early_hello()
    out: list[dict[str, Any]] = []

    def machine_for(sid: str, epoch: int, public_key: bytes) -> FilterQuerier:
        replica = replicas.setdefault(epoch, FilterReplica(suite=suite_id, epoch=epoch))
        return FilterQuerier(
            session_id=bytes.fromhex(sid),
            epoch=epoch,
            suite=suite_id,
            match_keys=keys,
            replica=replica,
            rng=os.urandom,
            limits=Limits(max_elements=1 << 20),
            owner_public_key=public_key,
            **machine_extra,
        )

    class Timed:
        def __init__(self, client: PeerClient) -> None:
            self.client = client
            self.calls: list[tuple[float, int]] = []

        def send_frames(self, sid: str, epoch: int, frames: bytes) -> bytes:
            t = time.perf_counter()
            reply = self.client.send_frames(sid, epoch, frames)
            self.calls.append((time.perf_counter() - t, len(reply)))
            return reply

    kept: PeerClient | None = None
    try:
        for i in range(sessions):
            t0 = time.perf_counter()
            if reuse and kept is not None:
                client = kept  # keep-alive: no new TLS context or handshake
            else:
                client = PeerClient(
                    own_id=q.node_id, key=identity, peer=peer, clock=time.time, rng=os.urandom
                )
            t_client = time.perf_counter()
            sid = os.urandom(16).hex()
            early: tuple[int, FilterQuerier] | None = None
            extra = dict(open_extra)
            if early_hello and epoch_keys:  # the HELLO for the kept replica, with the open
                kept_epoch = max(epoch_keys)
                early = (kept_epoch, machine_for(sid, kept_epoch, epoch_keys[kept_epoch]))
                hello = b"".join(early[1].start())
                extra.update(frames=base64.b64encode(hello).decode(), frames_epoch=kept_epoch)
            opened = client.open_session(
                session_id=sid,
                mode="filter",
                purpose=QUERY["purpose"],
                id_types=["iban"],
                set_size=len(keys),
                **extra,
            )
            t1 = time.perf_counter()
            epoch = int(opened["epoch"])
            public_key = bytes.fromhex(str(opened["public_key"]))
            epoch_keys[epoch] = public_key
            answered: bytes | None = None
            if early is not None and early[0] == epoch and "frames" in opened:
                machine, answered = early[1], base64.b64decode(opened["frames"])
            else:
                machine = machine_for(sid, epoch, public_key)
            timed = Timed(client)
            pump(timed, sid, epoch, machine, PeerProgress(), **_answered(answered))
            t2 = time.perf_counter()
            if reuse:
                kept = client
            else:
                client.close()
            assert machine.result is not None
            waited = sum(s for s, _ in timed.calls)
            out.append(
                {
                    "total_s": t2 - t0,
                    "client_s": t_client - t0,
                    "open_s": t1 - t_client,
                    "requests": [{"s": s, "reply_bytes": b} for s, b in timed.calls],
                    "local_compute_s": t2 - t1 - waited,
                    "hits": len(machine.result.hit_indices),
                    "new_connection": not reuse or i == 0,
                }
            )
    finally:
        if kept is not None:
            kept.close()
    return {"sessions": out}


# ---------------------------------------------------------------------------------------------
# Profile (py-spy raw: "frame;frame;... count" per line, root first)

IDLE = (
    "Condition.wait",
    "EpollSelector.select",
    "_worker (futures/thread.py)",
    "Event.wait",
    "SSLSocket.read",  # a blocking client read: waiting for the peer's answer
)
"""Leaf frames of a thread that is waiting (py-spy counts some of them as active)."""
CATEGORIES = (
    ("oprf / group ops (libsodium)", ("oprf.py", "group.py")),
    ("filter apply / decode", ("filters.py",)),
    ("audit log (sink, chain, fsync)", ("node/audit.py", "auditlog/")),
    ("HTTP signatures (RFC 9421)", ("httpsig.py",)),
    ("SQLite (store)", ("store/",)),
    ("TLS / sockets (ssl, httpx, h11, uvicorn)", ("ssl.py", "httpcore", "h11", "uvicorn")),
    ("wire frames", ("wire.py", "sessions/")),
    ("FastAPI / starlette / pydantic", ("fastapi", "starlette", "pydantic", "anyio")),
)


def categorize(raw: Path) -> dict[str, Any]:
    """Samples per category (the innermost frame of ours or of a library named above that the
    stack passes through, checked leaf first) and the top fiumatch functions (inclusive)."""
    if not raw.exists():
        return {"error": "no profile written"}
    cats: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = busy = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = stack.split(";")
        leaf = _short(frames[-1])
        if any(pat in leaf for pat in IDLE):
            cats["(idle: waiting)"] += count
            continue
        if any("_find_and_load" in f for f in frames):
            cats["(startup: imports)"] += count
            continue
        leaves[leaf] += count
        busy += count
        cat = "other"
        for frame in reversed(frames):
            hit = next((name for name, pats in CATEGORIES if any(p in frame for p in pats)), None)
            if hit:
                cat = hit
                break
        cats[cat] += count
        for f in {_short(f) for f in frames if "fiumatch/" in f}:
            funcs[f] += count

    def share(c: Counter[str], n: int) -> dict[str, float]:
        return {k: round(v / busy, 3) for k, v in c.most_common(n)} if busy else {}

    return {
        "samples": total,
        "busy_samples": busy,
        "excluded": {k: v for k, v in cats.items() if k.startswith("(")},
        "categories": share(Counter({k: v for k, v in cats.items() if k[0] != "("}), 20),
        "top_fiumatch_inclusive": share(funcs, 15),
        "top_self": share(leaves, 15),
    }


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


# ---------------------------------------------------------------------------------------------
# The run


def filter_size(o: DemoNode, peer: str) -> dict[str, Any]:
    from fiumatch.node.service import FILTER_KIND

    with o.dir.open_store() as store:
        active = store.epochs.active(peer, "local")
        assert active is not None
        blob = store.epochs.get_blob(peer, "local", active.epoch, FILTER_KIND)
        assert blob is not None
        data = blob.data
    objects, pos = [], 0
    while pos < len(data):  # _encode_objects: 4-byte big-endian length, then the object
        n = int.from_bytes(data[pos : pos + 4], "big")
        objects.append(n)
        pos += 4 + n
    return {"epoch": active.epoch, "blob_bytes": len(data), "object_bytes": objects}


def _supports_early_hello() -> bool:
    """Whether this tree's node sends its HELLO with the open request (SPEC §14.4.1)."""
    import inspect

    from fiumatch.client.peer import PeerClient

    return "frames" in inspect.signature(PeerClient.open_session).parameters


def _answered(answered: bytes | None) -> dict[str, Any]:
    """``pump``'s keyword for an answer that came with the open (absent in older trees)."""
    return {} if answered is None else {"answered": answered}


def _supports_proofs() -> bool:
    """Whether this tree has per-agreement VOPRF proofs (``connect(proofs=...)``)."""
    import inspect

    return "proofs" in inspect.signature(connect).parameters


def rotate(o: DemoNode, peer: str) -> float:
    start = time.perf_counter()
    with ApiClient(o.url, o.admin, cacert=o.dir.settings.tls_cert, timeout=ADMIN_TIMEOUT) as c:
        c.rotate(peer=peer, wait=True)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.machine import describe, load_average

    machine = describe()
    proofs_off = _supports_proofs()
    variants = [v for v in args.variants if proofs_off or not v.endswith("proofs-off")]
    result: dict[str, Any] = {
        "config": {
            "owner_keys": args.keys,
            "query_keys": SET_SIZE,
            "hits_per_query": args.hits,
            "query_sets": args.sets,
            "queries": args.queries,
            "warmup": args.warmup,
            "variants": variants,
            "skipped": sorted(set(args.variants) - set(variants)),
            "per_agreement_proofs": proofs_off,
            "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
        },
        "variants": {},
        "filter": {},
    }
    sets_keys = query_sets(args.sets, args.hits)
    want_p = any(v.endswith("proofs-off") for v in variants)
    with tempfile.TemporaryDirectory(prefix="fiumatch-unbalanced-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        o = make_node(root, "FIU-O", scrypt_log2_n=10)
        queriers = {"FIU-Q": make_node(root, "FIU-Q", scrypt_log2_n=10)}
        if want_p:
            queriers["FIU-P"] = make_node(root, "FIU-P", scrypt_log2_n=10)
        q_keys = [k for s in sets_keys for k in s]
        for node in queriers.values():
            load_keys(node, q_keys, "q")
        sets = [[subject_id(k) for k in s] for s in sets_keys]
        procs = [Proc(n) for n in (o, *queriers.values())]
        for proc in procs:
            proc.start()
        try:
            connect([queriers["FIU-Q"], o], budget=10**8, max_set=4 * SET_SIZE)
            if want_p:
                off: dict[str, Any] = {"proofs": False}  # a keyword older trees lack
                connect([queriers["FIU-P"], o], budget=10**8, max_set=4 * SET_SIZE, **off)
        finally:
            for proc in procs:
                proc.stop()
        # O's keys after the agreements: each agreement change precomputes O's active epoch
        # synchronously (add_agreement), which must not run over 10^6 keys.
        insert_s = load_keys(o, [owner_key(i) for i in range(args.keys)], "o")
        result["setup"] = {
            "owner_insert_seconds": round(insert_s, 1),
            "owner_insert_per_s": round(args.keys / insert_s),
            "precompute_seconds": {},
        }
        print(f"setup: {args.keys:,} owner keys inserted in {insert_s:.1f} s", file=sys.stderr)
        o_proc = Proc(o).start()
        try:
            for peer in queriers:
                secs = rotate(o, peer)
                result["setup"]["precompute_seconds"][peer] = round(secs, 1)
                result["filter"][peer] = filter_size(o, peer)
                print(f"O's epoch for {peer} precomputed in {secs:.1f} s", file=sys.stderr)
            result["setup"]["setup_seconds"] = round(time.perf_counter() - t, 1)
            for name in variants:
                q = queriers["FIU-P" if name.endswith("proofs-off") else "FIU-Q"]
                proofs = not name.endswith("proofs-off")
                cache = name.startswith("cached")
                result["variants"][name] = measure(
                    args, q, o, sets, sets_keys, proofs=proofs, cache=cache, spy=None, owner=o_proc
                )
            if args.profile:  # both nodes under py-spy: O restarted (its ledger reloads)
                o_proc.stop()
                o_proc = Proc(o, profile=root / "o.spy").start()
                spy = root / "q.spy"
                v = measure(
                    args, queriers["FIU-Q"], o, sets, sets_keys, proofs=True, cache=True, spy=spy
                )
                o_proc.stop()
                v["profile"] = {
                    "querier FIU-Q": categorize(spy),
                    "owner FIU-O": categorize(root / "o.spy"),
                }
                for raw, who in ((spy, "querier"), (root / "o.spy", "owner")):
                    if raw.exists():  # kept for a closer look (py-spy raw, flamegraph input)
                        args.out.mkdir(parents=True, exist_ok=True)
                        (args.out / f"unbalanced-{who}.spy.raw").write_bytes(raw.read_bytes())
                result["variants"]["profile-cached"] = v
        finally:
            o_proc.stop()
    machine["load_average_end"] = load_average()
    return {"machine": machine, **result}


def measure(
    args: argparse.Namespace,
    q: DemoNode,
    o: DemoNode,
    sets: list[list[str]],
    sets_keys: list[list[bytes]],
    *,
    proofs: bool,
    cache: bool,
    spy: Path | None,
    owner: Proc | None = None,
) -> dict[str, Any]:
    from benchmarks.machine import load_average

    n = args.profile_queries if spy is not None else args.queries
    with running(Proc(q, cache=cache, profile=spy)) as q_proc:
        load_start = load_average()
        first = run_queries(q, sets, 1, args.hits)["rows"][0]
        warm = run_queries(q, sets, args.warmup, args.hits, first=1)["rows"]
        audit_before = (audit_size(q), audit_size(o))
        cpu_before = (q_proc.cpu_seconds(), owner.cpu_seconds() if owner else 0.0)
        rows = run_queries(q, sets, n, args.hits, first=1 + args.warmup)["rows"]
        cpu_after = (q_proc.cpu_seconds(), owner.cpu_seconds() if owner else 0.0)
        audit_after = (audit_size(q), audit_size(o))
        api = api_read_seconds(q)
        probes = (
            {
                reuse: probe(q, o, sets_keys[0], args.probe_sessions, proofs, reuse=reuse)
                for reuse in (False, True)
            }
            if spy is None
            else None
        )
        load_end = load_average()
    bad = [r for r in [first, *warm, *rows] if not r["ok"]]
    lat = [r["seconds"] for r in rows]
    out: dict[str, Any] = {
        "querier": q.node_id,
        "proofs": proofs,
        "replica_cache": cache,
        "first_query_ms": round(first["seconds"] * 1000, 1),
        "latency": summary_ms(lat),
        "create_query_call": summary_ms([r["create_seconds"] for r in rows]),
        "analyst_api_round_trip": api,
        "failures": len(bad),
        "failure_examples": bad[:3],
        "latencies_ms": [round(x * 1000, 2) for x in lat],
        "cpu_ms_per_query": {
            "querier": round((cpu_after[0] - cpu_before[0]) * 1000 / n, 1),
            "owner": round((cpu_after[1] - cpu_before[1]) * 1000 / n, 1) if owner else None,
        },
        "audit_entries_per_query": {
            who: None if a is None or b is None else round((b - a) / n, 2)
            for who, a, b in zip(("querier", "owner"), audit_before, audit_after, strict=True)
        },
        "load_average_start": load_start,
        "load_average_end": load_end,
    }
    if probes is not None:
        out["probe"] = {
            "first_session": probes[False]["sessions"][0],
            "new_client_per_session": probe_summary(probes[False]["sessions"][1:]),
            "kept_alive_client": probe_summary(probes[True]["sessions"][1:]),
        }
    msg = f"{out['latency']}, first {out['first_query_ms']} ms, failures {len(bad)}"
    msg += f", CPU ms/query {out['cpu_ms_per_query']}"
    label = f"{'cached' if cache else 'stock'}{'' if proofs else '-proofs-off'}"
    print(f"{label}{' (py-spy)' if spy else ''}: {msg}", file=sys.stderr)
    return out


def probe_summary(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (ms) of each step over sessions with the replica already kept."""

    def med(values: list[float]) -> float:
        return round(pct(values, 50) * 1000, 1)

    return {
        "sessions": len(sessions),
        "total_ms": med([x["total_s"] for x in sessions]),
        "client_ms": med([x["client_s"] for x in sessions]),
        "open_ms": med([x["open_s"] for x in sessions]),
        "requests_ms": [
            med([x["requests"][i]["s"] for x in sessions])
            for i in range(len(sessions[0]["requests"]))
        ],
        "local_compute_ms": med([x["local_compute_s"] for x in sessions]),
    }


# ---------------------------------------------------------------------------------------------
# Report


def write(out: Path, result: dict[str, Any]) -> None:
    from benchmarks.machine import summary_line

    out.mkdir(parents=True, exist_ok=True)
    (out / "unbalanced.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    cfg, setup = result["config"], result["setup"]
    lines = [
        "# Unbalanced: 64-key analyst queries against a peer holding"
        f" {cfg['owner_keys']:,} precomputed keys (filter mode, HTTP)",
        "",
        summary_line(result["machine"]),
        f"Load average start {result['machine']['load_average_start']},"
        f" end {result['machine']['load_average_end']} (2 shared cores).",
        "",
        f"Two node processes on 127.0.0.1 (TLS, signed frames, audit). Each query: 64 keys"
        f" ({cfg['hits_per_query']} held by the owner), `create_query` then the long-poll"
        f" `GET /api/v1/queries/{{id}}?wait=` until done; {cfg['queries']} queries after"
        f" {cfg['warmup']} warm-up ones, one after another. Target (issue #6): p50 <="
        f" {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms with the filter already cached.",
        "",
        "Variants: `stock` is the node as shipped. Since commit bc04bc2 the querier keeps its"
        " filter replica per (peer, epoch) between queries, so only the first query downloads"
        " the filter and the later ones meet the issue's 'filter already cached'; before it,"
        " every query downloaded the whole filter. `cached` applies this module's older"
        " prototype patch of `NodeService._querier_machine` (the same idea; redundant once the"
        " node keeps replicas, and skipped then). `proofs-off` runs from a second querier whose"
        " agreements with the owner say `proofs: false`. The `patch` column says whether the"
        " prototype patch was applied.",
        "",
        "| variant | proofs | patch | p50 ms | p90 ms | p99 ms | max ms | first query ms"
        " | failures | target | load avg (start -> end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in _ordered(result):
        if name.startswith("profile"):
            continue
        lat = v["latency"]
        met = lat["p50_ms"] <= TARGET_P50_MS and lat["p99_ms"] <= TARGET_P99_MS
        lines.append(
            f"| {name} | {'on' if v['proofs'] else 'off'} |"
            f" {'yes' if v['replica_cache'] else 'no'} |"
            f" {lat['p50_ms']} | {lat['p90_ms']} | {lat['p99_ms']} | {lat['max_ms']} |"
            f" {v['first_query_ms']} | {v['failures']} | {'met' if met else 'NOT met'} |"
            f" {v['load_average_start'][0]} -> {v['load_average_end'][0]} |"
        )
    for rep in result.get("repeat_runs", []):
        cells = "; ".join(
            f"{name} p50 {rep['latency'][name]['p50_ms']} / p99 {rep['latency'][name]['p99_ms']}"
            for name in VARIANTS
            if name in rep["latency"]
        )
        lines += [
            "",
            f"Repeat run (commit {rep['commit']}, 1-min load {rep['load']}): {cells} ms.",
        ]
    lines += breakdown(result)
    lines += ["", "## Filter", ""]
    for peer, f in result.get("filter", {}).items():
        lines.append(
            f"* O's filter for {peer}: epoch {f['epoch']}, stored {f['blob_bytes']:,} bytes"
            f" ({f['blob_bytes'] / 2**20:.2f} MiB, {len(f['object_bytes'])} object(s)),"
            f" {8 * sum(f['object_bytes']) / cfg['owner_keys']:.1f} bits per key; owner"
            f" precompute (rotation) {setup['precompute_seconds'].get(peer)} s."
        )
    for name, v in _ordered(result):
        p = v.get("probe")
        if p:
            hello = p["first_session"]["requests"][0]
            kept = p["new_client_per_session"]
            lines.append(
                f"* Download ({name}, direct probe, loopback TLS): the HELLO answer carrying the"
                f" whole filter, {hello['reply_bytes']:,} bytes, took {hello['s'] * 1000:.1f} ms"
                f" against {kept['requests_ms'][0]} ms once the replica is kept; building the"
                f" replica from it, {p['first_session']['local_compute_s'] * 1000:.1f} ms of"
                f" local work against {kept['local_compute_ms']} ms. First query end to end"
                f" (fresh querier): {v['first_query_ms']} ms."
            )
            break
    lines += ["", "## Direct probe: one session's steps (ms, median)", ""]
    lines += [
        "This process signs as FIU-Q and drives sessions itself (`PeerClient` + `service.pump`),"
        " so the node's own query path (API, store, audit, threads) is left out. Frames"
        " requests: HELLO (its reply carries the filter objects the replica lacks), then"
        " QUERY (reply: EVAL, with proofs in VOPRF). The kept-alive rows do what the node now"
        " does where it can (one connection kept per peer; with a replica kept, the HELLO rides"
        " on the open request, SPEC §14.4.1, so `open` includes it and only QUERY follows);"
        " the others, what it did before (a new client per session, HELLO on its own).",
        "",
        "| variant | client | kept-alive | new client | open | frames requests | local crypto"
        " | total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in _ordered(result):
        p = v.get("probe")
        if not p:
            continue
        first = p["first_session"]
        reqs = " + ".join(
            f"{r['s'] * 1000:.1f} ({r['reply_bytes']:,} B)" for r in first["requests"]
        )
        lines.append(
            f"| {name} | first session (empty replica) | no | {first['client_s'] * 1000:.1f} |"
            f" {first['open_s'] * 1000:.1f} | {reqs} | {first['local_compute_s'] * 1000:.1f} |"
            f" {first['total_s'] * 1000:.1f} |"
        )
        for label, key, alive in (
            ("replica kept", "new_client_per_session", "no"),
            ("replica kept", "kept_alive_client", "yes"),
        ):
            c = p[key]
            reqs = " + ".join(str(x) for x in c["requests_ms"])
            lines.append(
                f"| {name} | {label} | {alive} | {c['client_ms']} | {c['open_ms']} | {reqs} |"
                f" {c['local_compute_ms']} | {c['total_ms']} |"
            )
    lines += [
        "",
        f"Setup: {cfg['owner_keys']:,} owner subjects inserted in"
        f" {setup['owner_insert_seconds']} s ({setup['owner_insert_per_s']:,}/s,"
        " `upsert_many` in one transaction).",
        "",
    ]
    prof = next((v["profile"] for k, v in result["variants"].items() if "profile" in v), None)
    if prof:
        lines += ["## Where the CPU goes (py-spy, one more cached pass)", ""]
        for who, p in prof.items():
            cats = ", ".join(f"{k} {v:.0%}" for k, v in p.get("categories", {}).items())
            lines.append(
                f"* {who}: {p.get('busy_samples', 0)} busy samples (of {p.get('samples', 0)};"
                f" excluded {p.get('excluded', {})}): {cats}"
            )
        lines.append("")
    lines += [
        "Run: `python -m benchmarks.unbalanced` (smoke: `--keys 20000 --queries 30`).",
        "",
    ]
    (out / "unbalanced.md").write_text("\n".join(lines))
    plot(out / "unbalanced.png", result)


def breakdown(result: dict[str, Any]) -> list[str]:
    """Where a median ``cached`` query's time goes, from the figures measured (ms)."""
    lines: list[str] = []
    for name, v in _ordered(result):
        p = v.get("probe")
        if not p or not v["replica_cache"]:
            continue
        c = p["kept_alive_client"]
        session = c["total_ms"]
        create = v["create_query_call"]["p50_ms"]
        rest = round(v["latency"]["p50_ms"] - create - session, 1)
        steps = " + ".join(str(x) for x in c["requests_ms"])
        lines += [
            "",
            f"Breakdown of a median `{name}` query ({v['latency']['p50_ms']} ms):"
            f" `create_query` answered in {create} ms (audit entry with the query row, subject"
            f" lookups); the peer session alone, driven directly as the node does, {session} ms"
            f" on the kept-alive connection (open {c['open_ms']}, frames requests {steps},"
            f" local crypto {c['local_compute_ms']}), against"
            f" {p['new_client_per_session']['total_ms']} ms with a new client per session and"
            f" the HELLO on its own; the remaining ~{rest} ms is the querier node's own path"
            " (threads, store, audit receipts and entries, hit grouping) and waiting for CPU on"
            " the shared cores.",
        ]
    audit = [
        r.get("audit_entries_per_query", {}).get("cached") for r in result.get("repeat_runs", [])
    ] + [v.get("audit_entries_per_query") for _, v in _ordered(result)]
    counts = next((a for a in audit if a), None)
    if counts:
        lines += [
            "",
            f"Audit entries appended per query: querier {counts['querier']}, owner"
            f" {counts['owner']} (synchronous=FULL; where the node supports it, the entries of"
            " one peer answer, and the store writes an entry goes with, share one commit).",
        ]
    return lines


def _ordered(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Variants in ``VARIANTS`` order (the JSON's keys are sorted), the profile pass last."""
    rank = {name: i for i, name in enumerate(VARIANTS)}
    return sorted(result["variants"].items(), key=lambda kv: rank.get(kv[0], len(rank)))


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, v in _ordered(result):
        if name.startswith("profile"):
            continue
        xs = sorted(v["latencies_ms"])
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=f"{name} (p50 {v['latency']['p50_ms']} ms)")
    for x, label in ((TARGET_P50_MS, "p50 target"), (TARGET_P99_MS, "p99 target")):
        ax.axvline(x, linestyle="--", color="grey", alpha=0.6)
        ax.text(x, 0.02, f" {label}", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end query latency (ms, log)")
    ax.set_ylabel("fraction of queries")
    m = result["machine"]
    loads = [
        x
        for _, v in _ordered(result)
        for x in (v["load_average_start"][0], v["load_average_end"][0])
    ]
    ax.set_title(
        f"64-key queries vs {result['config']['owner_keys']:,} keys over HTTP — "
        f"{m['cores']} shared cores, 1-min load {min(loads)}–{max(loads)} while measuring",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        sp = argparse.ArgumentParser(prog="benchmarks.unbalanced serve")
        sp.add_argument("dir", type=Path)
        serve_patched(sp.parse_args(argv[1:]).dir)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=10**6, help="owner's keys (smoke: 20000)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--hits", type=int, default=8, help="owner keys among each query's 64")
    parser.add_argument("--sets", type=int, default=10, help="distinct 64-key sets, in turn")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--probe-sessions", type=int, default=21)
    parser.add_argument("--profile", action="store_true", help="one more pass under py-spy")
    parser.add_argument("--profile-queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render", action="store_true", help="only re-render .md/.png from --out's JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        write(args.out, json.loads((args.out / "unbalanced.json").read_text()))
        print((args.out / "unbalanced.md").read_text())
        return 0
    if not 0 <= args.hits <= SET_SIZE or args.keys < args.hits * args.sets:
        parser.error("need 0 <= --hits <= 64 and --keys >= --hits * --sets")
    if args.queries < 1 or args.warmup < 0 or args.probe_sessions < 2:
        parser.error("--queries >= 1, --warmup >= 0, --probe-sessions >= 2")
    result = run(args)
    write(args.out, result)
    print((args.out / "unbalanced.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
