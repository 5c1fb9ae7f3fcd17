"""Per-peer, per-epoch key derivation: the info format, determinism, separation, errors."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fiumatch.protocol import group, keys, oprf
from fiumatch.protocol.errors import LocalProtocolError

MASTER = bytes(range(32))
# Regression pin for (MASTER, "fiu-nl", 7): changing the info format or the DST breaks it,
# and with it every peer's keys, so it must only ever change with PROTOCOL_VERSION.
PINNED_SK = "146826db96d3e96d4fb58b675214aaba9b9104cdcff5e4a9310217ceed24b108"
PINNED_PK = "be49556cba31d037f04406394174a70c98d9bc14c19527f156e3b2e407b05754"

epochs = st.integers(min_value=0, max_value=2**64 - 1)


def test_info_layout_is_exactly_as_documented() -> None:
    info = keys.epoch_key_info("fiu-nl", 7)
    assert info == b"fiumatch-epoch-key-v1" + b"\x00\x06" + b"fiu-nl" + b"\x00" * 7 + b"\x07"
    assert keys.epoch_key_info("fiu-nl", 7, version=1) == info
    assert keys.EPOCH_KEY_DOMAIN == b"fiumatch-epoch-key-v1"


def test_info_encodes_peer_id_as_utf8_without_normalisation() -> None:
    composed, decomposed = "fiu-\u00e9", "fiu-e\u0301"
    assert keys.epoch_key_info(composed, 1) == (
        keys.EPOCH_KEY_DOMAIN + b"\x00\x06fiu-\xc3\xa9" + (1).to_bytes(8, "big")
    )
    assert keys.epoch_key_info(composed, 1) != keys.epoch_key_info(decomposed, 1)


def test_info_is_unambiguous_for_prefix_peer_ids() -> None:
    # Without the length prefix "ab" + epoch could read as "a" + ("b" || epoch bytes).
    assert keys.epoch_key_info("ab", 1) != keys.epoch_key_info("a", (ord("b") << 56) | 1)
    assert keys.epoch_key_info("ab", 1) != keys.epoch_key_info("a", 1)
    assert len(keys.epoch_key_info("ab", 1)) == len(keys.epoch_key_info("a", 1)) + 1


@settings(max_examples=50, deadline=None)
@given(
    a=st.tuples(st.text(min_size=1, max_size=12), epochs),
    b=st.tuples(st.text(min_size=1, max_size=12), epochs),
)
def test_info_is_injective(a: tuple[str, int], b: tuple[str, int]) -> None:
    assume(a != b)
    try:
        ia, ib = keys.epoch_key_info(*a), keys.epoch_key_info(*b)
    except LocalProtocolError:  # lone surrogates are refused, see the test below
        return
    assert ia != ib


@settings(max_examples=50, deadline=None)
@given(peer=st.text(min_size=1, max_size=40), epoch=epochs)
def test_info_parses_back(peer: str, epoch: int) -> None:
    try:
        info = keys.epoch_key_info(peer, epoch)
    except LocalProtocolError:
        return
    tag_len = len(keys.EPOCH_KEY_DOMAIN)
    assert info[:tag_len] == keys.EPOCH_KEY_DOMAIN
    n = int.from_bytes(info[tag_len : tag_len + 2], "big")
    assert info[tag_len + 2 : tag_len + 2 + n].decode("utf-8") == peer
    assert int.from_bytes(info[tag_len + 2 + n :], "big") == epoch
    assert len(info) == tag_len + 2 + n + 8


def test_derivation_is_deterministic_and_pinned() -> None:
    kp = keys.derive_epoch_key(MASTER, "fiu-nl", 7)
    assert kp == keys.derive_epoch_key(MASTER, "fiu-nl", 7)
    assert kp.sk.hex() == PINNED_SK
    assert kp.pk.hex() == PINNED_PK
    assert kp.pk == group.scalar_mult_base(kp.sk)
    assert kp == oprf.derive_key_pair(MASTER, keys.epoch_key_info("fiu-nl", 7), oprf.MODE_VOPRF)


def test_default_mode_is_voprf_and_other_modes_give_other_keys() -> None:
    voprf_key = keys.derive_epoch_key(MASTER, "fiu-nl", 7, mode=oprf.MODE_VOPRF)
    assert keys.derive_epoch_key(MASTER, "fiu-nl", 7) == voprf_key
    assert keys.derive_epoch_key(MASTER, "fiu-nl", 7, mode=oprf.MODE_OPRF) != voprf_key


def test_peers_epochs_and_masters_separate_keys() -> None:
    base = keys.derive_epoch_key(MASTER, "fiu-nl", 7)
    others = [
        keys.derive_epoch_key(MASTER, "fiu-be", 7),
        keys.derive_epoch_key(MASTER, "fiu-nl", 8),
        keys.derive_epoch_key(MASTER, "fiu-nl", 0),
        keys.derive_epoch_key(bytes(32), "fiu-nl", 7),
        keys.derive_epoch_key(MASTER, "ab", 1),
        keys.derive_epoch_key(MASTER, "a", 1),
    ]
    sks = {base.sk, *(k.sk for k in others)}
    pks = {base.pk, *(k.pk for k in others)}
    assert len(sks) == len(pks) == 1 + len(others)


@settings(max_examples=25, deadline=None)
@given(
    peer_a=st.text(min_size=1, max_size=10),
    peer_b=st.text(min_size=1, max_size=10),
    epoch_a=st.integers(0, 2**64 - 1),
    epoch_b=st.integers(0, 2**64 - 1),
)
def test_distinct_inputs_give_distinct_keys(
    peer_a: str, peer_b: str, epoch_a: int, epoch_b: int
) -> None:
    assume((peer_a, epoch_a) != (peer_b, epoch_b))
    try:
        ka = keys.derive_epoch_key(MASTER, peer_a, epoch_a)
        kb = keys.derive_epoch_key(MASTER, peer_b, epoch_b)
    except LocalProtocolError:
        return
    assert ka.sk != kb.sk


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_secret_must_be_32_bytes(length: int) -> None:
    with pytest.raises(LocalProtocolError):
        keys.derive_epoch_key(bytes(length), "fiu-nl", 1)


@pytest.mark.parametrize("epoch", [-1, 2**64, True])
def test_epoch_out_of_range_is_refused(epoch: int) -> None:
    with pytest.raises(LocalProtocolError):
        keys.epoch_key_info("fiu-nl", epoch)
    with pytest.raises(LocalProtocolError):
        keys.derive_epoch_key(MASTER, "fiu-nl", epoch)


def test_epoch_bounds_are_accepted() -> None:
    assert keys.epoch_key_info("p", 0).endswith(bytes(8))
    assert keys.epoch_key_info("p", 2**64 - 1).endswith(b"\xff" * 8)


@pytest.mark.parametrize(
    "peer_id", ["", "\ud800", "x" * (keys.MAX_PEER_ID_LEN + 1)], ids=["empty", "surrogate", "long"]
)
def test_bad_peer_ids_are_refused(peer_id: str) -> None:
    with pytest.raises(LocalProtocolError):
        keys.epoch_key_info(peer_id, 1)


def test_longest_peer_id_still_derives() -> None:
    kp = keys.derive_epoch_key(MASTER, "x" * keys.MAX_PEER_ID_LEN, 1)
    assert len(kp.sk) == len(kp.pk) == 32


def test_unknown_version_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        keys.epoch_key_info("fiu-nl", 1, version=2)


def test_key_repr_hides_the_secret() -> None:
    kp = keys.derive_epoch_key(MASTER, "fiu-nl", 7)
    assert kp.sk.hex() not in repr(kp)
    assert repr(kp.sk) not in repr(kp)
