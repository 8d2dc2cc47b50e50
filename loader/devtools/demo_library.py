"""A synthetic image library shaped like the user's: customers, Storage folders, objects.

Deterministic for a (scale, seed) pair. Scale 1 is about the user's size (1,000 customers,
100 folders, ~10k objects); scale 100 is 100,000 customers, 10,000 folders and ~1M objects.
Customers and folders are built in memory (small); objects are generated per folder on
demand (`iter_objects`), so a million of them never sit in memory at once.

Folders vary the way real ones do, each labelled with its `variation` and the customer it
truly belongs to (`write_truth`), so the matcher's precision and recall can be measured:

- `exact` (~37%): the folder is its customer's `folder_name`;
- `normalized`: differs from `folder_name` by case, separators, stray spaces or full-width
  characters (on the database side: Storage keys are ASCII);
- `romanization`, `given_first`: another informal spelling of the name (gim/kim, eo->u, ...),
  or the given name first;
- `letters`: an informal spelling with one letter-level change in the given name (k/g, p/b,
  t/d at the start of a syllable or on the g of a final "ng", oo for u, ee for i, a doubled
  letter);
- `typo`: one slip of the keyboard in a spelling of the name; `folder_name_slip`: one slip in
  the customer's own `folder_name`, digits kept; `phone_changed`: other 4 digits;
- `namesakes`: four or five customers share the name, all but the newest already have their
  folder (their `folder_name`, made as `exact` folders); this folder, without digits, is the
  newest one's, who has no `folder_name`;
- `null_folder_name`: the customer's `folder_name` is NULL;
- `conflict`: another customer's `folder_name` is this folder (truth: the named customer);
- `same_customer`: a second folder for a customer who already has one;
- `ambiguous`: two customers with the same name and the same last 4 digits (truth is one of
  them; no matcher can tell which);
- `no_customer`: nobody in `customers`.

Apart from `ambiguous`, no other customer with the folder's 4 digits has a similar name, so
the truth is knowable from the data. The generator has its own model of how people romanize
(`_human_spelling`: weighted spelling habits per jamo and per surname), written apart from the
matcher's tables in `loader/romanize.py`, so the figures are not graded by the code under test.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from rapidfuzz import fuzz

from loader.classify import MEDIA_TYPES, classify, extension
from loader.devtools.storage_model import (
    is_valid_key,
    iso_timestamp,
    object_id,
    object_metadata,
    write_manifest_row,
)
from loader.match import Customer, FolderMatch, normalize_folder, phone_suffix

DEFAULT_SEED = 20261126
CUSTOMERS_PER_SCALE = 1000
FOLDERS_PER_SCALE = 100
PREFIX = "originals/customers/"
PAGE_LIMIT = 1500  # one page of the Storage v1 list API
DEMO_CDN_BASE = "https://cdn.example.com/"


# Share of folders per variation; `romanization` takes the rest.
VARIATION_SHARES = {
    "exact": 0.37,
    "normalized": 0.07,
    "given_first": 0.03,
    "typo": 0.05,
    "folder_name_slip": 0.04,
    "letters": 0.04,
    "namesakes": 0.02,
    "phone_changed": 0.06,
    "no_customer": 0.08,
    "ambiguous": 0.04,
    "null_folder_name": 0.06,
    "conflict": 0.03,
    "same_customer": 0.04,
}
# Another customer with the same 4 digits and a name this close (`fuzz.ratio` of `_sound`s)
# would make the truth unknowable; such folders are drawn again (except for `ambiguous`,
# where that is the point).
_CONFUSABLE = 70

# Approximate shares of Korean surnames (Statistics Korea, 2015), the long tail cut.
_SURNAME_WEIGHTS = {
    "김": 215, "이": 147, "박": 84, "최": 47, "정": 43, "강": 24, "조": 21, "윤": 20, "장": 20,
    "임": 17, "한": 15, "오": 15, "서": 14, "신": 14, "권": 14, "황": 14, "안": 13, "송": 13,
    "류": 12, "전": 11, "홍": 11, "고": 9, "문": 9, "양": 9, "손": 9, "배": 8, "백": 7, "허": 6,
    "남": 5, "노": 5, "심": 5, "하": 4, "곽": 4, "성": 4, "차": 4, "주": 4, "우": 4, "구": 4,
    "민": 3, "나": 3, "진": 3, "지": 3, "엄": 3, "채": 3, "원": 2, "천": 2, "방": 2, "공": 2,
    "현": 2, "함": 2, "변": 2, "염": 2, "여": 1, "추": 1, "도": 1, "소": 1, "석": 1, "설": 1,
    "선우": 1, "남궁": 1, "황보": 1, "제갈": 1,
}  # fmt: skip
_COMMON_GIVEN = (
    "민준", "서준", "도윤", "예준", "시우", "하준", "지호", "주원", "지후", "준우", "준서", "건우",
    "현우", "지훈", "우진", "선우", "서진", "민재", "현준", "연우", "유준", "정우", "승우", "승현",
    "시윤", "준혁", "은우", "지환", "승민", "지우", "서연", "서윤", "지유", "서현", "민서", "하은",
    "하윤", "윤서", "지민", "채원", "수아", "지아", "지윤", "은서", "다은", "예은", "수빈", "소율",
    "예린", "지원", "영수", "영호", "영식", "정숙", "순자", "영자", "종철", "남구", "미경", "은주",
    "현주", "성민", "동현", "상훈", "성호", "재훈", "경희", "미영", "은영", "혜진", "수진", "정희",
    "광수", "철수", "병철", "상철", "용준", "재영", "명숙", "옥순", "춘자", "말순", "희정", "지혜",
    "은정", "선영", "미숙", "경수", "동욱",
)  # fmt: skip
_GIVEN_SYLLABLES = (
    "민", "서", "지", "현", "준", "우", "수", "영", "은", "윤", "연", "진", "하", "도", "예",
    "유", "재", "성", "정", "상", "동", "혜", "경", "희", "태", "승", "종", "철", "호", "미",
    "숙", "순", "남", "석", "훈", "빈", "원", "주", "아", "린", "채", "소", "다", "나", "건",
    "한", "규", "범", "찬", "혁", "욱", "기", "용", "명", "선", "애", "옥", "란", "길", "식",
)  # fmt: skip
_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "g": "fh", "h": "gj", "i": "uo",
    "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "r": "et",
    "s": "ad", "t": "ry", "u": "yi", "w": "qe", "y": "tu",
}  # fmt: skip

# (extension, weight, size range in bytes); mimetypes come from `classify.MEDIA_TYPES`.
_IMAGES = (
    ("jpg", 40, (400_000, 6_000_000)),
    ("JPG", 15, (400_000, 6_000_000)),
    ("jpeg", 8, (300_000, 5_000_000)),
    ("JPEG", 2, (300_000, 5_000_000)),
    ("png", 12, (100_000, 8_000_000)),
    ("PNG", 2, (100_000, 8_000_000)),
    ("heic", 8, (900_000, 3_500_000)),
    ("HEIC", 4, (900_000, 3_500_000)),
    ("heif", 1, (900_000, 3_500_000)),
    ("gif", 3, (80_000, 5_000_000)),
    ("webp", 5, (40_000, 900_000)),
)
_VIDEOS = (
    ("mp4", 45, (3_000_000, 400_000_000)),
    ("MP4", 2, (3_000_000, 400_000_000)),
    ("MOV", 20, (5_000_000, 600_000_000)),
    ("mov", 10, (5_000_000, 600_000_000)),
    ("avi", 5, (5_000_000, 300_000_000)),
    ("webm", 5, (1_000_000, 100_000_000)),
    ("mkv", 5, (5_000_000, 500_000_000)),
    ("flv", 3, (1_000_000, 80_000_000)),
    ("m4v", 5, (3_000_000, 300_000_000)),
)
_OTHER_FILES = (
    ("notes.txt", "text/plain", (40, 4_000)),
    (".DS_Store", "application/octet-stream", (6_148, 6_148)),
    ("Thumbs.db", "application/octet-stream", (8_192, 40_960)),
    ("consent form.pdf", "application/pdf", (80_000, 900_000)),
)
_KEEP_PNG_SIZE = 68  # a 1x1 transparent PNG
_ODD_NAMES = ("before&after", "profile+1", "it's me", "what?", "a=b;c,d@e:f", "$100 shot!", "*")
_EPOCH = datetime(2022, 1, 1, tzinfo=UTC)
_SPAN_DAYS = 1400


@dataclass(slots=True)
class DemoFolder:
    name: str  # the top-level folder under PREFIX
    true_customer_id: int | None
    variation: str
    big: bool = False  # holds more than one list page (PAGE_LIMIT) of files directly
    empty: bool = False  # holds only placeholders


@dataclass(slots=True)
class DemoLibrary:
    seed: int
    scale: int
    customers: list[Customer]
    folders: list[DemoFolder]
    existing_assets: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class SeedCounts:
    customers: int
    existing_assets: int
    objects: int


@dataclass(slots=True, frozen=True)
class MatchQuality:
    folders: int
    with_truth: int  # folders whose true customer exists
    links: int  # exact + normalized + auto (+ decided with a customer)
    wrong_links: int
    auto: int
    wrong_auto: int
    precision: float  # correct links / links
    recall: float  # correct links / with_truth
    not_in_top3: list[str]  # folders with a true customer, not linked, truth not in candidates


# --- how the front desk spells names ----------------------------------------------------
# The generator's own model of how people type Korean names in Latin letters, written apart
# from the matcher's tables (`loader/romanize.py`) so the matching figures are not graded by
# the code under test. Each jamo has the spellings people use for it, with rough weights; the
# first one is the official Revised Romanization, which `_official` uses.


def _habits(spec: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """`"g:50 k:50"` -> (("g", "k"), (50, 50)); `-` is the empty string, no weight means 1."""
    texts, weights = [], []
    for item in spec.split():
        text, _, weight = item.partition(":")
        texts.append("" if text == "-" else text)
        weights.append(int(weight or 1))
    return tuple(texts), tuple(weights)


# In Unicode order: 19 initials, 21 vowels, 28 finals.
_INITIAL_HABITS = tuple(map(_habits, (
    "g:50 k:50", "kk:70 gg:20 k:10", "n", "d:85 t:15", "tt:80 dd:20", "r:75 l:25", "m",
    "b:80 p:20", "pp:80 bb:20", "s", "ss:80 s:20", "-", "j:90 ch:10", "jj:80 j:20", "ch", "k",
    "t", "p", "h",
)))  # fmt: skip
_VOWEL_HABITS = tuple(map(_habits, (
    "a", "ae:85 ai:10 e:5", "ya", "yae:80 ye:20", "eo:35 u:50 o:15", "e",
    "yeo:40 yu:45 yo:10 you:5", "ye", "o", "wa", "wae", "oe:70 oi:15 we:15", "yo", "u:80 oo:20",
    "wo:85 weo:15", "we",
    "wi:90 wee:10", "yu:75 yoo:25", "eu:65 u:35", "ui:60 ee:25 eui:15", "i:92 ee:8",
)))  # fmt: skip
_FINAL_HABITS = tuple(map(_habits, (
    "-", "k:60 g:40", "k", "k", "n", "n", "n", "t", "l:80 ll:20", "k", "m", "l", "l", "l", "p",
    "l", "m", "p:70 b:30", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
)))  # fmt: skip
# Surnames as people write them on passports and shop cards, most usual first (the first is
# not always the official spelling: Kim, Lee, Park are).
_SURNAME_HABITS = {name: _habits(spec) for name, spec in {
    "김": "kim:90 gim:7 ghim:2 keem:1", "이": "lee:70 yi:10 rhee:6 i:5 ri:3 yee:3 li:3",
    "박": "park:80 bak:8 pak:8 bahk:2 bark:2", "최": "choi:85 choe:12 chey:3",
    "정": "jung:50 jeong:25 chung:18 joung:4 cheong:3", "강": "kang:85 gang:15",
    "조": "cho:75 jo:20 joh:5", "윤": "yoon:70 yun:25 youn:5", "장": "jang:70 chang:30",
    "임": "lim:60 im:20 yim:12 leem:8", "한": "han:92 hahn:8", "오": "oh:85 o:15",
    "서": "seo:60 suh:35 su:5", "신": "shin:85 sin:15", "권": "kwon:85 gwon:10 kweon:5",
    "황": "hwang:95 whang:5", "안": "ahn:75 an:25", "송": "song:95 soung:5",
    "류": "ryu:50 yoo:25 yu:15 rhyu:10", "전": "jeon:45 jun:30 chun:20 chon:5",
    "홍": "hong", "고": "ko:70 go:20 koh:10", "문": "moon:80 mun:20", "양": "yang",
    "손": "son:70 sohn:30", "배": "bae:90 pae:10", "백": "baek:60 paik:25 baik:10 paek:5",
    "허": "heo:50 huh:40 hur:10", "남": "nam", "노": "noh:60 roh:30 no:10",
    "심": "shim:80 sim:20", "하": "ha", "곽": "kwak:85 gwak:15", "성": "sung:75 seong:25",
    "차": "cha", "주": "joo:70 ju:25 chu:5", "우": "woo:95 u:5", "구": "koo:70 gu:20 ku:10",
    "민": "min", "나": "na:95 ra:5", "진": "jin:90 chin:10", "지": "ji:90 chi:10",
    "엄": "um:60 eom:30 uhm:10", "채": "chae", "원": "won", "천": "cheon:50 chun:50",
    "방": "bang", "공": "kong:85 gong:15", "현": "hyun:85 hyeon:15", "함": "ham",
    "변": "byun:75 byeon:20 pyun:5", "염": "yeom:60 yum:40", "여": "yeo:70 yu:30",
    "추": "choo:70 chu:30", "도": "do:85 doh:15", "소": "so", "석": "seok:60 suk:40",
    "설": "seol:60 sul:40", "선우": "sunwoo:70 seonwoo:20 sunu:10",
    "남궁": "namgoong:70 namkoong:20 namgung:10", "황보": "hwangbo", "제갈": "jegal:90 chegal:10",
}.items()}  # fmt: skip
# Letter-level habits (one per folder of the `letters` variation): a voiced/unvoiced swap at
# the start of a syllable or on the g of a final "ng", "oo" for u, "ee" for i, a doubled letter.
_SWAPS = {"g": "k", "k": "g", "b": "p", "p": "b", "d": "t", "t": "d"}


def _jamo_indices(char: str) -> tuple[int, int, int]:
    index = ord(char) - 0xAC00
    return index // 588, (index // 28) % 21, index % 28


def _split_name(name: str) -> tuple[str, str]:
    """(surname, given name): double-syllable surnames the model knows are kept whole."""
    if len(name) >= 3 and name[:2] in _SURNAME_HABITS:
        return name[:2], name[2:]
    return name[:1], name[1:]


def _official_syllable(char: str) -> str:
    initial, vowel, final = _jamo_indices(char)
    return _INITIAL_HABITS[initial][0][0] + _VOWEL_HABITS[vowel][0][0] + _FINAL_HABITS[final][0][0]


def _official(name: str) -> str:
    """Revised Romanization, syllable by syllable (surname included)."""
    return "".join(map(_official_syllable, name))


# How letters sound, for judging whether two spellings could be one name: every habit of
# the model (and a little more) folds away. Only for keeping the truth knowable.
_SOUNDS = (
    ("ch", "j"), ("sh", "s"), ("rh", "r"), ("wh", "w"), ("eo", "u"), ("eu", "u"), ("oo", "u"),
    ("ou", "u"), ("ee", "i"), ("ae", "e"), ("ai", "e"), ("yi", "i"), ("yo", "yu"),
)  # fmt: skip
_UNVOICED = str.maketrans("kptl", "gbdr")


def _sound(spelled: str) -> str:
    """A coarse sound of an ASCII spelling: `kimjongchull` and `gimjongcheol` sound alike."""
    text = re.sub(r"[^a-z]", "", spelled.lower())
    text = re.sub(r"(?<=[aeiouwy])[hr](?![aeiouwy])", "", text)  # Ahn, Park, Oh
    for old, new in _SOUNDS:
        text = text.replace(old, new)
    return re.sub(r"([a-z])\1+", r"\1", text.translate(_UNVOICED))


def _pick(rng: random.Random, habits: tuple[tuple[str, ...], tuple[int, ...]]) -> str:
    texts, weights = habits
    return texts[0] if len(texts) == 1 else rng.choices(texts, weights)[0]


def _human_syllable(rng: random.Random, char: str) -> str:
    initial, vowel, final = _jamo_indices(char)
    if (initial, vowel, final) == (11, 13, 0) and rng.random() < 0.5:
        return "woo"  # 우 on its own
    head = _pick(rng, _INITIAL_HABITS[initial])
    middle = _pick(rng, _VOWEL_HABITS[vowel])
    if head == "s" and middle == "i" and rng.random() < 0.4:
        head = "sh"
    if middle == "yeo" and final == 21 and rng.random() < 0.3:
        middle = "you"  # 영 -> young
    return head + middle + _pick(rng, _FINAL_HABITS[final])


def _letter_habit(rng: random.Random, syllable: str) -> str | None:
    """One letter-level change to a spelled syllable, or None when none applies."""
    changes = []
    if syllable[0] in _SWAPS:
        changes.append(_SWAPS[syllable[0]] + syllable[1:])
    if syllable.endswith("ng"):
        changes.append(syllable[:-1] + "k")
    if re.search(r"(?<![eoy])u", syllable):
        changes.append(re.sub(r"(?<![eoy])u", "oo", syllable, count=1))
    if re.search(r"(?<![aeou])i", syllable):
        changes.append(re.sub(r"(?<![aeou])i", "ee", syllable, count=1))
    if syllable[-1] in "lnmk" and syllable[-2:] not in ("ng", "ll", "nn", "mm", "kk"):
        changes.append(syllable + syllable[-1])
    changed = [c for c in changes if c != syllable]
    return rng.choice(changed) if changed else None


def _human_spelling(
    rng: random.Random, name: str, *, given_first: bool = False, letter_habit: bool = False
) -> str:
    """How a person at the front desk might type `name` (their habits, not RR).

    With `letter_habit`, one syllable of the given name also gets a letter-level change
    (`_letter_habit`); the spelling is drawn again until one applies.
    """
    surname, given = _split_name(name)
    habits = _SURNAME_HABITS.get(surname)
    family = _pick(rng, habits) if habits else _official(surname)
    syllables = [_human_syllable(rng, char) for char in given]
    if letter_habit:
        for at in rng.sample(range(len(syllables)), len(syllables)):
            changed = _letter_habit(rng, syllables[at])
            if changed is not None:
                syllables[at] = changed
                break
    personal = "".join(syllables)
    return personal + family if given_first else family + personal


# --- customers and folders -------------------------------------------------------------


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip somewhere after the first letter."""
    at = rng.randrange(1, len(word))
    kind = rng.choice(("substitute", "delete", "insert", "transpose", "double"))
    if kind == "substitute" and word[at] in _KEYBOARD_NEIGHBOURS:
        return word[:at] + rng.choice(_KEYBOARD_NEIGHBOURS[word[at]]) + word[at + 1 :]
    if kind == "delete":
        return word[:at] + word[at + 1 :]
    if kind == "insert":
        return word[:at] + rng.choice("aeiounghr") + word[at:]
    if kind == "transpose" and at < len(word) - 1 and word[at] != word[at + 1]:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return word[:at] + word[at] + word[at:]


