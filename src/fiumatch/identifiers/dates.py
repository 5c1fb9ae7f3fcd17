"""Full and partial dates (year, year-month, year-month-day).

Owns the accepted input formats and the canonical forms ``YYYY``, ``YYYY-MM`` and
``YYYY-MM-DD`` used in match keys. Pure and hand-written (the accepted formats are a short,
closed list, so they are spelt out here rather than delegated to a guessing parser). Never
reads the clock: "not in the future" is the caller's business.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from fiumatch.identifiers.caches import DATE_CACHE
from fiumatch.identifiers.errors import EmptyValueError, IdentifierError, InvalidDateError

__all__ = ["MAX_YEAR", "MIN_YEAR", "PartialDate", "parse_partial_date", "parse_partial_date_iso"]

MIN_YEAR = 1850
MAX_YEAR = 2100


@dataclass(frozen=True, slots=True, order=True)
class PartialDate:
    """A date known to the year, the month or the day."""

    year: int
    month: int | None = None
    day: int | None = None

    @property
    def iso(self) -> str:
        """Canonical form: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    @property
    def precision(self) -> str:
        return "year" if self.month is None else "month" if self.day is None else "day"

    def __reduce__(self) -> tuple[type[PartialDate], tuple[int, int | None, int | None]]:
        # Positional pickling: the dataclass default for slots goes through fields() and is
        # several times slower, which the parallel reader pays for every subject it returns.
        return PartialDate, (self.year, self.month, self.day)


# Year first: YYYY, YYYY-MM, YYYY-MM-DD, with - / . as separator; an ISO 8601 time part
# (goAML's xs:dateTime "1980-05-12T00:00:00") is ignored.
_YEAR_FIRST = re.compile(
    r"(?P<y>\d{4})(?:(?P<s>[-/.])(?P<m>\d{1,2})(?:(?P=s)(?P<d>\d{1,2}))?)?(?:[T ]\d{2}:\d{2}.*)?"
)
# Day first: DD.MM.YYYY, DD/MM/YYYY, DD-MM-YYYY (never month first), and MM.YYYY etc.
_DAY_FIRST = re.compile(
    r"(?:(?P<d>\d{1,2})(?P<s>[-/.]))?(?P<m>\d{1,2})(?(s)(?P=s)|[-/.])(?P<y>\d{4})"
)
_COMPACT = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")
# CJK: 1980年5月12日 / 1980年5月 / 1980年
_CJK = re.compile(r"(?P<y>\d{4})年(?:(?P<m>\d{1,2})月(?:(?P<d>\d{1,2})日)?)?")


def parse_partial_date(value: str, field: str = "birth_date") -> PartialDate:
    """Parse a full or partial date; raise :class:`InvalidDateError` naming ``field``."""
    try:
        return _parse_cached(value)[0]
    except IdentifierError as exc:
        raise type(exc)(field, exc.bare_reason) from None


def parse_partial_date_iso(value: str, field: str = "birth_date") -> tuple[PartialDate, str]:
    """:func:`parse_partial_date` and the date's canonical form (:attr:`PartialDate.iso`),
    both from the cache: a reader needs the form for every person's keys."""
    try:
        return _parse_cached(value)
    except IdentifierError as exc:
        raise type(exc)(field, exc.bare_reason) from None


@lru_cache(maxsize=DATE_CACHE)
def _parse_cached(value: str) -> tuple[PartialDate, str]:
    field = "date"
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise EmptyValueError(field, "no date")
    match = (
        _YEAR_FIRST.fullmatch(text)
        or _COMPACT.fullmatch(text)
        or _DAY_FIRST.fullmatch(text)
        or _CJK.fullmatch(text)
    )
    if match is None:
        raise InvalidDateError(field, "not an accepted date format")
    groups = match.groupdict()
    year = int(groups["y"])
    month = int(groups["m"]) if groups.get("m") else None
    day = int(groups["d"]) if groups.get("d") else None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidDateError(field, f"year outside {MIN_YEAR}-{MAX_YEAR}")
    if month is not None and not 1 <= month <= 12:
        raise InvalidDateError(field, "month outside 1-12")
    if day is not None:
        assert month is not None
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise InvalidDateError(field, "day does not exist in that month")
    parsed = PartialDate(year, month, day)
    return parsed, parsed.iso
