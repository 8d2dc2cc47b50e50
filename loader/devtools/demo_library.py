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
- `typo`: one slip of the keyboard; `phone_changed`: other 4 digits;
- `null_folder_name`: the customer's `folder_name` is NULL;
- `conflict`: another customer's `folder_name` is this folder (truth: the named customer);
- `same_customer`: a second folder for a customer who already has one;
- `ambiguous`: two customers with the same name and the same last 4 digits (truth is one of
  them; no matcher can tell which);
- `no_customer`: nobody in `customers`.

Apart from `ambiguous`, no other customer with the folder's 4 digits has a similar name, so
the truth is knowable from the data. The generator has its own model of how people romanize
(`_human_spelling`), separate from the matcher's `romanize.spellings`.
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

from loader import romanize
from loader.classify import MEDIA_TYPES, classify, extension
from loader.devtools.storage_model import (
    is_valid_key,
    iso_timestamp,
    object_id,
    object_metadata,
    write_manifest_row,
)
from loader.match import Customer, FolderMatch, normalize_folder, phone_suffix, split_folder
from loader.sqlfiles import sql

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
    "typo": 0.08,
    "phone_changed": 0.06,
    "no_customer": 0.08,
    "ambiguous": 0.04,
    "null_folder_name": 0.06,
    "conflict": 0.03,
    "same_customer": 0.04,
}
# Another customer with the same 4 digits and a name key this close would make the truth
# unknowable; such folders are drawn again (except for `ambiguous`, where that is the point).
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


# --- customers and folders -------------------------------------------------------------


def _weighted(rng: random.Random, options: Sequence[str], first: float = 0.7) -> str:
    # The first spelling dominates; the rest share what is left, decreasing.
    weights = [first] + [(1 - first) / 2 ** (i + 1) for i in range(len(options) - 1)]
    return rng.choices(options, weights)[0]


def _human_syllable(rng: random.Random, char: str) -> str:
    text = romanize.romanize(char)
    if text == "u" and rng.random() < 0.5:
        return "woo"
    if "yeong" in text and rng.random() < 0.3:
        text = text.replace("yeong", "young")
    roll = rng.random()
    if "eo" in text and roll < 0.65:
        text = text.replace("eo", "u" if roll < 0.55 else "o")
    if "eu" in text and rng.random() < 0.35:
        text = text.replace("eu", "u")
    if text.endswith("ui") and rng.random() < 0.4:
        text = text[:-2] + "ee"
    elif re.search(r"(?<![eoyw])u", text) and rng.random() < 0.15:
        text = re.sub(r"(?<![eoyw])u", "oo", text, count=1)
    if text.endswith("i") and not text.endswith("ui") and rng.random() < 0.08:
        text = text[:-1] + "ee"
    if text.startswith("si") and rng.random() < 0.4:
        text = "sh" + text[1:]
    for old, new, p in (("g", "k", 0.55), ("d", "t", 0.05), ("b", "p", 0.05), ("j", "ch", 0.05)):
        if text.startswith(old) and rng.random() < p:
            text = new + text[len(old) :]
            break
    if text.endswith("l") and rng.random() < 0.2:
        text += "l"
    return text


def _human_spelling(rng: random.Random, name: str, *, given_first: bool = False) -> str:
    """How a person at the front desk might type `name` (their habits, not RR)."""
    surname, given = romanize.split_name(name)
    known = romanize.SURNAME_SPELLINGS.get(surname)
    family = _weighted(rng, known) if known else romanize.romanize(surname)
    personal = "".join(_human_syllable(rng, char) for char in given)
    return personal + family if given_first else family + personal


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
        self.name_keys: Counter[str] = Counter()
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
        self.name_keys[romanize.name_key(name)] += 1
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
        letters, digits = split_folder(folder)
        if not digits:
            return False
        key = romanize.fold(letters)
        for other in self.by_suffix.get(digits, ()):
            if other == truth:
                continue
            surname, given = romanize.split_name(self.customers[other].name)
            forward = romanize.name_key(surname + given)
            backward = romanize.fold(romanize.romanize(given) + romanize.romanize(surname))
            if max(fuzz.ratio(key, forward), fuzz.ratio(key, backward)) >= _CONFUSABLE:
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

    def _spelled(self, c: Customer, *, given_first: bool = False) -> str:
        return (
            f"{_human_spelling(self.rng, c.name, given_first=given_first)}-{phone_suffix(c.phone)}"
        )

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

    def _phone_changed(self) -> tuple[str, int] | None:
        c = self.pick_owner()
        if self.name_keys[romanize.name_key(c.name)] > 1:
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
        taken = self.name_keys[romanize.name_key(name)] > 0  # nobody has this name
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
    # same_customer needs earlier owners; everything else in random order.
    rng.shuffle(plan)
    plan.sort(key=lambda v: v == "same_customer")
    for variation in plan:
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


async def seed_database(
    conn: asyncpg.Connection, library: DemoLibrary, *, bucket: str
) -> SeedCounts:
    """Load the library into a demo database, replacing any earlier demo data.

    Empties `customers` and `image_assets` and the bucket's `storage.objects` rows, then
    COPYs customers, pre-existing assets and every object, in one transaction. Only for a
    demo database: it assumes every row of those tables is demo data.
    """
    async with conn.transaction():
        await conn.execute(sql("demo_clear_tables"))
        await conn.execute(sql("demo_clear_objects"), bucket)
        await conn.execute(sql("demo_upsert_bucket"), bucket)
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
