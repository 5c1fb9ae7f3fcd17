"""Bounds of the normalisers' LRU caches: one place, so memory per process has one budget.

Normalisation results are cached in-process by raw value (functools.lru_cache), never
persisted. Tokens (given names, surnames, Metaphone codes) recur across records and get the
largest caches; whole values (a full name, a phone number, a passport) recur only when a
record does, so their caches are small. Every cache is bounded: a process reading a file of
any size holds at most these many entries per cache (a few hundred bytes each), which is
why ingestion memory stays flat as files grow. Pure: constants and a report, no I/O.
"""

from __future__ import annotations

__all__ = ["TOKEN_CACHE", "VALUE_CACHE"]

#: Entries of per-token caches (transliteration variants, Metaphone, name parts).
TOKEN_CACHE = 1 << 16
#: Entries of per-value caches (whole names, dates, phones, e-mails, documents, accounts).
VALUE_CACHE = 1 << 14
