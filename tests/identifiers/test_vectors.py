"""Replay protocol/vectors/normalise.json: every implementation must derive these bytes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fiumatch.identifiers import KeyType, Subject, decode_key
from fiumatch.ingest.build import build_subject

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "normalise.json"
DATA = json.loads(VECTORS.read_text(encoding="utf-8"))


def test_enough_cases_across_scripts_and_types() -> None:
    cases = DATA["cases"]
    assert len(cases) >= 60
    types = {k["type"] for c in cases for k in c.get("keys", ())}
    assert types == {kt.value for kt in KeyType}
    assert sum(1 for c in cases if "rejects" in c) >= 10


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    result = build_subject(
        {"local_ref": "vector", **case["input"]},
        source="vectors", file="normalise.json", record="vector", line=None,
        default_retention=date(2030, 1, 1),
    )  # fmt: skip
    if "keys" in case:
        assert isinstance(result, Subject), result
        assert sorted(k.hex() for k in result.keys) == [k["hex"] for k in case["keys"]]
        for expected in case["keys"]:
            key = decode_key(bytes.fromhex(expected["hex"]))
            assert key.type.value == expected["type"] and key.type.code == expected["code"]
            assert list(key.fields) == expected["fields"]
    else:
        assert not isinstance(result, Subject)
        assert sorted({(r.field, r.code) for r in result}) == [tuple(r) for r in case["rejects"]]


def test_vectors_name_the_icu_they_were_made_with() -> None:
    import icu  # type: ignore[import-untyped]

    # Keys of Han, kana, Arabic, ... names depend on the system ICU (SPEC.md §13,
    # section 1): the vectors must say which one made them, and the replay above is the
    # check a machine with another ICU must pass.
    major, _, minor = DATA["icu"].partition(".")
    assert major.isdigit() and minor.isdigit()
    assert DATA["libraries"]["pyicu"] and str(icu.ICU_VERSION)
