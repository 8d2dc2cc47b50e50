"""Tie Storage customer folders (`kimjongchull-6654`) to rows of `customers`.

A wrong link puts one customer's photos in another customer's account, which is far worse
than no link, so the matcher links automatically only when the evidence is strong and
unique, sends everything else to a person, and never creates customers.

For each folder, in order of precedence:

1. **decided**: a person's decision (`loader.match_decisions`) wins, including "no customer".
2. **exact**: the folder equals one customer's `folder_name`.
3. **normalized**: equal after NFKC, case folding, trimming and treating `- _ . space` runs as
   one separator (`KimJongChul_6654` = `kimjongchul-6654`).
4. **scored**: the folder is split into a name part and a 4-digit phone suffix; customers are
   found through a romanization-insensitive key (`loader.romanize`) and through their phone
   suffix, then scored: name similarity combined with phone evidence (`equal`, `different`,
   `absent`) into one confidence in [0, 1] (`confidence`). The name similarity is the best
   rapidfuzz ratio over the customer's plausible spellings, as typed or after
   `romanize.letter_fold` of both sides (less `FOLDED_DISCOUNT`); with equal digits, a folder
   one edit from the customer's own `folder_name` scores `FOLDER_NAME_SLIP`. **auto** when
   the best confidence reaches `accept`, leads the runner-up by `margin` and no other
   customer's name fits clearly better (`NAME_FIT`); **review** when it reaches
   `REVIEW_FLOOR`; else **unmatched**. With the default `accept`, only equal phone digits can
   auto-accept (and then only with a name score of 0.9 or more): a name alone tops out at
   0.8. Customers with a NULL or blank name are not scored (rules 1-3 still find them).
   Among equal candidates, and in the cap on customers scored per name, customers whose
   `folder_name` is another folder of the bucket come last.

**conflict** (never linked; a person decides) when:

- several customers share the folder's `folder_name` (exactly, or after normalization);
- the folder is some customer's `folder_name`, but name and phone point to another customer:
  one whose confidence reaches `REVIEW_FLOOR` and beats the `folder_name` owner's by `margin`
  (someone typed the folder into the wrong customer row, or two customers claim it);
- several folders claim one customer. Claims rank decided > exact > normalized > auto: the one
  strongest claim keeps its link and the weaker ones become conflicts; claims tied at the top
  all become conflicts. Decided folders never change (a person may give a customer two
  folders).

`FolderMatch.customer_id` is set only for links (decided, exact, normalized, auto); review,
conflict and unmatched folders carry their top-3 `candidates` instead.

This module is the matcher alone: pure functions and dataclasses, no I/O. Its files (the
report, the review CSV, folder lists) are `loader.match_files`; its database side (customers,
decisions, the memo, folder_name writes) is `loader.match_db`.
"""

from __future__ import annotations

import heapq
import re
import sys
import unicodedata
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from typing import Literal, TypeGuard, overload

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from loader import romanize
from loader.errors import BadInputError

# Defaults chosen on the demo libraries (`benchmarks/bench_match.py --sweep`): the highest
# recall with no wrong link across seeds and scales 1 to 100, with headroom (see README).
ACCEPT = 0.85
MARGIN = 0.1
# Below this a candidate is not worth a person's time: the folder is reported unmatched.
REVIEW_FLOOR = 0.5
# Name scores memoized per match: unbounded, they took ~200 bytes per pair scored (54 MB on
# the demo library of 100,000 customers); bounded here, the match took 6% more CPU.
NAME_SCORES_KEPT = 16_384
TOP_CANDIDATES = 3
# Candidate pools kept for the folders of one phone suffix (`_Index.pool`), one per name part:
# a bound for the many folders that may share one suffix (no digits at all, most often).
POOLS_KEPT = 64

LINKED = frozenset({"decided", "exact", "normalized", "auto"})
NEEDS_PERSON = frozenset({"review", "unmatched", "conflict"})
_CLAIM_RANK = {"decided": 3, "exact": 2, "normalized": 1, "auto": 0}

