"""Warm the normalisers' libraries once, in the parallel reader's fork server.

Owns nothing but a list of made-up sample values (published example numbers, invented
names) and one pass over the normalisers with them. Importing this module runs that pass:
it is in :data:`fiumatch.ingest.parallel._PRELOAD`, so it runs once in the fork server and
every worker forked from it starts with what the libraries load lazily on first use already
loaded: ICU's Han, kana and Hangul rules (~150 ms on first use), libphonenumber's per-region
metadata, python-stdnum's code tables, schwifty's bank registry, rigour's legal-form and
honorific tables. Without it each worker paid these again. Must never hold a real
identifier, and must never be imported on a path that does not fork workers from it (the
pass costs about half a second).
"""

from __future__ import annotations

from datetime import date

__all__ = ["REGIONS", "warm"]

#: Phone regions whose metadata is loaded ahead: the EU, its neighbours and the regions
#: FIU exchanges most often involve. Others load on first use, as before.
REGIONS = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "GB", "CH", "NO",
    "UA", "RU", "BY", "TR", "RS", "AE", "CN", "HK", "JP", "KR", "IN", "US", "CA", "BR",
)  # fmt: skip


def warm() -> None:
    """One pass over every normaliser with made-up values; errors are part of the pass."""
    import phonenumbers

    from fiumatch.ingest.build import build_subject

    for region in REGIONS:
        example = phonenumbers.example_number(region)
        if example is not None:
            phonenumbers.is_valid_number(example)
    samples: list[dict[str, str]] = [
        {"type": "person", "name": "Dr. Anna-Lena Müller", "given_name": "Anna-Lena",
         "family_name": "Müller", "birth_date": "1980-05-12", "nationality": "DE",
         "phone": "+49 30 1234567", "email": "anna@example.com", "tax_id": "68509403101",
         "tax_id_country": "DE", "passport_number": "C01X00T47"},
        {"type": "person", "name": "王小明", "given_name": "小明", "family_name": "王",
         "birth_date": "1980年5月12日", "nationality": "CN",
         "national_id": "11010519491231002X", "national_id_country": "CN"},
        {"type": "person", "name": "Юрий Гагарин", "birth_date": "12.04.1961",
         "nationality": "RU", "tax_id": "7707083893", "tax_id_country": "RU"},
        {"type": "person", "name": "山田 太郎", "birth_date": "1970", "nationality": "JP"},
        {"type": "person", "name": "김 민준", "birth_date": "1990-01-01", "nationality": "KR"},
        {"type": "person", "name": "محمد علي", "birth_date": "1975", "nationality": "AE"},
        {"type": "person", "name": "Γιώργος Παπαδόπουλος", "birth_date": "1960",
         "nationality": "GR"},
        {"type": "organisation", "name": "Example Trading GmbH", "country": "DE",
         "registration_number": "HRB 12345", "lei": "5493001KJTIIGC8Y1R12"},
        {"type": "organisation", "name": "ООО «Пример»", "country": "RU"},
        {"type": "organisation", "name": "示例有限公司", "country": "CN"},
        {"type": "bank_account", "name": "Example", "iban": "DE89 3704 0044 0532 0130 00",
         "bic": "COBADEFFXXX", "account_number": "0532013000", "country": "DE"},
        {"type": "crypto_wallet", "wallet_address": "0x52908400098527886E0F7030069857D2E4169EE7",
         "wallet_chain": "ethereum"},
    ]  # fmt: skip
    for i, fields in enumerate(samples):
        # A reject is as good as a subject here: the point is the libraries' first use.
        build_subject(
            {"local_ref": f"warm-{i}", **fields}, source="warm-up", file="warm-up",
            record="warm-up", line=None, default_retention=date(2100, 1, 1),
        )  # fmt: skip


warm()
