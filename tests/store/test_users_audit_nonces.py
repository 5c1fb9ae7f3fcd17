"""Users and tokens, audit-log storage, and the persistent nonce cache."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from fiumatch.store import (
    AuditCheckpoint,
    AuditLeaf,
    AuditNode,
    RecordConflictError,
    RecordNotFoundError,
    Store,
    User,
    issue_token,
    parse_token,
)
from tests.store.factories import NOW


def _user(name: str = "ana", role: str = "analyst") -> tuple[User, str]:
    token = issue_token(os.urandom)
    user = User(
        name=name,
        role=role,  # type: ignore[arg-type]
        token_id=token.token_id,
        token_hash=token.token_hash,
        created_at=NOW,
    )
    return user, token.token


# --- users ------------------------------------------------------------------------------


def test_issued_tokens_have_the_documented_shape_and_parse_back() -> None:
    token = issue_token(lambda n: bytes(range(n)))
    assert token.token.startswith("fmu_0001020304050607_")
    assert len(token.token) == 4 + 16 + 1 + 43
    parsed = parse_token(token.token)
    assert parsed is not None
    assert parsed == ("0001020304050607", bytes(range(32)))
    assert token.token not in repr(token)
    assert token.token_hash.hex() not in repr(token)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "fmu_",
        "fmx_0001020304050607_" + "A" * 43,
        "fmu_000102030405060_" + "A" * 43,
        "fmu_0001020304050607_" + "A" * 42,
        "fmu_0001020304050607_" + "A" * 44,
        "fmu_0001020304050607_" + "A" * 42 + "!",
        "fmu_0001020304050607_" + "A" * 43 + "\n",
    ],
)
def test_malformed_tokens_do_not_parse(bad: str) -> None:
    assert parse_token(bad) is None


def test_authenticate_finds_the_user_only_with_the_exact_token(store: Store) -> None:
    user, token = _user()
    store.users.add(user)
    assert store.users.authenticate(token) == user
    parsed = parse_token(token)
    assert parsed is not None
    token_id, secret = parsed
    flipped = bytes([secret[0] ^ 1]) + secret[1:]
    forged = f"fmu_{token_id}_" + base64.urlsafe_b64encode(flipped).rstrip(b"=").decode()
    assert parse_token(forged) == (token_id, flipped)
    assert store.users.authenticate(forged) is None
    assert store.users.authenticate(issue_token(os.urandom).token) is None
    assert store.users.authenticate("garbage") is None


def test_disable_rotate_and_role_changes(store: Store) -> None:
    user, token = _user()
    store.users.add(user)
    store.users.disable("ana", now=NOW + 1)
    assert store.users.authenticate(token) is None
    assert store.users.require("ana").disabled_at == NOW + 1
    store.users.enable("ana")
    assert store.users.authenticate(token) is not None
    new = issue_token(os.urandom)
    store.users.rotate_token("ana", new)
    assert store.users.authenticate(token) is None
    authed = store.users.authenticate(new.token)
    assert authed is not None and authed.name == "ana"
    store.users.set_role("ana", "supervisor")
    assert store.users.require("ana").role == "supervisor"
    with pytest.raises(RecordConflictError):
        store.users.set_role("ana", "root")  # type: ignore[arg-type]
    with pytest.raises(RecordNotFoundError):
        store.users.disable("nobody", now=NOW)
    assert [u.name for u in store.users.list_all()] == ["ana"]


def test_user_names_and_token_ids_are_unique(store: Store) -> None:
    user, _ = _user()
    store.users.add(user)
    with pytest.raises(RecordConflictError):
        store.users.add(User(**{**user.__dict__, "token_id": "ffffffffffffffff"}))
    with pytest.raises(RecordConflictError):
        store.users.add(User(**{**user.__dict__, "name": "bob"}))


def test_a_user_repr_never_shows_the_token_hash(store: Store) -> None:
    user, _ = _user()
    assert user.token_hash.hex() not in repr(user)
    assert str(user.token_hash) not in repr(user)


# --- audit ------------------------------------------------------------------------------


def _leaf(seq: int) -> AuditLeaf:
    entry = f"entry-{seq}".encode()
    return AuditLeaf(
        seq=seq, time=NOW + seq, entry=entry, leaf_hash=hashlib.sha256(b"\x00" + entry).digest()
    )


def test_audit_leaves_append_in_sequence_with_their_nodes(store: Store) -> None:
    a = store.audit
    assert a.size() == 0
    a.append(_leaf(0))
    node = AuditNode(level=1, index=0, hash=b"\x11" * 32)
    a.append(_leaf(1), [node])
    assert a.size() == 2
    assert a.leaf(1) == _leaf(1)
    assert a.leaves(0, 5) == [_leaf(0), _leaf(1)]
    assert a.leaf_hashes(1, 2) == [_leaf(1).leaf_hash]
    assert a.node(1, 0) == b"\x11" * 32
    assert a.node(1, 1) is None
    assert a.leaf(7) is None


def test_audit_sequence_gaps_and_duplicates_are_refused(store: Store) -> None:
    store.audit.append(_leaf(0))
    with pytest.raises(RecordConflictError):
        store.audit.append(_leaf(2))
    with pytest.raises(RecordConflictError):
        store.audit.append(_leaf(0))
    assert store.audit.size() == 1


def test_a_conflicting_node_rolls_back_the_leaf_with_it(store: Store) -> None:
    store.audit.put_nodes([AuditNode(level=1, index=0, hash=b"\x11" * 32)])
    store.audit.put_nodes([AuditNode(level=1, index=0, hash=b"\x11" * 32)])  # same: fine
    store.audit.append(_leaf(0))
    with pytest.raises(RecordConflictError):
        store.audit.append(_leaf(1), [AuditNode(level=1, index=0, hash=b"\x22" * 32)])
    assert store.audit.size() == 1
    assert store.audit.node(1, 0) == b"\x11" * 32


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET entry = x'00' WHERE seq = 0",
        "DELETE FROM audit_log WHERE seq = 0",
        "UPDATE audit_nodes SET hash = zeroblob(32)",
        "DELETE FROM audit_nodes",
        "UPDATE audit_checkpoints SET note = 'forged'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_audit_tables_are_append_only(store: Store, sql: str) -> None:
    store.audit.append(_leaf(0), [AuditNode(level=0, index=0, hash=b"\x33" * 32)])
    store.audit.add_checkpoint(AuditCheckpoint(size=1, note="signed note", created_at=NOW))
    with pytest.raises(RecordConflictError), store.transaction() as conn:
        conn.execute(sql)
    assert store.audit.leaf(0) == _leaf(0)
    assert store.audit.node(0, 0) == b"\x33" * 32
    assert store.audit.checkpoint(1) == AuditCheckpoint(size=1, note="signed note", created_at=NOW)


def test_checkpoints(store: Store) -> None:
    a = store.audit
    assert a.latest_checkpoint() is None
    with pytest.raises(RecordConflictError):
        a.add_checkpoint(AuditCheckpoint(size=1, note="too big", created_at=NOW))
    for i in range(3):
        a.append(_leaf(i))
    a.add_checkpoint(AuditCheckpoint(size=0, note="empty", created_at=NOW))
    a.add_checkpoint(AuditCheckpoint(size=3, note="three", created_at=NOW + 1))
    a.add_checkpoint(AuditCheckpoint(size=2, note="two", created_at=NOW + 2))
    latest = a.latest_checkpoint()
    assert latest is not None and latest.note == "three"
    assert a.checkpoint(9) is None
    with pytest.raises(RecordConflictError):
        a.add_checkpoint(AuditCheckpoint(size=3, note="again", created_at=NOW))


# --- nonces -----------------------------------------------------------------------------


def test_nonce_cache_detects_replays_per_key(store: Store) -> None:
    n = store.nonces
    assert n.check_and_store("fiu-b", "n1", expires_at=NOW + 60, now=NOW)
    assert not n.check_and_store("fiu-b", "n1", expires_at=NOW + 60, now=NOW + 1)
    assert n.check_and_store("fiu-c", "n1", expires_at=NOW + 60, now=NOW + 1)
    assert len(n) == 2


def test_nonce_cache_forgets_expired_entries(store: Store) -> None:
    n = store.nonces
    n.check_and_store("k", "a", expires_at=NOW + 10, now=NOW)
    n.check_and_store("k", "b", expires_at=NOW + 100, now=NOW)
    assert n.purge(now=NOW + 50) == 1
    assert len(n) == 1
    assert n.check_and_store("k", "c", expires_at=NOW + 500, now=NOW + 200)
    assert len(n) == 1  # "b" was pruned on the way


def test_nonce_cache_survives_a_restart(db_path: Path) -> None:
    with Store.open(db_path) as s:
        assert s.nonces.check_and_store("k", "n", expires_at=NOW + 60, now=NOW)
    with Store.open(db_path) as s:
        assert not s.nonces.check_and_store("k", "n", expires_at=NOW + 60, now=NOW + 1)