# confidence = base + weight * name evidence, per phone evidence. Name evidence rescales the
# name score so that 0.5 (what unrelated Korean names reach: same letters, other order) is 0.
_EVIDENCE = {"equal": (0.25, 0.75), "absent": (0.0, 0.8), "different": (0.0, 0.72)}
_UNRELATED = 0.5
# A name compared after `romanize.letter_fold` (k/g, p/b, t/d, oo, ee, doubled letters) scores
# this much less than the same name spelled alike, so a customer whose spelling fits as typed
# outranks one who fits only after folding.
FOLDED_DISCOUNT = 0.05
# Name score of a folder whose name part is within one edit (a transposition counts as one) of
# the customer's own `folder_name` name part, when the phone digits agree: one keystroke from
# what the shop itself typed for this customer. Below a spelling that fits exactly (1.0), so an
# exact fit of another customer with the same digits sends the folder to a person.
FOLDER_NAME_SLIP = 0.95
# Shorter name parts are left to the name score: one edit in 5 letters is a different name.
FOLDER_NAME_SLIP_MIN_LETTERS = 6
# The phone digits point to one customer, but the name fits another one (whose digits differ
# or are missing) at NAME_FIT or more and NAME_LEAD better: the name points elsewhere, so a
# person decides (`choeua-3454`: 최우아 as spelled, 최수아 has the digits).
NAME_FIT = 0.95
NAME_LEAD = 0.05

_SEPARATORS = re.compile(r"[-_.\s]+")
_DIGIT_RUNS = re.compile(r"[0-9]+")
_NOT_DIGITS = re.compile(r"[^0-9]")  # ASCII digits only: \D keeps other scripts' digits


@dataclass(slots=True, frozen=True)
class Customer:
    id: int
    name: str | None  # NULL or blank: found only through an exact or normalized folder_name
    phone: str | None
    folder_name: str | None


@dataclass(slots=True)
class Candidate:
    customer_id: int
    name: str | None
    name_score: float
    phone_evidence: str  # 'equal' | 'different' | 'absent'
    spelling: str  # the customer's spelling closest to the folder's name part
    confidence: float


@dataclass(slots=True)
class FolderMatch:
    folder: str
    status: str  # 'exact'|'normalized'|'auto'|'review'|'unmatched'|'conflict'|'decided'
    customer_id: int | None
    customer_name: str | None
    confidence: float
    candidates: list[Candidate] = field(default_factory=list)
    reason: str | None = None


def normalize_folder(name: str) -> str:
    """Folder name as compared by the `normalized` rule (NFKC, casefold, one separator)."""
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    return _SEPARATORS.sub("-", text).strip("-")


def split_folder(name: str) -> tuple[str, str | None]:
    """(letters of the name part, last 4 digits of the last run of 4+ digits or None).

    Hangul in a folder name (possible when rows were written to `storage.objects` with SQL)
    is romanized, so it compares like the usual ASCII names.
    """
    text = unicodedata.normalize("NFKC", name)
    return romanize.romanize(text), _digits(text)


def _folder_letters(name: str) -> str:
    """The letters `split_folder` finds in `name`."""
    return romanize.romanize(unicodedata.normalize("NFKC", name))


def _folder_digits(name: str) -> str | None:
    """The digits `split_folder` finds in `name`."""
    return _digits(unicodedata.normalize("NFKC", name))


def _digits(text: str) -> str | None:
    runs = [run for run in _DIGIT_RUNS.findall(text) if len(run) >= 4]
    return runs[-1][-4:] if runs else None


def phone_suffix(phone: str | None) -> str | None:
    """Last 4 digits of a phone number in any format, or None when it has fewer."""
    if not phone:
        return None
    if not phone.isascii():  # full-width digits
        phone = unicodedata.normalize("NFKC", phone)
    digits = _NOT_DIGITS.sub("", phone)
    return digits[-4:] if len(digits) >= 4 else None


def confidence(name_score: float, phone_evidence: str) -> float:
    """One confidence in [0, 1] from a name similarity in [0, 1] and the phone evidence."""
    base, weight = _EVIDENCE[phone_evidence]
    evidence = max(0.0, (name_score - _UNRELATED) / (1 - _UNRELATED))
    return round(base + weight * evidence, 4)


def _variant_hash(variant: str, name_bits: int) -> int:
    """`variant`'s hash in the 64 - `name_bits` high bits of an unsigned 64-bit entry."""
    return (hash(variant) & ((1 << (64 - name_bits)) - 1)) << name_bits


def _deletions(key: str) -> set[str]:
    # A key and its one-letter deletions: two keys within one typo share an element.
    return {key, *(key[:i] + key[i + 1 :] for i in range(len(key)))}


