"""Replay every protocol vector in protocol/vectors/, and check the generator reproduces them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fiumatch.protocol import errors
from fiumatch.protocol.errors import ProtocolError
from fiumatch.protocol.sessions import ResultMismatchError, SessionMachine
from fiumatch.protocol.wire import Mode, decode_frame

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
MODES = ("filter", "mutual", "cardinality")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fiumatch_vectors_generate", VECTORS / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


def _doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return doc


CASES = {c["name"]: c for m in MODES for c in _doc(f"{m}.json")["cases"]}
NEGATIVES = _doc("negative.json")["cases"]


def test_generator_reproduces_the_checked_in_files() -> None:
    generated = GEN.generate()
    assert sorted(generated) == ["cardinality.json", "filter.json", "mutual.json", "negative.json"]
    for name, text in generated.items():
        assert (VECTORS / name).read_text() == text, f"{name} is stale: run make vectors"


def test_every_mode_has_a_vector() -> None:
    assert {c["mode"] for c in CASES.values()} == set(MODES)
    assert len(NEGATIVES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_frames_are_bound_to_their_case(name: str) -> None:
    case = CASES[name]
    seqs = {"q2o": 0, "o2q": 0}
    for f in case["frames"]:
        frame = decode_frame(bytes.fromhex(f["hex"]))
        h = frame.header
        assert h.msg_type.name == f["type"]
        assert h.mode is Mode[case["mode"].upper()]
        assert int(h.suite) == case["suite"] and h.epoch == case["epoch"]
        assert h.session_id.hex() == case["session_id"]
        assert h.seq == seqs[f["dir"]]
        seqs[f["dir"]] += 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay_session(name: str) -> None:
    """Each party, fed the vector's frames from its peer, sends exactly the vector's frames."""
    case = CASES[name]
    querier, owner = GEN.build_machines(case)
    sent: dict[str, list[str]] = {"q2o": [f.hex() for f in querier.start()], "o2q": []}
    for f in case["frames"]:
        frame = bytes.fromhex(f["hex"])
        if f["dir"] == "q2o":
            sent["o2q"] += [r.hex() for r in owner.receive(frame)]
        else:
            sent["q2o"] += [r.hex() for r in querier.receive(frame)]
    for direction in ("q2o", "o2q"):
        expected = [f["hex"] for f in case["frames"] if f["dir"] == direction]
        assert sent[direction] == expected, direction
    assert querier.done and owner.done
    assert GEN.describe_results(querier, owner) == case["results"]


def test_delta_vector_carries_only_the_delta() -> None:
    case = CASES["filter-oprf-bloom-delta"]
    chunks = [f for f in case["frames"] if f["type"] == "FILTER_CHUNK"]
    data = b"".join(decode_frame(bytes.fromhex(f["hex"])).body.data for f in chunks)  # type: ignore[union-attr]
    assert data[:3] == b"FMF" and data[4] == 2  # one BLOOM_DELTA object, no base
    assert case["results"]["querier"]["filter_generation"] == 2


def _class_for(code: str) -> type[ProtocolError]:
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, ProtocolError) and c.code == code
    ]
    if ResultMismatchError.code == code:
        classes.append(ResultMismatchError)
    assert len(classes) == 1, code
    return classes[0]


@pytest.mark.parametrize("neg", NEGATIVES, ids=[n["name"] for n in NEGATIVES])
def test_negative_vector_raises_its_error(neg: dict[str, Any]) -> None:
    case = CASES[neg["case"]]
    querier, owner = GEN.build_machines(case)
    querier.start()
    target: SessionMachine = owner if neg["role"] == "owner" else querier
    direction = "q2o" if neg["role"] == "owner" else "o2q"
    incoming = [bytes.fromhex(f["hex"]) for f in case["frames"] if f["dir"] == direction]
    for f in incoming[: neg["deliver"]]:
        target.receive(f)
    expected = _class_for(neg["error"])
    with pytest.raises(expected) as info:
        target.receive(bytes.fromhex(neg["frame"]))
    assert type(info.value) is expected  # not a parent or a sibling class
