"""Everything that affects the session state machines lives here (SPEC.md §6).

One table, :data:`TRANSITIONS`, says for every mode and role which message may arrive in which
state, which state follows, and which message types the machine sends in reply. The machines in
``filter``, ``mutual`` and ``cardinality`` look every incoming frame up in it *before* they
touch the frame's body: a frame with no entry is ``OutOfOrderError``. ``START`` is the
querier's own ``start()`` call, the only input that is not a frame.

This module must never hold per-session data, do cryptography or decode bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from fiumatch.protocol.wire import Mode, MsgType

__all__ = ["START", "TRANSITIONS", "Input", "Role", "State", "Transition", "expected_inputs"]


class Role(Enum):
    """The querier opens a session (sends HELLO); the owner answers."""

    QUERIER = "querier"
    OWNER = "owner"


class State(Enum):
    START = "start"
    AWAIT_HELLO_ACK = "await_hello_ack"
    RECV_FILTER = "recv_filter"
    RECV_QUERY = "recv_query"
    RECV_EVAL = "recv_eval"
    RECV_SET = "recv_set"
    RECV_REVEAL = "recv_reveal"
    AWAIT_FINISH = "await_finish"
    AWAIT_FINISH_ACK = "await_finish_ack"
    DONE = "done"
    FAILED = "failed"
    """Any error is fatal: a failed machine refuses every further input."""


START: Final = "start"
Input = MsgType | Literal["start"]


@dataclass(frozen=True, slots=True)
class Transition:
    """The state after an input, and the message types sent in reply, in order.

    A ``*_CHUNK`` in ``sends`` stands for zero or more chunk frames (an empty set has none).
    """

    next: State
    sends: tuple[MsgType, ...] = ()


F, M, C = Mode.FILTER, Mode.MUTUAL, Mode.CARDINALITY
QR, OW = Role.QUERIER, Role.OWNER
S = State
T = MsgType

TRANSITIONS: Final[dict[tuple[Mode, Role, State, Input], Transition]] = {
    # ---- filter mode: owner publishes a filter, querier learns its hits ------------------
    (F, QR, S.START, START): Transition(S.AWAIT_HELLO_ACK, (T.HELLO,)),
    (F, OW, S.START, T.HELLO): Transition(
        S.RECV_QUERY, (T.HELLO_ACK, T.FILTER_CHUNK, T.FILTER_END)
    ),
    (F, QR, S.AWAIT_HELLO_ACK, T.HELLO_ACK): Transition(S.RECV_FILTER),
    (F, QR, S.RECV_FILTER, T.FILTER_CHUNK): Transition(S.RECV_FILTER),
    (F, QR, S.RECV_FILTER, T.FILTER_END): Transition(S.RECV_EVAL, (T.QUERY_CHUNK, T.QUERY_END)),
    (F, OW, S.RECV_QUERY, T.QUERY_CHUNK): Transition(S.RECV_QUERY, (T.EVAL_CHUNK,)),
    (F, OW, S.RECV_QUERY, T.QUERY_END): Transition(S.DONE, (T.EVAL_END,)),
    (F, QR, S.RECV_EVAL, T.EVAL_CHUNK): Transition(S.RECV_EVAL),
    (F, QR, S.RECV_EVAL, T.EVAL_END): Transition(S.DONE),
    # ---- mutual mode: both learn the intersection and sign the transcript ----------------
    (M, QR, S.START, START): Transition(S.AWAIT_HELLO_ACK, (T.HELLO,)),
    (M, OW, S.START, T.HELLO): Transition(S.RECV_QUERY, (T.HELLO_ACK,)),
    (M, QR, S.AWAIT_HELLO_ACK, T.HELLO_ACK): Transition(S.RECV_EVAL, (T.QUERY_CHUNK, T.QUERY_END)),
    (M, OW, S.RECV_QUERY, T.QUERY_CHUNK): Transition(S.RECV_QUERY, (T.EVAL_CHUNK,)),
    (M, OW, S.RECV_QUERY, T.QUERY_END): Transition(
        S.RECV_REVEAL, (T.EVAL_END, T.SET_CHUNK, T.SET_END)
    ),
    (M, QR, S.RECV_EVAL, T.EVAL_CHUNK): Transition(S.RECV_EVAL),
    (M, QR, S.RECV_EVAL, T.EVAL_END): Transition(S.RECV_SET),
    (M, QR, S.RECV_SET, T.SET_CHUNK): Transition(S.RECV_SET),
    (M, QR, S.RECV_SET, T.SET_END): Transition(
        S.AWAIT_FINISH_ACK, (T.REVEAL_CHUNK, T.REVEAL_END, T.FINISH)
    ),
    (M, OW, S.RECV_REVEAL, T.REVEAL_CHUNK): Transition(S.RECV_REVEAL),
    (M, OW, S.RECV_REVEAL, T.REVEAL_END): Transition(S.AWAIT_FINISH),
    (M, OW, S.AWAIT_FINISH, T.FINISH): Transition(S.DONE, (T.FINISH_ACK,)),
    (M, QR, S.AWAIT_FINISH_ACK, T.FINISH_ACK): Transition(S.DONE),
    # ---- cardinality mode: querier learns only the number of hits ------------------------
    (C, QR, S.START, START): Transition(S.AWAIT_HELLO_ACK, (T.HELLO,)),
    (C, OW, S.START, T.HELLO): Transition(S.RECV_QUERY, (T.HELLO_ACK,)),
    (C, QR, S.AWAIT_HELLO_ACK, T.HELLO_ACK): Transition(S.RECV_EVAL, (T.QUERY_CHUNK, T.QUERY_END)),
    (C, OW, S.RECV_QUERY, T.QUERY_CHUNK): Transition(S.RECV_QUERY),
    (C, OW, S.RECV_QUERY, T.QUERY_END): Transition(
        S.DONE, (T.EVAL_CHUNK, T.EVAL_END, T.SET_CHUNK, T.SET_END)
    ),
    (C, QR, S.RECV_EVAL, T.EVAL_CHUNK): Transition(S.RECV_EVAL),
    (C, QR, S.RECV_EVAL, T.EVAL_END): Transition(S.RECV_SET),
    (C, QR, S.RECV_SET, T.SET_CHUNK): Transition(S.RECV_SET),
    (C, QR, S.RECV_SET, T.SET_END): Transition(S.DONE),
}

del F, M, C, QR, OW, S, T


def expected_inputs(mode: Mode, role: Role, state: State) -> list[Input]:
    """The inputs allowed in ``state`` (for error reports and the SPEC tables)."""
    return [i for (m, r, s, i) in TRANSITIONS if (m, r, s) == (mode, role, state)]