# Names that differ only in what their key leaves out (`고객1`, `고객2`) share it: its variants
# hashed once while it recurs (the index of the 90,000 `고객N` of `bench_match.py --links` took
# 0.84 CPU-s instead of 1.3).
@lru_cache(maxsize=1024)
def _key_hashes(key: str, name_bits: int) -> tuple[int, ...]:
    """`_variant_hash` of each of `key`'s `_deletions`."""
    return tuple(_variant_hash(variant, name_bits) for variant in _deletions(key))


@dataclass(slots=True)
class _Probe:
    """One folder as the scorer sees it (name scores are cached by the `_Index`)."""

    folder: str  # normalized
    letters: str
    digits: str | None


# A rank key (`_Index.rank`): confidence, name score, whether the customer's folder_name is
# not another folder of the bucket, -id.
_RankKey = tuple[float, float, bool, int]


@dataclass(slots=True)
class _Scores:
    """A `_Pool`'s candidates, scored (`_Index.scores`)."""

    found: list[Candidate]
    # the best `TOP_CANDIDATES + 1` for a folder that is none of their folder_names
    ranked: list[Candidate]
    # the candidate whose name fits best, whatever its phone evidence (see `NAME_FIT`)
    closest: Candidate | None


@dataclass(slots=True)
class _Pool:
    """The candidates of every folder with one name part and phone digits (`_Index.pool`),
    scored once for all of them, when first needed: a candidate's score depends on the
    folder through these alone, and ~10 folders share the digits of ~10 customers."""

    probe: _Probe  # the first folder's: the others have the same letters and digits
    customers: list[Customer]
    scores: _Scores | None = None


