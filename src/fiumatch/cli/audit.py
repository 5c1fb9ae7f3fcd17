"""``fiumatch audit``: export a node's audit log and check it offline.

* ``export``: fetch the bundle (entries, signed checkpoints with the peers' cosignatures,
  consistency proofs, the receipts the node holds) from the node's auditor API, streamed to a
  file, and next to it ``BUNDLE.meta.json``: the keys the node says it and its peers use (with
  fingerprints, to compare out of band) and the peers' checkpoints it cosigned;
* ``verify BUNDLE --key KEY``: offline, with only the pinned key. Signatures, roots recomputed
  from the entries, consistency between successive checkpoints, no gap in sequence numbers,
  times that never go backwards, every receipt the node holds (``--peer-key`` for each peer
  whose receipts it holds), every cosignature from a pinned peer;
* ``reconcile A B --key-a KEY --key-b KEY``: both bundles verified (each with the other's key,
  and against the checkpoints and receipts the other holds of it), then every exchange both
  nodes logged agrees on mode, counts and digests; lists what only one side logged;
* ``policy BUNDLE AGREEMENTS --key KEY``: budgets respected, refusals explained by the
  agreements, epochs rotated on schedule.

KEY is a C2SP verifier key (``FIU-DE/audit+1a2b3c4d+AW...``), a file holding one, or a
fingerprint (``SHA256:...``, as ``fiumatch node info`` prints it) of a key listed in the
bundle's ``.meta.json``: a key from the meta file is used only if its fingerprint is the one
given. A failure names the first bad entry, checkpoint, proof or receipt and what was
expected. Exit codes: 0 ok, 1 verification or policy failure, 2 usage (bad flags, unreadable
files or keys), 3 the node refused or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_PROBLEM, EXIT_REMOTE, EXIT_USAGE, add_connection

__all__ = ["register"]

META_SUFFIX = ".meta.json"


class UsageProblem(Exception):
    """A flag, file or key the command cannot use (exit 2)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="export the audit log; verify, reconcile and policy-check bundles offline",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")

    p = sub.add_parser(
        "export",
        help="download the node's audit bundle (and BUNDLE.meta.json)",
        description="Stream the audit bundle from the node's auditor API (role auditor) into "
        "OUT, and write OUT.meta.json with the keys and witnessed checkpoints. Exit 3 if the "
        "node refuses or cannot be reached.",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="bundle file to write")
    p.add_argument("--start", type=int, default=0, help="first entry (a checkpoint size)")
    p.add_argument(
        "--all-checkpoints",
        action="store_true",
        help="every checkpoint the node signed (default: one per checkpoint period and each "
        "peer's newest cosigned one)",
    )
    add_connection(p)
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "verify",
        help="verify a bundle offline against the node's pinned key",
        description="Verify BUNDLE offline. Exit 0 if it verifies, 1 naming the first bad "
        "entry/checkpoint/proof/receipt, 2 for unusable flags, files or keys.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--key", required=True, help="the node's pinned key (vkey, file, SHA256:...)")
    p.add_argument(
        "--peer-key",
        action="append",
        default=[],
        help="a peer's pinned key, to check the receipts held from it (repeatable)",
    )
    p.add_argument(
        "--known",
        action="append",
        default=[],
        type=Path,
        help="checkpoints of this log gathered elsewhere: a peer's .meta.json or a JSON list "
        "of notes (repeatable); a fork or a truncated bundle is caught",
    )
    p.add_argument("--meta", type=Path, help="meta file (default: BUNDLE.meta.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "reconcile",
        help="check that two nodes' bundles tell the same story",
        description="Verify bundles A and B, then compare every exchange both logged. Exit 0 "
        "if they agree, 1 naming the first disagreement or one-sided exchange.",
    )
    p.add_argument("a", type=Path, metavar="A")
    p.add_argument("b", type=Path, metavar="B")
    p.add_argument("--key-a", required=True, help="A's pinned key (vkey, file, SHA256:...)")
    p.add_argument("--key-b", required=True, help="B's pinned key (vkey, file, SHA256:...)")
    p.add_argument(
        "--peer-key",
        action="append",
        default=[],
        help="another peer's key, for receipts A or B hold from third nodes (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_reconcile)

    p = sub.add_parser(
        "policy",
        help="check a bundle against the agreements in force",
        description="Verify BUNDLE, then replay it against AGREEMENTS: a JSON list of "
        "agreements, either as the node lists them (GET /api/v1/agreements: id, peer_id, "
        "modes, purposes, identifier_types, budget_per_epoch, max_set_size, valid_from, "
        "valid_until in seconds) or with the policy's own names (agreement, peer, id_types, "
        "valid_from_ms, valid_until_ms, rotation_period_ms). Exit 1 naming the first entry "
        "that breaks a rule.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("agreements", type=Path, metavar="AGREEMENTS")
    p.add_argument("--key", required=True, help="the node's pinned key (vkey, file, SHA256:...)")
    p.add_argument("--peer-key", action="append", default=[], help="a peer's pinned key")
    p.add_argument(
        "--peer-agreements",
        action="append",
        default=[],
        metavar="NODE=FILE",
        help="the agreements peer NODE enforced, as NODE lists them: they govern the requests "
        "this node sent to NODE (repeatable)",
    )
    p.add_argument(
        "--rotation-seconds",
        type=int,
        default=86400,
        help="the longest a key epoch may last, where AGREEMENTS does not say (default 86400)",
    )
    p.add_argument("--meta", type=Path, help="meta file (default: BUNDLE.meta.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_policy)

    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


# --- export ----------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from fiumatch.client._cli import client_from
    from fiumatch.client.api import ApiError
    from fiumatch.client.audit import AuditClient
    from fiumatch.errors import FiumatchError

    out: Path = args.out
    partial = out.with_name(out.name + ".part")
    try:
        with client_from(args) as api:
            client = AuditClient.over(api)
            keys = client.keys()
            with partial.open("wb") as fh:
                size = client.export_to(fh, args.start, 0 if args.all_checkpoints else None)
            witness = client.witness()
    except ApiError as exc:
        partial.unlink(missing_ok=True)
        _err(f"refused ({exc.status} {exc.error_code}): {exc.reason}")
        return EXIT_REMOTE if exc.status in (0, 401, 403, 404, 502, 503) else EXIT_PROBLEM
    except FiumatchError as exc:
        _err(f"{exc.code}: {exc.reason}")
        return EXIT_USAGE
    except OSError as exc:
        partial.unlink(missing_ok=True)
        _err(f"error: {exc}")
        return EXIT_USAGE
    partial.replace(out)
    meta = {
        "node_id": keys["node_id"],
        "origin": keys["origin"],
        "log_key": keys["log_key"],
        "cosigner_key": keys["cosigner_key"],
        "fingerprint": keys["fingerprint"],
        "peers": keys["peers"],
        "witnessed": {
            origin: [w["note"] for w in notes] for origin, notes in witness["witnessed"].items()
        },
        "split_views": witness["split_views"],
    }
    meta_path = out.with_name(out.name + META_SUFFIX)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out} ({size} bytes) and {meta_path}")
    print(f"log key {keys['log_key']}")
    print(f"fingerprint {keys['fingerprint']}: compare it with the one obtained out of band")
    if witness["split_views"]:
        print(
            f"WARNING: the node holds {len(witness['split_views'])} split-view evidence record(s)"
        )
    return EXIT_OK


# --- keys and files ------------------------------------------------------------------------


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _load_meta(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"{path}: not a readable meta file ({exc})") from None
    return data if isinstance(data, dict) else {}


def _meta_keys(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(fingerprint, log vkey) of the node and its peers, as the meta file lists them."""
    out = []
    if meta.get("fingerprint") and meta.get("log_key"):
        out.append((str(meta["fingerprint"]), str(meta["log_key"])))
    for p in meta.get("peers", []) or []:
        if isinstance(p, dict) and p.get("fingerprint") and p.get("log_key"):
            out.append((str(p["fingerprint"]), str(p["log_key"])))
    return out


def resolve_key(spec: str, metas: Sequence[Mapping[str, Any]]) -> Any:
    """A pinned log key from a vkey, a file holding one, or a fingerprint of a meta file's key
    (accepted only if the key's own fingerprint is the one given)."""
    from fiumatch.auditlog.checkpoint import NoteVerifier
    from fiumatch.auditlog.errors import AuditLogError
    from fiumatch.node.keys import fingerprint

    text = spec.strip()
    if text.startswith("SHA256:"):
        for meta in metas:
            for fp, vkey in _meta_keys(meta):
                if fp == text:
                    verifier = _parse_vkey(vkey)
                    if fingerprint(verifier.public_key) != text:
                        raise UsageProblem("the meta file's key does not have that fingerprint")
                    return verifier
        raise UsageProblem(f"no key with fingerprint {text} in the meta file; pass the key")
    path = Path(text)
    if len(text) < 4096 and "+" not in text and path.is_file():
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        except OSError as exc:
            raise UsageProblem(f"{path}: {exc}") from None
        text = next((ln for ln in lines if ln), "")
    try:
        return NoteVerifier.from_vkey(text)
    except AuditLogError:
        raise UsageProblem(f"not a verifier key, key file or fingerprint: {spec[:80]}") from None


def _parse_vkey(vkey: str) -> Any:
    from fiumatch.auditlog.checkpoint import NoteVerifier
    from fiumatch.auditlog.errors import AuditLogError

    try:
        return NoteVerifier.from_vkey(vkey)
    except AuditLogError:
        raise UsageProblem("the meta file holds a malformed key") from None


def _cosigners(keys: Iterable[Any]) -> list[Any]:
    from fiumatch.auditlog.checkpoint import CosignatureVerifier
    from fiumatch.node.audit import node_of_origin

    return [CosignatureVerifier(node_of_origin(k.name), k.public_key) for k in keys]


def _read_bundle(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageProblem(f"{path}: {exc}") from None


def _known_notes(paths: Iterable[Path], origin: str) -> list[str]:
    notes: list[str] = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageProblem(f"{path}: not readable JSON ({exc})") from None
        if isinstance(data, dict):
            notes += [str(n) for n in (data.get("witnessed") or {}).get(origin, [])]
        elif isinstance(data, list):
            notes += [str(n) for n in data]
    return notes


def _origin_of(bundle: bytes) -> str:
    from fiumatch.auditlog.bundle import BundleHeader, iter_records

    for rec in iter_records(bundle):
        return BundleHeader.decode(rec.payload).origin
    return ""  # pragma: no cover - iter_records raises first


def _failure(exc: Any, what: str, as_json: bool) -> int:
    location = getattr(exc, "location", None) or "bundle"
    if as_json:
        print(
            json.dumps(
                {
                    "ok": False,
                    "bundle": what,
                    "code": exc.code,
                    "location": location,
                    "reason": exc.reason,
                    "expected": _plain(getattr(exc, "expected", None)),
                    "found": _plain(getattr(exc, "found", None)),
                },
                sort_keys=True,
            )
        )
    else:
        print(f"FAIL {what}: {location}: {exc.code}: {exc.reason}")
        expected, found = getattr(exc, "expected", None), getattr(exc, "found", None)
        if expected is not None:
            print(f"  expected: {_plain(expected)}")
        if found is not None:
            print(f"  found:    {_plain(found)}")
    return EXIT_PROBLEM


def _plain(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def _verified(
    path: Path,
    key: Any,
    peer_keys: Sequence[Any],
    *,
    known: Sequence[str] = (),
    issued: Sequence[Any] = (),
) -> tuple[bytes, Any]:
    from fiumatch.auditlog.verify import verify

    data = _read_bundle(path)
    report = verify(
        data,
        key,
        peer_keys=peer_keys,
        cosigners=_cosigners(peer_keys),
        known_checkpoints=known,
        issued_receipts=issued,
    )
    return data, report


def _report_dict(report: Any) -> dict[str, Any]:
    return {
        "origin": report.origin,
        "start": report.start,
        "size": report.size,
        "root": report.root.hex(),
        "checkpoints": report.checkpoints,
        "proofs": report.proofs,
        "receipts": report.receipts,
        "cosignatures": report.cosignatures,
        "known_checkpoints": report.known_checkpoints,
        "issued_receipts": report.issued_receipts,
        "first_time_ms": report.first_time_ms,
        "last_time_ms": report.last_time_ms,
    }


def _guard(func: Any) -> Any:
    """Map usage problems to exit 2 and verification failures to exit 1."""

    def run(args: argparse.Namespace) -> int:
        from fiumatch.auditlog.errors import AuditLogError

        try:
            code: int = func(args)
            return code
        except UsageProblem as exc:
            _err(f"usage: {exc}")
            return EXIT_USAGE
        except AuditLogError as exc:
            return _failure(
                exc,
                str(getattr(args, "bundle", None) or "bundle"),
                getattr(args, "json", False),
            )

    return run


# --- verify --------------------------------------------------------------------------------


@_guard
def _verify(args: argparse.Namespace) -> int:
    meta = _load_meta(args.meta or args.bundle.with_name(args.bundle.name + META_SUFFIX))
    key = resolve_key(args.key, [meta])
    peers = [resolve_key(k, [meta]) for k in args.peer_key]
    data = _read_bundle(args.bundle)
    known = _known_notes(args.known, _origin_of(data)) if args.known else []
    from fiumatch.auditlog.errors import VerificationError
    from fiumatch.auditlog.verify import verify

    try:
        report = verify(
            data, key, peer_keys=peers, cosigners=_cosigners(peers), known_checkpoints=known
        )
    except VerificationError as exc:
        return _failure(exc, str(args.bundle), args.json)
    if args.json:
        print(json.dumps({"ok": True, **_report_dict(report)}, sort_keys=True))
    else:
        print(
            f"OK {args.bundle}: {report.origin} entries [{report.start}, {report.size}), "
            f"root {report.root.hex()}; {report.checkpoints} checkpoints, {report.proofs} "
            f"consistency proofs, {report.receipts} held receipts, {report.cosignatures} "
            f"cosignatures, {len(known)} known checkpoints checked"
        )
    return EXIT_OK


# --- reconcile -----------------------------------------------------------------------------


@_guard
def _reconcile(args: argparse.Namespace) -> int:
    from fiumatch.auditlog.bundle import decode_bundle
    from fiumatch.auditlog.errors import VerificationError
    from fiumatch.auditlog.verify import reconcile
    from fiumatch.node.audit import node_of_origin

    meta_a = _load_meta(args.a.with_name(args.a.name + META_SUFFIX))
    meta_b = _load_meta(args.b.with_name(args.b.name + META_SUFFIX))
    metas = [meta_a, meta_b]
    key_a, key_b = resolve_key(args.key_a, metas), resolve_key(args.key_b, metas)
    others = [resolve_key(k, metas) for k in args.peer_key]
    data_a, data_b = _read_bundle(args.a), _read_bundle(args.b)
    try:
        bundle_a = decode_bundle(data_a)
    except VerificationError as exc:
        return _failure(exc, str(args.a), args.json)
    try:
        bundle_b = decode_bundle(data_b)
    except VerificationError as exc:
        return _failure(exc, str(args.b), args.json)
    # Each side is checked against what the other holds of it: its cosigned checkpoints and
    # the receipts it issued.
    from_b = [h.receipt for h in bundle_b.receipts if _origin(h.receipt) == key_a.name]
    from_a = [h.receipt for h in bundle_a.receipts if _origin(h.receipt) == key_b.name]
    known_a = _known_from(meta_b, key_a.name)
    known_b = _known_from(meta_a, key_b.name)
    for path, key, peer, known, issued in (
        (args.a, key_a, key_b, known_a, from_b),
        (args.b, key_b, key_a, known_b, from_a),
    ):
        try:
            _verified(path, key, [peer, *others], known=known, issued=issued)
        except VerificationError as exc:
            return _failure(exc, str(path), args.json)
    report = reconcile(
        bundle_a, bundle_b, a_name=node_of_origin(key_a.name), b_name=node_of_origin(key_b.name)
    )
    if args.json:
        print(json.dumps(_reconcile_dict(report), sort_keys=True, default=str))
    else:
        print(
            f"{'OK' if report.ok else 'DISAGREE'}: {report.matched} exchanges logged by both, "
            f"{report.receipts_checked} receipts checked, {len(report.disagreements)} "
            f"disagreements, {len(report.only_in_a)} only in A, {len(report.only_in_b)} only "
            f"in B"
        )
        for d in report.disagreements:
            print(
                f"  {d.location_a} / {d.location_b} ({d.event}, session {d.session}): "
                f"{d.field}: A={d.a} B={d.b}"
            )
        for one in (*report.only_in_a, *report.only_in_b):
            print(
                f"  only in {one.side.upper()}: {one.location} ({one.event}, session {one.session})"
            )
    if report.ok:
        return EXIT_OK
    try:
        report.raise_first()
    except VerificationError as exc:
        if not args.json:
            print(f"first: {exc.location}: {exc.code}: {exc.reason}")
    return EXIT_PROBLEM


def _origin(receipt: Any) -> str | None:
    from fiumatch.auditlog.errors import AuditLogError

    try:
        return str(receipt.origin())
    except AuditLogError:
        return None


def _known_from(meta: Mapping[str, Any], origin: str) -> list[str]:
    return [str(n) for n in (meta.get("witnessed") or {}).get(origin, [])]


def _reconcile_dict(report: Any) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "matched": report.matched,
        "receipts_checked": report.receipts_checked,
        "disagreements": [
            {
                "a": d.location_a,
                "b": d.location_b,
                "session": d.session,
                "event": d.event,
                "field": d.field,
                "value_a": d.a,
                "value_b": d.b,
            }
            for d in report.disagreements
        ],
        "only_in_a": [
            {"location": o.location, "event": o.event, "session": o.session}
            for o in report.only_in_a
        ],
        "only_in_b": [
            {"location": o.location, "event": o.event, "session": o.session}
            for o in report.only_in_b
        ],
    }


# --- policy --------------------------------------------------------------------------------


def load_agreements(path: Path, rotation_seconds: int, peer: str | None = None) -> list[Any]:
    """Agreement policies from a JSON file (the node's agreement list or policy names).

    ``peer``: the file is another node's list (``peer`` enforced these agreements on requests
    this node sent), so each applies to exchanges with ``peer``."""
    from fiumatch.auditlog.verify import AgreementPolicy

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"{path}: not readable JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("agreements", [])
    if not isinstance(data, list):
        raise UsageProblem(f"{path}: expected a JSON list of agreements")
    out = []
    for i, a in enumerate(data):
        if not isinstance(a, dict):
            raise UsageProblem(f"{path}: agreement {i} is not an object")
        try:
            other = peer or str(a.get("peer", a.get("peer_id")))
            since = int(a.get("valid_from_ms", int(a.get("valid_from", 0)) * 1000))
            until = int(a.get("valid_until_ms", int(a.get("valid_until", 0)) * 1000))
            policy = AgreementPolicy(
                agreement=str(a.get("agreement", a.get("id"))),
                peer=other,
                modes=frozenset(a["modes"]),
                purposes=frozenset(a["purposes"]),
                id_types=frozenset(a.get("id_types") or a.get("identifier_types") or []),
                budget_per_epoch=int(a["budget_per_epoch"]),
                max_set_size=int(a["max_set_size"]),
                valid_from_ms=since,
                valid_until_ms=until,
                rotation_period_ms=int(a.get("rotation_period_ms", rotation_seconds * 1000)),
            )
            out.append(policy)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageProblem(f"{path}: agreement {i} lacks or mistypes {exc}") from None
    return out


@_guard
def _policy(args: argparse.Namespace) -> int:
    from fiumatch.auditlog.bundle import decode_bundle
    from fiumatch.auditlog.errors import VerificationError
    from fiumatch.auditlog.verify import check_policy

    meta = _load_meta(args.meta or args.bundle.with_name(args.bundle.name + META_SUFFIX))
    key = resolve_key(args.key, [meta])
    peers = [resolve_key(k, [meta]) for k in args.peer_key]
    agreements = load_agreements(args.agreements, args.rotation_seconds)
    for spec in args.peer_agreements:
        node, sep, file = spec.partition("=")
        if not sep or not node or not file:
            raise UsageProblem(f"--peer-agreements takes NODE=FILE, not {spec!r}")
        agreements += load_agreements(Path(file), args.rotation_seconds, peer=node)
    try:
        data, _ = _verified(args.bundle, key, peers)
        report = check_policy(decode_bundle(data), agreements)
    except VerificationError as exc:
        return _failure(exc, str(args.bundle), args.json)
    except ValueError as exc:  # an agreement given twice
        raise UsageProblem(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "entries": report.entries,
                    "requests": report.requests,
                    "refusals": report.refusals,
                    "rotations": report.rotations,
                },
                sort_keys=True,
            )
        )
    else:
        print(
            f"OK {args.bundle}: {report.entries} entries, {report.requests} requests, "
            f"{report.refusals} refusals, {report.rotations} rotations within "
            f"{len(agreements)} agreements"
        )
    return EXIT_OK
