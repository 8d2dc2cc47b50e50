"""The journal's grouping of a batch (`sink._journal_groups`): per folder, the common
directory of its paths stored once and each path's rest, exactly the paths given."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from loader.sink import _journal_groups

SEGMENT = st.text(alphabet="ab/-.é", min_size=1, max_size=6)


def _common_directory(paths: list[str]) -> str:
    """The longest prefix ending in '/' that every path starts with (by characters)."""
    first, last = min(paths), max(paths)
    same = 0
    while same < min(len(first), len(last)) and first[same] == last[same]:
        same += 1
    return first[: first.rfind("/", 0, same) + 1]


@given(st.lists(st.tuples(st.sampled_from(["f1", "f2", "f3"]),
                          st.lists(SEGMENT, min_size=1, max_size=4)),
                min_size=1, max_size=30))  # fmt: skip
def test_each_folder_keeps_its_common_directory_once_and_every_path(
    drawn: list[tuple[str, list[str]]],
) -> None:
    paths = sorted({(folder, f"p/{folder}/{'/'.join(parts)}") for folder, parts in drawn})
    rows = [SimpleNamespace(folder=folder, file_path=path) for folder, path in paths]
    folders, bases, names, firsts, sizes = _journal_groups(rows)  # type: ignore[arg-type]
    assert folders == sorted({folder for folder, _ in paths})
    for folder, base, first, size in zip(folders, bases, firsts, sizes, strict=True):
        own = [path for f, path in paths if f == folder]
        assert base == _common_directory(own)
        assert [base + name for name in names[first - 1 : first - 1 + size]] == own