class _Index:
    """Every lookup structure over the customers, built once per `match_folders` call.

    Sized for ~100,000 customers in a process that holds little else: a single customer is
    held as itself, not in a list of one, and repeated strings (suffixes) are shared."""

    __slots__ = (
        "by_id",
        "by_name",
        "by_suffix",
        "elsewhere",
        "letters_names",
        "name_bits",
        "name_scores",
        "names",
        "owners",
        "pools",
        "pools_digits",
        "suffixes",
        "variants",
    )

    def __init__(
        self, customers: Sequence[Customer], folders: Iterable[str], decided: Iterable[int | None]
    ) -> None:
        bucket = {normalize_folder(f) for f in folders}
        # customer id -> customer, for the ids a person decided on
        wanted = set(decided)
        self.by_id = {c.id: c for c in customers if c.id in wanted}
        # normalized folder_name -> its customer, or its customers in order when several
        # share it (the exact rule's owners are among them: equal names normalize equally)
        self.owners: dict[str, Customer | tuple[Customer, ...]] = {}
        self.by_suffix: dict[str, list[Customer]] = defaultdict(list)
        # name -> its customer (with a phone), or (customers with a phone, customers without),
        # so a popular name costs the scorer a few customers per folder, not all of them
        # (they would tie anyway).
        self.by_name: dict[str, Customer | tuple[list[Customer], list[Customer]]] = {}
        self.suffixes: dict[int, str | None] = {}
        # customer id -> its folder_name, normalized, when that is a folder of the bucket:
        # such a customer most likely has that folder, not another one.
        self.elsewhere: dict[int, str] = {}
        for c in customers:
            if c.folder_name:
                norm = normalize_folder(c.folder_name)
                if norm == c.folder_name:
                    norm = c.folder_name  # the customer's own string, not a copy
                held = self.owners.get(norm)
                self.owners[norm] = (
                    c if held is None else (*held, c) if isinstance(held, tuple) else (held, c)
                )
                if norm in bucket:
                    self.elsewhere[c.id] = norm
            suffix = phone_suffix(c.phone)
            if suffix:
                suffix = sys.intern(suffix)  # ~10 customers share each
            self.suffixes[c.id] = suffix
            if not _named(c.name):
                continue  # nothing to score a name against
            if suffix:
                self.by_suffix[suffix].append(c)
            held_name = self.by_name.get(c.name)
            if held_name is None and suffix:
                self.by_name[c.name] = c
                continue
            if held_name is None:
                held_name = self.by_name[c.name] = ([], [])
            elif isinstance(held_name, Customer):
                held_name = self.by_name[c.name] = ([held_name], [])
            held_name[0 if suffix else 1].append(c)
        for held_name in self.by_name.values():
            if isinstance(held_name, tuple):
                # The per-name cap keeps customers not known to have another folder first.
                for group in held_name:
                    group.sort(key=lambda c: (c.id in self.elsewhere, c.id))
        self.letters_names: dict[str, set[str]] = {}
        self.name_scores: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        # Each name key's one-letter deletions, as one sorted array of 8-byte entries: the
        # variant's hash in the high bits, the name's number in the low `name_bits`. A dict
        # from each variant to its names cost ~1 KB per customer name (~100 MB at 90,000
        # names, measured); this costs ~80 bytes. A hash shared by another variant can only
        # add a name, which `names_near` checks against the name's own key.
        self.names = list(self.by_name)
        self.name_bits = max(1, len(self.names).bit_length())
        # Sorted a 256th at a time (by the top byte): sorting all entries at once held them
        # as Python ints, ~45 bytes each (~20 MB at 90,000 names).
        parts = [array("Q") for _ in range(256)]
        for number, name in enumerate(self.names):
            for variant_hash in _key_hashes(romanize.name_key(name), self.name_bits):
                entry = variant_hash | number
                parts[entry >> 56].append(entry)
        _key_hashes.cache_clear()
        self.variants = array("Q")
        for part in parts:
            self.variants.extend(sorted(part))
            del part[:]
        # the pools (by name part) of the phone digits last matched: folders are matched in
        # the order of their digits, so a pool is reused by all the folders it serves
        self.pools: dict[str, _Pool] = {}
        self.pools_digits: str | None = None

    def owners_of(self, norm: str) -> tuple[Customer, ...]:
        """The customers whose folder_name normalizes to `norm`."""
        held = self.owners.get(norm)
        return () if held is None else held if isinstance(held, tuple) else (held,)

    def pool(self, probe: _Probe) -> _Pool:
        """The candidates for `probe`'s name part and digits: those with its phone suffix, and
        those whose name key is within one typo of one of its keys. Kept while folders with
        the same digits follow (at most `POOLS_KEPT` of them)."""
        digits, letters = probe.digits, probe.letters
        if digits != self.pools_digits or len(self.pools) >= POOLS_KEPT:
            self.pools.clear()
            self.pools_digits = digits
        pool = self.pools.get(letters)
        if pool is None:
            customers = list(self.by_suffix.get(digits, ())) if digits else []
            for name in self.names_near(letters):
                held = self.by_name[name]
                with_phone, without_phone = ([held], []) if isinstance(held, Customer) else held
                others = (c for c in with_phone if self.suffixes[c.id] != digits)
                customers.extend(islice(others, TOP_CANDIDATES + 1))
                customers.extend(without_phone[: TOP_CANDIDATES + 1])
            pool = self.pools[letters] = _Pool(probe, customers)
        return pool

    def scores(self, pool: _Pool) -> _Scores:
        """`pool`'s candidates scored, the first time for all the folders it serves."""
        if pool.scores is None:
            found = [self.score(c, pool.probe) for c in pool.customers]
            pool.scores = _Scores(
                found,
                _best(found, [self.rank_key(c, None) for c in found], TOP_CANDIDATES + 1),
                max(found, key=lambda c: (c.name_score, -c.customer_id), default=None),
            )
        return pool.scores

    def ranked(self, pool: _Pool, norm: str, owners: tuple[Customer, ...]) -> list[Candidate]:
        """`rank` of `pool`'s candidates for the folder normalized `norm`, whose folder_name
        `owners` are (`owners_of`), `TOP_CANDIDATES + 1` of them: the pool's own ranking
        unless one of them is a candidate."""
        scores = self.scores(pool)
        # Only a customer whose folder_name is this folder ranks otherwise for it than for
        # the pool's other folders; such a customer is one of `owners`.
        if not any(self.elsewhere.get(c.id) == norm for c in owners):
            return scores.ranked
        keys = [self.rank_key(c, norm) for c in scores.found]
        return _best(scores.found, keys, TOP_CANDIDATES + 1)

    def names_near(self, letters: str) -> set[str]:
        """Customer names whose key is within one typo of one of `letters`' keys; memoized,
        since many folders share their letters (a surname, a common given name)."""
        names = self.letters_names.get(letters)
        if names is None:
            names = self.letters_names[letters] = set()
            variants, bits = self.variants, self.name_bits
            numbers = (1 << bits) - 1
            for key in romanize.variant_keys(letters) if letters else ():
                for variant in _deletions(key):
                    wanted = _variant_hash(variant, bits)
                    at = bisect_left(variants, wanted)
                    while at < len(variants) and variants[at] & ~numbers == wanted:
                        name = self.names[variants[at] & numbers]
                        if variant in _deletions(_name_key(name)):
                            names.add(name)
                        at += 1
        return names

    def name_score(self, letters: str, name: str) -> tuple[str, float]:
        """`_name_score`, memoized by the name's spellings (it depends on the name through
        them alone): folders sharing their letters score the same names, and names spelled
        alike (`고객1`, `고객2`) score alike. Emptied when full, so memory stays bounded."""
        if not letters:
            return "", 0.0
        choices = romanize.spellings(name, like=letters)
        scored = self.name_scores.get((letters, choices))
        if scored is None:
            if len(self.name_scores) >= NAME_SCORES_KEPT:
                self.name_scores.clear()
            scored = self.name_scores[letters, choices] = _name_score(letters, choices)
        return scored

    def rank(self, candidates: Iterable[Candidate], n: int, probe: _Probe) -> list[Candidate]:
        """The `n` best, best first; among equals, customers whose folder_name is not another
        folder of the bucket come first, then the lowest id."""

        return heapq.nlargest(n, candidates, key=lambda c: self.rank_key(c, probe.folder))

    def rank_key(self, c: Candidate, folder: str | None) -> _RankKey:
        """`rank`'s order for the folder normalized `folder` (None: a folder that is no
        customer's folder_name): confidence, name score, then whether the customer's
        folder_name is not another folder of the bucket, then the lowest id."""
        return (
            c.confidence,
            c.name_score,
            self.elsewhere.get(c.customer_id, folder) == folder,
            -c.customer_id,
        )

    def score(self, c: Customer, probe: _Probe, *, own_folder_name: bool = True) -> Candidate:
        """`c` as a candidate for the folder `probe`. With `own_folder_name`, a folder within
        one edit of the customer's own folder_name, with equal phone digits, scores
        `FOLDER_NAME_SLIP` (see there)."""
        suffix = self.suffixes[c.id]
        evidence = (
            "absent"
            if not probe.digits or not suffix
            else "equal"
            if probe.digits == suffix
            else "different"
        )
        name = c.name
        if not _named(name):
            spelling, name_score = "", 0.0
        else:
            spelling, name_score = self.name_score(probe.letters, name)
        if own_folder_name and evidence == "equal" and name_score < FOLDER_NAME_SLIP:
            own = _folder_letters(c.folder_name) if c.folder_name else ""
            if (
                len(own) >= FOLDER_NAME_SLIP_MIN_LETTERS
                and OSA.distance(probe.letters, own, score_cutoff=1) <= 1
            ):
                spelling, name_score = own, FOLDER_NAME_SLIP
        return Candidate(
            c.id, c.name, name_score, evidence, spelling, confidence(name_score, evidence)
        )


