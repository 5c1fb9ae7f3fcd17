"""Name normalisation: persons and organisations, any script, to ASCII tokens.

Owns the exact pipeline of SPEC.md §13.4, "Names". What the field's libraries
do is delegated to them (rigour 2.6.1 for honorifics, legal forms, transliteration and
Metaphone; ICU through normality for scripts rigour does not cover); what is hand-written
here is only the German digraph variant (``ü`` -> ``ue``), the ICAO 9303 Cyrillic variant,
the tokeniser and the ordering rules. Pure: no I/O; the per-token cache is a plain LRU.

A name yields up to three *variants* (plain ASCII fold, German digraphs, ICAO Cyrillic),
deduplicated; keys are derived from every variant so ``Müller``, ``Mueller`` and ``Muller``
all meet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from fiumatch.identifiers.caches import TOKEN_CACHE, VALUE_CACHE
from fiumatch.identifiers.errors import EmptyValueError

__all__ = [
    "APOSTROPHES",
    "GERMAN_DIGRAPHS",
    "ICAO_CYRILLIC",
    "NormalisedOrgName",
    "NormalisedPersonName",
    "PartForms",
    "PersonName",
    "compose_forms",
    "may_have_honorific",
    "new_person_name",
    "normalise_org_name",
    "normalise_person_name",
    "part_forms",
    "phonetic",
    "plain_part",
    "prepare",
    "split_tokens",
    "token_variants",
    "whole_name_forms",
]

#: Deleted before tokenising, so ``O'Brien`` is one token.
APOSTROPHES = frozenset("'\u2019\u02bc\u0060\u00b4\u02bb\u2018")

#: Variant "german": applied to the casefolded token before transliteration. Hand-written.
GERMAN_DIGRAPHS: dict[str, str] = {"ä": "ae", "ö": "oe", "ü": "ue", "å": "aa", "ø": "oe"}

#: Variant "icao": ICAO Doc 9303 (8th ed., part 3, section 6) Cyrillic table, lower case.
#: Hand-written; letters not listed fall back to the plain transliteration.
ICAO_CYRILLIC: dict[str, str] = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia", "є": "ie", "і": "i", "ї": "i", "ґ": "g", "ў": "u", "ђ": "d", "ј": "j",
    "љ": "lj", "њ": "nj", "ћ": "c", "џ": "dz", "ѓ": "g", "ќ": "k", "ѕ": "dz",
}  # fmt: skip

_WORD_CATEGORIES = frozenset("LMN")
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonName:
    """A person's name as written: a full string, structured parts, or both."""

    full: str = ""
    given: str = ""
    middle: str = ""
    family: str = ""

    @property
    def structured(self) -> bool:
        return bool(self.given.strip() or self.family.strip())

    @property
    def display(self) -> str:
        if self.full.strip():
            return self.full.strip()
        return " ".join(p.strip() for p in (self.given, self.middle, self.family) if p.strip())

    def __reduce__(self) -> tuple[object, tuple[str, str, str, str]]:
        # Positional pickling: the dataclass default for slots goes through fields() and is
        # several times slower, which the parallel reader pays for every subject it returns.
        return _person_name, (self.full, self.given, self.middle, self.family)


def _person_name(full: str, given: str, middle: str, family: str) -> PersonName:
    return new_person_name(full, given, middle, family)


_set_full, _set_given, _set_middle, _set_family = (
    PersonName.__dict__[f].__set__ for f in ("full", "given", "middle", "family")
)


def new_person_name(full: str, given: str = "", middle: str = "", family: str = "") -> PersonName:
    """``PersonName(full=..., given=..., middle=..., family=...)`` at half the cost (the slots
    are set directly rather than through the frozen dataclass's ``__init__``); for readers."""
    name: PersonName = object.__new__(PersonName)
    _set_full(name, full)
    _set_given(name, given)
    _set_middle(name, middle)
    _set_family(name, family)
    return name


