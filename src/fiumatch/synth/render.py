"""How a jurisdiction writes down a subject: the variation that makes matching hard.

Owns the rendering of one true subject as one flat record (the CSV column vocabulary) the
way a given jurisdiction would write it. At home: own script, own date and phone formats.
Abroad: a Latin spelling (the passport's, another common one, or diacritics folded or
expanded), family name first and upper case, middle names dropped, honorifics, partial
dates of birth, alpha-3 country codes, IBANs and phones formatted differently. Probabilities
are module constants so benchmarks can state them.
"""

from __future__ import annotations

import random

from fiumatch.synth.profiles import Profile
from fiumatch.synth.truth import TrueSubject

__all__ = ["VARIATION", "render"]

#: Probabilities of each variation, per record written abroad (unless noted).
VARIATION: dict[str, float] = {
    "keep_native_script": 0.15,  # non-Latin home: the foreign record keeps the native script
    "other_latin_spelling": 0.25,  # non-Latin home: a non-passport romanisation
    "fold_diacritics": 0.4,  # Latin home: Müller -> Muller
    "expand_diacritics": 0.3,  # Latin home: Müller -> Mueller
    "drop_middle": 0.5,
    "family_first_upper": 0.3,  # full name written "MÜLLER Hans"
    "swap_given_family": 0.03,  # structured fields swapped by mistake
    "upper_case": 0.25,
    "honorific": 0.1,
    "partial_dob": 0.05,  # year only or year-month (both at home and abroad)
    "no_full_name": 0.3,  # only structured fields
    "alpha3": 0.5,  # country codes as alpha-3
    "include_identifier": 0.6,  # each identifier the subject has appears in a record
}

_HONORIFICS = ("Mr", "Mrs", "Dr.", "Herr", "Frau", "Mme", "Prof.")
_GERMAN = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}


def _fold(text: str) -> str:
    from rigour.text.translit import ascii_text

    return ascii_text(text)


def _expand(text: str) -> str:
    return _fold("".join(_GERMAN.get(ch, ch) for ch in text))


def _other_spelling(subject: TrueSubject, part: str, native: list[str]) -> list[str]:
    """A romanisation other than the passport's: rigour's own, or a listed alternative."""
    alts = subject.given_alt if part == "given" else subject.family_alt if part == "family" else []
    if alts:
        return alts[:1]
    return [_fold(n).title() for n in native]


def _names(subject: TrueSubject, j: Profile, rng: random.Random) -> dict[str, str]:
    home = subject.home
    abroad = j.code != home.code
    given, middle, family = subject.given, subject.middle, subject.family
    native = True
    if abroad and home.script == "latin":
        native = False
        roll = rng.random()
        if roll < VARIATION["fold_diacritics"]:
            given, middle, family = ([_fold(n) for n in p] for p in (given, middle, family))
        elif roll < VARIATION["fold_diacritics"] + VARIATION["expand_diacritics"]:
            given, middle, family = ([_expand(n) for n in p] for p in (given, middle, family))
    elif abroad:
        roll = rng.random()
        keep = VARIATION["keep_native_script"] if home.script not in ("arabic", "japanese") else 0
        if roll < keep:
            pass
        elif roll < keep + VARIATION["other_latin_spelling"]:
            given = _other_spelling(subject, "given", subject.given)
            middle = subject.middle_latin
            family = _other_spelling(subject, "family", subject.family)
            native = False
        else:
            given, middle, family = subject.given_latin, subject.middle_latin, subject.family_latin
            native = False
    out: dict[str, str] = {}
    if abroad and middle and rng.random() < VARIATION["drop_middle"]:
        middle = []
    g, m, f = " ".join(given), " ".join(middle), " ".join(family)
    cjk = native and home.script in ("han", "japanese", "hangul")
    if abroad and rng.random() < VARIATION["upper_case"]:
        g, m, f = g.upper(), m.upper(), f.upper()
    if abroad and rng.random() < VARIATION["swap_given_family"]:
        g, f = f, g
    out["given_name"], out["middle_name"], out["family_name"] = g, m, f
    if rng.random() >= VARIATION["no_full_name"]:
        if cjk:
            full = f + g
        elif (not abroad and home.family_first) or (
            abroad and rng.random() < VARIATION["family_first_upper"]
        ):
            full = " ".join(x for x in (f.upper() if abroad else f, g, m) if x)
        else:
            full = " ".join(x for x in (g, m, f) if x)
        if abroad and rng.random() < VARIATION["honorific"]:
            full = f"{rng.choice(_HONORIFICS)} {full}"
        out["name"] = full
    if not abroad and home.script in ("arabic", "japanese"):
        out["aliases"] = " ".join(subject.given_latin + subject.family_latin)
    return out


