"""Differential test: on the same random sets, every mode agrees with OpenMined PSI.

OpenMined's ECDH-PSI (``openmined-psi``, RAW data structure, so no false positives) is an
independent implementation on another curve; agreement on the intersection (mutual, filter) and
its size (cardinality) catches logic errors that a self-consistent implementation would not.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiumatch.protocol.psi import run_cardinality, run_filter, run_mutual
from tests.protocol.psi_support import Drbg, items

psi = pytest.importorskip("private_set_intersection.python")

UNIVERSE = items("differential", 48)
sets = st.lists(st.sampled_from(UNIVERSE), max_size=16, unique=True)
DIFF = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def openmined(x: list[bytes], y: list[bytes], *, reveal: bool) -> set[bytes] | int:
    """The client (querier, ``x``) learns the intersection (``reveal``) or its size."""
    c = psi.client.CreateWithNewKey(reveal)
    s = psi.server.CreateWithNewKey(reveal)
    xs = [e.hex() for e in x]
    setup = s.CreateSetupMessage(1e-9, len(xs), [e.hex() for e in y], psi.DataStructure.RAW)
    response = s.ProcessRequest(c.CreateRequest(xs))
    if reveal:
        return {x[i] for i in c.GetIntersection(setup, response)}
    return int(c.GetIntersectionSize(setup, response))


@DIFF
@given(x=sets, y=sets, seed=st.binary(min_size=1, max_size=8))
def test_mutual_matches_openmined(x: list[bytes], y: list[bytes], seed: bytes) -> None:
    run = run_mutual(y, x, rng=Drbg(seed))
    expected = openmined(x, y, reveal=True)
    assert set(run.querier.intersection) == expected
    assert set(run.owner.intersection) == expected


@DIFF
@given(x=sets, y=sets, seed=st.binary(min_size=1, max_size=8))
def test_cardinality_matches_openmined(x: list[bytes], y: list[bytes], seed: bytes) -> None:
    run = run_cardinality(y, x, rng=Drbg(seed))
    assert run.querier.count == openmined(x, y, reveal=False)


@DIFF
@given(x=sets, y=sets, seed=st.binary(min_size=1, max_size=8), exact=st.booleans())
def test_filter_matches_openmined(x: list[bytes], y: list[bytes], seed: bytes, exact: bool) -> None:
    # At a 1e-9 false-positive rate a spurious hit among <= 16 probes has probability < 2e-8.
    run = run_filter(y, x, rng=Drbg(seed), fp_rate=1e-9, exact=exact)
    assert set(run.querier.hits) == openmined(x, y, reveal=True)
