"""ristretto255 group operations against RFC 9496 / RFC 9380 known answers, both backends.

Known answers (facts taken from the RFCs, checked here against libsodium):
* RFC 9496 Appendix A.1: encodings of [0]B .. [15]B.
* RFC 9496 Appendix A.2: invalid encodings (non-canonical field encodings, negative field
  elements, non-square x^2, negative xy, s = -1).
* RFC 9496 Appendix A.3: one-way map of SHA-512(label) for seven labels.
* RFC 9380 Appendix K.3: expand_message_xmd(SHA-512) with DST
  "QUUX-V01-CS02-with-expander-SHA512-256".
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.protocol import group
from fiumatch.protocol.errors import (
    InvalidElementError,
    InvalidScalarError,
    LocalProtocolError,
)

L = 2**252 + 27742317777372353535851937790883648493

SMALL_MULTIPLES = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
    "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
    "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259",
    "da80862773358b466ffadfe0b3293ab3d9fd53c5ea6c955358f568322daf6a57",
    "e882b131016b52c1d3337080187cf768423efccbb517bb495ab812c4160ff44e",
    "f64746d3c92b13050ed8d80236a7f0007c3b3f962f5ba793d19a601ebb1df403",
    "44f53520926ec81fbd5a387845beb7df85a96a24ece18738bdcfa6a7822a176d",
    "903293d8f2287ebe10e2374dc1a53e0bc887e592699f02d077d5263cdd55601c",
    "02622ace8f7303a31cafc63f8fc48fdc16e1c8c8d234b2f0d6685282a9076031",
    "20706fd788b2720a1ed2a5dad4952b01f413bcf0e7564de8cdc816689e2db95f",
    "bce83f8ba5dd2fa572864c24ba1810f9522bc6004afe95877ac73241cafdab42",
    "e4549ee16b9aa03099ca208c67adafcafa4c3f3e4e5303de6026e3ca8ff84460",
    "aa52e000df2e16f55fb1032fc33bc42742dad6bd5a8fc0be0167436c5948501f",
    "46376b80f409b29dc2b5f6f0c52591990896e5716f41477cd30085ab7f10301e",
    "e0c418f7c8d9c4cdd7395b93ea124f3ad99021bb681dfc3302a9d99a2e53e64e",
]

INVALID_ENCODINGS = {
    # Non-canonical field encodings (>= p, or the high bit set).
    "noncanonical-1": "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "noncanonical-2": "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "noncanonical-3": "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "noncanonical-p": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "noncanonical-highbit": "0100000000000000000000000000000000000000000000000000000000000080",
    # Negative field elements.
    "negative-1": "0100000000000000000000000000000000000000000000000000000000000000",
    "negative-2": "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "negative-3": "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "negative-4": "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "negative-5": "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "negative-6": "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "negative-7": "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "negative-8": "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    # Non-square x^2.
    "nonsquare-1": "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "nonsquare-2": "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "nonsquare-3": "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "nonsquare-4": "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "nonsquare-5": "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "nonsquare-6": "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "nonsquare-7": "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "nonsquare-8": "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    # Negative xy value.
    "negative-xy-1": "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "negative-xy-2": "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "negative-xy-3": "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "negative-xy-4": "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "negative-xy-5": "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "negative-xy-6": "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "negative-xy-7": "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "negative-xy-8": "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    # s = -1, which causes y = 0.
    "s-minus-1": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    # The generator with the (always clear) high bit set.
    "generator-highbit": "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2df6",
}

HASH_TO_GROUP = [
    (
        "Ristretto is traditionally a short shot of espresso coffee",
        "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46",
    ),
    (
        "made with the normal amount of ground coffee but extracted with",
        "f26e5b6f7d362d2d2a94c5d0e7602cb4773c95a2e5c31a64f133189fa76ed61b",
    ),
    (
        "about half the amount of water in the same amount of time",
        "006ccd2a9e6867e6a2c5cea83d3302cc9de128dd2a9a57dd8ee7b9d7ffe02826",
    ),
    (
        "by using a finer grind.",
        "f8f0c87cf237953c5890aec3998169005dae3eca1fbb04548c635953c817f92a",
    ),
    (
        "This produces a concentrated shot of coffee per volume.",
        "ae81e7dedf20a497e10c304a765c1767a42d6e06029758d2d7e8ef7cc4c41179",
    ),
    (
        "Just pulling a normal shot short will produce a weaker shot",
        "e2705652ff9f5e44d3e841bf1c251cf7dddb77d140870d1ab2ed64f1a9ce8628",
    ),
    (
        "and is not a Ristretto as some believe.",
        "80bd07262511cdde4863f8a7434cef696750681cb9510eea557088f76d9e5065",
    ),
]

XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_SHA512 = [
    (b"", 32, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 32, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (
        b"abcdef0123456789",
        32,
        "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
    ),
    (
        b"",
        128,
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
        "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
        "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    ),
]

nonzero_ints = st.integers(min_value=1, max_value=L - 1)
any_ints = st.integers(min_value=0, max_value=L - 1)


def sc(n: int) -> bytes:
    return n.to_bytes(32, "little")


def num(s: bytes) -> int:
    return int.from_bytes(s, "little")


# Module scope, so Hypothesis tests can use it (a function-scoped fixture would be shared
# across examples); it restores the import-time backend afterwards.
@pytest.fixture(params=group.BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = group.use_backend(request.param)
    try:
        yield request.param
    finally:
        group.use_backend(previous)


# --- constants and backend selection --------------------------------------------------------


def test_constants() -> None:
    assert group.ORDER == L
    assert group.ELEMENT_LEN == group.SCALAR_LEN == 32
    assert bytes(32) == group.IDENTITY


def test_use_backend_switches_and_reports(backend: str) -> None:
    assert backend == group.BACKEND
    other = "pysodium" if backend == "rbcl" else "rbcl"
    assert group.use_backend(other) == backend
    try:
        assert other == group.BACKEND
    finally:
        assert group.use_backend(backend) == other


def test_unknown_backend_is_refused_and_changes_nothing(backend: str) -> None:
    with pytest.raises(LocalProtocolError):
        group.use_backend("openssl")
    assert backend == group.BACKEND
    assert group.scalar_mult_base(sc(1)).hex() == SMALL_MULTIPLES[1]


@pytest.mark.parametrize(
    ("env", "expected"), [(None, "pysodium"), ("", "pysodium"), ("rbcl", "rbcl")]
)
def test_backend_is_chosen_from_the_environment_at_import(env: str | None, expected: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "FIUMATCH_SODIUM"}
    if env is not None:
        environ["FIUMATCH_SODIUM"] = env
    out = subprocess.run(
        [sys.executable, "-c", "from fiumatch.protocol import group; print(group.BACKEND)"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == expected


# --- RFC 9496 A.1: small multiples -----------------------------------------------------------


@pytest.mark.parametrize("k", range(1, 16))
def test_small_multiples_of_the_generator(k: int, backend: str) -> None:
    expected = bytes.fromhex(SMALL_MULTIPLES[k])
    generator = bytes.fromhex(SMALL_MULTIPLES[1])
    assert group.scalar_mult_base(sc(k)) == expected
    assert group.scalar_mult(sc(k), generator) == expected
    acc = group.IDENTITY
    for _ in range(k):
        acc = group.element_add(acc, generator)
    assert acc == expected
    assert group.decode_element(expected) == expected


def test_order_times_generator_is_refused(backend: str) -> None:
    # L * B is the identity: libsodium refuses to return it, and so do we.
    with pytest.raises(InvalidScalarError):
        group.scalar_mult_base(sc(L))
    with pytest.raises(InvalidScalarError):
        group.scalar_mult(sc(L), bytes.fromhex(SMALL_MULTIPLES[1]))


def test_adding_an_inverse_gives_the_identity(backend: str) -> None:
    p = group.scalar_mult_base(sc(7))
    minus_p = group.scalar_mult_base(sc(L - 7))
    assert group.element_add(p, minus_p) == group.IDENTITY


# --- decode_element: RFC 9496 A.2 and friends -----------------------------------------------


@pytest.mark.parametrize("encoding", INVALID_ENCODINGS.values(), ids=INVALID_ENCODINGS.keys())
def test_decode_element_rejects_rfc9496_invalid_encodings(encoding: str, backend: str) -> None:
    data = bytes.fromhex(encoding)
    with pytest.raises(InvalidElementError):
        group.decode_element(data)
    # The arithmetic refuses the same bytes (libsodium decodes them on the way in).
    with pytest.raises(InvalidElementError):
        group.scalar_mult(sc(5), data)
    with pytest.raises(InvalidElementError):
        group.scalar_mult_many(sc(5), [bytes.fromhex(SMALL_MULTIPLES[2]), data])
    with pytest.raises(InvalidElementError):
        group.element_add(bytes.fromhex(SMALL_MULTIPLES[1]), data)


def test_decode_element_rejects_the_identity(backend: str) -> None:
    with pytest.raises(InvalidElementError):
        group.decode_element(bytes(32))
    with pytest.raises(InvalidElementError):
        group.scalar_mult(sc(5), bytes(32))


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_decode_element_rejects_wrong_lengths(length: int, backend: str) -> None:
    data = bytes.fromhex(SMALL_MULTIPLES[3]) * 3
    with pytest.raises(InvalidElementError):
        group.decode_element(data[:length])
    with pytest.raises(InvalidElementError):
        group.scalar_mult(sc(5), data[:length])
    with pytest.raises(InvalidElementError):
        group.scalar_mult_many(sc(5), [data[:length]])


def test_decode_element_accepts_buffer_types(backend: str) -> None:
    b = bytes.fromhex(SMALL_MULTIPLES[4])
    assert group.decode_element(bytearray(b)) == b  # type: ignore[arg-type]
    assert group.decode_element(memoryview(b)) == b  # type: ignore[arg-type]
    assert type(group.decode_element(memoryview(b))) is bytes  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(k=nonzero_ints)
def test_decode_element_round_trips_random_elements(backend: str, k: int) -> None:
    element = group.scalar_mult_base(sc(k))
    assert group.decode_element(element) == element
    # Encoding is canonical: the same point computed another way has the same bytes.
    generator = bytes.fromhex(SMALL_MULTIPLES[1])
    assert group.scalar_mult(sc(k), generator) == element


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=32, max_size=32))
def test_decode_element_agrees_with_libsodium_decoding(backend: str, data: bytes) -> None:
    try:
        decoded = group.decode_element(data)
    except InvalidElementError:
        with pytest.raises(InvalidElementError):
            group.scalar_mult(sc(1), data)
    else:
        assert decoded == data
        assert group.scalar_mult(sc(1), data) == data


# --- decode_scalar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(sc(0), id="zero"),
        pytest.param(sc(L), id="order"),
        pytest.param(sc(L + 1), id="order+1"),
        pytest.param(sc(2**253), id="2^253"),
        pytest.param(b"\xff" * 32, id="all-ones"),
        pytest.param(b"", id="len0"),
        pytest.param(sc(1)[:31], id="len31"),
        pytest.param(sc(1) + b"\x00", id="len33"),
        pytest.param(sc(1) * 2, id="len64"),
    ],
)
def test_decode_scalar_rejects(data: bytes) -> None:
    with pytest.raises(InvalidScalarError):
        group.decode_scalar(data)


@pytest.mark.parametrize("n", [1, 2, L - 1, 2**252])
def test_decode_scalar_accepts(n: int) -> None:
    assert group.decode_scalar(sc(n)) == sc(n)


# --- scalar arithmetic -----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(a=any_ints, b=any_ints)
def test_scalar_arithmetic_matches_integers(backend: str, a: int, b: int) -> None:
    assert num(group.scalar_add(sc(a), sc(b))) == (a + b) % L
    assert num(group.scalar_sub(sc(a), sc(b))) == (a - b) % L
    assert num(group.scalar_mul(sc(a), sc(b))) == (a * b) % L


@settings(max_examples=50, deadline=None)
@given(a=nonzero_ints)
def test_scalar_invert_matches_integers(backend: str, a: int) -> None:
    assert num(group.scalar_invert(sc(a))) == pow(a, -1, L)
    p = group.scalar_mult_base(sc(a))
    assert group.scalar_mult(group.scalar_invert(sc(a)), p) == bytes.fromhex(SMALL_MULTIPLES[1])


@pytest.mark.parametrize("n", [0, L, 2 * L])
def test_scalar_invert_refuses_zero(n: int, backend: str) -> None:
    with pytest.raises(InvalidScalarError):
        group.scalar_invert(n.to_bytes(32, "little"))


def test_multiplication_refuses_bad_scalars(backend: str) -> None:
    generator = bytes.fromhex(SMALL_MULTIPLES[1])
    for bad in (sc(0), sc(1)[:31], sc(1) + b"\x00", (2**255 + 1).to_bytes(32, "little")):
        with pytest.raises(InvalidScalarError):
            group.scalar_mult(bad, generator)
        with pytest.raises(InvalidScalarError):
            group.scalar_mult_base(bad)
        with pytest.raises(InvalidScalarError):
            group.scalar_mult_many(bad, [generator])


@settings(max_examples=30, deadline=None)
@given(k=nonzero_ints, ns=st.lists(nonzero_ints, min_size=0, max_size=8))
def test_scalar_mult_many_matches_scalar_mult(backend: str, k: int, ns: list[int]) -> None:
    elements = [group.scalar_mult_base(sc(n)) for n in ns]
    assert group.scalar_mult_many(sc(k), elements) == [
        group.scalar_mult(sc(k), e) for e in elements
    ]


def test_random_scalar_reduces_and_retries_zero(backend: str) -> None:
    outputs = iter([sc(0) * 2, L.to_bytes(64, "little"), (L + 5).to_bytes(64, "little")])
    assert group.random_scalar(lambda n: next(outputs)) == sc(5)


def test_random_scalar_gives_up_on_a_broken_rng(backend: str) -> None:
    with pytest.raises(LocalProtocolError):
        group.random_scalar(lambda n: bytes(n))
    with pytest.raises(LocalProtocolError):
        group.random_scalar(lambda n: bytes(32))


@settings(max_examples=50, deadline=None)
@given(wide=st.binary(min_size=64, max_size=64))
def test_random_scalar_is_wide_input_mod_order(backend: str, wide: bytes) -> None:
    expected = num(wide) % L
    if expected == 0:  # pragma: no cover - probability 2^-252
        return
    assert group.random_scalar(lambda n: wide) == sc(expected)
    assert group.scalar_reduce(wide) == sc(expected)


# --- hashing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("msg", "length", "expected"), XMD_SHA512)
def test_expand_message_xmd_rfc9380_k3(msg: bytes, length: int, expected: str) -> None:
    assert group.expand_message_xmd(msg, XMD_DST, length).hex() == expected


@pytest.mark.parametrize(
    ("dst", "length"), [(b"x" * 256, 32), (b"dst", 0), (b"dst", 65536), (b"dst", 64 * 255 + 1)]
)
def test_expand_message_xmd_aborts_where_the_rfc_does(dst: bytes, length: int) -> None:
    with pytest.raises(LocalProtocolError):
        group.expand_message_xmd(b"msg", dst, length)


def test_hash_functions_refuse_an_oversized_dst() -> None:
    for fn in (group.hash_to_group, group.hash_to_scalar):
        with pytest.raises(LocalProtocolError):
            fn(b"msg", b"x" * 256)


@pytest.mark.parametrize(("label", "expected"), HASH_TO_GROUP, ids=range(len(HASH_TO_GROUP)))
def test_one_way_map_rfc9496_a3(label: str, expected: str, backend: str) -> None:
    uniform = hashlib.sha512(label.encode()).digest()
    assert group.element_from_uniform_bytes(uniform).hex() == expected


def test_one_way_map_needs_64_bytes() -> None:
    with pytest.raises(LocalProtocolError):
        group.element_from_uniform_bytes(bytes(32))


@settings(max_examples=50, deadline=None)
@given(msg=st.binary(max_size=300), dst=st.binary(min_size=1, max_size=255))
def test_hash_to_group_is_map_of_expand(backend: str, msg: bytes, dst: bytes) -> None:
    expected = group.element_from_uniform_bytes(group.expand_message_xmd(msg, dst, 64))
    assert group.hash_to_group(msg, dst) == expected
    assert group.hash_to_group_many([msg, msg + b"!"], dst)[0] == expected
    assert group.decode_element(expected) == expected


@settings(max_examples=50, deadline=None)
@given(msg=st.binary(max_size=300), dst=st.binary(min_size=1, max_size=255))
def test_hash_to_scalar_is_expand_mod_order(backend: str, msg: bytes, dst: bytes) -> None:
    uniform = group.expand_message_xmd(msg, dst, 64)
    assert group.hash_to_scalar(msg, dst) == sc(num(uniform) % L)


def test_hash_to_group_many_matches_single(backend: str) -> None:
    msgs = [b"", b"a", b"fiumatch" * 50]
    dst = b"HashToGroup-test"
    assert group.hash_to_group_many(msgs, dst) == [group.hash_to_group(m, dst) for m in msgs]
    assert group.hash_to_group_many([], dst) == []


@settings(max_examples=30, deadline=None)
@given(ns=st.lists(nonzero_ints, max_size=10))
def test_scalar_invert_many_matches_scalar_invert(backend: str, ns: list[int]) -> None:
    scalars = [sc(n) for n in ns]
    assert group.scalar_invert_many(scalars) == [group.scalar_invert(s) for s in scalars]


@pytest.mark.parametrize("position", [0, 1, 3])
def test_scalar_invert_many_refuses_a_zero_anywhere(position: int, backend: str) -> None:
    scalars = [sc(3), sc(5), sc(7), sc(11)]
    scalars[position] = sc(L) if position == 1 else sc(0)
    with pytest.raises(InvalidScalarError):
        group.scalar_invert_many(scalars)
    with pytest.raises(InvalidScalarError):
        group.scalar_invert_many([sc(3), sc(1)[:31]])