def _best(found: list[Candidate], keys: list[_RankKey], n: int) -> list[Candidate]:
    """The `n` of `found` with the highest `keys` (one each), best first, equals in the order
    of `found`: what `heapq.nlargest` gives by `_Index.rank`'s key, without calling it per
    item."""
    return [found[at] for at in sorted(range(len(keys)), key=keys.__getitem__, reverse=True)[:n]]


def _named(name: str | None) -> TypeGuard[str]:
    """Whether a customer's name can be scored (NULL and blank names cannot)."""
    return bool(name and name.strip())


# A folder's letters are scored against every candidate name: folded once, not per name.
_letters_folded = lru_cache(maxsize=200_000)(romanize.letter_fold)
# The keys of the names a folder's keys hit, checked again and again for popular names
# (uncached, the demo library of 100,000 customers took ~40% more CPU); bounded, unlike a
# cache of every customer's key (~25 MB at 90,000 names).
_name_key = lru_cache(maxsize=romanize.SPELLINGS_CACHE)(romanize.name_key)


def _name_score(letters: str, choices: tuple[str, ...]) -> tuple[str, float]:
    """The spelling among `choices` (a customer's, `romanize.spellings`) closest to `letters`
    and its similarity in [0, 1]: the better of the spellings as typed and after
    `romanize.letter_fold` of both (less FOLDED_DISCOUNT)."""
    best = process.extractOne(letters, choices, scorer=fuzz.ratio, processor=None)
    if not best:
        return "", 0.0
    spelling, score = best[0], best[1] / 100
    if score < 1:
        folded = process.extractOne(
            _letters_folded(letters),
            romanize.letter_folded(choices),
            scorer=fuzz.ratio,
            processor=None,
        )
        if folded and folded[1] / 100 - FOLDED_DISCOUNT > score:
            spelling, score = choices[folded[2]], folded[1] / 100 - FOLDED_DISCOUNT
    return spelling, round(score, 4)


