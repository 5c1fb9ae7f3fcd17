"""True subjects of the synthetic world: who they really are, before anyone writes them down.

Owns the generation of persons, organisations, bank accounts and crypto wallets for a home
jurisdiction, with valid identifiers (IBAN and LEI check digits, stdnum-valid national and
tax ids where the spec validates them, libphonenumber-valid phones, checksummed wallet
addresses). Randomness comes only from the ``random.Random`` and seeded Faker instances it
is handed, so the same seed gives the same world.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fiumatch.identifiers.crypto import eip55
from fiumatch.synth.profiles import ARABIC_FAMILY, ARABIC_GIVEN, PROFILES, SECTORS, Profile

__all__ = ["TrueSubject", "World"]


@dataclass
class TrueSubject:
    truth_id: str
    kind: str  # person, organisation, bank_account, crypto_wallet
    home: Profile
    # person: native names and their passport (Latin) spellings; alt = other Latin spellings
    given: list[str] = field(default_factory=list)
    middle: list[str] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    given_latin: list[str] = field(default_factory=list)
    middle_latin: list[str] = field(default_factory=list)
    family_latin: list[str] = field(default_factory=list)
    given_alt: list[str] = field(default_factory=list)
    family_alt: list[str] = field(default_factory=list)
    birth_date: date | None = None
    passport: str = ""
    national_id: str = ""
    tax_id: str = ""
    phone: str = ""  # E.164
    email: str = ""
    # organisation
    org_name: str = ""
    org_name_latin: str = ""
    legal_form: int = 0
    registration: str = ""
    lei: str = ""
    # account / wallet
    iban: str = ""
    bic: str = ""
    account_number: str = ""
    holder: str = ""
    chain: str = ""
    address: str = ""


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    value = int.from_bytes(raw, "big")
    out = ""
    while value:
        value, rem = divmod(value, 58)
        out = _B58[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + out


def _mod97_check(body: str) -> str:
    """Two check digits so that ``body + digits`` satisfies ISO 7064 mod 97-10."""
    numeric = "".join(str(int(ch, 36)) for ch in body + "00")
    return f"{98 - int(numeric) % 97:02d}"


def _latin_of(text: str) -> str:
    from rigour.text.translit import ascii_text

    return ascii_text(text)


def _cap(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


class World:
    """Generates true subjects; one instance per synthetic dataset."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self._fakers: dict[str, Any] = {}
        self._issued: set[str] = set()
        self._org_names: set[tuple[str, str]] = set()

    def unique(self, make: Any) -> str:
        """Draw from ``make()`` until the value was never issued: distinct true subjects never
        share an identifier, so every shared key in the benchmarks is a real link or a
        false match of the key type itself."""
        for _ in range(1000):
            value: str = make()
            if value not in self._issued:
                self._issued.add(value)
                return value
        raise RuntimeError("identifier space exhausted")

    def faker(self, locale: str) -> Any:
        if locale not in self._fakers:
            from faker import Faker

            fk = Faker(locale)
            fk.seed_instance(self.seed * 7919 + sum(map(ord, locale)))
            self._fakers[locale] = fk
        return self._fakers[locale]

    # --- identifiers ------------------------------------------------------------------

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def _alnum(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))

    def passport_number(self, home: Profile) -> str:
        if home.code in ("RU", "UA", "TR", "KR", "PL"):
            if home.code in ("UA", "PL"):
                return self._alnum(2) + self._digits(7)
            return self._digits(9)
        if home.code == "CN":
            return "E" + self._digits(8)
        return self.rng.choice("CFGHJK") + self._alnum(8)

    def national_id(self, home: Profile, born: date) -> str:
        cc = home.code
        if cc == "ES":
            from stdnum.es import dni

            body = self._digits(8)
            return body + dni.calc_check_digit(body)
        if cc == "PL":
            from stdnum.pl import pesel

            month = born.month + (20 if born.year >= 2000 else 0)
            body = f"{born.year % 100:02d}{month:02d}{born.day:02d}" + self._digits(4)
            return body + pesel.calc_check_digit(body)
        if cc == "TR":
            from stdnum.tr import tckimlik

            body = self.rng.choice("123456789") + self._digits(8)
            return body + tckimlik.calc_check_digits(body)
        if cc == "CN":
            from stdnum.cn import ric

            body = "110105" + born.strftime("%Y%m%d") + self._digits(3)
            return body + ric.calc_check_digit(body + "0")
        return self._alnum(2) + self._digits(8)

    def _checked(self, module: str, body_len: int, last: str = string.digits) -> str:
        """Random digits plus a final character that the stdnum ``module`` accepts."""
        import importlib

        validator = importlib.import_module(module)
        for _ in range(500):
            body = self.rng.choice("123456789") + self._digits(body_len - 1)
            for ch in last:
                if validator.is_valid(body + ch):
                    return body + ch
        raise RuntimeError(f"could not generate a valid {module} number")

    def tax_id(self, home: Profile, org: bool = False) -> str:
        cc = home.code
        if cc == "DE" and not org:
            from stdnum.de import idnr
            from stdnum.iso7064 import mod_11_10

            while True:
                body = self.rng.choice("123456789") + self._digits(9)
                candidate = body + mod_11_10.calc_check_digit(body)
                if idnr.is_valid(candidate):
                    return candidate
        if cc == "RU":
            from stdnum.ru import inn

            if org:
                body = self._digits(9)
                return body + inn.calc_company_check_digit(body)
            body = self._digits(10)
            return body + inn.calc_personal_check_digits(body)
        if cc == "GR":
            from stdnum.gr import vat

            body = self._digits(8)
            return body + vat.calc_check_digit(body)
        if cc == "FR" and not org:
            from stdnum.fr import nif

            body = self.rng.choice("0123") + self._digits(9)
            return body + nif.calc_check_digits(body)
        if cc == "ES":
            from stdnum.es import dni

            body = self._digits(8)
            return body + dni.calc_check_digit(body)
        simple = {
            ("DE", True): ("stdnum.de.vat", 8), ("FR", True): ("stdnum.fr.siren", 8),
            ("GB", False): ("stdnum.gb.utr", 9), ("GB", True): ("stdnum.gb.vat", 8),
            ("IT", False): ("stdnum.it.iva", 10), ("IT", True): ("stdnum.it.iva", 10),
            ("PL", False): ("stdnum.pl.nip", 9), ("PL", True): ("stdnum.pl.nip", 9),
            ("UA", False): ("stdnum.ua.rntrc", 9), ("UA", True): ("stdnum.ua.edrpou", 7),
        }  # fmt: skip
        if (cc, org) in simple:
            module, body_len = simple[(cc, org)]
            return self._checked(module, body_len)
        return self._digits(10)

    def phone(self, home: Profile) -> str:
        import phonenumbers

        example = phonenumbers.example_number_for_type(
            home.code, phonenumbers.PhoneNumberType.MOBILE
        )
        if example is None:
            raise ValueError(f"no example mobile number for {home.code}")
        nsn = str(example.national_number)
        for _ in range(50):
            keep = max(2, len(nsn) - 6)
            candidate = nsn[:keep] + self._digits(len(nsn) - keep)
            parsed = phonenumbers.parse(f"+{example.country_code}{candidate}")
            if phonenumbers.is_valid_number(parsed):
                return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        return f"+{example.country_code}{nsn}"

    def iban(self, country: str) -> str:
        from schwifty import IBAN

        return str(IBAN.random(country, random=self.rng, use_registry=False).compact)

    def bic(self, country: str) -> str:
        letters = string.ascii_uppercase
        return "".join(self.rng.choice(letters) for _ in range(4)) + country + self._alnum(2)

    def lei(self) -> str:
        body = self._alnum(4) + "00" + self._alnum(12)
        return body + _mod97_check(body)

    def wallet(self) -> tuple[str, str]:
        chain = self.rng.choice(("BTC", "ETH", "ETH", "TRX"))
        raw = bytes(self.rng.getrandbits(8) for _ in range(20))
        if chain == "ETH":
            return chain, "0x" + eip55(raw.hex())
        if chain == "TRX":
            return chain, _b58check(b"\x41" + raw)
        return chain, _b58check(b"\x00" + raw)

    # --- subjects --------------------------------------------------------------------

    def birth_date(self) -> date:
        return date(1940, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 65))

    def person(self, truth_id: str, home: Profile) -> TrueSubject:
        rng = self.rng
        male = rng.random() < 0.5
        s = TrueSubject(truth_id, "person", home)
        if home.script == "arabic":
            g = rng.choice(ARABIC_GIVEN)
            f = rng.choice(ARABIC_FAMILY)
            s.given, s.given_latin, s.given_alt = [g[0]], [g[1][0]], list(g[1][1:])
            s.family, s.family_latin, s.family_alt = [f[0]], [f[1][0]], list(f[1][1:])
            if rng.random() < 0.5:
                father = rng.choice(ARABIC_GIVEN[:14])
                s.middle, s.middle_latin = [father[0]], [father[1][0]]
        elif home.script == "japanese":
            from faker.providers.person.ja_JP import Provider as JaProvider

            pairs = JaProvider.first_name_male_pairs if male else JaProvider.first_name_female_pairs
            first = rng.choice(list(pairs))
            last = rng.choice(list(JaProvider.last_name_pairs.keys()))
            s.given, s.given_latin = [first[0]], [first[2]]
            s.family, s.family_latin = [last[0]], [last[2]]
        else:
            fk = self.faker(home.locale)
            first = fk.first_name_male() if male else fk.first_name_female()
            last = fk.last_name_male() if male else fk.last_name_female()
            s.given, s.family = [first], [last]
            if home.script == "cyrillic":
                s.middle = [fk.middle_name_male() if male else fk.middle_name_female()]
            elif home.script == "latin" and rng.random() < 0.3:
                second = fk.first_name_male() if male else fk.first_name_female()
                if second != first:
                    s.middle = [second]
            s.given_latin = [self._passport_spelling(home, n) for n in s.given]
            s.middle_latin = [self._passport_spelling(home, n) for n in s.middle]
            s.family_latin = [self._passport_spelling(home, n) for n in s.family]
        s.birth_date = self.birth_date()
        born = s.birth_date
        if rng.random() < 0.7:
            s.passport = self.unique(lambda: self.passport_number(home))
        if rng.random() < 0.4:
            s.national_id = self.unique(lambda: self.national_id(home, born))
        if rng.random() < 0.3:
            s.tax_id = self.unique(lambda: self.tax_id(home))
        if rng.random() < 0.5:
            s.phone = self.unique(lambda: self.phone(home))
        if rng.random() < 0.4:
            from rigour.text.translit import ascii_text

            local = ".".join(ascii_text(n).lower().replace(" ", "") for n in
                             (s.given_latin[0], s.family_latin[0]))  # fmt: skip
            s.email = self.unique(
                lambda: f"{local}{rng.randrange(10, 9999)}@{home.email_domain}"
            )
        return s

    def _passport_spelling(self, home: Profile, name: str) -> str:
        """The Latin spelling a passport of ``home`` would print (ICAO 9303 for Cyrillic)."""
        if home.script == "latin":
            return name
        if home.script == "cyrillic":
            from fiumatch.identifiers.names import ICAO_CYRILLIC

            out = "".join(ICAO_CYRILLIC.get(ch.lower(), ch.lower()) for ch in name)
            return _cap(_latin_of(out))
        if home.script == "han":
            return _cap(_latin_of(name).replace(" ", ""))
        return _cap(_latin_of(name))

    def organisation(self, truth_id: str, home: Profile) -> TrueSubject:
        s = TrueSubject(truth_id, "organisation", home)
        for _ in range(1000):
            native, latin = self._org_name(home)
            # A register refuses a name already taken in its jurisdiction: two true
            # organisations of one country never share a name as written at home, so an
            # org_name_country false match is one the key's normalisation makes.
            if (home.code, native) not in self._org_names:
                self._org_names.add((home.code, native))
                break
        else:
            raise RuntimeError("organisation name space exhausted")
        s.org_name, s.org_name_latin = native, latin
        rng = self.rng
        s.legal_form = rng.randrange(len(home.legal_forms))
        s.registration = self.unique(lambda: self._digits(rng.choice((8, 10, 13))))
        if rng.random() < 0.3:
            s.lei = self.unique(self.lei)
        if rng.random() < 0.4:
            s.tax_id = self.unique(lambda: self.tax_id(home, org=True))
        if rng.random() < 0.4:
            s.phone = self.unique(lambda: self.phone(home))
        if rng.random() < 0.3:
            s.email = self.unique(lambda: f"info{rng.randrange(100, 99999)}@{home.email_domain}")
        return s

    def _org_name(self, home: Profile) -> tuple[str, str]:
        """A name as registered at home and its Latin form: one or two trade names (surnames
        in the home language) and a sector word, from pools large enough that a register's
        uniqueness rule is cheap to honour."""
        rng = self.rng
        sector, sector_latin = rng.choice(SECTORS[home.code])
        roll = rng.random()
        if home.script == "arabic":
            family = rng.choice(ARABIC_FAMILY)
            native, latin = f"{family[0]} لل{sector}", f"{family[1][0]} {sector_latin}"
            if roll < 0.6:
                given = rng.choice(ARABIC_GIVEN)
                native, latin = f"{given[0]} {native}", f"{given[1][0]} {latin}"
            return native, latin
        if home.script == "japanese":
            from faker.providers.person.ja_JP import Provider as JaProvider

            pairs = list(JaProvider.last_name_pairs.keys())
            a = rng.choice(pairs)
            if roll < 0.5:
                return a[0] + sector, f"{a[2]} {sector_latin}"
            b = rng.choice(pairs)
            return a[0] + b[0] + sector, f"{a[2]} {b[2]} {sector_latin}"
        fk = self.faker(home.locale)
        first, second = fk.last_name(), fk.last_name()
        if home.script in ("han", "hangul"):
            native = first + second + sector if roll < 0.7 else first + sector
        elif roll < 0.45:
            native = f"{first} {sector}"
        elif roll < 0.7:
            native = f"{first} {second}"
        else:
            native = f"{first} {second} {sector}"
        return native, self._passport_spelling(home, native)

    def account(self, truth_id: str, home: Profile) -> TrueSubject:
        s = TrueSubject(truth_id, "bank_account", home)
        if home.iban:
            s.iban = self.unique(lambda: self.iban(home.code))
        else:
            s.bic = self.bic(home.code)
            s.account_number = self.unique(lambda: self._digits(self.rng.choice((10, 12, 16))))
        holder = self.person("-", home)
        s.holder = " ".join(holder.given_latin + holder.family_latin)
        return s

    def crypto_wallet(self, truth_id: str, home: Profile) -> TrueSubject:
        s = TrueSubject(truth_id, "crypto_wallet", home)
        chain_address = self.unique(lambda: "|".join(self.wallet()))
        s.chain, s.address = chain_address.split("|")
        return s

    def subject(self, truth_id: str, home_code: str) -> TrueSubject:
        home = PROFILES[home_code]
        roll = self.rng.random()
        if roll < 0.70:
            return self.person(truth_id, home)
        if roll < 0.90:
            return self.organisation(truth_id, home)
        if roll < 0.97:
            return self.account(truth_id, home)
        return self.crypto_wallet(truth_id, home)
