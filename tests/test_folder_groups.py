"""Folder groups (`loader.folder_groups`): which folders one recursive listing may cover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from random import Random

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.folder_groups import SAMPLE_FOLDERS, FolderGroup, Grouping, group_folders
from loader.listing import FolderPage, ListingEvent, _list_group
from loader.outage import OutageDetector
from loader.storage_objects import ListedObject, listed_object

# Short names from a small alphabet, so that prefixes are often shared.
names = st.text(alphabet="ab-1", min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    universe=st.lists(names, max_size=40, unique=True),
    outside=st.lists(names, max_size=5),
    take=st.data(),
    max_members=st.integers(min_value=1, max_value=12),
)
def test_groups_cover_the_chunk_exactly_and_only_with_their_own_folders(
    universe: list[str], outside: list[str], take: st.DataObject, max_members: int
) -> None:
    universe.sort()
    chunk = take.draw(st.lists(st.sampled_from(universe), unique=True)) if universe else []
    chunk += outside  # folders of the run that the top-level listing no longer shows
    groups = group_folders(chunk, universe, max_members)
    covered = [f for g in groups for f in g.folders]
    assert sorted(covered) == sorted(set(chunk))  # each folder of the chunk exactly once
    for group in groups:
        if group.alone:
            assert group.prefix == f"{group.folders[0]}/"
            continue
        assert len(group.folders) <= max_members
        # Every top-level folder the prefix would list is a member: nothing listed twice.
        assert sorted(group.folders) == [u for u in universe if u.startswith(group.prefix)]


def test_consecutive_numbered_folders_share_calls() -> None:
    universe = [f"customer-{i:06d}-kim" for i in range(100)]
    groups = group_folders(universe[5:60], universe, 40)
    assert [g.prefix for g in groups] == [
        *(f"customer-00000{i}-kim/" for i in range(5, 10)),
        *(f"customer-0000{i}" for i in range(1, 6)),
    ]
    assert all(len(g.folders) == 10 for g in groups[5:])
    # The whole range fits one group when the size allows it.
    assert group_folders(universe, universe, 100) == [FolderGroup("c", tuple(universe))]


def test_a_folder_that_prefixes_another_outside_the_chunk_is_listed_alone() -> None:
    # "kim" would also list "kimberly", which another worker holds.
    assert group_folders(["kim", "kim-a"], ["kim", "kim-a", "kimberly"], 10) == [
        FolderGroup("kim/", ("kim",)),
        FolderGroup("kim-a/", ("kim-a",)),
    ]


def test_group_size_follows_the_folders_listed_so_far() -> None:
    grouping = Grouping([f"f{i:03d}" for i in range(500)], page_size=1000)
    assert grouping.size == 1  # nothing listed yet: sizes unknown
    grouping.observe(SAMPLE_FOLDERS, 100 * SAMPLE_FOLDERS)  # 100 objects per folder
    assert grouping.size == 40  # four pages' worth
    grouping.observe(SAMPLE_FOLDERS, 100_000 * SAMPLE_FOLDERS)  # now huge on average
    assert grouping.size == 1
    tiny = Grouping(["a"], page_size=1000)
    tiny.observe(SAMPLE_FOLDERS, 0)
    assert tiny.size == tiny.max_members
    v1 = Grouping(["a", "b"], page_size=0)  # a source that lists one folder at a time
    v1.observe(100, 100)
    assert v1.size == 1
    off = Grouping(["a", "b"], page_size=1000, pages=0)  # --group-pages 0
    off.observe(100, 100)
    assert off.size == 1
    two = Grouping(["a", "b"], page_size=1000, pages=2)
    two.observe(SAMPLE_FOLDERS, 100 * SAMPLE_FOLDERS)
    assert two.size == 20


class _PagesSource:
    """A source whose group listing answers `pages` (any order, any mix) and whose folder
    listing answers that folder's objects among `everything`."""

    prefix = "p/"

    def __init__(self, pages: list[list[str]], everything: list[str]) -> None:
        self.pages, self.everything = pages, everything

    async def walk_prefix(self, prefix: str) -> AsyncIterator[list[ListedObject]]:
        for page in self.pages:
            yield [listed_object(path) for path in page]

    async def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]:
        yield [listed_object(p) for p in self.everything if p.startswith(f"p/{folder}/")]


@settings(max_examples=200, deadline=None)
@given(
    paths=st.lists(
        st.tuples(
            st.sampled_from(["a1", "a2", "a22", "ab", "b"]),
            st.sampled_from(["x.jpg", "d/y.png", "z"]),
        ),
        unique=True,
    ),
    loose=st.lists(st.sampled_from(["p/a.jpg", "p/a1.jpg", "q/a1/x.jpg"]), unique=True),
    rng=st.randoms(use_true_random=False),
    cut=st.integers(min_value=1, max_value=7),
)
def test_a_group_listing_gives_each_member_exactly_its_own_objects(
    paths: list[tuple[str, str]], loose: list[str], rng: Random, cut: int
) -> None:
    """Whatever order and paging the server uses, and whatever else it returns."""
    everything = [f"p/{folder}/{name}" for folder, name in paths]
    answer = everything + loose
    rng.shuffle(answer)
    pages = [answer[i : i + cut] for i in range(0, len(answer), cut)]
    group = FolderGroup("a", ("a1", "a2", "a22"))  # "ab" is another group's

    async def run() -> list[FolderPage]:
        send, receive = anyio.create_memory_object_stream[ListingEvent](10_000)
        async with send, receive:
            await _list_group(_PagesSource(pages, everything), group, send,  # type: ignore[arg-type]
                              OutageDetector.for_concurrency(1))  # fmt: skip
            send.close()
            return [event async for event in receive]  # type: ignore[misc]

    events = anyio.run(run)
    for folder in group.folders:
        got = [o.path for e in events if e.folder == folder for o in e.objects]
        mine = [p for p in everything if p.startswith(f"p/{folder}/")]
        assert sorted(got) == sorted(mine)  # each once, and only its own
    assert {e.folder for e in events} <= set(group.folders)
    # Each member's walk ends once, with its last event.
    for folder in group.folders:
        lasts = [e.last for e in events if e.folder == folder]
        assert lasts and lasts[-1] and lasts.count(True) == 1