@dataclass(frozen=True, slots=True)
class NormalisedPersonName:
    """One variant of a person name, as ASCII tokens.

    ``core`` is the order-free token set used by the token and phonetic keys (given and
    family names; middle names excluded when the name is structured). ``ordered`` is every
    token in canonical order (given, middle, family; or as written). ``family`` and
    ``initial`` are empty when the name is not structured.
    """

    ordered: tuple[str, ...]
    core: tuple[str, ...]
    family: tuple[str, ...]
    initial: str

    @property
    def joined(self) -> str:
        """All tokens in canonical order, concatenated without separator."""
        return "".join(self.ordered)

    @property
    def core_text(self) -> str:
        """The sorted core tokens joined by single spaces."""
        return " ".join(self.core)

    @property
    def phonetic_text(self) -> str:
        """Sorted, non-empty Metaphone codes of the core tokens, joined by single spaces."""
        codes = [phonetic(t) for t in self.core]
        return " ".join(sorted([c for c in codes if c]))


@dataclass(frozen=True, slots=True)
class NormalisedOrgName:
    """One variant of an organisation name, legal forms removed, tokens in written order."""

    tokens: tuple[str, ...]


def prepare(text: str) -> str:
    """Steps 1-3 of the name pipeline: NFKC, full case folding, apostrophes deleted."""
    folded = (text if text.isascii() else unicodedata.normalize("NFKC", text)).casefold()
    if not APOSTROPHES.isdisjoint(folded):
        folded = "".join(ch for ch in folded if ch not in APOSTROPHES)
    return folded


