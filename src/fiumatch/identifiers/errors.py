"""Typed identifier errors, each with a stable code (SPEC.md §13.7, "Errors").

Every error names the *field* that failed and the *reason*, never the value: a message may
end up in a reject report, a log line or an HTTP answer, and identifiers are personal data.
The ``field`` is also kept as an attribute so a reader can build a reject entry from it.

Tree::

    IdentifierError                 identifier_error     (422)
    ├── EmptyValueError             empty_value          nothing left after normalisation
    ├── InvalidFormatError          invalid_format       wrong shape, length or characters
    ├── ChecksumError               bad_checksum         check digits do not verify
    ├── UnknownCountryError         unknown_country      not an ISO 3166-1 alpha-2/alpha-3 code
    ├── InvalidDateError            invalid_date         not a (partial) calendar date we accept
    ├── UnsupportedChainError       unsupported_chain    crypto chain we cannot validate
    ├── UnknownSubjectTypeError     unknown_subject_type not one of the seven subject types
    ├── NoMatchKeyError             no_match_key         a subject from which no key derives
    └── KeyEncodingError            key_encoding         a field too long or too many fields
"""

from __future__ import annotations

from dataclasses import dataclass

from fiumatch.errors import FiumatchError

__all__ = [
    "ChecksumError",
    "EmptyValueError",
    "Failure",
    "IdentifierError",
    "InvalidDateError",
    "InvalidFormatError",
    "KeyEncodingError",
    "NoMatchKeyError",
    "UnknownCountryError",
    "UnknownSubjectTypeError",
    "UnsupportedChainError",
]


class IdentifierError(FiumatchError):
    """An identifier, name or date could not be normalised."""

    code = "identifier_error"
    http_status = 422

    def __init__(self, field: str, reason: str = "") -> None:
        self.field = field
        super().__init__(f"{field}: {reason or self.__class__.__doc__}", field=field)
        # ``reason`` without the field prefix, for reject reports that have a field column.
        self.bare_reason = reason or (self.__class__.__doc__ or self.code)


class EmptyValueError(IdentifierError):
    """The value is empty, or nothing is left of it after normalisation."""

    code = "empty_value"


class InvalidFormatError(IdentifierError):
    """The value has the wrong shape, length or characters."""

    code = "invalid_format"


class ChecksumError(IdentifierError):
    """The value's check digits do not verify."""

    code = "bad_checksum"


class UnknownCountryError(IdentifierError):
    """Not an ISO 3166-1 alpha-2 or alpha-3 country code."""

    code = "unknown_country"


class InvalidDateError(IdentifierError):
    """Not a full or partial calendar date in an accepted format."""

    code = "invalid_date"


class UnsupportedChainError(IdentifierError):
    """The crypto chain is unknown and cannot be inferred from the address."""

    code = "unsupported_chain"


class UnknownSubjectTypeError(IdentifierError):
    """Not one of the subject types."""

    code = "unknown_subject_type"


class NoMatchKeyError(IdentifierError):
    """No match key can be derived from the subject."""

    code = "no_match_key"


class KeyEncodingError(IdentifierError):
    """A match-key field is too long or a key has too many fields."""

    code = "key_encoding"


@dataclass(frozen=True, slots=True)
class Failure:
    """A normaliser's error as a value, so a bounded cache can keep it.

    Normalisers cache their results by raw value (the same phone number or passport recurs
    across records); a cached failure is kept without the caller's field name and turned
    back into the same error, for the caller's field, by :meth:`at`. ``suffix`` is what the
    normaliser appended to its field (``"_country"`` when the error is in the country).
    """

    error: type[IdentifierError]
    suffix: str
    reason: str

    @classmethod
    def of(cls, exc: IdentifierError, base: str = "") -> Failure:
        """The failure of ``exc``, raised by a normaliser that was given field ``base``."""
        suffix = exc.field[len(base) :] if exc.field.startswith(base) else exc.field
        return cls(type(exc), suffix, exc.bare_reason)

    def at(self, field: str) -> IdentifierError:
        """The error for ``field``, as the normaliser would have raised it uncached."""
        return self.error(field + self.suffix, self.reason)
