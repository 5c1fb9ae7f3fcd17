"""The audit log across real node processes: after a full three-node exchange (every mode, a
disclosure) each node's bundle exports through the auditor API, verifies offline with only
pinned keys, holds no identifier, hit token or OPRF output of the run; nodes that talked
reconcile, a node that rewrote its log is caught with the place named; each node holds its
checkpoints cosigned by its peers, and a split view is evidence on its own."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fiumatch import synth
from fiumatch.auditlog import (
    Checkpoint,
    CosignatureVerifier,
    DictNodeStore,
    HeldReceipt,
    MerkleTree,
    NoteSigner,
    NoteVerifier,
    check_split_view,
    decode_bundle,
    encode_entry,
    entry_from_dict,
    entry_to_dict,
    export_bundle,
    open_cosignatures,
    reconcile,
    sign_checkpoint,
    verify,
)
from fiumatch.auditlog.checkpoint import peek_checkpoint
from fiumatch.auditlog.errors import ForkError, SplitViewError
from fiumatch.cli.main import main
from fiumatch.client.audit import AuditClient
from fiumatch.demo.run import DemoNode, connect, make_node, wait_query
from fiumatch.node.audit import cosigner_verifier, log_verifier
from fiumatch.node.directory import open_node_dir

pytestmark = pytest.mark.slow

NODES = (("FIU-DE", "DE"), ("FIU-FR", "FR"), ("FIU-LV", "RU"))
IDENTIFIER_COLUMNS = (
    "name",
    "given_name",
    "middle_name",
    "family_name",
    "aliases",
    "registration_number",
    "lei",
    "iban",
    "bic",
    "account_number",
    "passport_number",
    "national_id",
    "tax_id",
    "phone",
    "email",
    "wallet_address",
)


@dataclass
class Run:
    nodes: dict[str, DemoNode]
    data: Path
    out: Path
    hit_tokens: list[str]

    def bundle(self, node_id: str) -> Path:
        return self.out / f"{node_id}.fiuaudit"

    def key(self, node_id: str) -> NoteVerifier:
        pub = open_node_dir(self.nodes[node_id].root).keys().public_key_raw
        return log_verifier(node_id, pub)

    def cosigner(self, node_id: str) -> CosignatureVerifier:
        pub = open_node_dir(self.nodes[node_id].root).keys().public_key_raw
        return cosigner_verifier(node_id, pub)


def _query(node: DemoNode, mode: str, peers: list[str], case: str) -> dict[str, Any]:
    with node.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref=case,
            mode=mode,
            all_subjects=True,
            peers=peers,
        )
        done = wait_query(c, q, timeout=60)
    assert done["status"] == "done", done
    return done


def _export(node: DemoNode, path: Path) -> int:
    return main(
        [
            "audit",
            "export",
            "-o",
            str(path),
            "--url",
            node.url,
            "--token",
            node.auditor,
            "--cacert",
            str(node.dir.settings.tls_cert),
        ]
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("audit")
    ds = synth.generate([j for _, j in NODES], subjects=14, overlap=0.4, seed=5)
    synth.write(ds, root / "data", formats=("csv",))
    nodes = {
        nid: make_node(root, nid, root / "data" / f"{j}.csv", "csv", scrypt_log2_n=10)
        for nid, j in NODES
    }
    try:
        for n in nodes.values():
            n.process.start()
        connect(list(nodes.values()))
        de, fr, lv = nodes["FIU-DE"], nodes["FIU-FR"], nodes["FIU-LV"]
        filt = _query(de, "filter", [], "CASE-A1")
        mutual = _query(fr, "mutual", ["FIU-DE"], "CASE-B2")
        _query(lv, "cardinality", [], "CASE-C3")
        hits = [h for h in filt["hits"] if h["peer"] == "FIU-FR"]
        assert hits, "the synthetic data must give DE at least one hit at FR"
        with de.client("analyst") as c:
            asked = c.request_disclosure(
                hit_id=hits[0]["id"],
                purpose="money_laundering",
                case_ref="CASE-A1",
                legal_basis="AMLD art. 53",
            )
        with fr.client("supervisor") as c:
            c.decide_disclosure(asked["id"], approve=True, reason="within the MoU")
        with de.client("analyst") as c:
            c.refresh_disclosure(asked["id"])
        tokens = [h["hit_token"] for q in (filt, mutual) for h in q["hits"] if h.get("hit_token")]
        out = root / "bundles"
        out.mkdir()
        r = Run(nodes, root / "data", out, tokens)
        for nid, n in nodes.items():
            assert _export(n, r.bundle(nid)) == 0
        yield r
    finally:
        for n in nodes.values():
            n.process.stop()


def _fingerprint(run: Run, node_id: str) -> str:
    return str(open_node_dir(run.nodes[node_id].root).keys().fingerprint)


def test_every_bundle_verifies_offline_with_only_the_pinned_keys(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    for nid in run.nodes:
        others = [o for o in run.nodes if o != nid]
        args = ["audit", "verify", str(run.bundle(nid)), "--key", _fingerprint(run, nid)]
        for o in others:
            args += ["--peer-key", _fingerprint(run, o)]
        assert main([*args, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] and report["size"] > 5 and report["checkpoints"] >= 1
        assert report["cosignatures"] >= 1  # its peers cosigned its checkpoints
        if nid in ("FIU-DE", "FIU-FR", "FIU-LV"):
            assert report["receipts"] >= 1  # every node asked someone something
    # a key given as a verifier key string works as well; a wrong key is a failure (exit 1)
    vkey = run.key("FIU-DE").vkey()
    peer_args = ["--peer-key", run.key("FIU-FR").vkey(), "--peer-key", run.key("FIU-LV").vkey()]
    assert main(["audit", "verify", str(run.bundle("FIU-DE")), "--key", vkey, *peer_args]) == 0
    wrong = log_verifier("FIU-DE", open_node_dir(run.nodes["FIU-FR"].root).keys().public_key_raw)
    assert main(["audit", "verify", str(run.bundle("FIU-DE")), "--key", wrong.vkey()]) == 1
    assert "checkpoint 0" in capsys.readouterr().out
    # usage problems exit 2: an unknown fingerprint, a missing bundle
    assert main(["audit", "verify", str(run.bundle("FIU-DE")), "--key", "SHA256:nope"]) == 2
    assert main(["audit", "verify", str(run.out / "missing"), "--key", vkey]) == 2


def _identifiers(data: Path) -> set[str]:
    values: set[str] = set()
    for path in data.glob("*.csv"):
        if path.name == "ground_truth.csv":
            continue
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for col in IDENTIFIER_COLUMNS:
                    for v in re.split(r"[;|]", row.get(col) or ""):
                        v = v.strip()
                        if len(v) >= 4:
                            values.add(v)
                            digits = re.sub(r"\D", "", v)
                            if len(digits) >= 8:
                                values.add(digits)
                            compact = re.sub(r"\s", "", v)
                            if len(compact) >= 8:
                                values.add(compact)
    return values


def test_no_entry_holds_an_identifier_a_hit_token_or_an_oprf_output(run: Run) -> None:
    identifiers = _identifiers(run.data)
    assert len(identifiers) > 40  # names, IBANs, passports, e-mails, phones of the run
    assert run.hit_tokens
    for nid in run.nodes:
        raw = run.bundle(nid).read_bytes()
        bundle = decode_bundle(raw)
        text = json.dumps([entry_to_dict(e) for e in bundle.entries], ensure_ascii=False)
        for value in identifiers:
            assert value not in text, f"{nid}: an identifier is in an audit entry"
            assert value.encode("utf-8") not in raw, f"{nid}: an identifier is in the bundle"
        for token in run.hit_tokens:
            core = bytes.fromhex(token)
            for piece in (core, core[:32], core[-32:]):
                assert piece not in raw, f"{nid}: a hit token / OPRF output is in the bundle"
            assert token not in text and token[:64] not in text


def test_nodes_that_talked_reconcile(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    for a, b in (("FIU-DE", "FIU-FR"), ("FIU-FR", "FIU-DE"), ("FIU-DE", "FIU-LV")):
        third = next(n for n in run.nodes if n not in (a, b))
        code = main(
            [
                "audit",
                "reconcile",
                str(run.bundle(a)),
                str(run.bundle(b)),
                "--key-a",
                _fingerprint(run, a),
                "--key-b",
                _fingerprint(run, b),
                "--peer-key",
                _fingerprint(run, third),
                "--json",
            ]
        )
        report = json.loads(capsys.readouterr().out)
        assert code == 0, report
        assert report["ok"] and report["matched"] >= 2 and report["receipts_checked"] >= 2
    bundle_de = decode_bundle(run.bundle("FIU-DE").read_bytes())
    events = {(e.event.name, e.direction.value) for e in bundle_de.entries if e.direction}
    assert {
        ("SESSION_OPENED", "out"),
        ("EVALUATION", "out"),
        ("SESSION_OPENED", "in"),
        ("DISCLOSURE_REQUESTED", "out"),
    } <= events


def _rewrite(bundle: bytes, key: NoteSigner, change: dict[str, Any]) -> tuple[bytes, int]:
    """The dishonest node: change its first incoming evaluation and re-sign a consistent
    history (same checkpoint sizes, its receipts kept). Returns the bundle and the index."""
    decoded = decode_bundle(bundle)
    entries = list(decoded.entries)
    at = next(
        i
        for i, e in enumerate(entries)
        if e.event.name == "EVALUATION" and e.direction and e.direction.value == "in"
    )
    d = entry_to_dict(entries[at])
    d.update(change)
    entries[at] = entry_from_dict(d)
    store = DictNodeStore()
    tree = MerkleTree(store)
    sizes = [peek_checkpoint(n).size for n in decoded.checkpoints]
    notes = []
    for i, e in enumerate(entries):
        tree.append(encode_entry(e))
        if i + 1 in sizes:
            notes.append(sign_checkpoint(Checkpoint(key.name, i + 1, tree.root()), key))
    data = b"".join(
        export_bundle(
            origin=key.name,
            entries=[encode_entry(e) for e in entries],
            checkpoints=notes,
            get_node=store.get_node,
            receipts=[HeldReceipt(h.entry_index, h.receipt) for h in decoded.receipts],
        )
    )
    return data, at


def test_a_node_that_rewrote_its_log_is_caught_and_the_place_named(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    fr_keys = open_node_dir(run.nodes["FIU-FR"].root).keys()
    signer = NoteSigner("FIU-FR/audit", fr_keys.identity)
    original = run.bundle("FIU-FR").read_bytes()
    count = decode_bundle(original).entries
    forged, at = _rewrite(original, signer, {"count_in": 999_999, "count_out": 999_999})
    assert count
    forged_path = run.out / "FIU-FR.forged.fiuaudit"
    forged_path.write_bytes(forged)
    # On its own, the rewritten log verifies: it is signed with the node's own key ...
    peers = [run.key("FIU-DE"), run.key("FIU-LV")]
    assert verify(forged, run.key("FIU-FR"), peer_keys=peers).size == len(count)
    # ... but the checkpoints FR's peers cosigned and the receipts they hold expose it,
    de = decode_bundle(run.bundle("FIU-DE").read_bytes())
    issued = [h.receipt for h in de.receipts if h.receipt.origin() == "FIU-FR/audit"]
    assert issued
    with pytest.raises(ForkError) as info:
        verify(forged, run.key("FIU-FR"), peer_keys=peers, issued_receipts=issued)
    assert info.value.location.startswith("issued receipt")
    # and the comparison of the two stories names both entries and the field.
    report = reconcile(de, decode_bundle(forged), a_name="FIU-DE", b_name="FIU-FR")
    assert not report.ok
    first = report.disagreements[0]
    assert first.location_b == f"b entry {at}" and first.field.startswith("count")
    assert first.location_a.startswith("a entry ")
    # The CLI runs the same checks and says where (exit 1).
    (run.out / "FIU-FR.forged.fiuaudit.meta.json").write_text(
        (run.out / "FIU-FR.fiuaudit.meta.json").read_text()
    )
    code = main(
        [
            "audit",
            "reconcile",
            str(run.bundle("FIU-DE")),
            str(forged_path),
            "--key-a",
            _fingerprint(run, "FIU-DE"),
            "--key-b",
            _fingerprint(run, "FIU-FR"),
            "--peer-key",
            _fingerprint(run, "FIU-LV"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "audit_fork_detected" in out and "FIU-FR.forged" in out


def test_each_node_holds_its_checkpoints_cosigned_by_the_peers_it_talked_to(run: Run) -> None:
    talked = {"FIU-DE": {"FIU-FR", "FIU-LV"}, "FIU-FR": {"FIU-DE"}, "FIU-LV": {"FIU-DE"}}
    for nid, peers in talked.items():
        bundle = decode_bundle(run.bundle(nid).read_bytes())
        cosigned_by: set[str] = set()
        for note in bundle.checkpoints:
            cosigned_by |= {
                c.name
                for c in open_cosignatures(note, [run.cosigner(p) for p in run.nodes if p != nid])
            }
        assert peers <= cosigned_by, (nid, cosigned_by)
        with run.nodes[nid].client("auditor") as api:
            witness = AuditClient.over(api).witness()
        assert not witness["split_views"]
        for p in peers:
            notes = witness["witnessed"].get(f"{p}/audit")
            assert notes, (nid, p)
            latest = notes[-1]["note"]
            assert open_cosignatures(latest, [run.cosigner(nid)])  # we cosigned what we saw


def test_a_split_view_is_detected(run: Run) -> None:
    with run.nodes["FIU-DE"].client("auditor") as api:
        witnessed = AuditClient.over(api).witness()["witnessed"]["FIU-FR/audit"][-1]["note"]
    cp = peek_checkpoint(witnessed)
    fr = open_node_dir(run.nodes["FIU-FR"].root).keys()
    other = sign_checkpoint(
        Checkpoint("FIU-FR/audit", cp.size, bytes(32)), NoteSigner("FIU-FR/audit", fr.identity)
    )
    with pytest.raises(SplitViewError) as info:
        check_split_view(witnessed, other, run.key("FIU-FR"))
    assert info.value.details["evidence"] == "same_size_different_root"
    check_split_view(witnessed, witnessed, run.key("FIU-FR"))  # one view: no error


def test_the_auditor_api_serves_proofs_and_refuses_other_roles(run: Run) -> None:
    de = run.nodes["FIU-DE"]
    with de.client("auditor") as api:
        client = AuditClient.over(api)
        status = client.status()
        proof = client.inclusion(0)
        assert proof["checkpoint"] and proof["size"] >= 1
        assert client.entries(0, limit=2)["entries"][0]["seq"] == 0
        assert len(client.all_entries(page=3)) == client.status()["size"] >= status["size"]
    with de.client("analyst") as api:
        from fiumatch.client.api import ApiError

        with pytest.raises(ApiError) as info:
            AuditClient.over(api).status()
        assert info.value.status == 403


def test_policy_replays_a_bundle_against_the_agreements(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {}
    for nid, node in run.nodes.items():
        with node.client("auditor") as c:
            files[nid] = run.out / f"{nid}.agreements.json"
            files[nid].write_text(json.dumps(c.agreements()))
    keys = ["--key", _fingerprint(run, "FIU-DE")]
    keys += ["--peer-key", _fingerprint(run, "FIU-FR"), "--peer-key", _fingerprint(run, "FIU-LV")]
    peers = ["--peer-agreements", f"FIU-FR={files['FIU-FR']}"]
    peers += ["--peer-agreements", f"FIU-LV={files['FIU-LV']}"]
    bundle = str(run.bundle("FIU-DE"))
    assert main(["audit", "policy", bundle, str(files["FIU-DE"]), *keys, *peers, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["requests"] >= 4
    # An agreement with FR whose budget the log shows was exceeded: named at the first entry.
    own = json.loads(files["FIU-DE"].read_text())
    for a in own:
        if a["peer"] == "FIU-FR":
            a["budget_per_epoch"] = 10
    tight = run.out / "FIU-DE.tight.json"
    tight.write_text(json.dumps(own))
    assert main(["audit", "policy", bundle, str(tight), *keys, *peers]) == 1
    out = capsys.readouterr().out
    assert "audit_policy_violation" in out and "budget_exceeded" in out
    assert re.search(r": entry \d+: ", out)
    # Without the peers' agreements, the requests DE sent are under agreements it cannot name.
    assert main(["audit", "policy", bundle, str(files["FIU-DE"]), *keys]) == 1
    assert "unknown_agreement" in capsys.readouterr().out
    assert main(["audit", "policy", bundle, str(run.out / "none.json"), *keys]) == 2


def test_verify_checks_the_checkpoints_peers_cosigned(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    fr_keys = open_node_dir(run.nodes["FIU-FR"].root).keys()
    forged, _ = _rewrite(
        run.bundle("FIU-FR").read_bytes(),
        NoteSigner("FIU-FR/audit", fr_keys.identity),
        {"count_in": 1, "count_out": 1},
    )
    path = run.out / "FIU-FR.rewritten.fiuaudit"
    path.write_bytes(forged)
    de_meta = run.out / "FIU-DE.fiuaudit.meta.json"
    key = ["--key", run.key("FIU-FR").vkey(), "--peer-key", run.key("FIU-DE").vkey()]
    key += ["--peer-key", run.key("FIU-LV").vkey()]
    assert main(["audit", "verify", str(run.bundle("FIU-FR")), *key, "--known", str(de_meta)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", str(path), *key]) == 0  # alone, it looks fine
    capsys.readouterr()
    assert main(["audit", "verify", str(path), *key, "--known", str(de_meta), "--json"]) == 1
    failure = json.loads(capsys.readouterr().out)
    assert failure["code"] == "audit_fork_detected"
    assert failure["location"].startswith("known checkpoint")


def test_cli_exit_codes_for_an_unreachable_node_a_refused_role_and_bad_usage(
    run: Run, tmp_path: Path
) -> None:
    out = str(tmp_path / "x.fiuaudit")
    assert main(["audit", "export", "-o", out, "--url", "https://127.0.0.1:9", "--token", "t"]) == 3
    de = run.nodes["FIU-DE"]
    cert = str(de.dir.settings.tls_cert)
    analyst = ["--url", de.url, "--token", de.analyst, "--cacert", cert]
    assert main(["audit", "export", "-o", out, *analyst]) == 3  # 403: not an auditor
    assert not Path(out).exists() and not Path(out + ".part").exists()
    with pytest.raises(SystemExit) as info:
        main(["audit", "verify", str(run.bundle("FIU-DE"))])  # --key is required
    assert info.value.code == 2
    assert main(["audit"]) == 2
