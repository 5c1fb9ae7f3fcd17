"""Replay the seed corpus: every file under ``seeds/<decoder>/`` through that decoder's check.

The corpus holds a valid message per decoder (so the checks' acceptance paths stay
exercised) and every input that once broke a decoder (``found-*`` or a descriptive name,
with a comment saying what it broke). Add a crashing input here before fixing the decoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz._support import SEEDS_DIR, load_seed, seed_files
from tests.fuzz.checks import CHECKS, run_check

_SEEDS = seed_files()


@pytest.mark.parametrize(("decoder", "path"), _SEEDS, ids=[f"{d}/{p.name}" for d, p in _SEEDS])
def test_seed(decoder: str, path: Path) -> None:
    run_check(decoder, load_seed(path))


def test_every_decoder_has_seeds_and_every_seed_a_decoder() -> None:
    dirs = {d.name for d in SEEDS_DIR.iterdir() if d.is_dir()}
    assert dirs == set(CHECKS), "seeds/ directories and checks.CHECKS must name the same decoders"
    for name in dirs:
        assert any(d == name for d, _ in _SEEDS), f"seeds/{name} holds no .hex or .bin file"


def test_seed_files_parse(tmp_path: Path) -> None:
    (tmp_path / "a.hex").write_text("# comment\n00ff\n  # indented comment\nAB\n")
    assert load_seed(tmp_path / "a.hex") == b"\x00\xff\xab"
    (tmp_path / "b.bin").write_bytes(b"\x00\n")
    assert load_seed(tmp_path / "b.bin") == b"\x00\n"
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(ValueError):
        load_seed(tmp_path / "c.txt")
