"""Bounds of the normalisers' LRU caches: one place, so memory per process has one budget.

Normalisation results are cached in-process by raw value (functools.lru_cache), never
persisted. Tokens (given names, surnames, Metaphone codes) recur across records and get the
largest caches; whole values (a full name, a phone number, a passport) recur only when a
record does, so their caches are small. Every cache is bounded: a process reading a file of
any size holds at most these many entries per cache (a few hundred bytes each), which is
why ingestion memory stays flat as files grow. Pure: constants and a report, no I/O.
"""

from __future__ import annotations

__all__ = ["DATE_CACHE", "TOKEN_CACHE", "VALUE_CACHE"]

#: Entries of per-token caches (transliteration variants, Metaphone, name parts).
TOKEN_CACHE = 1 << 16
#: Entries of per-value caches (whole names, dates, phones, e-mails, documents, accounts).
VALUE_CACHE = 1 << 14
#: Entries of the date parser's cache. Dates are a closed domain (a birth date is one of some
#: 30,000 days in a lifetime's span, written in a handful of formats), so they recur across
#: records as whole names do not: 10^6 synthetic records hold about 72,000 distinct date
#: strings, which a per-value cache would cycle through. Each entry is a short string and a
#: small date (about 200 bytes), so this many cost some 25 MiB at most.
DATE_CACHE = 1 << 17