def _dob(subject: TrueSubject, j: Profile, rng: random.Random) -> str:
    born = subject.birth_date
    assert born is not None
    if rng.random() < VARIATION["partial_dob"]:
        return str(born.year) if rng.random() < 0.6 else f"{born.year}-{born.month:02d}"
    fmt = j.date_format if rng.random() < 0.8 else "%Y-%m-%d"
    return born.strftime(fmt)


def _country(p: Profile, rng: random.Random) -> str:
    return p.alpha3 if rng.random() < VARIATION["alpha3"] else p.code


def _phone(e164: str, j: Profile, home: Profile, rng: random.Random) -> tuple[str, str]:
    import phonenumbers

    parsed = phonenumbers.parse(e164)
    if j.code == home.code and rng.random() < 0.7:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL), ""
    intl = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    roll = rng.random()
    if roll < 0.3:
        return "00" + intl[1:], ""
    if roll < 0.5:
        return intl.replace(" ", "-"), ""
    return intl, ""


def _spaced(value: str, rng: random.Random, group: int = 4) -> str:
    roll = rng.random()
    if roll < 0.4:
        return " ".join(value[i : i + group] for i in range(0, len(value), group))
    if roll < 0.55:
        return value.lower()
    return value


def _maybe(rng: random.Random) -> bool:
    return rng.random() < VARIATION["include_identifier"]


def render(subject: TrueSubject, j: Profile, local_ref: str, rng: random.Random) -> dict[str, str]:
    """One record for ``subject`` as jurisdiction ``j`` writes it."""
    home = subject.home
    abroad = j.code != home.code
    rec: dict[str, str] = {"local_ref": local_ref, "type": subject.kind}
    if subject.kind == "person":
        rec.update(_names(subject, j, rng))
        rec["birth_date"] = _dob(subject, j, rng)
        rec["nationality"] = _country(home, rng)
        if subject.passport and _maybe(rng):
            number = subject.passport
            if rng.random() < 0.3:
                number = number[:2] + " " + number[2:]
            rec["passport_number"] = number
            rec["passport_country"] = _country(home, rng)
        if subject.national_id and _maybe(rng):
            rec["national_id"] = _spaced(subject.national_id, rng, 3)
            rec["national_id_country"] = _country(home, rng)
        if subject.tax_id and _maybe(rng):
            rec["tax_id"] = subject.tax_id
            rec["tax_id_country"] = _country(home, rng)
    elif subject.kind == "organisation":
        if abroad and not (home.script != "latin" and rng.random() < 0.1):
            name = subject.org_name_latin
            form = rng.choice(home.latin_forms)
            if home.script == "latin" and rng.random() < 0.5:
                name = _fold(name)
        else:
            name = subject.org_name
            form = home.legal_forms[subject.legal_form]
        if abroad and rng.random() < VARIATION["upper_case"]:
            name = name.upper()
        if home.code in ("RU", "UA") and form and not abroad:
            rec["name"] = f"{form} «{name}»"
        else:
            rec["name"] = f"{name} {form}".strip() if form else name
        rec["country"] = _country(home, rng)
        if _maybe(rng) or not abroad:
            reg = subject.registration
            rec["registration_number"] = reg if rng.random() < 0.6 else _spaced(reg, rng, 3)
        if subject.lei and _maybe(rng):
            rec["lei"] = subject.lei.lower() if rng.random() < 0.2 else subject.lei
        if subject.tax_id and _maybe(rng):
            rec["tax_id"] = subject.tax_id
    elif subject.kind == "bank_account":
        rec["name"] = subject.holder.upper() if abroad else subject.holder
        rec["country"] = _country(home, rng)
        if subject.iban:
            rec["iban"] = _spaced(subject.iban, rng)
        else:
            rec["bic"] = subject.bic if rng.random() < 0.5 else subject.bic + "XXX"
            rec["account_number"] = subject.account_number
    elif subject.kind == "crypto_wallet":
        address = subject.address
        if subject.chain == "ETH" and rng.random() < 0.5:
            address = address.lower()
        rec["wallet_address"] = address
        rec["wallet_chain"] = rng.choice(
            {"BTC": ("BTC", "bitcoin"), "ETH": ("ETH", "Ethereum"), "TRX": ("TRX", "tron")}[
                subject.chain
            ]
        )
    if subject.kind in ("person", "organisation"):
        if subject.phone and _maybe(rng):
            rec["phone"], _ = _phone(subject.phone, j, home, rng)
            if j.code == home.code:
                rec["phone_country"] = home.code
        if subject.email and _maybe(rng):
            rec["email"] = subject.email.upper() if rng.random() < 0.15 else subject.email
    return {k: v for k, v in rec.items() if v}
