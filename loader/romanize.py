"""Korean names in the Latin alphabet: the official spelling and the informal ones people type.

Storage keys are ASCII only, so customer folders carry a romanized name
(`kimjongchull-6654`) while `customers.name` holds Hangul (김종철). People romanize names
inconsistently: official Revised Romanization (RR) says `gimjongcheol`, people write `kim`,
`chul`, `chull`. This module produces:

- `romanize(name)`: RR, syllable by syllable, lower-case, no separators. Names are romanized
  without sound-change rules (RR itself allows that for names), which is also how people spell
  their own names.
- `spellings(name)`: the plausible spellings, cheapest first, at most `MAX_SPELLINGS`, for
  fine scoring with rapidfuzz.
- `name_key(name)` / `variant_keys(ascii)`: a coarse retrieval key, one per customer and a few
  per folder, with which a matcher finds the customers worth scoring without comparing a
  folder against every customer.
- `letter_fold(ascii)`: a fine fold for scoring, which undoes only letter-level habits (k/g,
  p/b, t/d, oo for u, ee for i, doubled letters) so that `kimchongchull` and `gimjongchul`
  compare as equal letter by letter. Unlike the retrieval key it keeps silent letters and
  eo/yo apart, which distinguish names.

The RR tables are written out here (a few dozen lines) instead of depending on a package: the
permissive one (`hangul-romanize`, BSD-2-Clause, last release 2020) romanizes running text with
sound changes, which is wrong for names, and `korean-romanizer` is GPL-3.0.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from functools import cache, lru_cache
from itertools import islice
from operator import itemgetter

MAX_SPELLINGS = 64
# Entries of each cache holding a name's spellings (up to MAX_SPELLINGS strings each): on the
# demo library of 100,000 customers, 32,768 kept the hit rate and CPU time of 200,000 with
# 112 MB less memory; 16,384 cost ~45% more CPU (benchmarks: docs/performance.md).
SPELLINGS_CACHE = 32_768
# Extra cost of the given-name-first order (`jongchulkim`) over the same spelling surname-first.
REVERSED_COST = 2
# A syllable's informal spellings beyond this total cost are too far-fetched to be worth a slot.
MAX_SYLLABLE_COST = 3

_HANGUL_FIRST = 0xAC00
_HANGUL_LAST = 0xD7A3

# Revised Romanization of the 19 initials, 21 vowels and 28 finals, in Unicode order;
# `-` is silent (ㅇ as an initial, no final).
RR_INITIALS = (
    "g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "-", "j", "jj", "ch", "k", "t",
    "p", "h",
)  # fmt: skip
RR_VOWELS = (
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo",
    "we", "wi", "yu", "eu", "ui", "i",
)  # fmt: skip
RR_FINALS = (
    "-", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p",
    "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
)  # fmt: skip

Options = tuple[tuple[str, int], ...]


def _options(spec: str) -> Options:
    """`"g k:1"` -> (("g", 0), ("k", 1)); `-` stands for the empty string."""
    out = []
    for item in spec.split():
        text, _, cost = item.partition(":")
        out.append(("" if text == "-" else text, int(cost or 0)))
    return tuple(out)


# Informal spellings of each jamo, with a cost: 0 = RR or as common as RR, 1 = common informal,
# 2 = seen but rarer. Index order as in the RR tables above.
_INITIAL_OPTIONS = tuple(map(_options, (
    "g k", "kk gg:1 k:2", "n", "d t:1", "tt dd:1", "r l:1", "m", "b p:1", "pp bb:1", "s sh:1",
    "ss s:1", "-", "j ch:1", "jj j:1", "ch j:1", "k", "t", "p", "h",
)))  # fmt: skip
_VOWEL_OPTIONS = tuple(map(_options, (
    "a", "ae e:1 ai:2", "ya", "yae ye:1", "eo u:1 o:1 uh:2", "e ae:1", "yeo yu:1 you:1 yo:2",
    "ye yae:1", "o", "wa", "wae we:1", "oe oi:1 we:1", "yo", "u oo:1 ou:2", "wo weo:1", "we",
    "wi wee:2", "yu yoo:1 you:2", "eu u:1", "ui ee:1 eui:1 i:2", "i ee:1",
)))  # fmt: skip
# Finals have one sound each in RR; people also write the voiced or doubled letter.
_FINAL_INFORMAL = {"k": "k g:1", "l": "l ll:1 r:2", "p": "p b:1"}
_FINAL_OPTIONS = tuple(_options(_FINAL_INFORMAL.get(rr, rr)) for rr in RR_FINALS)

# Surname spellings in order of use; the first two cost nothing, later ones a little more.
# Double-syllable surnames are listed so they are split off correctly.
SURNAME_SPELLINGS: dict[str, tuple[str, ...]] = {
    "김": ("kim", "gim"),
    "이": ("lee", "yi", "i", "rhee", "ri", "li", "yee"),
    "박": ("park", "bak", "pak", "bark"),
    "최": ("choi", "choe", "chey"),
    "정": ("jung", "jeong", "chung", "joung", "jeung", "jong"),
    "강": ("kang", "gang"),
    "조": ("cho", "jo", "joe"),
    "윤": ("yoon", "yun", "youn"),
    "장": ("jang", "chang"),
    "임": ("lim", "im", "rim", "yim"),
    "림": ("lim", "rim", "im"),
    "한": ("han",),
    "오": ("oh", "o"),
    "서": ("seo", "suh", "so", "su"),
    "신": ("shin", "sin"),
    "권": ("kwon", "gwon"),
    "황": ("hwang",),
    "안": ("ahn", "an"),
    "송": ("song",),
    "류": ("ryu", "yoo", "yu", "ryoo", "rhyu"),
    "유": ("yoo", "yu", "you", "ryu"),
    "전": ("jeon", "jun", "chun", "chon", "jon"),
    "홍": ("hong",),
    "고": ("ko", "go", "koh"),
    "문": ("moon", "mun"),
    "양": ("yang",),
    "손": ("son", "sohn"),
    "배": ("bae", "pae"),
    "백": ("baek", "paek", "baik", "paik"),
    "허": ("heo", "huh", "hur", "her"),
    "남": ("nam",),
    "노": ("noh", "roh", "no", "ro"),
    "심": ("shim", "sim"),
    "하": ("ha",),
    "곽": ("kwak", "gwak"),
    "성": ("sung", "seong"),
    "차": ("cha",),
    "주": ("joo", "ju", "chu", "choo"),
    "우": ("woo", "u"),
    "구": ("koo", "gu", "ku"),
    "민": ("min",),
    "나": ("na", "ra"),
    "라": ("ra", "la", "na"),
    "진": ("jin", "chin"),
    "지": ("ji", "chi"),
    "엄": ("um", "eom", "uhm"),
    "채": ("chae", "chai"),
    "원": ("won", "weon"),
    "천": ("cheon", "chun"),
    "방": ("bang",),
    "공": ("kong", "gong"),
    "현": ("hyun", "hyeon"),
    "함": ("ham",),
    "변": ("byun", "byeon", "pyun"),
    "염": ("yeom", "yum"),
    "여": ("yeo", "yu", "yeu"),
    "추": ("choo", "chu"),
    "도": ("do", "doh"),
    "소": ("so",),
    "석": ("seok", "suk"),
    "설": ("seol", "sul"),
    "길": ("gil", "kil"),
    "연": ("yeon", "yun", "youn"),
    "위": ("wi", "wee"),
    "표": ("pyo",),
    "명": ("myung", "myeong"),
    "기": ("ki", "gi"),
    "반": ("ban",),
    "왕": ("wang",),
    "금": ("keum", "geum", "kum"),
    "옥": ("ok",),
    "육": ("yook", "yuk"),
    "인": ("in",),
    "맹": ("maeng",),
    "제": ("je",),
    "탁": ("tak",),
    "국": ("kook", "guk"),
    "어": ("eo", "uh"),
    "은": ("eun",),
    "편": ("pyun", "pyeon"),
    "용": ("yong",),
    "경": ("kyung", "gyeong"),
    "봉": ("bong",),
    "부": ("boo", "bu"),
    "태": ("tae",),
    "형": ("hyung", "hyeong"),
    "두": ("doo", "du"),
    "마": ("ma",),
    "선우": ("sunwoo", "seonu", "sunu"),
    "남궁": ("namgoong", "namgung", "namkung"),
    "황보": ("hwangbo",),
    "제갈": ("jegal", "chegal"),
    "독고": ("dokgo", "dokko"),
    "사공": ("sagong",),
    "서문": ("seomun", "seomoon"),
    "동방": ("dongbang",),
}

_COMPOUND_SURNAMES = frozenset(s for s in SURNAME_SPELLINGS if len(s) == 2)


def _by_spelling() -> dict[str, tuple[str, ...]]:
    """ASCII spelling -> the Hangul surnames it may stand for (`lim` -> 임, 림)."""
    out: dict[str, tuple[str, ...]] = {}
    for hangul, variants in SURNAME_SPELLINGS.items():
        for spelling in variants:
            out[spelling] = (*out.get(spelling, ()), hangul)
    return out


_SURNAMES_BY_SPELLING = _by_spelling()
_LONGEST_SURNAME = max(map(len, _SURNAMES_BY_SPELLING))

_NON_LETTER = re.compile(r"[^a-z]+")
# Folding for retrieval keys: every rule merges spellings people use interchangeably, so two
# spellings of one name usually fold to the same key (`kimjongchull`, `gimjongcheol` ->
# `gimjongjul`). Order matters: digraphs first, then single letters, then doubled letters.
_FOLD_RULES = (
    ("rh", "r"),
    ("sh", "s"),
    ("ch", "j"),
    ("wh", "w"),
    ("ee", "i"),
    ("woo", "u"),
    ("oo", "u"),
    ("eo", "u"),
    ("eu", "u"),
    ("ou", "u"),
    ("yo", "yu"),
    ("ae", "e"),
    ("yi", "i"),
    ("k", "g"),
    ("p", "b"),
    ("t", "d"),
    ("r", "l"),
)
_DOUBLED = re.compile(r"([a-z])\1+")
# An `h` or `r` that closes a syllable (`ahn`, `oh`, `sohn`, `park`, `hur`) is decoration in
# English-style spellings: RR never writes one there.
_SILENT_CLOSER = re.compile(r"(?<=[aeiouwy])[hr](?![aeiouwy])")


# Cached: a matcher folds every customer name's surname and given name (`name_key`), and
# customers share them (`고객1` and `고객2` romanize alike).
@lru_cache(maxsize=SPELLINGS_CACHE)
def fold(text: str) -> str:
    """Coarse key of an ASCII spelling: lower-case letters with interchangeable spellings merged.

    Used only to find candidates; ranking uses the real spellings.
    """
    key = _NON_LETTER.sub("", text.lower())
    key = _SILENT_CLOSER.sub("", key)
    for old, new in _FOLD_RULES:
        key = key.replace(old, new)
    return _DOUBLED.sub(r"\1", key)


_VOICING = str.maketrans("gbd", "kpt")


def letter_fold(spelled: str) -> str:
    """`spelled` with letter-level habits undone: oo -> u, ee -> i, g/b/d -> k/p/t (the g of a
    final "ng" included), doubled letters single. For scoring, not retrieval."""
    text = spelled.replace("oo", "u").replace("ee", "i").translate(_VOICING)
    return _DOUBLED.sub(r"\1", text)


@lru_cache(maxsize=SPELLINGS_CACHE)
def letter_folded(spellings: tuple[str, ...]) -> tuple[str, ...]:
    """`letter_fold` of each spelling, cached per tuple (a customer's spellings)."""
    # One pass over all of them: the folds never cross the line breaks.
    return tuple(letter_fold("\n".join(spellings)).split("\n"))


def clear_caches() -> None:
    """Free what matching cached (a match is once per run; its caches would otherwise stay
    for the hours the run takes)."""
    for cached in (fold, letter_folded, split_name, _spellings, _word_spellings,
                   _spellings_with, _surname_fit):  # fmt: skip
        cached.cache_clear()
    _PREFIX_OPTIONS.clear()
    _PREFIX_OPTIONS[""] = (("", 0),)


def _clean(name: str) -> str:
    # NFC first: names typed on macOS often arrive decomposed into jamo (NFD).
    return "".join(unicodedata.normalize("NFC", name).split())


def _is_syllable(char: str) -> bool:
    return _HANGUL_FIRST <= ord(char) <= _HANGUL_LAST


# `_is_syllable` of every character, in one match: a matcher splits every name it scores.
_SYLLABLES = re.compile(f"[{chr(_HANGUL_FIRST)}-{chr(_HANGUL_LAST)}]+")


@cache
def _jamo(char: str) -> tuple[int, int, int]:
    index = ord(char) - _HANGUL_FIRST
    return index // 588, (index // 28) % 21, index % 28


@cache
def _rr_syllable(char: str) -> str:
    if not _is_syllable(char):
        return _NON_LETTER.sub("", unicodedata.normalize("NFKD", char).lower())
    initial, vowel, final = _jamo(char)
    parts = (RR_INITIALS[initial], RR_VOWELS[vowel], RR_FINALS[final])
    return "".join(p for p in parts if p != "-")


def romanize(name: str) -> str:
    """Revised Romanization of `name`, syllable by syllable, lower-case, no separators.

    Non-Hangul letters are kept (lower-cased, accents dropped); everything else is dropped.
    """
    if name.isascii():  # a folder name, most often: the same letters without the walk
        return _NON_LETTER.sub("", name.lower())
    return "".join(map(_rr_syllable, _clean(name)))


@cache
def _syllable_options(char: str) -> Options:
    """Informal spellings of one syllable, cheapest first (RR is always first)."""
    if not _is_syllable(char):
        return ((_rr_syllable(char), 0),)
    initial, vowel, final = _jamo(char)
    found: dict[str, int] = {}
    for i_text, i_cost in _INITIAL_OPTIONS[initial]:
        for v_text, v_cost in _VOWEL_OPTIONS[vowel]:
            for f_text, f_cost in _FINAL_OPTIONS[final]:
                cost = i_cost + v_cost + f_cost
                text = i_text + v_text + f_text
                if cost <= MAX_SYLLABLE_COST and cost < found.get(text, MAX_SYLLABLE_COST + 1):
                    found[text] = cost
    # 우 on its own is written `woo` at least as often as `u` (현우 -> hyunwoo).
    if initial == 11 and vowel == 13 and final == 0:
        found.setdefault("woo", 0)
    return tuple(sorted(found.items(), key=lambda item: item[1]))


def _combine(left: Options, right: Options, limit: int) -> Options:
    """The `limit` cheapest concatenations of one option from each side, cheapest first."""
    if len(right) == 1:
        # A character with one spelling (a digit, a Latin letter): the same walk, in one pass.
        (rt, rc), out = right[0], {}
        for lt, lc in sorted(left, key=itemgetter(1)):
            out.setdefault(lt + rt, lc + rc)
            if len(out) == limit:
                break
        return tuple(out.items())
    by_cost: dict[int, list[str]] = defaultdict(list)
    for text, cost in right:
        by_cost[cost].append(text)
    out: dict[str, int] = {}
    # Costs are small integers: walk the totals upwards and stop once `limit` are found.
    for total in range(max(c for _, c in left) + max(by_cost) + 1):
        for lt, lc in left:
            for rt in by_cost.get(total - lc, ()):
                out.setdefault(lt + rt, total)
                if len(out) == limit:
                    return tuple(out.items())
    return tuple(out.items())


def _split_name(name: str) -> tuple[str, str]:
    """(surname, given name) of a Hangul name; double-syllable surnames are recognized.

    A name that is not Hangul, or a single syllable, has an empty surname.
    """
    name = _clean(name)
    if len(name) < 2 or not _SYLLABLES.fullmatch(name):
        return "", name
    if len(name) >= 3 and name[:2] in _COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[0], name[1:]


# Cached for `spellings`, which sees a name once per folder it is scored for.
split_name = lru_cache(maxsize=SPELLINGS_CACHE)(_split_name)


@cache
def _surname_options(surname: str) -> Options:
    known = SURNAME_SPELLINGS.get(surname, ())
    options = {text: min(i // 2, 2) for i, text in enumerate(known)}
    options.setdefault(romanize(surname), 1)
    return tuple(options.items())


# The options of every proper prefix of a given name seen: names share their first
# syllables (a given name's first syllable, or the 객 of `고객123`), and the options of a
# prefix are the same whatever follows, so a new name costs only its last syllable. Whole
# given names are not kept: most are seen once per match (`_spellings_with` keeps the ones
# that repeat), and keeping them cost ~1.5 KB per customer name (137 MB at 90,000 distinct
# names, measured). Bounded like the lru_caches here.
_PREFIX_OPTIONS: dict[str, Options] = {"": (("", 0),)}


def _given_options(given: str) -> Options:
    """The left fold of `_combine` over the syllables, resumed from the longest known prefix."""
    known = max(0, len(given) - 1)
    while given[:known] not in _PREFIX_OPTIONS:
        known -= 1
    options = _PREFIX_OPTIONS[given[:known]]
    for end in range(known + 1, len(given) + 1):
        options = _combine(options, _syllable_options(given[end - 1]), MAX_SPELLINGS)
        if end < len(given) and len(_PREFIX_OPTIONS) < 200_000:
            _PREFIX_OPTIONS[given[:end]] = options
    return options


@lru_cache(maxsize=SPELLINGS_CACHE)
def _spellings(name: str) -> tuple[str, ...]:
    surname, given = split_name(name)
    if not surname:
        words = [romanize(word) for word in name.split()]
        if len(words) > 1:
            # A Latin-script name: as written, and with the last word first (`John Kim`).
            return tuple(dict.fromkeys(["".join(words), "".join([words[-1], *words[:-1]])]))
        return _word_spellings(_voiced(given))
    surnames = _surname_options(surname)
    given_options = _given_options(given)
    forward = _combine(surnames, given_options, MAX_SPELLINGS)
    backward = _combine(given_options, surnames, MAX_SPELLINGS)
    # One ranking for both orders; sorted() is stable, so forward wins ties.
    ranked = sorted(
        [*forward, *((text, cost + REVERSED_COST) for text, cost in backward)],
        key=lambda item: item[1],
    )
    return tuple(islice(dict.fromkeys(text for text, _ in ranked), MAX_SPELLINGS))


def _voiced(cleaned: str) -> str:
    """`cleaned` (`_clean`) without the characters romanized to nothing (digits, punctuation):
    their only option is "" at no cost, which leaves the spellings as they are."""
    return "".join(filter(_rr_syllable, cleaned))


@lru_cache(maxsize=SPELLINGS_CACHE)
def _word_spellings(voiced: str) -> tuple[str, ...]:
    """Spellings of one word that is not a Hangul name, cached by its `_voiced` letters:
    names that differ only in digits (`고객1`, `고객2`) share one entry."""
    return tuple(text for text, _ in _given_options(voiced) if text)


@lru_cache(maxsize=SPELLINGS_CACHE)
def _spellings_with(
    given: str, prefixes: tuple[str, ...], suffixes: tuple[str, ...]
) -> tuple[str, ...]:
    per_surname = MAX_SPELLINGS // (len(prefixes) + len(suffixes))
    given_texts = [text for text, _ in _given_options(given)[:per_surname]]
    out = [s + g for s in prefixes for g in given_texts]
    out += [g + s for s in suffixes for g in given_texts]
    return tuple(dict.fromkeys(out))


def spellings(hangul_name: str, like: str | None = None) -> tuple[str, ...]:
    """Plausible ASCII spellings of a name, lower-case, no separators, most likely first.

    Ordered by how far they are from RR (the common surname spellings, Kim and Gim alike,
    count as near): surname table (Kim/Gim, Lee/Yi/Rhee, ...), given-name variants (eo->u/o,
    eu->u, ch<->j, l->ll, oo for u, ee for i, ...), and the given-name-first order at a small
    extra cost. At most `MAX_SPELLINGS`; cached.

    `like` (an ASCII spelling to compare with, e.g. a folder's name part) spends the budget
    on the surname spellings and name order it starts or ends with (or, when none fits, on the
    two usual surname spellings), so `rheeyeonwoo` is among the variants of 이연우 although
    Rhee is a rare spelling of 이.
    """
    name = unicodedata.normalize("NFC", hangul_name).strip()
    surname, given = split_name(name)
    if like and surname:
        return _spellings_with(given, *_surname_fit(surname, like))
    if not surname and len(name.split()) == 1:
        # Not kept by `_spellings` as well: such names are often unique (`고객123`). Without
        # a surname, `given` is the whole name, cleaned.
        return _word_spellings(_voiced(given))
    return _spellings(name)


@lru_cache(maxsize=SPELLINGS_CACHE)
def _surname_fit(surname: str, like: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The spellings of `surname` that `like` starts with and ends with (a folder is compared
    with many customers sharing a surname: worked out once per folder and surname)."""
    options = [text for text, _ in _surname_options(surname)]
    prefixes = tuple(s for s in options if like.startswith(s))
    suffixes = tuple(s for s in options if like.endswith(s) and len(s) < len(like))
    # No surname spelling fits (a slip in the surname, or another person): the two usual
    # surname spellings are enough to measure how far off it is.
    return prefixes or tuple(options[:2]), suffixes


def name_key(name: str) -> str:
    """Retrieval key of a customer's name: `fold` of its RR, surname-first.

    Not cached here: a matcher takes every customer's key once (a cache of all of them held
    ~25 MB at 90,000 names, measured), and caches, bounded, the ones its folders hit."""
    surname, given = _split_name(name)
    if not surname:
        return fold(romanize(name))
    return fold(romanize(surname)) + fold(romanize(given))


def variant_keys(spelled: str) -> set[str]:
    """Retrieval keys an ASCII name (a folder's name part) may stand for.

    Besides its plain `fold`, every known surname spelling found at the start (or, for the
    given-name-first order, at the end) is replaced by the RR of the surname it stands for, so
    `rheejongchul` and `jongchulyi` both give the key of 이종철.
    """
    letters = _NON_LETTER.sub("", spelled.lower())
    keys = {fold(letters)}
    for size in range(1, min(_LONGEST_SURNAME, len(letters) - 1) + 1):
        for hangul in _SURNAMES_BY_SPELLING.get(letters[:size], ()):
            keys.add(fold(romanize(hangul)) + fold(letters[size:]))
        for hangul in _SURNAMES_BY_SPELLING.get(letters[-size:], ()):
            keys.add(fold(romanize(hangul)) + fold(letters[:-size]))
    return keys
