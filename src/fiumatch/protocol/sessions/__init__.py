"""Sans-I/O session state machines for the three PSI modes (SPEC.md §6, §8).

Every machine takes bytes in (``receive(frame)``) and gives bytes out (a list of frames to
send); the querier's ``start()`` gives the opening HELLO. Randomness comes from the caller's
``rng``; there is no I/O, no clock, no threading. The allowed (state, message) pairs of all
modes and roles are one table, :data:`TRANSITIONS` in ``_state``.

=================  ==============================  =========================================
mode               querier learns                  owner learns
=================  ==============================  =========================================
filter             its keys found in the filter    number of evaluations asked for
mutual             the intersection (signed)       the intersection (signed)
cardinality        ``|X ∩ Y|`` and ``|Y|``          ``|X|``
=================  ==============================  =========================================

Per-chunk cryptography runs through an optional ``executor`` (keyword-only on every machine,
:class:`ChunkExecutor`; default :data:`SERIAL`), an abstract ordered ``map`` that a shell may
back with a process pool or a cluster (``fiumatch.engine``); the frames do not depend on it.

This package must never do I/O, read clocks, use global randomness or log; a machine is driven
entirely by the frames and the ``rng`` its caller gives it.
"""

from __future__ import annotations

from fiumatch.protocol.sessions._base import (
    SERIAL,
    ChunkExecutor,
    ResultMismatchError,
    Rng,
    SerialExecutor,
    SessionMachine,
)
from fiumatch.protocol.sessions._ops import (
    CARDINALITY_H2G_DST,
    CARDINALITY_TAG_DST,
    MUTUAL_H2G_DST,
    MUTUAL_SIGNATURE_DST,
    MUTUAL_TAG_DST,
    TRANSCRIPT_DST,
    evaluate_chunk,
    finalize_chunk,
    hash_and_mult_chunk,
    mult_chunk,
    shuffle_permutation,
    tag_chunk,
    validate_chunk,
)
from fiumatch.protocol.sessions._state import (
    START,
    TRANSITIONS,
    Role,
    State,
    Transition,
    expected_inputs,
)
from fiumatch.protocol.sessions.cardinality import (
    CardinalityOwner,
    CardinalityOwnerResult,
    CardinalityQuerier,
    CardinalityResult,
)
from fiumatch.protocol.sessions.filter_mode import (
    FilterOwner,
    FilterOwnerResult,
    FilterQuerier,
    FilterResult,
    add_to_ledger,
    build_ledger,
    evaluate_outputs,
    oprf_mode,
)
from fiumatch.protocol.sessions.mutual import (
    MutualOwner,
    MutualQuerier,
    MutualResult,
    result_statement,
)

__all__ = [
    "CARDINALITY_H2G_DST",
    "CARDINALITY_TAG_DST",
    "MUTUAL_H2G_DST",
    "MUTUAL_SIGNATURE_DST",
    "MUTUAL_TAG_DST",
    "SERIAL",
    "START",
    "TRANSCRIPT_DST",
    "TRANSITIONS",
    "CardinalityOwner",
    "CardinalityOwnerResult",
    "CardinalityQuerier",
    "CardinalityResult",
    "ChunkExecutor",
    "FilterOwner",
    "FilterOwnerResult",
    "FilterQuerier",
    "FilterResult",
    "MutualOwner",
    "MutualQuerier",
    "MutualResult",
    "ResultMismatchError",
    "Rng",
    "Role",
    "SerialExecutor",
    "SessionMachine",
    "State",
    "Transition",
    "add_to_ledger",
    "build_ledger",
    "evaluate_chunk",
    "evaluate_outputs",
    "expected_inputs",
    "finalize_chunk",
    "hash_and_mult_chunk",
    "mult_chunk",
    "oprf_mode",
    "result_statement",
    "shuffle_permutation",
    "tag_chunk",
    "validate_chunk",
]