def _random_name(rng: random.Random) -> str:
    surname = rng.choices(list(_SURNAME_WEIGHTS), list(_SURNAME_WEIGHTS.values()))[0]
    roll = rng.random()
    if roll < 0.6:
        return surname + rng.choice(_COMMON_GIVEN)
    if roll < 0.95:
        return surname + rng.choice(_GIVEN_SYLLABLES) + rng.choice(_GIVEN_SYLLABLES)
    return surname + rng.choice(_GIVEN_SYLLABLES)


def _random_phone(rng: random.Random, last4: str | None = None) -> str:
    head = rng.choices(("010", "011", "016"), (95, 4, 1))[0]
    middle = f"{rng.randrange(10_000):04d}"
    tail = last4 or f"{rng.randrange(10_000):04d}"
    return f"{head}-{middle}-{tail}" if rng.random() < 0.55 else f"{head}{middle}{tail}"


class _Builder:
    """Draws customers, then folders with their variations, keeping the truth clean."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.customers: dict[int, Customer] = {}
        self.by_suffix: dict[str, list[int]] = defaultdict(list)
        self.names: Counter[str] = Counter()  # customers per official spelling of a name
        self.folder_names: set[str] = set()  # normalized customers.folder_name values
        self.taken: set[str] = set()  # normalized names of folders already made
        self.used: set[int] = set()  # customers that own a folder
        self.owners: list[int] = []  # owners whose folder may get a sibling (same_customer)
        self.folders: list[DemoFolder] = []

    def add_customer(self, name: str, phone: str | None, folder_name: str | None) -> Customer:
        c = Customer(len(self.customers) + 1, name, phone, folder_name)
        self.customers[c.id] = c
        suffix = phone_suffix(phone)
        if suffix:
            self.by_suffix[suffix].append(c.id)
        self.names[_sound(_official(name))] += 1
        if folder_name:
            self.folder_names.add(normalize_folder(folder_name))
        return c

    def set_folder_name(self, c: Customer, folder_name: str | None) -> Customer:
        updated = replace(c, folder_name=folder_name)
        self.customers[c.id] = updated
        if folder_name:
            self.folder_names.add(normalize_folder(folder_name))
        return updated

    def make_customers(self, count: int) -> None:
        rng = self.rng
        for _ in range(count):
            name = _random_name(rng)
            phone = _random_phone(rng) if rng.random() > 0.03 else None
            folder_name = None
            if rng.random() > 0.01:
                for _attempt in range(5):
                    spelled = _human_spelling(rng, name)
                    candidate = f"{spelled}-{phone_suffix(phone)}" if phone else spelled
                    if normalize_folder(candidate) not in self.folder_names:
                        folder_name = candidate
                        break
            self.add_customer(name, phone, folder_name)

    def confusable(self, folder: str, truth: int | None) -> bool:
        """Another customer with the folder's 4 digits and a similar name?"""
        runs = re.findall(r"[0-9]{4,}", folder)
        if not runs:
            return False
        letters = _sound(folder)
        for other in self.by_suffix.get(runs[-1][-4:], ()):
            if other == truth:
                continue
            surname, given = _split_name(self.customers[other].name)
            forward = _sound(_official(surname + given))
            backward = _sound(_official(given + surname))
            if max(fuzz.ratio(letters, forward), fuzz.ratio(letters, backward)) >= _CONFUSABLE:
                return True
        return False

    def free(self, folder: str, *, may_equal_folder_name: bool = False) -> bool:
        norm = normalize_folder(folder)
        return (
            is_valid_key(PREFIX + folder + "/")
            and norm not in self.taken
            and (may_equal_folder_name or norm not in self.folder_names)
        )

    def pick_owner(self) -> Customer:
        while True:
            c = self.customers[self.rng.randrange(1, len(self.customers) + 1)]
            if c.id not in self.used and c.phone:
                return c

    def add_folder(self, name: str, truth: int | None, variation: str) -> None:
        self.taken.add(normalize_folder(name))
        if truth is not None:
            self.used.add(truth)
            if variation != "ambiguous":
                self.owners.append(truth)
        self.folders.append(DemoFolder(name, truth, variation))

    def make_folder(self, variation: str) -> None:
        """Draw until the variation's folder is valid and its truth knowable."""
        maker = getattr(self, f"_{variation}")
        for _attempt in range(1000):
            made = maker()
            if made is not None:
                self.add_folder(*made, variation)
                return
        raise RuntimeError(f"could not draw a {variation!r} folder")

    def _spelled(
        self, c: Customer, *, given_first: bool = False, letter_habit: bool = False
    ) -> str:
        spelled = _human_spelling(
            self.rng, c.name, given_first=given_first, letter_habit=letter_habit
        )
        return f"{spelled}-{phone_suffix(c.phone)}"

    def _exact(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        name = c.folder_name
        ok = (
            name and self.free(name, may_equal_folder_name=True) and not self.confusable(name, c.id)
        )
        return (name, c.id) if ok else None

    def _normalized(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        if not c.folder_name or self.confusable(c.folder_name, c.id):
            return None
        rng = self.rng
        if rng.random() < 0.5:  # the folder differs: Storage keys stay ASCII
            folder = rng.choice(
                (
                    c.folder_name.upper(),
                    c.folder_name.capitalize(),
                    c.folder_name.replace("-", "_"),
                    c.folder_name.replace("-", " - "),
                    c.folder_name.replace("-", "."),
                )
            )
            return (folder, c.id) if self.free(folder, may_equal_folder_name=True) else None
        # The database copy differs: typed with a full-width keyboard or stray spaces.
        folder = c.folder_name
        if not self.free(folder, may_equal_folder_name=True):
            return None
        stored = rng.choice(
            (
                f" {folder} ",
                folder.replace("-", "\uff0d"),
                "".join(chr(ord(ch) + 0xFEE0) if ch.isalnum() else ch for ch in folder),
                folder.upper() + " ",
            )
        )
        self.set_folder_name(c, stored)
        return folder, c.id

    def _spelling_variant(self, *, given_first: bool = False) -> tuple[str, int] | None:
        c = self.pick_owner()
        folder = self._spelled(c, given_first=given_first)
        if self.rng.random() < 0.15 and not given_first:
            surname = self._spelled(c).split("-")[0]
            folder = folder.replace(surname[:3], surname[:3] + self.rng.choice("_."), 1)
        ok = self.free(folder) and not self.confusable(folder, c.id)
        return (folder, c.id) if ok else None

    def _romanization(self) -> tuple[str, int] | None:
        return self._spelling_variant()

    def _given_first(self) -> tuple[str, int] | None:
        return self._spelling_variant(given_first=True)

    def _typo(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        letters, digits = self._spelled(c).rsplit("-", 1)
        folder = f"{_typo(self.rng, letters)}-{digits}"
        ok = self.free(folder) and not self.confusable(folder, c.id)
        return (folder, c.id) if ok else None

    def _folder_name_slip(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        if not c.folder_name or not c.folder_name.endswith(f"-{phone_suffix(c.phone)}"):
            return None
        letters, digits = c.folder_name.rsplit("-", 1)
        folder = f"{_typo(self.rng, letters)}-{digits}"
        ok = self.free(folder) and not self.confusable(folder, c.id)
        return (folder, c.id) if ok else None

    def _letters(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        folder = self._spelled(c, letter_habit=True)
        ok = self.free(folder) and not self.confusable(folder, c.id)
        return (folder, c.id) if ok else None

    def _namesakes(self) -> tuple[str, int] | None:
        """Four or five customers share a name nobody else has; all but the newest already
        have their own folder (their `folder_name`); the folder, without phone digits, is
        the newest one's, who has no `folder_name`."""
        rng = self.rng
        name = _random_name(rng)
        folder = _human_spelling(rng, name)
        if self.names[_sound(_official(name))] or not self.free(folder):
            return None
        twins: dict[str, str] = {}  # normalized folder_name -> phone
        for _ in range(rng.randint(3, 4)):
            phone = _random_phone(rng)
            own = f"{_human_spelling(rng, name)}-{phone_suffix(phone)}"
            if not self.free(own) or self.confusable(own, None) or normalize_folder(own) in twins:
                return None
            twins[normalize_folder(own)] = phone
        for own, phone in twins.items():
            twin = self.add_customer(name, phone, own)
            self.add_folder(own, twin.id, "exact")
        truth = self.add_customer(name, _random_phone(rng), None)
        return folder, truth.id

    def _phone_changed(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        if self.names[_sound(_official(c.name))] > 1:
            return None  # with the digits gone, only a name nobody else has tells who it is
        letters = self._spelled(c).rsplit("-", 1)[0]
        digits = f"{self.rng.randrange(10_000):04d}"
        folder = f"{letters}-{digits}"
        if digits == phone_suffix(c.phone) or not self.free(folder):
            return None
        return None if self.confusable(folder, c.id) else (folder, c.id)

    def _no_customer(self) -> tuple[str, None] | None:
        name = _random_name(self.rng)
        folder = f"{_human_spelling(self.rng, name)}-{self.rng.randrange(10_000):04d}"
        taken = self.names[_sound(_official(name))] > 0  # nobody has a name that sounds alike
        ok = not taken and self.free(folder) and not self.confusable(folder, None)
        return (folder, None) if ok else None

    def _null_folder_name(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        folder = self._spelled(c)
        if not self.free(folder) or self.confusable(folder, c.id):
            return None
        self.set_folder_name(c, None)
        return folder, c.id

    def _ambiguous(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        folder = self._spelled(c)
        if not self.free(folder) or self.confusable(folder, c.id):
            return None
        twin = self.add_customer(c.name, _random_phone(self.rng, phone_suffix(c.phone)), None)
        self.used.add(twin.id)
        return folder, c.id

    def _conflict(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        other = self.pick_owner()
        folder = self._spelled(c)
        if (
            other.id == c.id
            or phone_suffix(other.phone) == phone_suffix(c.phone)
            or not self.free(folder)
            or self.confusable(folder, c.id)
        ):
            return None
        self.set_folder_name(other, folder)  # someone typed this folder into the wrong row
        self.used.add(other.id)
        return folder, c.id

    def _same_customer(self) -> tuple[str, int] | None:
        if not self.owners:
            return None
        c = self.customers[self.rng.choice(self.owners)]
        roll = self.rng.random()
        base = self._spelled(c)
        folder = base if roll < 0.6 else f"{base}-2" if roll < 0.8 else f"{base} (old)"
        ok = self.free(folder) and not self.confusable(folder, c.id)
        return (folder, c.id) if ok else None


def generate_library(scale: int = 1, seed: int = DEFAULT_SEED) -> DemoLibrary:
    """Customers, folders (with their truth) and pre-existing `image_assets` rows.

    Objects are not materialized: `iter_objects` generates them from the library.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    rng = random.Random(seed)
    builder = _Builder(rng)
    builder.make_customers(CUSTOMERS_PER_SCALE * scale)
    total = FOLDERS_PER_SCALE * scale
    plan = [v for v, share in VARIATION_SHARES.items() for _ in range(round(share * total))]
    plan += ["romanization"] * (total - len(plan))
    # namesakes first (each also makes the exact folders of its namesakes, which take exact
    # slots of the plan), same_customer last (it needs earlier owners), the rest in random order.
    rng.shuffle(plan)
    plan.sort(key=lambda v: (v != "namesakes", v == "same_customer"))
    for variation in plan:
        if variation == "exact" and sum(f.variation == "exact" for f in builder.folders) >= (
            plan.count("exact")
        ):
            continue
        builder.make_folder(variation)
    folders = builder.folders
    rng.shuffle(folders)
    for folder in rng.sample(folders, rng.randint(2 * scale, 3 * scale)):
        folder.big = True
    for folder in rng.sample([f for f in folders if not f.big], scale):
        folder.empty = True
    customers = sorted(builder.customers.values(), key=lambda c: c.id)
    library = DemoLibrary(seed, scale, customers, folders)
    library.existing_assets = _existing_assets(library, rng)
    return library


# --- objects ---------------------------------------------------------------------------

# (key, size, mimetype, created_at, updated_at)
_Object = tuple[str, int, str | None, datetime, datetime]


def _media_name(rng: random.Random, style: str, n: int, moment: datetime, ext: str) -> str:
    stamp = moment.strftime("%Y%m%d_%H%M%S")
    if style == "iphone":
        return f"IMG_{n:04d}.{ext}"
    if style == "copies":
        return f"IMG {n:04d} ({rng.randint(1, 3)}).{ext}"
    if style == "kakao":
        return f"KakaoTalk_{stamp}{rng.randrange(1000):03d}_{n:02d}.{ext}"
    if style == "screens":
        return f"Screenshot {moment:%Y-%m-%d at %H.%M.%S} ({n}).{ext}"
    if style == "odd":
        return f"{rng.choice(_ODD_NAMES)} {n}.{ext}"
    return f"{stamp}_{n}.{ext}"


def _files(rng: random.Random, directory: str, count: int, day: date | None) -> Iterator[_Object]:
    style = rng.choices(
        ("iphone", "android", "copies", "kakao", "screens", "odd"), (35, 30, 10, 15, 7, 3)
    )[0]
    seen: set[str] = set()
    for n in range(1, count + 1):
        start = datetime.combine(day, datetime.min.time(), UTC) if day else _EPOCH
        offset = rng.randrange(86_400 if day else _SPAN_DAYS * 86_400)
        created = start + timedelta(seconds=offset, milliseconds=rng.randrange(1000))
        roll = rng.random()
        if roll < 0.03:
            leaf, mimetype, (low, high) = rng.choice(_OTHER_FILES)
        else:
            table = _VIDEOS if roll < 0.15 else _IMAGES
            ext, _, (low, high) = rng.choices(table, [row[1] for row in table])[0]
            leaf = _media_name(rng, style, n, created, ext)
            odd = rng.random()
            mimetype = (
                ""
                if odd < 0.02
                else "application/octet-stream"
                if odd < 0.03
                else MEDIA_TYPES[ext.lower()]
            )
        if leaf in seen:
            continue
        seen.add(leaf)
        updated = created if rng.random() < 0.9 else created + timedelta(days=rng.randint(1, 90))
        yield f"{directory}{leaf}", rng.randint(low, high), mimetype, created, updated


def _folder_objects(library: DemoLibrary, folder: DemoFolder) -> Iterator[_Object]:
    """Every object of one folder, from a random stream of its own (order-independent)."""
    rng = random.Random(f"{library.seed}/{folder.name}")
    root = f"{PREFIX}{folder.name}/"
    moment = _EPOCH + timedelta(days=rng.randrange(_SPAN_DAYS))
    if folder.empty:
        yield f"{root}.emptyFolderPlaceholder", 0, "application/octet-stream", moment, moment
        return
    if rng.random() < 0.12:
        yield f"{root}.keep.png", _KEEP_PNG_SIZE, "image/png", moment, moment
    if folder.big:
        yield from _files(rng, root, rng.randint(PAGE_LIMIT + 1, PAGE_LIMIT + 800), None)
        return
    layout = rng.choices(("direct", "dated", "mixed"), (35, 45, 20))[0]
    if layout != "dated":
        yield from _files(rng, root, rng.randint(3, 110 if layout == "direct" else 50), None)
    if layout != "direct":
        days = sorted(
            {
                _EPOCH.date() + timedelta(days=rng.randrange(_SPAN_DAYS))
                for _ in range(rng.randint(1, 5 if layout == "dated" else 2))
            }
        )
        for day in days:
            directory = f"{root}{day.isoformat()}/"
            roll = rng.random()
            if roll < 0.15:
                at = datetime.combine(day, datetime.min.time(), UTC)
                yield f"{directory}.emptyFolderPlaceholder", 0, "application/octet-stream", at, at
            if roll >= 0.05:  # else the date folder holds only its placeholder
                yield from _files(rng, directory, rng.randint(1, 36), day)


def _all_objects(library: DemoLibrary) -> Iterator[_Object]:
    yield f"{PREFIX}.keep.png", _KEEP_PNG_SIZE, "image/png", _EPOCH, _EPOCH
    for folder in library.folders:
        yield from _folder_objects(library, folder)


def iter_objects(library: DemoLibrary) -> Iterator[dict[str, Any]]:
    """Every object of the bucket as a manifest row {name, size, mimetype, created_at,
    updated_at}, generated lazily. An empty mimetype stands for one Storage recorded empty."""
    for name, size, mimetype, created, updated in _all_objects(library):
        yield {
            "name": name,
            "size": size,
            "mimetype": mimetype,
            "created_at": iso_timestamp(created),
            "updated_at": iso_timestamp(updated),
        }


def is_media(name: str) -> bool:
    """An image or video file the user counts (placeholders and dot-files are not)."""
    return classify(name.rsplit("/", 1)[-1])[0] in ("image", "video")


def _existing_assets(library: DemoLibrary, rng: random.Random) -> list[dict[str, Any]]:
    """Rows the user's app registered before the migration, in every shape it must respect."""
    rows: list[dict[str, Any]] = []
    chosen = rng.sample(library.folders, max(4, len(library.folders) * 6 // 100))
    for folder in chosen:
        media = [o for o in _folder_objects(library, folder) if is_media(o[0])]
        for name, size, mimetype, _created, updated in rng.sample(media, min(len(media), 6)):
            leaf = name.rsplit("/", 1)[-1]
            kind = rng.choice(("portrait", "old_tag", "no_url", "described", "old_run"))
            tag = f"customer-{folder.true_customer_id}" if folder.true_customer_id else None
            tags = {
                "portrait": ["portrait"],
                "old_tag": [tag] if tag else ["portrait"],
                "no_url": ["before", "after"],
                "described": [],
                "old_run": ["portrait", tag] if tag else ["portrait"],
            }[kind]
            described = kind in ("described", "portrait")
            rows.append(
                {
                    "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                    "file_path": name,
                    "filename": leaf,
                    "original_filename": leaf if rng.random() < 0.7 else f"KakaoTalk_{leaf}",
                    "file_size": size,
                    "mime_type": mimetype or None,
                    "format": extension(leaf),
                    "cdn_url": None if kind == "no_url" else f"{DEMO_CDN_BASE}{name}",
                    "ai_tags": tags,
                    "upload_source": "customer-migration" if kind == "old_run" else "admin",
                    "status": "active",
                    "alt_text": "고객 시술 사진" if described else None,
                    "title": f"{leaf} 원본" if described else None,
                    "description": "상담 때 촬영" if kind == "described" else None,
                    "created_at": updated,
                    "updated_at": updated,
                }
            )
    return rows


# --- files and database ----------------------------------------------------------------


def write_manifest(path: Path, library: DemoLibrary) -> int:
    """Write every object as one JSON line (the Storage server's manifest); return the count."""
    count = 0
    with Path(path).open("wb") as out:
        for row in iter_objects(library):
            write_manifest_row(out, **row)
            count += 1
    return count


def write_truth(path: Path, library: DemoLibrary) -> None:
    """Write {"seed", "scale", "truth": {folder: customer id or null}, "variations": {...}}."""
    payload = {
        "seed": library.seed,
        "scale": library.scale,
        "truth": {f.name: f.true_customer_id for f in library.folders},
        "variations": {f.name: f.variation for f in library.folders},
    }
    Path(path).write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))


def evaluate(matches: Sequence[FolderMatch], library: DemoLibrary) -> MatchQuality:
    """Compare a matcher's result with the library's truth."""
    truth = {f.name: f.true_customer_id for f in library.folders}
    links = wrong = auto = wrong_auto = correct = 0
    missing: list[str] = []
    for m in matches:
        expected = truth[m.folder]
        if m.customer_id is not None:
            links += 1
            auto += m.status == "auto"
            if m.customer_id == expected:
                correct += 1
            else:
                wrong += 1
                wrong_auto += m.status == "auto"
        elif expected is not None and expected not in {c.customer_id for c in m.candidates}:
            missing.append(m.folder)
    with_truth = sum(1 for t in truth.values() if t is not None)
    return MatchQuality(
        folders=len(matches),
        with_truth=with_truth,
        links=links,
        wrong_links=wrong,
        auto=auto,
        wrong_auto=wrong_auto,
        precision=correct / links if links else 1.0,
        recall=correct / with_truth if with_truth else 1.0,
        not_in_top3=missing,
    )


def _object_records(library: DemoLibrary, bucket: str) -> Iterator[tuple[Any, ...]]:
    # The same id and metadata the Storage server gives these objects, so both listings agree.
    for name, size, mimetype, created, updated in _all_objects(library):
        metadata = object_metadata(name, size, mimetype, iso_timestamp(updated))
        metadata_json = orjson.dumps(metadata).decode()
        uid = uuid.UUID(object_id(bucket, name))
        yield uid, bucket, name, created, updated, created, metadata_json


_ASSET_COLUMNS = (
    "id", "file_path", "filename", "original_filename", "file_size", "mime_type", "format",
    "cdn_url", "ai_tags", "upload_source", "status", "alt_text", "title", "description",
    "created_at", "updated_at",
)  # fmt: skip


# Demo database only: every customer and image_assets row is demo data, replaced on re-seed
# (rows a demo migration added included).
CLEAR_TABLES_SQL = "TRUNCATE public.customers, public.image_assets"
# Forget bucket $1's demo objects before they are copied in again.
CLEAR_OBJECTS_SQL = "DELETE FROM storage.objects WHERE bucket_id = $1"
# Bucket $1, public like the user's (cdn_url is its public object URL).
UPSERT_BUCKET_SQL = """
INSERT INTO storage.buckets (id, name, public) VALUES ($1, $1, true)
    ON CONFLICT (id) DO UPDATE SET public = true, updated_at = now()
"""


async def seed_database(
    conn: asyncpg.Connection, library: DemoLibrary, *, bucket: str
) -> SeedCounts:
    """Load the library into a demo database, replacing any earlier demo data.

    Empties `customers` and `image_assets` and the bucket's `storage.objects` rows, then
    COPYs customers, pre-existing assets and every object, in one transaction. Only for a
    demo database: it assumes every row of those tables is demo data.
    """
    async with conn.transaction():
        await conn.execute(CLEAR_TABLES_SQL)
        await conn.execute(CLEAR_OBJECTS_SQL, bucket)
        await conn.execute(UPSERT_BUCKET_SQL, bucket)
        await conn.copy_records_to_table(
            "customers",
            schema_name="public",
            columns=("id", "name", "phone", "folder_name"),
            records=[(c.id, c.name, c.phone, c.folder_name) for c in library.customers],
        )
        await conn.copy_records_to_table(
            "image_assets",
            schema_name="public",
            columns=_ASSET_COLUMNS,
            records=[tuple(row[col] for col in _ASSET_COLUMNS) for row in library.existing_assets],
        )
        result = await conn.copy_records_to_table(
            "objects",
            schema_name="storage",
            columns=(
                "id",
                "bucket_id",
                "name",
                "created_at",
                "updated_at",
                "last_accessed_at",
                "metadata",
            ),
            records=_object_records(library, bucket),
        )
    return SeedCounts(len(library.customers), len(library.existing_assets), _copied(result))


def _copied(status: str) -> int:
    # asyncpg returns the command tag, e.g. "COPY 10234".
    return int(status.rsplit(" ", 1)[-1])
