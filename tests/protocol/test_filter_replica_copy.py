"""``FilterReplica.copy``: an independent replica in the same state (the querier node keeps one
replica per peer and gives each session its own copy, so a failed session cannot taint it)."""

from __future__ import annotations

import hashlib

import pytest

from fiumatch.protocol.errors import FilterError
from fiumatch.protocol.filters import FilterLedger, FilterReplica


def outputs(tag: str, n: int) -> list[bytes]:
    return [hashlib.sha512(f"{tag}/{i}".encode()).digest() for i in range(n)]


def _ledgers() -> list[FilterLedger]:
    owned = outputs("owner", 200)
    return [
        FilterLedger.bloom(owned, suite=1, epoch=3, fp_rate=1e-6, capacity=400, seed=9),
        FilterLedger.exact(owned, suite=1, epoch=3, fp_rate=1e-6, capacity=400),
    ]


@pytest.mark.parametrize("ledger", _ledgers(), ids=["bloom", "exact"])
def test_a_copy_has_the_same_state_and_evolves_independently(ledger: FilterLedger) -> None:
    base = FilterReplica(suite=1, epoch=3)
    for obj in ledger.objects_since(bytes(16), 0):
        base.apply(obj)
    empty_copy = FilterReplica(suite=1, epoch=3).copy()
    assert empty_copy.kind is None and empty_copy.generation == 0
    assert outputs("owner", 1)[0] not in empty_copy

    twin = base.copy()
    assert (twin.suite, twin.epoch, twin.filter_id, twin.generation, twin.count, twin.kind) == (
        base.suite,
        base.epoch,
        base.filter_id,
        base.generation,
        base.count,
        base.kind,
    )
    assert all(o in twin for o in outputs("owner", 200))
    assert twin.false_positive_rate() == base.false_positive_rate()

    added = outputs("added", 50)
    delta = ledger.add(added)
    twin.apply(delta)
    assert twin.generation == base.generation + 1
    assert all(o in twin for o in added)
    # The original did not move: same generation, none of the new outputs (bloom: the bits
    # were copied, not shared), and it still takes the delta itself.
    assert base.count == 200 and not any(o in base for o in added)
    base.apply(delta)
    assert all(o in base for o in added) and base.generation == twin.generation
    # A copy of a copy refuses what its source refuses (same generation checks).
    with pytest.raises(FilterError):
        twin.copy().apply(delta)
