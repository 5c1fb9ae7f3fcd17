"""Sealed secrets: format, typed failures, and private key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.errors import FiumatchError
from fiumatch.node import sealing
from fiumatch.node.errors import (
    InsecureKeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    SealedFormatError,
    SealingError,
    TamperedSecretError,
    WrongPassphraseError,
    WrongPurposeError,
)
from fiumatch.node.sealing import (
    check_private_file,
    load_sealed_file,
    seal,
    sealed_purpose,
    unseal,
    write_sealed_file,
)
from tests.node.helpers import det_rng

FAST = 10  # scrypt log2(N) for tests; production default is 15
PASS = "correct horse battery staple"
SECRET = bytes(range(32))


def _sealed(purpose: str = "node-oprf-master", secret: bytes = SECRET) -> bytes:
    return seal(secret, PASS, purpose, det_rng(), log2_n=FAST)


def test_round_trip() -> None:
    assert unseal(_sealed(), PASS, "node-oprf-master") == SECRET


def test_key_file_bytes_work_as_a_passphrase() -> None:
    key_file = os.urandom(64)
    blob = seal(SECRET, key_file, "p", det_rng(), log2_n=FAST)
    assert unseal(blob, key_file, "p") == SECRET
    with pytest.raises(WrongPassphraseError):
        unseal(blob, key_file[:-1], "p")


def test_the_layout_is_as_documented() -> None:
    blob = _sealed("abc")
    rng = det_rng()
    salt, nonce = rng(16), rng(12)
    assert blob[:6] == b"FMSEAL"
    assert blob[6:10] == bytes([1, FAST, 8, 1])
    assert blob[10:26] == salt
    assert blob[26] == 3 and blob[27:30] == b"abc"
    assert blob[46:58] == nonce
    assert len(blob) == 58 + len(SECRET) + 16
    assert sealed_purpose(blob) == "abc"
    assert SECRET not in blob


def test_default_cost_is_scrypt_n_2_to_the_15() -> None:
    blob = seal(b"x", PASS, "p", det_rng())
    assert blob[7] == 15
    assert sealing.DEFAULT_LOG2_N == 15


def test_a_wrong_passphrase_is_named_as_such() -> None:
    with pytest.raises(WrongPassphraseError) as info:
        unseal(_sealed(), PASS + "!", "node-oprf-master")
    assert PASS not in str(info.value)
    assert info.value.code == "wrong_passphrase"


def test_another_purpose_never_opens_the_secret() -> None:
    identity = _sealed("node-identity-ed25519")
    with pytest.raises(WrongPurposeError):
        unseal(identity, PASS, "node-oprf-master")


def test_editing_the_stored_purpose_is_caught_as_tampering() -> None:
    blob = bytearray(_sealed("node-identity-ed25519"))
    # Swap the stored purpose for another of the same length: the AAD still differs.
    start = 27
    fake = b"node-identity-ed25518"
    blob[start : start + len(fake)] = fake
    with pytest.raises(TamperedSecretError):
        unseal(bytes(blob), PASS, fake.decode())


@pytest.mark.parametrize(
    ("offset", "error"),
    [
        (10, WrongPassphraseError),  # salt
        (-1, TamperedSecretError),  # tag
        (-17, TamperedSecretError),  # last ciphertext byte
        (-(16 + 32 + 1), TamperedSecretError),  # last nonce byte
    ],
)
def test_every_modified_byte_is_detected(offset: int, error: type[SealingError]) -> None:
    blob = bytearray(_sealed("p"))
    blob[offset] ^= 0x01
    with pytest.raises(error):
        unseal(bytes(blob), PASS, "p")


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_any_single_bit_flip_fails_with_a_typed_error(data: st.DataObject) -> None:
    blob = bytearray(_sealed("p"))
    index = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    blob[index] ^= 1 << bit
    with pytest.raises(SealingError):
        unseal(bytes(blob), PASS, "p")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"FMSEAL",
        b"NOTSEAL" + bytes(80),
        _sealed()[:40],
        _sealed()[:70],
    ],
)
def test_truncated_or_foreign_bytes_are_a_format_error(blob: bytes) -> None:
    with pytest.raises(SealedFormatError):
        unseal(blob, PASS, "node-oprf-master")


def test_an_unknown_version_is_refused() -> None:
    blob = bytearray(_sealed())
    blob[6] = 2
    with pytest.raises(SealedFormatError) as info:
        unseal(bytes(blob), PASS, "node-oprf-master")
    assert info.value.details == {"version": 2}


@pytest.mark.parametrize(("index", "value"), [(7, 30), (7, 5), (8, 0), (8, 200), (9, 9)])
def test_scrypt_parameters_from_a_file_are_bounded(index: int, value: int) -> None:
    blob = bytearray(_sealed())
    blob[index] = value
    with pytest.raises(SealedFormatError):
        unseal(bytes(blob), PASS, "node-oprf-master")


def test_bad_arguments_are_refused_before_sealing() -> None:
    with pytest.raises(ValueError):
        seal(b"", PASS, "p", det_rng(), log2_n=FAST)
    with pytest.raises(ValueError):
        seal(b"x", "", "p", det_rng(), log2_n=FAST)
    with pytest.raises(ValueError):
        seal(b"x", PASS, "Bad Purpose", det_rng(), log2_n=FAST)
    with pytest.raises(ValueError):
        seal(b"x", PASS, "p", det_rng(), log2_n=40)
    with pytest.raises(ValueError):
        seal(b"x", PASS, "p", lambda n: b"short", log2_n=FAST)


def test_unicode_passphrases_are_normalised() -> None:
    composed, decomposed = "caf\u00e9-passphrase", "cafe\u0301-passphrase"
    blob = seal(b"x", composed, "p", det_rng(), log2_n=FAST)
    assert unseal(blob, decomposed, "p") == b"x"


def test_sealing_errors_are_fiumatch_errors_with_status_500() -> None:
    for cls in (
        SealedFormatError,
        WrongPassphraseError,
        WrongPurposeError,
        TamperedSecretError,
        KeyFileMissingError,
        KeyFileExistsError,
        InsecureKeyFileError,
    ):
        assert issubclass(cls, SealingError)
        assert issubclass(cls, FiumatchError)
        assert cls.http_status == 500


# --- key files --------------------------------------------------------------------------


def test_write_creates_a_0600_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "k.sealed"
    old_umask = os.umask(0o000)
    try:
        write_sealed_file(path, b"blob")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_sealed_file(path) == b"blob"
    assert [p.name for p in tmp_path.iterdir()] == ["k.sealed"]  # no temporary left behind


def test_write_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.sealed"
    write_sealed_file(path, b"first")
    with pytest.raises(KeyFileExistsError):
        write_sealed_file(path, b"second")
    assert load_sealed_file(path) == b"first"
    write_sealed_file(path, b"second", overwrite=True)
    assert load_sealed_file(path) == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.sealed"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610, 0o602])
def test_a_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.sealed"
    write_sealed_file(path, b"blob")
    path.chmod(mode)
    with pytest.raises(InsecureKeyFileError) as info:
        load_sealed_file(path)
    assert "chmod 600" in info.value.reason
    with pytest.raises(InsecureKeyFileError):
        check_private_file(path)


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.sealed"
    write_sealed_file(path, b"blob")
    path.chmod(0o400)
    assert load_sealed_file(path) == b"blob"
    assert check_private_file(path).st_size == 4


def test_a_missing_or_non_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissingError):
        load_sealed_file(tmp_path / "absent")
    with pytest.raises(KeyFileMissingError):
        check_private_file(tmp_path / "absent")
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileMissingError):
        check_private_file(directory)


def test_a_symlink_is_judged_by_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real"
    write_sealed_file(target, b"blob")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert load_sealed_file(link) == b"blob"
    target.chmod(0o644)
    with pytest.raises(InsecureKeyFileError):
        load_sealed_file(link)
