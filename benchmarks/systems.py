"""The PSI systems the harness compares, each behind one small interface.

A :class:`System` runs one balanced PSI between an owner set and a querier set and reports an
:class:`Outcome`: wall time, bytes in each direction, the intersection size it found, and the
group operations it needed (``None`` for systems whose internals are not ours). Every system
gets the same sets in the same run (``run.py`` interleaves them per repeat).

* ``openmined-gcs`` / ``openmined-raw``: OpenMined's ECDH PSI (``openmined-psi``) in process,
  single-threaded, reveal-intersection, fpr 1e-9; bytes are the protobuf messages' sizes.
* ``fiumatch-<mode>``: fiumatch's state machines in process through ``psi.pump`` (every frame
  encoded, decoded and checked as over a transport), the crypto on a process pool (or one core
  for the ``-1core`` variant, run up to 2^16: it is there for the speed-up, not the ladder).
  Filter mode includes the owner's precomputation (encoding its set
  and building the filter), which a node does once per epoch.
* ``fiumatch-http-<mode>``: two real node processes on loopback (TLS, signed frames, audit),
  one query through the analyst API — see :class:`HttpSystem`.

Adding a system: implement ``name``, ``family``, ``mode``, ``available()``, ``run()``,
``operations()`` and ``close()``, and list it in ``make_systems``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from fiumatch.engine import SerialExecutor, build_epoch_ledger
from fiumatch.engine.executors import StreamingExecutor
from fiumatch.protocol import keys, psi
from fiumatch.protocol.wire import Limits, Suite

FP_RATE = 1e-9
"""False-positive rate of every filter (fiumatch Bloom, OpenMined GCS), as the issue asks."""
CHUNK = Limits().chunk_elements


@dataclass
class Outcome:
    seconds: float
    bytes_q2o: int
    bytes_o2q: int
    found: int
    phases: dict[str, float] = field(default_factory=dict)
    node_peak_rss: int | None = None
    """HTTP runs: the larger of the two server processes' peak RSS (VmHWM), in bytes."""
    worker_peak_rss: int | None = None
    """HTTP runs: the largest peak RSS of any compute-pool worker of either node, in bytes."""
    node_cpu_seconds: float | None = None
    """HTTP runs: CPU seconds of both nodes and their workers during the timed part."""


@dataclass(frozen=True)
class Operations:
    """Group operations one run needs: hash-to-group and variable-base scalar multiplications."""

    hash_to_group: int
    scalar_mult: int

    def seconds(self, unit: dict[str, float]) -> float:
        return self.hash_to_group * unit["hash_to_group"] + self.scalar_mult * unit["scalar_mult"]


class System(Protocol):
    name: str
    family: str
    mode: str

    def available(self) -> str | None:
        """``None`` if the system can run here, else why not."""
        ...

    def run(self, owner: list[bytes], querier: list[bytes]) -> Outcome: ...

    def operations(self, n_owner: int, n_querier: int) -> Operations | None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# OpenMined


class OpenMined:
    family = "openmined"
    mode = "intersection"

    def __init__(self, structure: str) -> None:
        self.structure = structure
        self.name = f"openmined-{structure.lower()}"

    def available(self) -> str | None:
        try:
            import private_set_intersection.python  # noqa: F401
        except ImportError:
            return "openmined-psi is not installed"
        return None

    def run(self, owner: list[bytes], querier: list[bytes]) -> Outcome:
        from private_set_intersection.python import DataStructure, client, server

        ds = getattr(DataStructure, self.structure)
        start = time.perf_counter()
        c = client.CreateWithNewKey(True)
        s = server.CreateWithNewKey(True)
        setup = s.CreateSetupMessage(FP_RATE, len(querier), owner, ds)
        t_setup = time.perf_counter()
        request = c.CreateRequest(querier)
        response = s.ProcessRequest(request)
        found = c.GetIntersection(setup, response)
        end = time.perf_counter()
        return Outcome(
            seconds=end - start,
            bytes_q2o=request.ByteSize(),
            bytes_o2q=setup.ByteSize() + response.ByteSize(),
            found=len(found),
            phases={"owner_setup": t_setup - start, "session": end - t_setup},
        )

    def operations(self, n_owner: int, n_querier: int) -> Operations | None:
        return None  # P-256 in C++ (BoringSSL): not our unit costs

    def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# fiumatch in process