def _folder_name_owners(
    folder: str, owners: tuple[Customer, ...]
) -> tuple[str, tuple[Customer, ...]]:
    """('exact', those of `owners` whose folder_name is `folder`) when there are some, else
    ('normalized', `owners`: those whose folder_name normalizes as the folder's)."""
    exact = tuple(c for c in owners if c.folder_name == folder)
    return ("exact", exact) if exact else ("normalized", owners)


def _linked(
    folder: str, status: str, c: Customer, ranked: list[Candidate], scored: Candidate
) -> FolderMatch:
    """A link to `c`, listed first among the candidates, then the best others."""
    others = [cand for cand in ranked if cand.customer_id != c.id][: TOP_CANDIDATES - 1]
    return FolderMatch(folder, status, c.id, c.name, 1.0, [scored, *others], None)


def _match_one(
    folder: str,
    index: _Index,
    decisions: Mapping[str, int | None],
    accept: float,
    margin: float,
    links_only: bool,
) -> FolderMatch:
    """`folder`'s match (`decisions` name known customers). `links_only`: a link's candidates
    are left out, and not scored when they cannot change it."""
    norm = normalize_folder(folder)
    probe = _Probe(norm, *split_folder(folder))
    pool = index.pool(probe)
    held = index.owners_of(norm)

    if folder in decisions:
        ranked = index.ranked(pool, norm, held)
        decided = decisions[folder]
        if decided is None:
            return FolderMatch(
                folder,
                "decided",
                None,
                None,
                1.0,
                ranked[:TOP_CANDIDATES],
                "a person decided: no customer",
            )
        c = index.by_id[decided]
        return _linked(folder, "decided", c, ranked, index.score(c, probe))

    status, owners = _folder_name_owners(folder, held)
    if owners:
        if len(owners) > 1:
            ids = ", ".join(str(c.id) for c in owners)
            reason = f"{status} folder_name match with several customers: {ids}"
            scored = index.rank((index.score(c, probe) for c in owners), TOP_CANDIDATES, probe)
            return FolderMatch(folder, "conflict", None, None, scored[0].confidence, scored, reason)
        owner = owners[0]
        # Only another customer, ranked first at REVIEW_FLOOR or more, can contradict the
        # folder_name. A links-only match needs no scores to see that there is none when the
        # owner is the only candidate, nor the owner's own score unless there is one.
        if links_only and all(c.id == owner.id for c in pool.customers):
            return FolderMatch(folder, status, owner.id, owner.name, 1.0)
        ranked = index.ranked(pool, norm, held)
        best = ranked[0] if ranked else None
        if best is not None and (best.customer_id == owner.id or best.confidence < REVIEW_FLOOR):
            best = None
        if links_only and best is None:
            return FolderMatch(folder, status, owner.id, owner.name, 1.0)
        # The owner's folder_name is this folder: it counts once (the exact rule), not again
        # as a one-edit slip, so name and phone can still point to someone else (conflict).
        own = index.score(owner, probe, own_folder_name=False)
        if (
            best is not None
            # An owner without a name has no name score to compare: only another customer
            # strong enough to be linked on its own contradicts its folder_name.
            and (
                best.confidence - own.confidence >= margin
                if _named(owner.name)
                else best.confidence >= accept
            )
        ):
            reason = (
                f"folder_name of customer {owner.id}, but name and phone point to customer "
                f"{best.customer_id} ({best.confidence:.2f} vs {own.confidence:.2f})"
            )
            return FolderMatch(
                folder,
                "conflict",
                None,
                None,
                best.confidence,
                index.rank([own, *ranked], TOP_CANDIDATES, probe),
                reason,
            )
        return _linked(folder, status, owner, ranked, own)

    ranked = index.ranked(pool, norm, held)
    return _scored(folder, ranked, probe, index.scores(pool).closest, accept, margin)


