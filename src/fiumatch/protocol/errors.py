"""Typed protocol errors, each with a stable code (SPEC.md, "Error codes").

A ``LocalProtocolError`` means *we* were asked to do something the protocol forbids (a bug in
the caller); a ``RemoteProtocolError`` means the *peer* sent something invalid. Nodes answer a
remote error with its ``http_status`` and ``code``; they never answer with a 500 for one.

Tree::

    ProtocolError
    ├── LocalProtocolError               local_protocol_error (500: our bug)
    └── RemoteProtocolError              (4xx: the peer's fault)
        ├── DecodeError                  malformed bytes
        │   ├── InvalidElementError      non-canonical, wrong length, identity point
        │   ├── InvalidScalarError       scalar out of range or zero
        │   ├── TruncatedMessageError    fewer bytes than a length prefix promises
        │   ├── OversizedMessageError    a field or count above the allowed maximum
        │   ├── UnknownVersionError      wire version or message type not understood
        │   └── TrailingDataError        bytes left after a complete message
        ├── BindingError                 a valid message that belongs elsewhere
        │   ├── WrongSessionError
        │   ├── WrongEpochError
        │   ├── WrongModeError
        │   └── WrongSuiteError
        ├── StateError                   a valid message at the wrong time
        │   ├── OutOfOrderError
        │   └── ReplayError
        ├── VerifyError                  a DLEQ proof or transcript signature does not verify
        └── FilterError                  a filter or delta that is inconsistent
"""

from __future__ import annotations

from fiumatch.errors import FiumatchError


class ProtocolError(FiumatchError):
    """A protocol rule was broken."""

    code = "protocol_error"
    http_status = 400


class LocalProtocolError(ProtocolError):
    """This side tried to do something the protocol forbids."""

    code = "local_protocol_error"
    http_status = 500


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""

    code = "remote_protocol_error"
    http_status = 400


class DecodeError(RemoteProtocolError):
    """Bytes that do not decode."""

    code = "decode_error"
    http_status = 400


class InvalidElementError(DecodeError):
    """Not a canonical encoding of a non-identity ristretto255 element."""

    code = "invalid_element"


class InvalidScalarError(DecodeError):
    """Not a canonical, non-zero scalar below the group order."""

    code = "invalid_scalar"


class TruncatedMessageError(DecodeError):
    """The message ends before a length prefix says it should."""

    code = "truncated_message"


class OversizedMessageError(DecodeError):
    """A field, count or message exceeds its allowed maximum."""

    code = "oversized_message"
    http_status = 413


class UnknownVersionError(DecodeError):
    """Unknown wire version, message type, mode or suite."""

    code = "unknown_version"


class TrailingDataError(DecodeError):
    """Bytes remain after a complete message."""

    code = "trailing_data"


class BindingError(RemoteProtocolError):
    """The message is valid but bound to another session, epoch, mode or suite."""

    code = "binding_error"
    http_status = 409


class WrongSessionError(BindingError):
    """The message belongs to another session."""

    code = "wrong_session"


class WrongEpochError(BindingError):
    """The message is bound to another key epoch."""

    code = "wrong_epoch"


class WrongModeError(BindingError):
    """The message is bound to another PSI mode."""

    code = "wrong_mode"


class WrongSuiteError(BindingError):
    """The message is bound to another ciphersuite."""

    code = "wrong_suite"


class StateError(RemoteProtocolError):
    """The message is valid but not allowed in the session's current state."""

    code = "state_error"
    http_status = 409


class OutOfOrderError(StateError):
    """The message type is not expected in the current state."""

    code = "out_of_order"


class ReplayError(StateError):
    """The message (or its sequence number) was already processed."""

    code = "replay"


class VerifyError(RemoteProtocolError):
    """A DLEQ proof or a transcript signature does not verify."""

    code = "verify_failed"
    http_status = 422


class FilterError(RemoteProtocolError):
    """A filter or delta filter is inconsistent with its header."""

    code = "filter_error"
    http_status = 422
