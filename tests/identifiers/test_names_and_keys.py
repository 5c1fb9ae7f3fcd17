"""Names across scripts, key derivation, key encoding and hit strength."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fiumatch.identifiers import (
    KEY_PREFIX,
    KeyType,
    MatchKey,
    PartialDate,
    PersonName,
    Strength,
    classify_hit,
    decode_key,
    normalise_org_name,
    normalise_person_name,
    person_keys,
)
from fiumatch.identifiers.errors import EmptyValueError, KeyEncodingError


def _tokens(name: PersonName) -> set[tuple[str, ...]]:
    return {v.core for v in normalise_person_name(name)}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Владимир Путин", ("putin", "vladimir")),
        ("Αλέξης Τσίπρας", ("alexis", "tsipras")),
        ("Dr. Hans Müller", ("hans", "muller")),
        ("Seán O'Brien", ("obrien", "sean")),
        ("ŁUKASZ Żółć", ("lukasz", "zolc")),
        ("Nguyễn Tấn Dũng", ("dung", "nguyen", "tan")),
        ("김정은", ("gimjeongeun",)),
        ("Mr. John SMITH", ("john", "smith")),
    ],
)
def test_scripts_transliterate(written: str, expected: tuple[str, ...]) -> None:
    assert expected in _tokens(PersonName(full=written))


def test_diacritics_give_both_variants() -> None:
    variants = _tokens(PersonName(full="Jürgen Müller"))
    assert ("jurgen", "muller") in variants
    assert ("juergen", "mueller") in variants
    assert ("juergen", "mueller") in _tokens(PersonName(full="Juergen Mueller"))


def test_cyrillic_icao_variant_meets_passport_spelling() -> None:
    native = _tokens(PersonName(given="Юрий", family="Хабаров"))
    passport = _tokens(PersonName(given="IURII", family="KHABAROV"))
    assert native & passport


def test_name_order_is_irrelevant_for_the_token_key() -> None:
    dob = PartialDate(1980, 5, 12)
    a = person_keys(normalise_person_name(PersonName(full="MÜLLER Hans")), dob)
    b = person_keys(normalise_person_name(PersonName(given="Hans", family="Müller")), dob)
    tokens = KeyType.PERSON_TOKENS_DOB
    assert {k for k in a if k.type is tokens} & {k for k in b if k.type is tokens}


def test_missing_middle_name_still_meets_on_surname_initial() -> None:
    dob = PartialDate(1975, 3, 1)
    a = person_keys(normalise_person_name(PersonName(given="Anna", middle="Maria",
                                                     family="Schmidt")), dob)  # fmt: skip
    b = person_keys(normalise_person_name(PersonName(given="Anna", family="Schmidt")), dob)
    shared = {k.type for k in set(a) & set(b)}
    assert KeyType.PERSON_SURNAME_INITIAL_DOB in shared
    assert KeyType.PERSON_TOKENS_DOB in shared  # core tokens exclude the middle name


def test_empty_names_raise() -> None:
    with pytest.raises(EmptyValueError) as info:
        normalise_person_name(PersonName(full=" -- "), "aliases")
    assert info.value.field == "aliases"


@pytest.mark.parametrize(
    ("written", "tokens"),
    [
        ("Siemens Aktiengesellschaft", ("siemens",)),
        ("SIEMENS AG", ("siemens",)),
        ("ООО «Ромашка»", ("romashka",)),
        ("Romashka LLC", ("romashka",)),
        ("The Trust Company Ltd", ("trust", "company")),
        ("Kowalski Sp. z o.o.", ("kowalski",)),
    ],
)
def test_org_legal_forms_removed(written: str, tokens: tuple[str, ...]) -> None:
    assert tokens in {v.tokens for v in normalise_org_name(written)}


def test_key_encoding_layout() -> None:
    key = MatchKey(KeyType.PASSPORT, ("DE", "C01X00T47"))
    raw = key.encode()
    assert raw.startswith(KEY_PREFIX + bytes([1, 0x04, 2]))
    assert raw[len(KEY_PREFIX) + 3 :] == b"\x00\x02DE\x00\x09C01X00T47"
    assert decode_key(raw) == key


def test_key_encoding_rejects_wrong_arity_and_bad_bytes() -> None:
    with pytest.raises(KeyEncodingError):
        MatchKey(KeyType.IBAN, ("A", "B")).encode()
    good = MatchKey(KeyType.EMAIL, ("a@b.de",)).encode()
    for bad in (good[:-1], good + b"x", b"other" + good[5:], good[:11] + b"\x02" + good[12:]):
        with pytest.raises(KeyEncodingError):
            decode_key(bad)


def test_key_codes_are_unique_and_stable() -> None:
    codes = {kt.code for kt in KeyType}
    assert len(codes) == len(KeyType)
    assert KeyType.IBAN.code == 0x01 and KeyType.PERSON_PHONETIC_YEAR.code == 0x13
    assert KeyType.ORG_REGISTRATION_COUNTRY.code == 0x21


def test_hit_strength_is_the_strongest_matched_type() -> None:
    hit = classify_hit([KeyType.PERSON_PHONETIC_YEAR, KeyType.PERSON_TOKENS_DOB])
    assert hit.strength is Strength.COMPOSITE
    assert classify_hit([KeyType.IBAN]).to_dict() == {"types": ["iban"], "strength": "strong"}
    assert classify_hit([KeyType.PERSON_PHONETIC_YEAR]).strength is Strength.PHONETIC
    with pytest.raises(ValueError):
        classify_hit([])


_field = st.text(max_size=20)


def _key_parts(kt: KeyType) -> st.SearchStrategy[tuple[KeyType, list[str]]]:
    n = len(kt.fields)
    return st.tuples(st.just(kt), st.lists(_field, min_size=n, max_size=n))


_keys = st.sampled_from(list(KeyType)).flatmap(_key_parts)


@given(_keys, _keys)
def test_key_encoding_is_injective(
    a: tuple[KeyType, list[str]], b: tuple[KeyType, list[str]]
) -> None:
    ka, kb = MatchKey(a[0], tuple(a[1])), MatchKey(b[0], tuple(b[1]))
    assert (ka.encode() == kb.encode()) == (ka == kb)
    assert decode_key(ka.encode()) == ka


_name_part = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Lo")), min_size=1, max_size=8
).filter(lambda s: s.strip() == s)


# No deadline: the first transliteration of a script loads ICU rules, which is slow once.
@settings(deadline=None)
@given(st.lists(_name_part, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_token_key_ignores_name_order(parts: list[str], rnd: object) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    try:
        a = normalise_person_name(PersonName(full=" ".join(parts)))
    except EmptyValueError:
        return
    b = normalise_person_name(PersonName(full=" ".join(shuffled)))
    assert {v.core for v in a} == {v.core for v in b}


@settings(deadline=None)
@given(st.text(max_size=30))
@example("DR:0")  # an honorific glued on by ":" is kept, then stripped once spaced out
@example("Dr.Hans Müller")
def test_normalisation_is_idempotent(text: str) -> None:
    from rigour.names import remove_person_prefixes

    try:
        variants = normalise_person_name(PersonName(full=text))
    except EmptyValueError:
        return
    for v in variants:
        spaced = " ".join(v.ordered)
        again = normalise_person_name(PersonName(full=spaced))
        if again[0].ordered == v.ordered:
            continue
        # Spec section 8: honorifics are removed only when followed by "." or a space, so an
        # honorific glued to the name ("Dr:Hans") survives the first pass and is removed
        # when the output is normalised again. Nothing else may change.
        assert remove_person_prefixes(spaced) != spaced
        assert again[0].ordered == tuple(remove_person_prefixes(spaced).split())


_part = st.sampled_from(
    ["", " ", "Hans", "Юрий", "Ævar", "近平", "Dr. Anna-Lena", "\u0301", "Ёлкин Ü", "Frau"]
) | st.text(max_size=10)


# The fast derivation (per-part caches, key pairs) against the reference composition.
@settings(deadline=None, max_examples=300)
@given(
    st.builds(
        PersonName,
        full=st.text(max_size=12) | _part,
        given=_part | st.sampled_from(["Hans", "Юрий", "Ævar", "近平"]),
        middle=_part,
        family=_part | st.sampled_from(["Müller", "Хабаров", "O'Brien", "习"]),
    ),
    st.none() | st.builds(PartialDate, st.integers(1900, 2000), st.none() | st.just(5)),
)
@example(PersonName(given="\u0301", middle="Ёлкин", family=" "), PartialDate(1980))
@example(PersonName(given="Ü", middle="Jörg", family="Шульц"), PartialDate(1980, 5))
@example(PersonName(full="Frau Dr. Øre Yılmaz"), PartialDate(1999))
@example(PersonName(full="\u0301\u0301"), None)
def test_cached_person_name_keys_equal_the_composition(
    name: PersonName, dob: PartialDate | None
) -> None:
    from fiumatch.identifiers.derive import person_name_keys

    try:
        expected = person_keys(normalise_person_name(name, "alias"), dob)
    except EmptyValueError:
        with pytest.raises(EmptyValueError) as info:
            person_name_keys(name, dob, "alias")
        assert info.value.field == "alias"
        return
    assert person_name_keys(name, dob, "alias") == expected
    assert person_name_keys(name, dob, "alias") == expected  # again, from the cache


_whole_part = _part | st.sampled_from(
    ["Mr", "dr.", "Lady", "Sir John", "'Ali", "ﬁona", "\u00a0Anna", "Anna\u00a0Lena", "x\u0301",
     "王", "Ольга", "Ünal", "de la Cruz", "-Jo", "_x", "\u212aarl", "ŉ"]
)  # fmt: skip


# A row's whole name composed from its parts against tokenising the whole name again.
@settings(deadline=None, max_examples=400)
@given(
    _whole_part, _whole_part, _whole_part, st.sampled_from(["gmf", "fgm", "gf", "none"]),
    st.none() | st.just("1980-05-01"),
)
@example("Dr.", "", "Müller", "gmf", "1980-05-01")  # the part strips "Dr." alone, the whole not
@example("Hans", "", "Dr Who", "gmf", "1980-05-01")  # the family part strips, the whole not
@example("Hans", "", "Dr Who", "fgm", "1980-05-01")  # the whole strips "Dr", the family part too
@example("Anna", "", "\u0301x", "gmf", "1980-05-01")  # a mark after the joining space
@example("Иван", "Петрович", "Сидоров", "fgm", "1980-05-01")
@example("Hans", "Peter", "Müller", "gmf", None)
def test_whole_name_composed_from_parts_equals_tokenising_it(
    given: str, middle: str, family: str, order: str, dob: str | None
) -> None:
    from fiumatch.identifiers.derive import full_name_pairs, person_name_pairs
    from fiumatch.identifiers.names import new_person_name

    by = {"g": given, "m": middle, "f": family}
    parts = [by[c] for c in order if by.get(c)]
    full = " ".join(parts) if order != "none" else given + family
    if not (given.strip() or family.strip()) or not full:
        return  # not a row with both forms
    name = new_person_name(full, given, middle, family)
    try:
        expected = person_name_pairs(new_person_name(full), dob, "name")
    except EmptyValueError:
        with pytest.raises(EmptyValueError):
            full_name_pairs(name, dob, "name")
        return
    assert full_name_pairs(name, dob, "name") == expected


def test_whole_name_is_composed_only_from_plain_parts() -> None:
    from fiumatch.identifiers.names import compose_forms, part_forms, plain_part, whole_name_forms

    assert plain_part("Hans") and plain_part("Юрий") and plain_part("王")
    assert not plain_part("Dr. Hans") and not plain_part("") and not plain_part("-Jo")
    parts = ["Anna", "Maria", "Ünal"]
    assert all(map(plain_part, parts))
    assert compose_forms([part_forms(p) for p in parts]) == whole_name_forms(" ".join(parts))
    # "Dr" alone keeps its token (nothing else is left); in a whole name it is stripped.
    assert whole_name_forms("Dr Hans")[0][1] == ("hans",) != part_forms("Dr")[0][1] + ("hans",)


def test_key_encoding_of_long_fields_and_pickling_round_trip() -> None:
    import pickle
    from datetime import date

    from fiumatch.identifiers import Identifier, IdentifierKind, Provenance, Subject, SubjectType

    long = MatchKey(KeyType.EMAIL, ("a" * 2000 + "@example.com",))
    assert decode_key(long.encode()) == long
    assert long.encode()[14:16] == (2012).to_bytes(2, "big")
    subject = Subject(
        subject_id="00ff", type=SubjectType.PERSON, local_ref="P-1",
        retention_until=date(2031, 1, 1), provenance=Provenance("s.csv", "line 2", 2),
        names=(PersonName(full="Hans Müller", given="Hans", family="Müller"),),
        birth_date=PartialDate(1980, 5), countries=("DE",),
        identifiers=(Identifier(IdentifierKind.PASSPORT, "C01X00T47", "DE"),),
        keys=(long, MatchKey(KeyType.PASSPORT, ("DE", "C01X00T47"))),
    )  # fmt: skip
    again = pickle.loads(pickle.dumps(subject))
    assert again == subject and again.keys == subject.keys  # keys are compare=False
    assert type(again.names[0]) is PersonName and again.birth_date == PartialDate(1980, 5)


def test_isalnum_is_exactly_letters_and_numbers() -> None:
    # split_tokens relies on it to skip the category lookup for most code points.
    import sys
    import unicodedata

    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        assert ch.isalnum() == (unicodedata.category(ch)[0] in "LN"), hex(cp)


@given(st.text(max_size=40))
@example("ab_c d-9 Müller\u0301 न्त ç")
def test_split_tokens_is_runs_of_letters_marks_and_numbers(text: str) -> None:
    import unicodedata

    from fiumatch.identifiers.names import split_tokens

    expected: list[str] = []
    current = ""
    for ch in text:
        if unicodedata.category(ch)[0] in "LMN":
            current += ch
        elif current:
            expected, current = [*expected, current], ""
    if current:
        expected.append(current)
    assert split_tokens(text) == expected


def _prefixes() -> list[str]:
    from rigour._core import person_name_prefixes_list

    return list(person_name_prefixes_list())


_honorific_text = st.one_of(
    st.text(max_size=20),
    st.tuples(
        st.sampled_from(_prefixes()),
        st.sampled_from(["", ".", " ", ". ", "\u00a0", ".\t", "x ", "-"]),
        st.text(max_size=8),
        st.booleans(),
    ).map(lambda t: (t[0].upper() if t[3] else t[0].lower()) + t[1] + t[2]),
)


@settings(max_examples=400)
@given(_honorific_text)
@example("dr.hans müller")
@example("dott.sr. anna")
@example("the much hon. x")
@example("fräulein anna")
@example("_dr anna")
@example("\u017fir anna")  # LATIN SMALL LETTER LONG S matches "s" when case is ignored
@example("\u212aing x")  # KELVIN SIGN matches "k"
@example("\u0130\u0307mam x")  # dotted capital I
@example("\u0131mam x")  # dotless i
@example("ДР. Иван")
@example("王 小明")
@example("Ärztin anna")
def test_honorific_precheck_never_skips_a_removal(text: str) -> None:
    from rigour.names import remove_person_prefixes

    from fiumatch.identifiers.names import may_have_honorific

    for candidate in (text, text.casefold()):
        if not may_have_honorific(candidate):
            assert remove_person_prefixes(candidate) == candidate


def _whole_token_fold(text: str) -> str:
    """``names._ascii_fold`` without its per-character Han path: what SPEC §13.4 says."""
    from rigour.text.translit import ascii_text

    return "".join(ch for ch in ascii_text(text).casefold() if ch.isascii() and ch.isalnum())


_HAN_BLOCKS = st.integers(0x3400, 0x4DBF) | st.integers(0x4E00, 0x9FFF)


@settings(max_examples=300)
@given(st.lists(_HAN_BLOCKS.map(chr) | st.sampled_from("藏文重庆沈阳秘鲁"), min_size=1,
                max_size=6).map("".join))  # fmt: skip
@example("藏文")  # context rules of ICU's Han-Latin: 藏 before 文 reads zàng, not cáng
@example("重庆")
@example("沈阳")
@example("秘鲁")
@example("王小明")
def test_han_tokens_fold_per_character_as_whole(token: str) -> None:
    from fiumatch.identifiers.names import _ascii_fold

    assert _ascii_fold(token) == _whole_token_fold(token)


def test_han_context_rules_are_read_from_icu() -> None:
    from fiumatch.identifiers.names import _ascii_fold, _han_context, _han_per_character

    context = _han_context()
    assert context is not None and {"藏", "文", "重", "庆"} <= context
    assert not _han_per_character("藏文") and _han_per_character("王小明")
    # The context rule really does change the reading: the path choice matters.
    assert _ascii_fold("藏文") == "zangwen" != _ascii_fold("藏") + _ascii_fold("文")
    assert _ascii_fold("王小明") == "wangxiaoming"
    # Mixed tokens (kana, Latin, digits) take the whole-token path.
    assert _ascii_fold("東京タワー") == _whole_token_fold("東京タワー")


_LATIN_AND_DIGITS = st.sampled_from(
    [chr(c) for c in range(0x61, 0x7B)]
    + list("0123456789")
    + [chr(c) for c in range(0xC0, 0x250) if chr(c).isalpha()]  # upper case and Ext-B too
)
_CYRILLIC = st.sampled_from([chr(c) for c in range(0x400, 0x460)] + list("0123456789"))


@settings(max_examples=400)
@given(st.lists(_LATIN_AND_DIGITS, min_size=1, max_size=12).map("".join)
       | st.lists(_CYRILLIC, min_size=1, max_size=12).map("".join))  # fmt: skip
@example("müller")
@example("straße")
@example("łukasz")
@example("шевченко")
@example("достоевский")  # ий at the end of a word reads y: the whole-token path
@example("гончаренко")
@example("ґалаґан")  # Ukrainian letters change how г reads
@example("їжак")
@example("μπάμπης")  # Greek: μπ reads b
@example("ſ2ı")
def test_latin_and_russian_tokens_fold_per_character_as_whole(token: str) -> None:
    from fiumatch.identifiers.names import _ascii_fold

    assert _ascii_fold(token) == _whole_token_fold(token)


def test_per_character_sets_leave_out_what_rigour_reads_in_context() -> None:
    from fiumatch.identifiers import names

    assert "й" not in names._RUSSIAN_LETTERS and "ш" in names._RUSSIAN_LETTERS
    assert not {"ґ", "є", "і", "ї", "ў"} & names._RUSSIAN_LETTERS
    assert "ü" in names._LATIN_LETTERS and "Ü" not in names._LATIN_LETTERS
    assert names._ascii_fold("достоевский") == "dostoevsky"  # not ...skii
    assert names._ascii_fold("гончаренко") == "goncharenko"
    assert names._ascii_fold("ґалаґан") == _whole_token_fold("ґалаґан")


def test_han_per_character_path_turns_itself_off_without_han_latin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import icu

    from fiumatch.identifiers import names

    class NoHanLatin:  # an ICU whose data lacks the Han-Latin rules
        @staticmethod
        def createInstance(*_: object) -> None:  # PyICU's name
            raise icu.ICUError(("createInstance", 1))

    names._han_context.cache_clear()
    monkeypatch.setattr(icu, "Transliterator", NoHanLatin)
    try:
        assert names._han_context() is None
        assert not names._han_per_character("王小明")
    finally:
        monkeypatch.undo()
        names._han_context.cache_clear()
    assert names._han_per_character("王小明")
