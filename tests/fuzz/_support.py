"""Shared machinery of the decoder fuzz tests: the Hypothesis profile, mutation strategies and
the seed corpus.

The profile ``fiumatch-fuzz`` has no example database and derandomizes generation, so a CI run
explores the same inputs every time and a failure reproduces exactly. Set
``FIUMATCH_FUZZ_SCALE=20`` (say) to hunt for new bugs: every test then runs twenty times as
many examples with fresh randomness; ``FIUMATCH_FUZZ_RECORD=1`` writes any input that makes a
decoder raise an untyped exception into ``seeds/<decoder>/`` (see :mod:`tests.fuzz.checks`).

Seeds are regression inputs, one file per input: ``*.hex`` (hex digits; whitespace and lines
starting with ``#`` ignored) or ``*.bin`` (raw bytes). ``test_seeds.py`` replays each through
the check of the decoder its directory is named after.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "PROFILE",
    "SEEDS_DIR",
    "Mutant",
    "fuzz_settings",
    "load_seed",
    "mutants",
    "record_seed",
    "seed_files",
]

PROFILE = "fiumatch-fuzz"
SEEDS_DIR = Path(__file__).parent / "seeds"

settings.register_profile(
    PROFILE,
    database=None,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

_SCALE = float(os.environ.get("FIUMATCH_FUZZ_SCALE", "1") or "1")


def fuzz_settings(max_examples: int) -> settings:
    """The fuzz profile with ``max_examples`` (times ``FIUMATCH_FUZZ_SCALE``).

    At scale 1 (CI) generation is derandomized; above it, it is random, to find new inputs.
    """
    hunting = _SCALE > 1
    return settings(
        settings.get_profile(PROFILE),
        max_examples=max(1, round(max_examples * _SCALE)),
        derandomize=not hunting,
    )


# --- mutations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mutant:
    """A mutated copy of a valid message and what was done to it (shown on failure)."""

    data: bytes
    steps: tuple[str, ...]


@st.composite
def _mutation(draw: st.DrawFn, data: bytes) -> tuple[bytes, str]:
    n = len(data)
    kinds = (
        ["insert"]
        if n == 0
        else [
            "flip",
            "truncate",
            "insert",
            "delete",
            "swap",
            "overwrite",
            "duplicate",
        ]
    )
    kind = draw(st.sampled_from(kinds))
    if kind == "flip":
        i = draw(st.integers(0, n - 1))
        bit = draw(st.integers(0, 7))
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :], f"flip byte {i} bit {bit}"
    if kind == "truncate":
        k = draw(st.integers(0, n - 1))
        return data[:k], f"truncate to {k}"
    if kind == "insert":
        i = draw(st.integers(0, n))
        extra = draw(st.binary(min_size=1, max_size=8))
        return data[:i] + extra + data[i:], f"insert {extra.hex()} at {i}"
    if kind == "delete":
        i = draw(st.integers(0, n - 1))
        k = draw(st.integers(1, min(8, n - i)))
        return data[:i] + data[i + k :], f"delete {k} at {i}"
    if kind == "swap":
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(0, n - 1))
        b = bytearray(data)
        b[i], b[j] = b[j], b[i]
        return bytes(b), f"swap {i} {j}"
    if kind == "overwrite":
        i = draw(st.integers(0, n - 1))
        new = draw(st.binary(min_size=1, max_size=min(8, n - i)))
        return data[:i] + new + data[i + len(new) :], f"overwrite {new.hex()} at {i}"
    i = draw(st.integers(0, n - 1))
    k = draw(st.integers(1, min(16, n - i)))
    return data[: i + k] + data[i : i + k] + data[i + k :], f"duplicate {k} at {i}"


@st.composite
def _mutant(draw: st.DrawFn, data: bytes, max_steps: int) -> Mutant:
    steps: list[str] = []
    out = data
    for _ in range(draw(st.integers(1, max_steps))):
        out, step = draw(_mutation(out))
        steps.append(step)
    return Mutant(out, tuple(steps))


def mutants(data: bytes, *, max_steps: int = 3) -> st.SearchStrategy[Mutant]:
    """Copies of ``data`` changed by 1..``max_steps`` bit flips, truncations, insertions,
    deletions, byte swaps, overwrites or duplications at Hypothesis-chosen positions; never
    ``data`` itself."""
    return _mutant(data, max_steps).filter(lambda m: m.data != data)


# --- seeds -------------------------------------------------------------------------------------


def load_seed(path: Path) -> bytes:
    """The input a seed file holds (``.hex``: hex digits, ``#`` comments; ``.bin``: raw)."""
    if path.suffix == ".bin":
        return path.read_bytes()
    if path.suffix == ".hex":
        lines = path.read_text(encoding="ascii").splitlines()
        return bytes.fromhex("".join(ln for ln in lines if not ln.lstrip().startswith("#")))
    raise ValueError(f"seed files are .hex or .bin: {path.name}")


def seed_files() -> list[tuple[str, Path]]:
    """Every (decoder, seed file) pair of the corpus, sorted."""
    return sorted(
        (d.name, f)
        for d in SEEDS_DIR.iterdir()
        if d.is_dir()
        for f in d.iterdir()
        if f.suffix in (".hex", ".bin")
    )


def record_seed(decoder: str, data: bytes) -> Path | None:
    """Save ``data`` as a new seed of ``decoder`` when ``FIUMATCH_FUZZ_RECORD`` is set."""
    if not os.environ.get("FIUMATCH_FUZZ_RECORD"):
        return None
    directory = SEEDS_DIR / decoder
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"found-{hashlib.sha256(data).hexdigest()[:16]}.hex"
    path.write_text(
        f"# found by the fuzzer; {len(data)} bytes\n"
        + "\n".join(data[i : i + 32].hex() for i in range(0, len(data), 32))
        + "\n",
        encoding="ascii",
    )
    return path
