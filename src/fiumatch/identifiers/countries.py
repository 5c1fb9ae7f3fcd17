"""Country codes: ISO 3166-1 alpha-2 and alpha-3 in, alpha-2 out.

Owns the one table that maps what readers meet (``DE``, ``deu``, ``D`` on a passport) to the
canonical upper-case alpha-2 code used in match keys. Pure: the table is built once, lazily,
from pycountry's copy of ISO 3166-1 plus the few hand-written extras listed in
``EXTRA_CODES``. Never guesses from country names.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from fiumatch.identifiers.errors import EmptyValueError, UnknownCountryError

__all__ = ["EXTRA_CODES", "normalise_country"]

#: Codes outside ISO 3166-1's officially assigned set that FIU data uses. Hand-written.
EXTRA_CODES: dict[str, str] = {
    "XK": "XK",  # Kosovo (user-assigned, used by the EU and ICAO)
    "XKX": "XK",
    "UK": "GB",  # exceptionally reserved for the United Kingdom
    "D": "DE",  # ICAO 9303: Germany's code in passports and the MRZ
    "EL": "GR",  # EU usage for Greece (VAT prefixes)
}


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    import pycountry

    table: dict[str, str] = {}
    for country in pycountry.countries:
        table[country.alpha_2] = country.alpha_2
        table[country.alpha_3] = country.alpha_2
    table.update(EXTRA_CODES)
    return table


def normalise_country(value: str, field: str = "country") -> str:
    """Return the upper-case ISO 3166-1 alpha-2 code for an alpha-2 or alpha-3 code."""
    found = _table().get(value)
    if found is not None:
        return found
    code = unicodedata.normalize("NFKC", value).strip().upper()
    if not code:
        raise EmptyValueError(field, "no country code")
    try:
        return _table()[code]
    except KeyError:
        raise UnknownCountryError(field, "not an ISO 3166-1 alpha-2 or alpha-3 code") from None