def split_tokens(text: str) -> list[str]:
    """Maximal runs of code points whose general category is L*, M* or N*."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    # str.isalnum() is exactly "category L* or N*" over all of Unicode (checked by a test),
    # so only the other code points need their category looked up.
    category = unicodedata.category
    tokens: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch.isalnum() or category(ch)[0] == "M":
            current.append(ch)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def _ascii_fold(text: str) -> str:
    """Transliterate to ASCII with rigour, casefold, keep only ``[a-z0-9]``."""
    if not text.isascii():
        if _HAN_TOKEN.fullmatch(text):
            if _han_per_character(text):
                return "".join([_char_fold(ch) for ch in text])
        elif _LATIN_LETTERS.issuperset(text) or _RUSSIAN_LETTERS.issuperset(text):
            return "".join([_char_fold(ch) for ch in text])
        from rigour.text.translit import ascii_text

        text = ascii_text(text)
    return "".join(ch for ch in text.casefold() if ch.isascii() and ch.isalnum())


#: Tokens made only of CJK Unified Ideographs (the BMP blocks: the base block and
#: Extension A), the one script whose tokens rarely repeat (a Chinese name is often one
#: token) and whose transliteration (ICU's compound ``Any-Latin`` chain, about 100 us a
#: call) is slow. See :func:`_han_per_character`.
_HAN_TOKEN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]+")
#: A Han-Latin rule that needs nothing but one character on its left: ``[...] > x;``
#: (a set of plain characters and ranges ``a-b``) or ``c > x;``.
_HAN_PLAIN_RULE = re.compile(r"(\[[^\]\s\\{}:^&$\[|']+\]|[^\s\\{}\[\]|'$&^]) > [^\s;{}|]*;")


@lru_cache(maxsize=1)
def _han_context() -> frozenset[str] | None:
    """The Han characters that some rule of ICU's ``Han-Latin`` transliterator (the part of
    ``Any-Latin`` that reads Han) reads in context, or ``None`` if its rules are not of the
    shape this module knows: then every token takes the whole-token path.

    ICU 72.1's rules are one ``::Han-Spacedhan();`` step (a space after each syllable),
    about 1,460 rules that map single characters to one syllable each, and four that read
    a character differently before another (``{藏}' '?文 > zàng;``: 藏文, 重庆, 沈阳, 秘鲁).
    Every Han character named in any rule of another shape is collected here (left and
    right of it), and tokens holding one are transliterated whole. Read from the ICU that
    is loaded, so a newer ICU with more such rules widens the set by itself.
    """
    from icu import ICUError, Transliterator  # PyICU, which normality uses for the same

    try:
        rules = Transliterator.createInstance("Han-Latin").toRules(False)
    except ICUError:
        return None  # an ICU built without the Han-Latin rules: whole tokens only
    context: set[str] = set()
    for line in rules.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or _HAN_PLAIN_RULE.fullmatch(line):
            continue
        if line.startswith("::"):
            if line != "::Han-Spacedhan();":
                return None
            continue
        lhs = line.split(">", 1)[0]
        if "[" in lhs or "\\" in lhs or "$" in lhs:
            return None  # sets or variables inside a context rule: not worth reading
        context.update(ch for ch in lhs if _HAN_TOKEN.fullmatch(ch))
    return frozenset(context)


def _han_per_character(token: str) -> bool:
    """Whether a token of Han ideographs (``_HAN_TOKEN``) transliterates one character at a
    time: ``_ascii_fold(token)`` then equals the concatenation of each character's.

    Why that holds: rigour leaves Han to normality, whose chain is ICU's ``Any-Latin``
    (for Han, ``Han-Latin``: a space after each syllable, then one syllable per
    character, context-free but for :func:`_han_context`'s characters), then steps that
    act on each syllable alone (decomposition, removing accents and symbols,
    ``Latin-ASCII``); the spaces are dropped by the fold. A test replays random tokens over
    both Han blocks against the whole-token path (SPEC.md §13.4 names the result, not the
    path).
    """
    context = _han_context()
    return context is not None and context.isdisjoint(token)


#: Lower-case Latin letters (ASCII, Latin-1 and Latin Extended-A) and ASCII digits; and
#: the Russian alphabet but ``й``, with ASCII digits. rigour transliterates a token made
#: only of one of these sets a character at a time: replayed against the whole-token path
#: on about 10^6 random tokens of each set, and held by a test. Tokens are case folded by
#: then (:func:`prepare`). ``й`` is left out because rigour reads it in context (``ий`` at
#: the end of a word is ``y``), and so are the Ukrainian and Belarusian letters (one of
#: them in a token changes how its other letters read: ``г`` is ``h``), Greek (``μπ`` is
#: ``b``) and every other script: those tokens take the whole-token path. Each distinct
#: token cost rigour about 20 us a character (170 us for a Russian surname), and in
#: distinct data most surnames are new.
_LATIN_LETTERS = frozenset(
    [chr(c) for c in range(0x61, 0x7B)]
    + [chr(c) for c in range(0x30, 0x3A)]
    + [chr(c) for c in range(0xDF, 0x180) if chr(c).isalpha() and chr(c).islower()]
)
_RUSSIAN_LETTERS = frozenset(
    [chr(c) for c in range(0x430, 0x450) if chr(c) != "й"]
    + ["ё"]
    + [chr(c) for c in range(0x30, 0x3A)]
)


@lru_cache(maxsize=TOKEN_CACHE)
def _char_fold(ch: str) -> str:
    """``_ascii_fold`` of one character, by the whole-token path."""
    from rigour.text.translit import ascii_text

    return "".join(c for c in ascii_text(ch).casefold() if c.isascii() and c.isalnum())


@lru_cache(maxsize=TOKEN_CACHE)
def token_variants(token: str) -> tuple[str, str, str]:
    """A prepared token's three forms: (plain, german, icao). Each may be ``""``."""
    plain = _ascii_fold(token)
    german = plain
    if any(ch in GERMAN_DIGRAPHS for ch in token):
        german = _ascii_fold("".join(GERMAN_DIGRAPHS.get(ch, ch) for ch in token))
    icao = plain
    if any(ch in ICAO_CYRILLIC for ch in token):
        icao = _ascii_fold("".join(ICAO_CYRILLIC.get(ch, ch) for ch in token))
    return plain, german, icao


def _variants(tokens: list[str]) -> list[tuple[str, ...]]:
    """The (up to three, deduplicated, in order plain/german/icao) ASCII forms of a token list."""
    forms = [token_variants(t) for t in tokens]
    out: list[tuple[str, ...]] = []
    for i in range(3):
        variant = tuple(f[i] for f in forms if f[i])
        if variant not in out:
            out.append(variant)
    return out


@lru_cache(maxsize=1)
def _honorific_heads() -> frozenset[str]:
    """Lower-case first words of rigour's person-name prefixes, each also with a ``.``."""
    from rigour._core import person_name_prefixes_list

    heads = {p.split(" ", 1)[0].lower() for p in person_name_prefixes_list()}
    return frozenset(heads | {h + "." for h in heads})


@lru_cache(maxsize=1)
def _honorific_starts() -> re.Pattern[str]:
    """The prefixes' first characters as one character class, with the flags of rigour's
    prefix pattern: it matches a character exactly when some prefix could start with it."""
    from rigour._core import person_name_prefixes_list

    firsts = "".join(re.escape(c) for c in sorted({p[0] for p in person_name_prefixes_list() if p}))
    return re.compile(f"[{firsts}]", re.IGNORECASE | re.UNICODE)


def may_have_honorific(text: str) -> bool:
    """False only if rigour's ``remove_person_prefixes`` would return ``text`` unchanged.

    Its pattern, ``^\\W*((prefix)\\.?\\s+)*`` over 135 prefixes, ignoring case, takes
    microseconds to fail on an ordinary name. It removes nothing unless the text starts
    with a non-word character or its first word (up to the first whitespace) is a prefix's
    first word, optionally followed by ``.``. That is checked here for an ASCII first word
    (ASCII letters match the prefixes' letters, all ASCII or ``ä``, exactly when their
    lower cases are equal). A first word that is not ASCII can only begin a prefix if its
    first character matches, ignoring case as the pattern does, some prefix's first
    character (never true of Cyrillic, Greek or CJK, whose names skip the pattern); the rest
    goes to the pattern. A test holds the two equal.
    """
    if not text or not (text[0].isalnum() or text[0] == "_"):
        return True
    head = text.split(None, 1)[0]
    if head.isascii():
        return head.lower() in _honorific_heads()
    return _honorific_starts().match(text) is not None


def _strip_honorifics(text: str) -> str:
    from rigour.names import remove_person_prefixes

    if not may_have_honorific(text):
        return text
    stripped: str = remove_person_prefixes(text)
    # Never let an honorific list eat the whole name ("Lady" can be a given name).
    return stripped if split_tokens(stripped) else text


def _person_tokens(text: str) -> tuple[str, ...]:
    if not text or not text.strip():
        return ()
    return tuple(split_tokens(_strip_honorifics(prepare(text))))


#: One variant of a name part: its tokens' forms with the empty ones kept (so the forms of
#: every variant line up token by token), and the non-empty ones.
PartVariant = tuple[tuple[str, ...], tuple[str, ...]]
_NO_PART: tuple[PartVariant, PartVariant, PartVariant] = (((), ()), ((), ()), ((), ()))


def _part_forms(text: str) -> tuple[PartVariant, PartVariant, PartVariant]:
    """A person-name part (given, middle or family names, or a whole name) as its three
    variants (plain, german, icao), each ``(forms, non-empty forms)``.

    The tokens are those of the name pipeline (honorifics stripped from this part). It
    equals, token for token, what :func:`normalise_person_name` computes. Callers use one
    of its two caches, :func:`part_forms` or :func:`whole_name_forms`.
    """
    tokens = _person_tokens(text)
    if not tokens:
        return _NO_PART
    forms = [token_variants(t) for t in tokens]
    out: list[PartVariant] = []
    for i in range(3):
        column = tuple([f[i] for f in forms])
        if out and column == out[0][0]:
            out.append(out[0])  # the same objects: later equality tests are identity checks
            continue
        out.append((column, column if all(column) else tuple([t for t in column if t])))
    return out[0], out[1], out[2]


#: :func:`_part_forms` of a given, middle or family name. Parts recur across records far
#: more than whole names do (10^6 synthetic persons hold some 40,000 distinct parts), so
#: this is the cache the key derivation (:func:`fiumatch.identifiers.derive.person_name_pairs`)
#: builds on. Whole names have a cache of their own (:func:`whole_name_forms`): they rarely
#: recur, and through this one they evicted the parts that do (375,000 distinct whole names
#: in those 10^6 persons).
part_forms = lru_cache(maxsize=TOKEN_CACHE)(_part_forms)
#: :func:`_part_forms` of a whole name (a name not given as parts, or an alias), in a
#: per-value cache: it holds a name that recurs within a few thousand records.
whole_name_forms = lru_cache(maxsize=VALUE_CACHE)(_part_forms)

PartForms = tuple[PartVariant, PartVariant, PartVariant]


@lru_cache(maxsize=TOKEN_CACHE)
def plain_part(text: str) -> bool:
    """Whether a name part is *plain*: prepared, it is not empty and could not start with an
    honorific (:func:`may_have_honorific` is false), so the pipeline strips nothing from it.

    Plain parts compose: for plain parts ``p1 .. pn`` (``n >= 1``), the tokens of the whole
    name ``" ".join([p1, .., pn])`` are the parts' tokens one after another. Each step of
    :func:`prepare` acts on each character alone, but NFKC, which never composes across the
    space (a starter that begins no composition); tokens never run across the space; and
    the whole name strips no honorific because its first word and first character are those
    of ``p1``, which could not start one. See :func:`compose_forms`.
    """
    prepared = prepare(text)
    return bool(prepared) and not may_have_honorific(prepared)


def compose_forms(parts: Sequence[PartForms]) -> PartForms:
    """``whole_name_forms(" ".join(texts))`` from ``[part_forms(t) for t in texts]``, for
    plain parts (:func:`plain_part`), without tokenising the whole name again.

    A whole name that is exactly its given, middle and family names joined by single
    spaces (the usual CSV or goAML row, which fills both) costs no more than its parts,
    which are cached. Equal to :func:`whole_name_forms` variant by variant, as a test
    holds: the tokens compose (see :func:`plain_part`) and each token's forms are its own.
    """
    out: list[PartVariant] = []
    for i in range(3):
        column: tuple[str, ...] = ()
        kept: tuple[str, ...] = ()
        for part in parts:
            forms, nonempty = part[i]
            column += forms
            kept += nonempty
        if out and column == out[0][0]:
            out.append(out[0])
        else:
            out.append((column, kept))
    return out[0], out[1], out[2]


def normalise_person_name(name: PersonName, field: str = "name") -> list[NormalisedPersonName]:
    """Normalise a person name into its (1 to 3) variants; raise if nothing is left."""
    variants = _normalise_person_name(name)
    if variants is None:
        raise EmptyValueError(field, "no name tokens after normalisation")
    return list(variants)


@lru_cache(maxsize=VALUE_CACHE)
def _normalise_person_name(name: PersonName) -> tuple[NormalisedPersonName, ...] | None:
    if name.structured:
        given = _person_tokens(name.given)
        middle = _person_tokens(name.middle)
        family = _person_tokens(name.family)
        all_tokens = [*given, *middle, *family]
        n_given, n_middle = len(given), len(middle)
    else:
        all_tokens = list(_person_tokens(name.full))
        n_given = n_middle = -1
    if not all_tokens:
        return None
    out: list[NormalisedPersonName] = []
    forms = [token_variants(t) for t in all_tokens]
    seen: set[tuple[str, ...]] = set()
    for i in range(3):
        column = [f[i] for f in forms]
        if tuple(column) in seen:
            continue
        seen.add(tuple(column))
        ordered = tuple(t for t in column if t)
        if not ordered:
            continue
        if n_given >= 0:
            g = [t for t in column[:n_given] if t]
            fam = tuple(t for t in column[n_given + n_middle :] if t)
            core = tuple(sorted(g + list(fam)))
            initial = g[0][0] if g else ""
        else:
            fam = ()
            core = tuple(sorted(ordered))
            initial = ""
        out.append(NormalisedPersonName(ordered, core or tuple(sorted(ordered)), fam, initial))
    return tuple(out) or None


def _remove_legal_forms(text: str) -> str:
    from rigour.names import remove_org_prefixes, remove_org_types

    without: str = remove_org_types(text, replacement=" ")
    without = remove_org_prefixes(without.strip())
    return without


def normalise_org_name(name: str, field: str = "name") -> list[NormalisedOrgName]:
    """Normalise an organisation name: legal forms and leading articles removed."""
    variants = _normalise_org_name(name)
    if variants is None:
        raise EmptyValueError(field, "no name tokens")
    return list(variants)


@lru_cache(maxsize=VALUE_CACHE)
def _normalise_org_name(name: str) -> tuple[NormalisedOrgName, ...] | None:
    prepared = prepare(name)
    # A name made only of legal-form words ("II Inc") keeps them rather than vanishing.
    tokens = split_tokens(_remove_legal_forms(prepared)) or split_tokens(prepared)
    if not tokens:
        return None
    out: list[NormalisedOrgName] = []
    for variant in _variants(tokens):
        # Second pass on the ASCII form: legal forms written in another script ("ООО" ->
        # "ooo") or transliterated by the writer are removed here.
        again = tuple(split_tokens(_remove_legal_forms(" ".join(variant)))) or variant
        if again and NormalisedOrgName(again) not in out:
            out.append(NormalisedOrgName(again))
    return tuple(out) or None


@lru_cache(maxsize=TOKEN_CACHE)
def phonetic(token: str) -> str:
    """Metaphone code of an ASCII token (rigour 2.6.1's implementation), ``""`` if none."""
    from rigour.text.phonetics import metaphone

    code: str = metaphone(token)
    return code
