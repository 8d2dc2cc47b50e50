"""Romanization of Korean names: RR, informal spellings, retrieval keys."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.romanize import (
    MAX_SPELLINGS,
    _combine,
    fold,
    letter_fold,
    letter_folded,
    name_key,
    romanize,
    spellings,
    split_name,
    variant_keys,
)


@pytest.mark.parametrize(
    ("name", "rr"),
    [
        ("김종철", "gimjongcheol"),
        ("이서연", "iseoyeon"),
        ("박지훈", "bakjihun"),
        ("최은영", "choeeunyeong"),
        ("정현우", "jeonghyeonu"),
        ("꽃님", "kkonnim".replace("nn", "tn")),  # finals without sound change: kkot + nim
        ("남궁민수", "namgungminsu"),
        ("류희", "ryuhui"),
        ("김 철수", "gimcheolsu"),
    ],
)
def test_revised_romanization_syllable_by_syllable(name: str, rr: str) -> None:
    assert romanize(name) == rr


def test_spellings_cover_the_usual_informal_forms() -> None:
    kim = spellings("김종철")
    assert {"gimjongcheol", "kimjongcheol", "kimjongchul", "kimjongchull"} <= set(kim)
    assert "jongcheolkim" in kim  # given name first
    lee = spellings("이서연")
    assert {"leeseoyeon", "yiseoyeon", "iseoyeon", "rheeseoyeon", "leeseoyun"} <= set(lee)
    assert {"parkjihoon", "bakjihun"} <= set(spellings("박지훈"))
    assert {"choieunyoung", "choeeunyeong"} <= set(spellings("최은영"))
    assert {"junghyunwoo", "jeonghyeonu", "chunghyunwoo"} <= set(spellings("정현우"))


@pytest.mark.parametrize("name", ["김종철", "남궁민수", "황보혜정", "이", "John Kim", "최은영희"])
def test_spellings_are_bounded_lower_ascii_and_deterministic(name: str) -> None:
    found = spellings(name)
    assert 1 <= len(found) <= MAX_SPELLINGS
    assert len(set(found)) == len(found)
    assert all(re.fullmatch(r"[a-z]+", s) for s in found)
    assert found == spellings(name)


def test_decomposed_and_spaced_names_give_the_same_spellings() -> None:
    nfd = unicodedata.normalize("NFD", "김종철")
    assert nfd != "김종철"
    assert spellings(nfd) == spellings("김종철")
    assert spellings(" 김 종철 ") == spellings("김종철")
    assert name_key(nfd) == name_key("김종철")


def test_like_hint_finds_rare_surname_spellings_in_either_order() -> None:
    assert "yunwoorhee" not in spellings("이연우")  # over the budget without a hint
    assert "yunwoorhee" in spellings("이연우", like="yunwoorhee")
    assert "rheeyunwoo" in spellings("이연우", like="rheeyunwoo")
    # A surname typo still yields the usual surname spellings to compare with.
    assert "kimjongchul" in spellings("김종철", like="kinjongchul")


def test_split_name_knows_double_surnames() -> None:
    assert split_name("남궁민수") == ("남궁", "민수")
    assert split_name("김민수") == ("김", "민수")
    assert split_name("남궁") == ("남", "궁")  # two syllables: a surname and a given name
    assert split_name("John Kim") == ("", "JohnKim")


def test_latin_names_in_both_orders() -> None:
    assert spellings("John Kim") == ("johnkim", "kimjohn")


def test_fold_merges_interchangeable_spellings() -> None:
    assert fold("kimjongchull") == fold("gimjongcheol") == fold("KIM-JONG-CHUL")
    assert fold("parkjihoon") == fold("bakjihun")
    assert fold("ahnhyunwoo") == fold("anhyeonu")


@pytest.mark.parametrize(
    ("folder_letters", "name"),
    [
        ("kimjongchull", "김종철"),
        ("rheejongchul", "이종철"),
        ("jongchulyi", "이종철"),
        ("leeseoyun", "이서연"),
        ("choieunyoung", "최은영"),
        ("nakyongwoo", "나경우"),
    ],
)
def test_variant_keys_reach_the_customer_key(folder_letters: str, name: str) -> None:
    assert name_key(name) in variant_keys(folder_letters)


def test_spellings_stay_within_their_budget_for_100k_customers() -> None:
    # What keeps matching 100k customers fast is a bounded number of spellings per name (the
    # speed itself is measured in benchmarks/bench_match.py, never asserted here).
    syllables = [chr(0xAC00 + i) for i in range(0, 11172, 37)]
    names = [f"{s}{a}{b}" for s in "김이박최정" for a in syllables[:20] for b in syllables[:20]]
    counts = [len(spellings(name)) for name in names]
    assert min(counts) >= 1 and max(counts) <= MAX_SPELLINGS


def test_letter_fold_undoes_letter_habits_only() -> None:
    assert letter_fold("kimchongchull") == letter_fold("gimchongchul") == "kimchonkchul"
    assert letter_fold("byundaeha") == letter_fold("pyuntaeha")
    assert letter_fold("keemjeehwan") == letter_fold("kimjihwan")
    assert letter_fold("baekhooiae") == letter_fold("paekhuiae")
    # Unlike the retrieval key, silent letters and eo/yo still tell names apart.
    assert letter_fold("ahn") != letter_fold("an") and letter_fold("seo") != letter_fold("su")
    assert letter_fold("yo") != letter_fold("yu")
    spelled = spellings("김종철")
    assert letter_folded(spelled) == tuple(map(letter_fold, spelled))


def _combine_walk(left: tuple, right: tuple, limit: int) -> tuple:
    """`_combine` spelled as its definition: totals upwards, left in order, right by cost."""
    out: dict[str, int] = {}
    for total in range(max(c for _, c in left) + max(c for _, c in right) + 1):
        for lt, lc in left:
            for rt, rc in right:
                if lc + rc == total:
                    out.setdefault(lt + rt, total)
                    if len(out) == limit:
                        return tuple(out.items())
    return tuple(out.items())


_options = st.dictionaries(st.text("ab", max_size=3), st.integers(0, 4), min_size=1, max_size=8)


@given(left=_options, right=_options, limit=st.integers(1, 10))
def test_combine_is_the_cheapest_concatenations_in_order(
    left: dict[str, int], right: dict[str, int], limit: int
) -> None:
    """Including its one-pass shortcut for a right side of one option (a digit, a letter)."""
    left_options, right_options = tuple(left.items()), tuple(right.items())
    assert _combine(left_options, right_options, limit) == _combine_walk(
        left_options, right_options, limit
    )
    one = right_options[:1]
    assert _combine(left_options, one, limit) == _combine_walk(left_options, one, limit)
