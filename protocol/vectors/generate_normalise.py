# ruff: noqa: E501  (the case table reads best one case per line)
"""Generate protocol/vectors/normalise.json: raw records -> canonical match keys.

Each case is one record in the documented column vocabulary (SPEC.md §13.3, "Record
fields") and either the set of match keys it derives (type, code, canonical fields and the
encoded bytes in hex) or the rejects it must raise (field and error code). Another
implementation that follows the spec must derive byte-identical keys for every positive
case and reject every negative case with the same codes.

Run from the repository root:  .venv/bin/python protocol/vectors/generate_normalise.py
The output depends on the pinned library versions recorded in the file's header.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fiumatch.identifiers import Subject
from fiumatch.ingest.build import build_subject

OUT = Path(__file__).with_name("normalise.json")

P = "person"
O = "organisation"  # noqa: E741

CASES: list[tuple[str, dict[str, Any]]] = [
    # --- persons: scripts -----------------------------------------------------------------
    ("latin-diacritics-both-variants", {"type": P, "name": "Jürgen Müller", "birth_date": "1980-05-12"}),
    ("latin-digraph-input", {"type": P, "name": "Juergen Mueller", "birth_date": "1980-05-12"}),
    ("latin-folded-input", {"type": P, "name": "Jurgen Muller", "birth_date": "1980-05-12"}),
    ("latin-structured-middle", {"type": P, "given_name": "Hans", "middle_name": "Peter", "family_name": "Müller", "birth_date": "12.05.1980"}),
    ("latin-family-first-upper", {"type": P, "name": "MÜLLER Hans", "birth_date": "1980-05-12T00:00:00"}),
    ("latin-honorific", {"type": P, "name": "Dr. Hans Müller", "birth_date": "1980-05-12"}),
    ("latin-honorifics-stacked", {"type": P, "name": "Prof. Dr Hans Müller", "birth_date": "1980-05-12"}),
    ("latin-apostrophe", {"type": P, "name": "Seán O’Brien", "birth_date": "1969-11-02"}),
    ("latin-hyphen", {"type": P, "given_name": "Jean-Pierre", "family_name": "Léger", "birth_date": "02/03/1971"}),
    ("latin-polish", {"type": P, "name": "Łukasz Żółć", "birth_date": "1990"}),
    ("latin-turkish", {"type": P, "given_name": "İsmail", "family_name": "Çağlar", "birth_date": "1985-07"}),
    ("latin-scandinavian", {"type": P, "name": "Øyvind Åsmund Ødegård", "birth_date": "1977-01-30"}),
    ("latin-icelandic", {"type": P, "name": "Ævar Þór Jónsson", "birth_date": "1960-06-06"}),
    ("latin-sharp-s", {"type": P, "given_name": "Grete", "family_name": "Strauß", "birth_date": "1955-12-24"}),
    ("latin-vietnamese", {"type": P, "name": "Nguyễn Tấn Dũng", "birth_date": "1949-11-17"}),
    ("latin-spanish-two-surnames", {"type": P, "given_name": "José María", "family_name": "Aznar López", "birth_date": "1953-02-25"}),
    ("latin-fullwidth-nfkc", {"type": P, "name": "ＪＯＨＮ ＳＭＩＴＨ", "birth_date": "1970-01-01"}),
    ("cyrillic-russian", {"type": P, "given_name": "Владимир", "middle_name": "Петрович", "family_name": "Хабаров", "birth_date": "1975-03-14"}),
    ("cyrillic-icao-passport-form", {"type": P, "given_name": "VLADIMIR", "family_name": "KHABAROV", "birth_date": "1975-03-14"}),
    ("cyrillic-ya-yu", {"type": P, "given_name": "Юрий", "family_name": "Яковлев", "birth_date": "1968-08-08"}),
    ("cyrillic-ukrainian", {"type": P, "given_name": "Олександр", "family_name": "Їжак", "birth_date": "1982-04-01"}),
    ("cyrillic-serbian", {"type": P, "name": "Ђорђе Њежић", "birth_date": "1979-09-09"}),
    ("cyrillic-bulgarian", {"type": P, "name": "Стефан Щерев", "birth_date": "1966-06-16"}),
    ("greek", {"type": P, "name": "Αλέξης Τσίπρας", "birth_date": "1974-07-28"}),
    ("greek-final-sigma-upper", {"type": P, "name": "ΑΛΕΞΗΣ ΤΣΙΠΡΑΣ", "birth_date": "1974-07-28"}),
    ("armenian", {"type": P, "name": "Սերժ Սարգսյան", "birth_date": "1954-06-30"}),
    ("georgian", {"type": P, "name": "მიხეილ სააკაშვილი", "birth_date": "1967-12-21"}),
    ("arabic", {"type": P, "given_name": "محمد", "family_name": "المنصوري", "birth_date": "1988-10-10"}),
    ("arabic-with-latin-alias", {"type": P, "given_name": "محمد", "family_name": "المنصوري", "aliases": "Mohammed Al Mansouri", "birth_date": "1988-10-10"}),
    ("hebrew", {"type": P, "name": "בנימין נתניהו", "birth_date": "1949-10-21"}),
    ("persian", {"type": P, "name": "حسن روحانی", "birth_date": "1948-11-12"}),
    ("chinese-unstructured", {"type": P, "name": "习近平", "birth_date": "1953-06-15"}),
    ("chinese-structured", {"type": P, "given_name": "近平", "family_name": "习", "birth_date": "1953年6月15日"}),
    ("chinese-pinyin", {"type": P, "given_name": "Jinping", "family_name": "XI", "birth_date": "1953-06-15"}),
    ("japanese-kanji", {"type": P, "given_name": "太郎", "family_name": "山田", "birth_date": "1980/01/02"}),
    ("japanese-katakana", {"type": P, "name": "ヤマダ タロウ", "birth_date": "1980-01-02"}),
    ("korean-hangul", {"type": P, "given_name": "정은", "family_name": "김", "birth_date": "1984.01.08"}),
    ("devanagari", {"type": P, "name": "राहुल गांधी", "birth_date": "1970-06-19"}),
    ("thai", {"type": P, "name": "ภูมิพล อดุลยเดช", "birth_date": "1927-12-05"}),
    ("person-no-dob-with-passport", {"type": P, "name": "Anna Schmidt", "passport_number": "C01X00T47", "passport_country": "DEU"}),
    # --- organisations --------------------------------------------------------------------
    ("org-german-legal-form", {"type": O, "name": "Siemens Aktiengesellschaft", "country": "DE"}),
    ("org-abbreviated-form", {"type": O, "name": "SIEMENS AG", "country": "DEU"}),
    ("org-russian", {"type": O, "name": "ООО «Ромашка»", "country": "RU", "registration_number": "1027700132195"}),
    ("org-russian-latin", {"type": O, "name": "Romashka LLC", "country": "RUS", "registration_number": "1027 7001 32195"}),
    ("org-polish", {"type": O, "name": "Kowalski Sp. z o.o.", "country": "PL"}),
    ("org-article", {"type": O, "name": "The Trust Company Ltd", "country": "GB"}),
    ("org-only-legal-form-words", {"type": O, "name": "II Inc", "country": "KR"}),
    ("org-chinese", {"type": O, "name": "良诺科技有限公司", "country": "CN"}),
    ("org-lei-and-tax", {"type": O, "name": "Acme GmbH", "country": "DE", "lei": "529900t8bm49aursdo55", "tax_id": "DE136695976"}),
    # --- accounts and wallets -------------------------------------------------------------
    ("iban-printed", {"type": "bank_account", "iban": "IBAN DE89 3704 0044 0532 0130 00"}),
    ("iban-lower-compact", {"type": "bank_account", "iban": "gb29nwbk60161331926819"}),
    ("bic-and-account", {"type": "bank_account", "bic": "CHASUS33XXX", "account_number": "000-123-456-789"}),
    ("wallet-eth-checksummed", {"type": "crypto_wallet", "wallet_address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "wallet_chain": "Ethereum"}),
    ("wallet-eth-lower", {"type": "crypto_wallet", "wallet_address": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}),
    ("wallet-btc-base58", {"type": "crypto_wallet", "wallet_address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "wallet_chain": "XBT"}),
    ("wallet-btc-bech32-upper", {"type": "crypto_wallet", "wallet_address": "BC1QARDV855YJNGSPVXUTTQ897AQCA3LXJU2Y69JCE", "wallet_chain": "bitcoin"}),
    ("wallet-btc-bech32m", {"type": "crypto_wallet", "wallet_address": "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"}),
    # --- contacts and documents -----------------------------------------------------------
    ("phone-national-with-country", {"type": "phone", "phone": "030 1234567", "phone_country": "DEU"}),
    ("phone-00-prefix", {"type": "phone", "phone": "0049 (30) 123-4567"}),
    ("phone-russian", {"type": "phone", "phone": "+7 912 345-67-89"}),
    ("email-case-and-idna", {"type": "email", "email": "Hans.Mueller@Bücher.DE"}),
    ("email-mailto", {"type": "email", "email": "mailto:INFO@example.com"}),
    ("passport-alpha3", {"type": "identity_document", "passport_number": "c01x 00t47", "passport_country": "deu"}),
    ("passport-icao-d", {"type": "identity_document", "passport_number": "C01X00T47", "passport_country": "D"}),
    ("national-id-es", {"type": "identity_document", "national_id": "12345678-z", "national_id_country": "ESP"}),
    ("tax-id-de-with-prefix", {"type": "identity_document", "tax_id": "DE 860 957 427 19", "tax_id_country": "DE"}),
    ("tax-id-gr-el-prefix", {"type": "identity_document", "tax_id": "EL094259216", "tax_id_country": "GRC"}),
    # --- negative cases -------------------------------------------------------------------
    ("bad-iban-checksum", {"type": "bank_account", "iban": "DE88 3704 0044 0532 0130 00"}),
    ("bad-date", {"type": P, "name": "Anna Schmidt", "birth_date": "31.02.1980"}),
    ("bad-country", {"type": P, "name": "Anna Schmidt", "birth_date": "1980-01-01", "nationality": "XQ"}),
    ("bad-lei", {"type": O, "name": "Acme", "country": "DE", "lei": "529900T8BM49AURSDO56"}),
    ("bad-eip55", {"type": "crypto_wallet", "wallet_address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "wallet_chain": "ETH"}),
    ("bad-btc-checksum", {"type": "crypto_wallet", "wallet_address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"}),
    ("bad-national-id-checksum", {"type": "identity_document", "national_id": "12345678A", "national_id_country": "ES"}),
    ("bad-email", {"type": "email", "email": "a@b@c.de"}),
    ("bad-phone", {"type": "phone", "phone": "+49 1"}),
    ("person-without-dob-or-identifier", {"type": P, "name": "Anna Schmidt"}),
    ("passport-without-country", {"type": "identity_document", "passport_number": "C01X00T47"}),
    ("unknown-type", {"type": "vessel", "name": "Ever Given"}),
]  # fmt: skip


def run_case(fields: dict[str, Any]) -> dict[str, Any]:
    record = {"local_ref": "vector", **fields}
    result = build_subject(
        record, source="vectors", file="normalise.json", record="vector", line=None,
        default_retention=date(2030, 1, 1),
    )  # fmt: skip
    if isinstance(result, Subject):
        keys = sorted(result.keys, key=lambda k: k.encode())
        return {
            "keys": [
                {"type": k.type.value, "code": k.type.code, "strength": k.strength.label,
                 "fields": list(k.fields), "hex": k.hex()}
                for k in keys
            ]
        }
    return {"rejects": sorted({(r.field, r.code) for r in result})}


def _icu_version() -> str:
    import icu  # type: ignore[import-untyped]

    return str(icu.ICU_VERSION)


def build() -> dict[str, Any]:
    return {
        "description": "Raw records -> canonical match keys (protocol/SPEC.md §13). Positive "
        "cases list every key the record derives, sorted by encoded bytes; negative cases "
        "list the (field, code) rejects, sorted.",
        "generator": "protocol/vectors/generate_normalise.py",
        "libraries": {
            name: version(name)
            for name in ("rigour", "normality", "pyicu", "python-stdnum", "schwifty",
                         "phonenumbers", "pycountry")
        },
        "icu": _icu_version(),  # transliteration of Han, kana, Arabic, ... (SPEC section 1)
        "unicode": unicodedata.unidata_version,
        "python": sys.version.split()[0],
        "cases": [{"name": name, "input": fields, **run_case(fields)} for name, fields in CASES],
    }


def main() -> None:
    data = build()
    text = json.dumps(data, ensure_ascii=False, indent=1)
    OUT.write_text(text + "\n", encoding="utf-8")
    n_pos = sum(1 for c in data["cases"] if "keys" in c)
    print(f"wrote {OUT} ({n_pos} positive, {len(data['cases']) - n_pos} negative cases)")


if __name__ == "__main__":
    main()