def fiumatch_operations(mode: str, n_owner: int, n_querier: int, *, proofs: bool) -> Operations:
    """Hash-to-group and variable-base multiplications of one balanced session (SPEC §8).

    filter: owner precompute ``H + mult`` per key; querier blind ``H + mult``; owner evaluate
    ``mult``; querier finalize ``mult``. VOPRF proofs add one multiplication per element for the
    prover's composite and two for the verifier's (plus a few per chunk). mutual: querier
    ``H + mult``, owner evaluate + prove ``2 mult``, querier verify ``2 mult``, owner SET
    ``H + mult``, querier SET ``mult``. cardinality: querier ``H + mult``, owner ``mult``,
    querier unblind ``mult``, owner SET ``H + mult``.
    """
    chunks = -(-n_querier // CHUNK)
    h2g = n_owner + n_querier
    if mode == "filter":
        mult = n_owner + 3 * n_querier
        if proofs:
            mult += 3 * n_querier + 5 * chunks
    elif mode == "mutual":
        mult = 5 * n_querier + 2 * n_owner + 5 * chunks
    elif mode == "cardinality":
        mult = 3 * n_querier + n_owner
    else:
        raise ValueError(mode)
    return Operations(hash_to_group=h2g, scalar_mult=mult)


class FiumatchInProcess:
    family = "fiumatch"

    def __init__(
        self,
        mode: str,
        executor: StreamingExecutor,
        *,
        proofs: bool = False,
        label: str = "",
        max_n: int | None = None,
    ) -> None:
        if max_n is not None:
            self.max_n = max_n  # larger sets are skipped (the ladder reads it)
        self.mode = mode
        self.proofs = proofs
        self.executor = executor
        suffix = "-voprf" if proofs and mode == "filter" else ""
        self.name = f"fiumatch-{mode}{suffix}{label}"

    def available(self) -> str | None:
        return None

    @property
    def workers(self) -> int:
        return self.executor.workers

    def run(self, owner: list[bytes], querier: list[bytes]) -> Outcome:
        ex, rng = self.executor, os.urandom
        start = time.perf_counter()
        if self.mode == "filter":
            suite = (
                Suite.VOPRF_RISTRETTO255_SHA512 if self.proofs else Suite.OPRF_RISTRETTO255_SHA512
            )
            key_pair = keys.derive_epoch_key(rng(32), "bench-peer", 1)
            ledger = build_epoch_ledger(key_pair, owner, ex, suite=suite, epoch=1, fp_rate=FP_RATE)
            t_pre = time.perf_counter()
            run: Any = psi.run_filter(
                owner,
                querier,
                rng=rng,
                key_pair=key_pair,
                ledger=ledger,
                suite=suite,
                fp_rate=FP_RATE,
                executor=ex,
            )
            found = len(run.querier.hits)
        else:
            t_pre = start
            runner = psi.run_mutual if self.mode == "mutual" else psi.run_cardinality
            run = runner(owner, querier, rng=rng, executor=ex)
            found = run.querier.count
        end = time.perf_counter()
        return Outcome(
            seconds=end - start,
            bytes_q2o=run.traffic.bytes_q2o,
            bytes_o2q=run.traffic.bytes_o2q,
            found=found,
            phases={"owner_precompute": t_pre - start, "session": end - t_pre},
        )

    def operations(self, n_owner: int, n_querier: int) -> Operations | None:
        return fiumatch_operations(self.mode, n_owner, n_querier, proofs=self.proofs)

    def close(self) -> None:
        return None  # the executor belongs to whoever made it (make_systems' caller)


# ---------------------------------------------------------------------------------------------
# fiumatch over HTTP between two node processes (plug-in point)


class HttpSystem:
    """Two real nodes (uvicorn processes, TLS on loopback) and one query through the analyst
    API: every frame signed (RFC 9421), every exchange audited, as in production.

    Setup, not timed: two fresh node directories, one stored subject per key (type ``iban``,
    inserted straight into each store: ingest is measured elsewhere), both nodes started,
    peers pinned and agreements recorded (``fiumatch.demo.run``). Timed: the owner's epoch
    rotation (its precomputation, for filter mode, as the in-process run includes it) and the
    query from ``create_query`` until it is done. Bytes are not observable here (TLS, inside
    the nodes) and are reported as the in-process run's frames.
    """

    family = "fiumatch-http"

    def __init__(self, mode: str, *, proofs: bool = False) -> None:
        self.mode = mode
        self.proofs = proofs
        self.name = f"fiumatch-http-{mode}" + ("-voprf" if proofs and mode == "filter" else "")

    def available(self) -> str | None:
        try:
            from fiumatch.demo.run import connect, make_node, wait_query  # noqa: F401
            from fiumatch.node.runner import NodeProcess  # noqa: F401
        except ImportError as e:
            return f"the node is not importable: {e}"
        return None

    def run(self, owner: list[bytes], querier: list[bytes]) -> Outcome:
        import tempfile
        from datetime import date, timedelta
        from pathlib import Path

        from fiumatch.client.api import ApiClient
        from fiumatch.demo.run import connect, make_node, wait_query
        from fiumatch.identifiers import KeyType
        from fiumatch.store import Subject
        from fiumatch.store.subjects import MatchKey

        iban = KeyType("iban").code
        until = date.today() + timedelta(days=365)

        def load(node: Any, keys_: list[bytes]) -> None:
            def items() -> Any:
                for i, key in enumerate(keys_):
                    sid = hashlib.sha256(b"bench-subject" + key).hexdigest()[:32]
                    yield (
                        Subject(
                            id=sid,
                            local_ref=f"bench-{i}",
                            subject_type="person",
                            retain_until=until,
                            source="bench",
                            source_record=str(i),
                        ),
                        [MatchKey(subject_id=sid, key_type=iban, key=key, strength=200)],
                    )

            with node.dir.open_store() as store:
                store.subjects.upsert_many(items(), now=int(time.time()))

        n = max(len(owner), len(querier))
        with tempfile.TemporaryDirectory(prefix="fiumatch-bench-") as tmp:
            root = Path(tmp)
            q_node = make_node(root, "FIU-Q", scrypt_log2_n=10)
            o_node = make_node(root, "FIU-O", scrypt_log2_n=10)
            nodes = [q_node, o_node]
            try:
                # The node's own per-session ceiling (sessions.max_set_size, 10^6 by default)
                # must admit the run's set; the server processes inherit this environment.
                os.environ[MAX_SET_ENV] = str(max(2 * n + 10, 1_000_000))
                for node in nodes:
                    node.process.start(timeout=60)
                # Agreements first, on empty stores: adding one re-encodes the served set in the
                # request, which at 2^20 keys outlasts the API client's timeout. The keys are
                # then stored straight into the running nodes' databases (WAL: safe).
                connect(nodes, budget=4 * n + 10, max_set=2 * n + 10, proofs=self.proofs)
                load(q_node, querier)
                load(o_node, owner)
                servers = [_server(node) for node in nodes]
                cpu0 = _tree_cpu(servers)
                start = time.perf_counter()
                with ApiClient(
                    o_node.url, o_node.admin, cacert=o_node.dir.settings.tls_cert, timeout=3600
                ) as c:
                    c.rotate(peer="FIU-Q", wait=True)
                t_pre = time.perf_counter()
                with q_node.client("analyst") as c:
                    q = c.create_query(
                        purpose="money_laundering",
                        legal_basis="benchmark",
                        case_ref="BENCH-1",
                        mode=self.mode,
                        all_subjects=True,
                        peers=["FIU-O"],
                    )
                    q = wait_query(c, q, timeout=3600)
                end = time.perf_counter()
                cpu = _tree_cpu(servers) - cpu0
                node_rss = max(_hwm(p) for p in servers)
                worker_rss = max(
                    (_hwm(c) for p in servers for c in p.children(recursive=True)), default=0
                )
            finally:
                os.environ.pop(MAX_SET_ENV, None)
                for node in nodes:
                    node.process.stop()
        if q.get("status") != "done":
            raise RuntimeError(f"{self.name}: query ended {q.get('status')}: {q}")
        found = _http_found(q, self.mode)
        return Outcome(
            seconds=end - start,
            bytes_q2o=0,
            bytes_o2q=0,
            found=found,
            phases={"owner_precompute": t_pre - start, "session": end - t_pre},
            node_peak_rss=node_rss,
            worker_peak_rss=worker_rss,
            node_cpu_seconds=cpu,
        )

    def operations(self, n_owner: int, n_querier: int) -> Operations | None:
        proofs = self.mode == "mutual" or (self.mode == "filter" and self.proofs)
        return fiumatch_operations(self.mode, n_owner, n_querier, proofs=proofs)

    def close(self) -> None:
        return None


def _server(node: Any) -> Any:
    import psutil  # type: ignore[import-untyped]

    assert node.process.proc is not None
    return psutil.Process(node.process.proc.pid)


def _tree_cpu(servers: list[Any]) -> float:
    """CPU seconds (user + system) of the server processes and all their descendants."""
    total = 0.0
    for p in servers:
        for q in [p, *p.children(recursive=True)]:
            try:
                t = q.cpu_times()
            except Exception:
                continue
            total += t.user + t.system
    return total


def _hwm(proc: Any) -> int:
    """A process's peak resident set (VmHWM), in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


MAX_SET_ENV = "FIUMATCH_SESSIONS_MAX_SET_SIZE"


def _http_found(query: dict[str, Any], mode: str) -> int:
    """The intersection size a finished query reports: the peer's ``hit_count`` (filter,
    mutual), or the count in its ``reason`` (cardinality returns no hits, only a count)."""
    import re

    (peer,) = query["peers"]
    if peer.get("status") != "ok":
        raise RuntimeError(f"the peer's part ended {peer.get('status')}: {peer.get('reason')}")
    if mode != "cardinality":
        return int(peer["hit_count"])
    m = re.search(r"(\d+) keys in common", str(peer.get("reason", "")))
    if m is None:
        raise RuntimeError("cardinality query reports no count")
    return int(m.group(1))


ALL_SYSTEMS = (
    "openmined-gcs",
    "openmined-raw",
    "fiumatch-filter",
    "fiumatch-filter-1core",
    "fiumatch-filter-voprf",
    "fiumatch-mutual",
    "fiumatch-cardinality",
    "fiumatch-http-filter",
    "fiumatch-http-filter-voprf",
    "fiumatch-http-mutual",
    "fiumatch-http-cardinality",
)


def make_systems(pool: StreamingExecutor, names: list[str] | None = None) -> list[System]:
    """Every system (or those named), the fiumatch ones on ``pool`` (one shared process pool,
    closed by the caller) except ``-1core`` (serial, in this process)."""
    systems: list[System] = [
        OpenMined("GCS"),
        OpenMined("RAW"),
        FiumatchInProcess("filter", pool),
        FiumatchInProcess("filter", SerialExecutor(), label="-1core", max_n=1 << 16),
        FiumatchInProcess("filter", pool, proofs=True),
        FiumatchInProcess("mutual", pool, proofs=True),
        FiumatchInProcess("cardinality", pool),
        HttpSystem("filter"),
        HttpSystem("filter", proofs=True),
        HttpSystem("mutual"),
        HttpSystem("cardinality"),
    ]
    assert tuple(s.name for s in systems) == ALL_SYSTEMS
    if names:
        unknown = set(names) - {s.name for s in systems}
        if unknown:
            raise SystemExit(f"unknown systems: {sorted(unknown)}")
        systems = [s for s in systems if s.name in names]
    return systems