def _scored(
    folder: str,
    ranked: list[Candidate],
    probe: _Probe,
    rival: Candidate | None,
    accept: float,
    margin: float,
) -> FolderMatch:
    """The scored rule; `rival` is the candidate whose name fits best (see `NAME_FIT`)."""
    top3 = ranked[:TOP_CANDIDATES]
    if not ranked:
        why = "no customer with a similar name or the same phone digits"
        if not probe.letters or probe.digits is None:
            why += f" (the folder name has no {'letters' if not probe.letters else 'phone digits'})"
        return FolderMatch(folder, "unmatched", None, None, 0.0, [], why)
    best = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    close = runner is not None and best.confidence - runner.confidence < margin
    auto = best.confidence >= accept and not close
    if (
        auto
        and rival is not None
        and rival.name != best.name
        and rival.name_score >= NAME_FIT
        and rival.name_score - best.name_score >= NAME_LEAD
    ):
        reason = (
            f"phone digits point to customer {best.customer_id}, but the name fits customer "
            f"{rival.customer_id} better ({rival.name_score:.2f} vs {best.name_score:.2f})"
        )
        shown = top3 if rival in top3 else [*top3[: TOP_CANDIDATES - 1], rival]
        return FolderMatch(folder, "review", None, None, best.confidence, shown, reason)
    if auto:
        return FolderMatch(folder, "auto", best.customer_id, best.name, best.confidence, top3, None)
    if best.confidence < REVIEW_FLOOR:
        reason = (
            f"best candidate (customer {best.customer_id}, {best.confidence:.2f}) "
            f"is below {REVIEW_FLOOR}"
        )
        return FolderMatch(folder, "unmatched", None, None, best.confidence, top3, reason)
    if close and runner is not None and runner.confidence >= REVIEW_FLOOR:
        reason = (
            f"customers {best.customer_id} and {runner.customer_id} are equally likely "
            f"({best.confidence:.2f} vs {runner.confidence:.2f})"
        )
    elif best.phone_evidence == "different":
        reason = f"name fits customer {best.customer_id} but the phone digits differ"
    elif best.phone_evidence == "absent":
        reason = f"name fits customer {best.customer_id} but there are no phone digits to confirm"
    else:
        reason = f"confidence {best.confidence:.2f} is below {accept}"
    return FolderMatch(folder, "review", None, None, best.confidence, top3, reason)


def _contested(
    statuses: Sequence[str], customer_ids: Sequence[int | None]
) -> Iterator[tuple[int, list[int], int | None]]:
    """Each customer linked from several folders: (its id, the positions of those folders,
    the claim rank that keeps its link, None when the strongest claims tie)."""
    first: dict[int, int] = {}  # the position of each customer's first claim
    groups: dict[int, list[int]] = {}  # customers claimed more than once: every position
    for at, (status, customer_id) in enumerate(zip(statuses, customer_ids, strict=True)):
        if status not in LINKED or customer_id is None:
            continue
        if customer_id in groups:
            groups[customer_id].append(at)
        elif customer_id in first:
            groups[customer_id] = [first[customer_id], at]
        else:
            first[customer_id] = at
    del first
    for customer_id, group in groups.items():
        ranks = sorted((_CLAIM_RANK[statuses[at]] for at in group), reverse=True)
        winner_rank = (
            ranks[0] if ranks[0] == _CLAIM_RANK["decided"] or ranks[0] > ranks[1] else None
        )
        yield customer_id, group, winner_rank


def _loses(status: str, winner_rank: int | None) -> bool:
    """Whether a claim of `status` turns into a conflict (decided folders never change)."""
    return status != "decided" and _CLAIM_RANK[status] != winner_rank


def _resolve_claims(matches: list[FolderMatch]) -> None:
    """Turn weaker or tied claims on one customer into conflicts (see module docstring)."""
    statuses = [m.status for m in matches]
    customer_ids = [m.customer_id for m in matches]
    for customer_id, positions, winner_rank in _contested(statuses, customer_ids):
        group = [matches[at] for at in positions]
        holders = ", ".join(repr(m.folder) for m in group if _CLAIM_RANK[m.status] == winner_rank)
        for m in group:
            if not _loses(m.status, winner_rank):
                continue
            others = ", ".join(repr(o.folder) for o in group if o is not m)
            m.reason = (
                f"customer {customer_id} is already linked to {holders}"
                if holders
                else f"customer {customer_id} is also claimed by {others}"
            ) + f" ({m.status} match here)"
            m.status, m.customer_id, m.customer_name = "conflict", None, None


Link = tuple[str, int | None]  # a folder and its linked customer (None: none)


