"""Which customer folders to list together: one recursive listing of a shared string prefix
instead of one call per folder.

A v2 listing without the delimiter returns every object whose name starts with the prefix, as
a plain string (`name LIKE 'prefix%'` in the real server's SQL), in pages of up to 1,000. A
library of small folders (a hundred photos each) then costs one call per folder, almost all of
it per-call overhead on both sides; listing `customer-00001` once covers ten such folders in one
page. So folders are listed in groups:

- A group's prefix must cover only folders of the group: among the bucket's top-level folders
  (`universe`), every one that starts with the prefix is a member. A folder that no such prefix
  fits is listed alone under its own `folder/`.
- Groups are sized from what was listed so far, to about `PAGES_PER_GROUP` pages: large folders
  are listed one by one (and concurrently) as before, small ones share calls.

Nothing here is trusted for correctness: the walk keeps only objects of the group's own folders
(a folder created after the top level was listed, or a loose file matching the prefix, is
ignored), and a member that comes back with no object at all is listed again alone (a folder
in the top level has at least one object, so an empty member means the server did not honour
the prefix as a plain string).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loader.storage_objects import prefix_end

# Target size of a group, in listing pages (`--group-pages`): big enough to save most calls
# on small folders, small enough that a group's pages, read one after another, stay short.
PAGES_PER_GROUP = 4
# Folders listed before groups are formed: until then their size is unknown, and a group of
# large folders would list serially what could be listed concurrently.
SAMPLE_FOLDERS = 8


@dataclass(slots=True, frozen=True)
class FolderGroup:
    """Folders listed by one recursive listing of `prefix` (relative to the source's prefix).

    A folder listed alone has the prefix `folder/`."""

    prefix: str
    folders: tuple[str, ...]

    @property
    def alone(self) -> bool:
        return len(self.folders) == 1

    @property
    def label(self) -> str:
        """How messages name it."""
        return self.folders[0] if self.alone else f"{self.prefix}* ({len(self.folders)} folders)"


def alone(folder: str) -> FolderGroup:
    return FolderGroup(f"{folder}/", (folder,))


def _range(universe: Sequence[str], prefix: str) -> tuple[int, int]:
    """[lo, hi) of the sorted `universe` entries that start with `prefix`."""
    lo = bisect_left(universe, prefix)
    hi = bisect_left(universe, prefix_end(prefix), lo)
    return lo, hi


def group_folders(
    chunk: Iterable[str], universe: Sequence[str], max_members: int
) -> list[FolderGroup]:
    """Cover `chunk` with as few groups as possible, each of at most `max_members` folders.

    `universe` is the bucket's top-level folders, sorted. Each folder of `chunk` is in exactly
    one group; a group of several folders has a prefix that every member starts with, and every
    folder of `universe` starting with it is a member. The shortest such prefix wins.
    """
    todo = sorted(set(chunk))
    free = set(todo)
    groups: list[FolderGroup] = []
    for folder in todo:
        if folder not in free:
            continue
        group = alone(folder)
        at = bisect_left(universe, folder)
        if max_members > 1 and universe[at : at + 1] == [folder]:
            for length in range(1, len(folder) + 1):
                lo, hi = _range(universe, folder[:length])
                if hi - lo <= 1:
                    break  # no other folder shares this prefix: alone
                if hi - lo > max_members:
                    continue  # a longer prefix covers fewer folders
                members = universe[lo:hi]
                if all(m in free for m in members):
                    group = FolderGroup(folder[:length], tuple(members))
                    break
        groups.append(group)
        free.difference_update(group.folders)
    return groups


@dataclass(slots=True)
class Grouping:
    """Forms the groups of one walk, sized from the folders listed so far (`observe`).

    `universe` is the bucket's top-level folders; `page_size` the objects per page of a group
    listing, 0 for a source that lists one folder at a time (v1); `pages` the pages a group
    should hold on average, 0 to list every folder alone."""

    universe: list[str]
    page_size: int
    pages: int = PAGES_PER_GROUP
    max_members: int = 100
    folders_listed: int = 0
    objects_listed: int = 0

    def __post_init__(self) -> None:
        self.universe = sorted(self.universe)

    def observe(self, folders: int, objects: int) -> None:
        self.folders_listed += folders
        self.objects_listed += objects

    @property
    def size(self) -> int:
        """The most folders one group may hold now."""
        if not self.page_size or not self.pages or self.folders_listed < SAMPLE_FOLDERS:
            return 1
        target = self.pages * self.page_size * self.folders_listed
        return max(1, min(self.max_members, target // max(1, self.objects_listed)))

    def groups(self, chunk: Iterable[str]) -> list[FolderGroup]:
        return group_folders(chunk, self.universe, self.size)
