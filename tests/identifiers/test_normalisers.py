"""Normalisers per identifier type: canonical forms, and typed errors naming the field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fiumatch.identifiers import (
    DocumentKind,
    IdentifierError,
    PartialDate,
    normalise_account_number,
    normalise_bic,
    normalise_country,
    normalise_document,
    normalise_email,
    normalise_iban,
    normalise_lei,
    normalise_phone,
    normalise_wallet,
    parse_partial_date,
)
from fiumatch.identifiers.crypto import eip55, keccak256
from fiumatch.identifiers.errors import (
    ChecksumError,
    EmptyValueError,
    InvalidDateError,
    InvalidFormatError,
    UnknownCountryError,
    UnsupportedChainError,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("de89370400440532013000", "DE89370400440532013000"),
        ("IBAN GB29 NWBK 6016 1331 9268 19", "GB29NWBK60161331926819"),
        ("FR14-2004-1010-0505-0001-3M02-606", "FR1420041010050500013M02606"),
    ],
)
def test_iban_canonical(raw: str, canonical: str) -> None:
    assert normalise_iban(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("DE88 3704 0044 0532 0130 00", ChecksumError),
        ("XX89 3704 0044 0532 0130 00", InvalidFormatError),
        ("DE89 3704 0044 0532 0130", InvalidFormatError),
        ("  --  ", EmptyValueError),
    ],
)
def test_iban_errors_are_typed_and_do_not_echo(raw: str, error: type[IdentifierError]) -> None:
    with pytest.raises(error) as info:
        normalise_iban(raw, field="from_account.iban")
    assert info.value.field == "from_account.iban"
    assert info.value.http_status == 422
    assert "3704" not in str(info.value) and "0532" not in str(info.value)


def test_bic_and_account() -> None:
    assert normalise_bic("deutdeffxxx") == "DEUTDEFF"
    assert normalise_bic("DEUT DE FF 500") == "DEUTDEFF500"
    with pytest.raises(InvalidFormatError):
        normalise_bic("DEUTXXFF")
    assert normalise_account_number(" 0001-2345 67 ") == "0001234567"
    with pytest.raises(InvalidFormatError):
        normalise_account_number("ABCDEF")


def test_lei() -> None:
    assert normalise_lei("529900t8bm49aursdo55") == "529900T8BM49AURSDO55"
    with pytest.raises(ChecksumError):
        normalise_lei("529900T8BM49AURSDO56")


@pytest.mark.parametrize(
    ("raw", "alpha2"), [("de", "DE"), ("DEU", "DE"), ("gbr", "GB"), ("D", "DE"), ("XKX", "XK")]
)
def test_country_codes(raw: str, alpha2: str) -> None:
    assert normalise_country(raw) == alpha2


def test_unknown_country() -> None:
    with pytest.raises(UnknownCountryError) as info:
        normalise_country("ZZZ", "passport_country")
    assert info.value.field == "passport_country"


def test_documents_need_country_and_validate_where_stdnum_can() -> None:
    doc = normalise_document(DocumentKind.PASSPORT, "c01x 00t47", "DEU")
    assert (doc.country, doc.number) == ("DE", "C01X00T47")
    tax = normalise_document(DocumentKind.TAX_ID, "DE 86095742719", "DE")
    assert tax.number == "86095742719"
    assert normalise_document(DocumentKind.NATIONAL_ID, "12345678-z", "ES").number == "12345678Z"
    with pytest.raises(ChecksumError):
        normalise_document(DocumentKind.NATIONAL_ID, "12345678A", "ES")
    with pytest.raises(UnknownCountryError):
        normalise_document(DocumentKind.PASSPORT, "C01X00T47", "QQ")
    with pytest.raises(InvalidFormatError):
        normalise_document(DocumentKind.PASSPORT, "C01", "DE")


def test_phone_to_e164() -> None:
    assert normalise_phone("030 1234567", "DE") == "+49301234567"
    assert normalise_phone("0049 (30) 123-4567") == "+49301234567"
    assert normalise_phone("+7 912 345-67-89") == "+79123456789"
    with pytest.raises(InvalidFormatError):
        normalise_phone("030 1234567")  # national number, no country
    with pytest.raises(InvalidFormatError):
        normalise_phone("+49 1")


def test_email() -> None:
    assert normalise_email(" mailto:Hans.Mueller@Example.DE ") == "hans.mueller@example.de"
    assert normalise_email("a@bücher.de") == "a@xn--bcher-kva.de"
    for bad in ("no-at-sign", "a@b@c.de", "a@nodot", "@example.de"):
        with pytest.raises(InvalidFormatError):
            normalise_email(bad)


def test_keccak_and_eip55_against_published_vectors() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    # EIP-55's own examples.
    for address in (
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "fB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "dbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "D1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ):
        assert eip55(address.lower()) == address


def test_wallets() -> None:
    assert normalise_wallet("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "Ethereum") == (
        "ETH",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    )
    with pytest.raises(ChecksumError):
        normalise_wallet("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "ETH")
    assert normalise_wallet("BC1QARDV855YJNGSPVXUTTQ897AQCA3LXJU2Y69JCE") == (
        "BTC",
        "bc1qardv855yjngspvxuttq897aqca3lxju2y69jce",
    )
    taproot = "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"
    assert normalise_wallet(taproot, "btc") == ("BTC", taproot)
    assert normalise_wallet("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "xbt")[0] == "BTC"
    with pytest.raises(ChecksumError):
        normalise_wallet("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "BTC")
    with pytest.raises(UnsupportedChainError):
        normalise_wallet("addr1qx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer", "ADA")


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("1980-05-12", "1980-05-12"),
        ("12.05.1980", "1980-05-12"),
        ("12/05/1980", "1980-05-12"),
        ("1980-05-12T00:00:00", "1980-05-12"),
        ("19800512", "1980-05-12"),
        ("1980年5月12日", "1980-05-12"),
        ("1980/05/12", "1980-05-12"),
        ("1980-05", "1980-05"),
        ("05/1980", "1980-05"),
        ("1980", "1980"),
    ],
)
def test_partial_dates(raw: str, iso: str) -> None:
    from fiumatch.identifiers.dates import parse_partial_date_iso

    assert parse_partial_date(raw).iso == iso
    assert parse_partial_date_iso(raw) == (parse_partial_date(raw), iso)


@pytest.mark.parametrize("raw", ["31.02.1980", "1980-13", "yesterday", "1700-01-01", "12.5.80"])
def test_bad_dates(raw: str) -> None:
    from fiumatch.identifiers.dates import parse_partial_date_iso

    with pytest.raises(InvalidDateError) as info:
        parse_partial_date(raw, "birthdate")
    assert info.value.field == "birthdate"
    with pytest.raises(InvalidDateError) as info:
        parse_partial_date_iso(raw, "dob")
    assert info.value.field == "dob"


def test_partial_date_precision() -> None:
    assert PartialDate(1980).precision == "year"
    assert PartialDate(1980, 5).precision == "month"
    assert PartialDate(1980, 5, 12).precision == "day"


@pytest.mark.parametrize(
    ("call", "field", "error"),
    [
        (lambda f: normalise_phone("030 1234567", "XQ", f), "{}_country", UnknownCountryError),
        (lambda f: normalise_phone("+49 1", None, f), "{}", InvalidFormatError),
        (lambda f: normalise_iban("DE88 3704 0044 0532 0130 00", f), "{}", ChecksumError),
        (lambda f: normalise_bic("DEUT", f), "{}", InvalidFormatError),
        (lambda f: normalise_lei("529900T8BM49AURSDO56", f), "{}", ChecksumError),
        (lambda f: normalise_email("a@b@c.de", f), "{}", InvalidFormatError),
        (lambda f: normalise_wallet("0xabc", "ETH", f), "{}", InvalidFormatError),
        (lambda f: normalise_wallet("addr1qx2f", "ADA", f), "{}_chain", UnsupportedChainError),
        (
            lambda f: normalise_document(DocumentKind.NATIONAL_ID, "12345678A", "ES", f),
            "{}",
            ChecksumError,
        ),
        (
            lambda f: normalise_document(DocumentKind.PASSPORT, "C01X00T47", "XQ", f),
            "{}_country",
            UnknownCountryError,
        ),
    ],
)
def test_cached_failures_name_each_callers_field(
    call: Callable[[str], object], field: str, error: type[IdentifierError]
) -> None:
    # Normalisers cache failures by raw value; the second call must still name its own
    # field (and keep the suffix the normaliser adds), with the same type and reason.
    with pytest.raises(error) as first:
        call("first")
    with pytest.raises(error) as second:
        call("second")
    assert first.value.field == field.format("first")
    assert second.value.field == field.format("second")
    assert second.value.bare_reason == first.value.bare_reason
    assert type(second.value) is type(first.value)


def test_cached_results_are_the_uncached_results() -> None:
    from fiumatch.identifiers import contacts, documents

    contacts._phone_cached.cache_clear()
    documents._cached.cache_clear()
    assert normalise_phone("030 1234567", "DEU") == normalise_phone("030 1234567", "DEU")
    assert contacts._phone_cached.cache_info().hits == 1
    assert normalise_phone("030 1234567", "DEU") == contacts._phone("030 1234567", "DEU", "p")
    doc = normalise_document(DocumentKind.PASSPORT, "c01x 00t47", "deu")
    assert doc == documents._normalise(DocumentKind.PASSPORT, "c01x 00t47", "deu", "x")
    assert documents._cached.cache_info().currsize == 1
    assert contacts._phone_cached.cache_info().maxsize == contacts.CACHE_SIZE


def test_every_normaliser_cache_is_bounded() -> None:
    # Ingestion memory stays flat as files grow only if no cache can grow without bound.
    import importlib
    import pkgutil

    import fiumatch.identifiers as package
    from fiumatch.identifiers.caches import DATE_CACHE, TOKEN_CACHE

    caches = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"fiumatch.identifiers.{info.name}")
        for value in vars(module).values():
            if callable(value) and hasattr(value, "cache_info"):
                caches.append((info.name, value))
    assert len(caches) >= 15
    for name, cached in caches:
        maxsize = cached.cache_info().maxsize
        # Dates are a closed domain with a larger cache of their own (caches.DATE_CACHE).
        bound = DATE_CACHE if name == "dates" else TOKEN_CACHE
        assert maxsize is not None and maxsize <= bound, (name, cached)