@overload
def match_folders(
    folders: Sequence[str],
    customers: Sequence[Customer],
    *,
    decisions: Mapping[str, int | None] | None = ...,
    accept: float = ...,
    margin: float = ...,
    links_only: Literal[False] = ...,
) -> list[FolderMatch]: ...


@overload
def match_folders(
    folders: Sequence[str],
    customers: Sequence[Customer],
    *,
    decisions: Mapping[str, int | None] | None = ...,
    accept: float = ...,
    margin: float = ...,
    links_only: Literal[True],
) -> tuple[list[Link], dict[str, int]]: ...


def match_folders(
    folders: Sequence[str],
    customers: Sequence[Customer],
    *,
    decisions: Mapping[str, int | None] | None = None,
    accept: float = ACCEPT,
    margin: float = MARGIN,
    links_only: bool = False,
) -> list[FolderMatch] | tuple[list[Link], dict[str, int]]:
    """Match every folder to at most one customer; results in the order of `folders`.

    `decisions` maps folder -> customer id (or None for "no customer") and wins over
    everything; a decision naming an unknown customer raises BadInputError. See the module
    docstring for the statuses and the conflict rules.

    `links_only`: instead of a FolderMatch per folder, (each folder's link, the count of
    folders per status in order of first appearance): the same decisions without the
    candidates and reasons, which took ~50 MB at 100,000 folders, and without the scores
    that cannot change a link by folder_name (see `_match_one`).
    """
    if not 0 < accept <= 1 or not 0 < margin < 1:
        # A margin of 0 would let one of two equally likely customers win by tie-breaking.
        raise BadInputError(
            f"accept must be in (0, 1] and margin in (0, 1), not {accept}, {margin}"
        )
    chosen = decisions or {}
    # One process: a child forked after the index, matching half of 100,000 folders, took
    # 4.6 of 11 CPU-seconds but peaked at 110 MB RSS beside the parent's 120 MB (it touches
    # every page it inherits), twice the memory for at most half the wall time on 2 cores.
    try:
        index = _Index(customers, folders, chosen.values())
        # Checked first, in the order of `folders`: they are matched in another order.
        for folder in folders:
            decided = chosen.get(folder)
            if decided is not None and decided not in index.by_id:
                raise BadInputError(
                    f"decision for folder {folder!r} names unknown customer {decided}"
                )
        found = _matched(folders, index, chosen, accept, margin, links_only)
        if not links_only:
            matches = [m for _, m in sorted(found, key=itemgetter(0))]
            _resolve_claims(matches)
            return matches
        statuses: list[str] = [""] * len(folders)
        customer_ids: list[int | None] = [None] * len(folders)
        for at, m in found:
            statuses[at], customer_ids[at] = m.status, m.customer_id
        for _, positions, winner_rank in _contested(statuses, customer_ids):
            for at in positions:
                if _loses(statuses[at], winner_rank):
                    statuses[at], customer_ids[at] = "conflict", None
        return list(zip(folders, customer_ids, strict=True)), dict(Counter(statuses))
    finally:
        # What this match cached is of no use to the hours of run that follow it.
        romanize.clear_caches()
        _letters_folded.cache_clear()
        _name_key.cache_clear()


def _matched(
    folders: Sequence[str],
    index: _Index,
    decisions: Mapping[str, int | None],
    accept: float,
    margin: float,
    links_only: bool,
) -> Iterator[tuple[int, FolderMatch]]:
    """(position, match) of every folder, in the order of their phone digits: the folders
    sharing digits follow one another, so they share their candidates' scores (`_Index.pool`)
    and nothing is kept for the digits once they are done."""
    # 4 digits in 2 bytes (-1: none): 200 KB of sort keys at 100,000 folders
    digits = array("h", (-1 if d is None else int(d) for d in map(_folder_digits, folders)))
    for at in sorted(range(len(folders)), key=digits.__getitem__):
        yield at, _match_one(folders[at], index, decisions, accept, margin, links_only)


def summarize(matches: Sequence[FolderMatch]) -> dict[str, int]:
    """Folder counts: total, linked, needing a person, and one per status."""
    counts = {"total": len(matches), "linked": 0, "needs_person": 0}
    for m in matches:
        counts[m.status] = counts.get(m.status, 0) + 1
        counts["linked"] += m.status in LINKED and m.customer_id is not None
        counts["needs_person"] += m.status in NEEDS_PERSON
    return counts
