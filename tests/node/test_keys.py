"""Node keys: generation, fingerprint, sealed save/load."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from fiumatch.node.errors import (
    InsecureKeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    WrongPassphraseError,
    WrongPurposeError,
)
from fiumatch.node.keys import (
    IDENTITY_FILE,
    MASTER_FILE,
    NodeKeys,
    fingerprint,
    public_key_from_raw,
)
from tests.node.helpers import det_rng

PASS = "a long enough node passphrase"


def test_generate_is_deterministic_in_the_rng_and_keys_differ() -> None:
    a = NodeKeys.generate(det_rng(b"a"))
    b = NodeKeys.generate(det_rng(b"a"))
    c = NodeKeys.generate(det_rng(b"c"))
    assert a.public_key_raw == b.public_key_raw and a.oprf_master == b.oprf_master
    assert a.public_key_raw != c.public_key_raw
    assert a.oprf_master != a.identity.private_bytes_raw()


def test_repr_hides_the_secrets() -> None:
    keys = NodeKeys.generate(det_rng())
    text = repr(keys)
    assert keys.oprf_master.hex() not in text
    assert str(keys.oprf_master) not in text


def test_fingerprint_is_sha256_of_the_raw_key_in_ssh_style() -> None:
    keys = NodeKeys.generate(det_rng())
    digest = hashlib.sha256(keys.public_key_raw).digest()
    expected = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    assert keys.fingerprint == expected == fingerprint(keys.public_key)
    assert len(keys.fingerprint) == 7 + 43
    with pytest.raises(ValueError):
        fingerprint(b"short")


def test_public_key_from_raw_round_trips() -> None:
    keys = NodeKeys.generate(det_rng())
    assert fingerprint(public_key_from_raw(keys.public_key_raw)) == keys.fingerprint
    with pytest.raises(ValueError):
        public_key_from_raw(b"x" * 31)


def test_save_and_load(tmp_path: Path) -> None:
    keys = NodeKeys.generate(det_rng())
    keys_dir = tmp_path / "keys"
    keys.save(keys_dir, PASS, det_rng(b"salt"), log2_n=10)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for name in (IDENTITY_FILE, MASTER_FILE):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
        assert keys.oprf_master not in (keys_dir / name).read_bytes()
    loaded = NodeKeys.load(keys_dir, PASS)
    assert loaded.public_key_raw == keys.public_key_raw
    assert loaded.oprf_master == keys.oprf_master
    message = b"signed by the node"
    loaded.public_key.verify(keys.identity.sign(message), message)


def test_load_fails_typed(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    NodeKeys.generate(det_rng()).save(keys_dir, PASS, det_rng(b"s"), log2_n=10)
    with pytest.raises(WrongPassphraseError):
        NodeKeys.load(keys_dir, PASS + "x")
    # Swapping the files is caught: each is sealed for its own purpose.
    ident = (keys_dir / IDENTITY_FILE).read_bytes()
    master = (keys_dir / MASTER_FILE).read_bytes()
    (keys_dir / IDENTITY_FILE).write_bytes(master)
    (keys_dir / MASTER_FILE).write_bytes(ident)
    with pytest.raises(WrongPurposeError):
        NodeKeys.load(keys_dir, PASS)
    (keys_dir / MASTER_FILE).chmod(0o644)
    (keys_dir / IDENTITY_FILE).write_bytes(ident)
    with pytest.raises(InsecureKeyFileError):
        NodeKeys.load(keys_dir, PASS)
    (keys_dir / MASTER_FILE).unlink()
    with pytest.raises(KeyFileMissingError):
        NodeKeys.load(keys_dir, PASS)


def test_save_never_overwrites_existing_keys(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = NodeKeys.generate(det_rng(b"1"))
    first.save(keys_dir, PASS, det_rng(b"s"), log2_n=10)
    with pytest.raises(KeyFileExistsError):
        NodeKeys.generate(det_rng(b"2")).save(keys_dir, PASS, det_rng(b"s"), log2_n=10)
    assert NodeKeys.load(keys_dir, PASS).public_key_raw == first.public_key_raw


def test_save_writes_both_files_or_neither(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / MASTER_FILE).write_bytes(b"someone else's")
    with pytest.raises(KeyFileExistsError):
        NodeKeys.generate(det_rng()).save(keys_dir, PASS, det_rng(b"s"), log2_n=10)
    assert not (keys_dir / IDENTITY_FILE).exists()


def test_wrong_master_length_is_refused() -> None:
    keys = NodeKeys.generate(det_rng())
    with pytest.raises(ValueError):
        NodeKeys(identity=keys.identity, oprf_master=b"short")
