"""The folder ledger on its own (no database): the "done" rule over any order of events;
and the batcher that feeds it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.batcher import Batcher
from loader.ledger import FolderLedger, IllegalTransition
from loader.rows import CdnUrls
from loader.storage_objects import listed_object


@dataclass
class _Truth:
    """What really happened to one folder, kept beside the ledger by the test."""

    listing: bool = True
    listed: bool = False
    failed: bool = False
    lost: bool = False
    holds: int = 0
    commits: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    handed_out: int = 0


ACTIONS = ("hold", "commit", "listed", "failed", "lost", "take")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), folders=st.integers(1, 6))
def test_a_folder_is_done_once_exactly_when_listed_whole_and_committed_whole(
    data: st.DataObject, folders: int
) -> None:
    ledger = FolderLedger()
    truth = {f"f{i}": _Truth() for i in range(folders)}
    for name in truth:
        ledger.add(name, None)

    def take() -> None:
        ready = ledger.take_ready()
        for name, counts in ready:
            t = truth[name]
            # Ready means: listed to the end, never failed nor lost, every batch committed.
            assert t.listed and not t.failed and not t.lost, name
            assert t.holds == t.commits, name
            assert counts == t.counts, name
            t.handed_out += 1
        ledger.finished([name for name, _ in ready])

    for _ in range(data.draw(st.integers(0, 60))):
        name = data.draw(st.sampled_from(sorted(truth)))
        t = truth[name]
        action = data.draw(st.sampled_from(ACTIONS))
        if action == "take":
            take()
        elif name not in ledger:
            continue  # done, or failed/lost and settled: nothing more happens to it
        elif action == "hold" and t.listing and not t.lost and not t.failed:
            ledger.hold(name)
            t.holds += 1
        elif action == "commit" and t.commits < t.holds:
            written = Counter(inserted=data.draw(st.integers(0, 3)))
            ledger.committed(name, written)
            t.commits += 1
            if not t.lost:
                t.counts.update(written)
        elif action == "listed" and t.listing:
            ledger.listed(name)
            t.listing, t.listed = False, not t.lost
        elif action == "failed" and t.listing:
            recorded = ledger.failed(name)
            t.listing = False
            assert (recorded is None) == t.lost
            t.failed = not t.lost
        elif action == "lost" and not t.failed and ledger.state(name) != "finishing":
            assert ledger.lost(name) == (not t.lost)
            t.lost = True
    # Let every outstanding batch commit and every listing end: what is left settles.
    for name, t in truth.items():
        while name in ledger and t.commits < t.holds:
            ledger.committed(name, Counter())
            t.commits += 1
        if name in ledger and t.listing:
            ledger.listed(name)
            t.listing, t.listed = False, not t.lost
    take()
    for name, t in truth.items():
        assert t.handed_out == (1 if t.listed and not t.failed and not t.lost else 0), name
    assert len(ledger) == 0  # nothing kept once every folder is settled


def test_a_folder_is_not_ready_while_a_batch_holds_it() -> None:
    ledger = FolderLedger()
    ledger.add("a", 7)
    ledger.hold("a")
    ledger.listed("a")
    assert ledger.take_ready() == []
    ledger.committed("a", Counter(inserted=2, media=2))
    assert ledger.take_ready() == [("a", Counter(inserted=2, media=2))]
    assert ledger.state("a") == "finishing"
    ledger.finished(["a"])
    assert "a" not in ledger


def test_a_lost_folder_still_listed_stays_until_its_listing_ends() -> None:
    ledger = FolderLedger()
    ledger.add("a", None)
    assert ledger.lost("a")
    assert not ledger.lost("a")  # known already
    assert ledger.state("a") == "lost"  # its next pages are dropped, not an error
    ledger.listed("a")
    assert "a" not in ledger
    assert ledger.take_ready() == []


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([("add", "a"), ("add", "a")], "added twice"),
        ([("listed", "a")], "not in flight"),
        ([("add", "a"), ("committed", "a")], "no batch outstanding"),
        ([("add", "a"), ("listed", "a"), ("listed", "a")], "is listed, not listing"),
        ([("add", "a"), ("listed", "a"), ("hold", "a"), ("failed", "a")], "is listed"),
        ([("add", "a"), ("finished", "a")], "is listing, not finishing"),
        ([("add", "a"), ("failed", "a"), ("hold", "a")], "not in flight"),
        ([("add", "a"), ("listed", "a"), ("take", "a"), ("hold", "a")], "is finishing"),
        ([("add", "a"), ("listed", "a"), ("take", "a"), ("lost", "a")], "lost while finishing"),
    ],
)
def test_illegal_transitions_are_refused(events: list[tuple[str, str]], message: str) -> None:
    ledger = FolderLedger()
    calls = {
        "add": lambda f: ledger.add(f, None),
        "listed": ledger.listed,
        "committed": ledger.committed,
        "hold": ledger.hold,
        "failed": ledger.failed,
        "lost": ledger.lost,
        "finished": lambda f: ledger.finished([f]),
        "take": lambda f: ledger.take_ready(),
    }
    *before, (last, folder) = events
    for name, arg in before:
        calls[name](arg)
    with pytest.raises(IllegalTransition, match=message):
        calls[last](folder)


def test_forget_all_drops_every_folder_in_flight() -> None:
    ledger = FolderLedger()
    for name in ("a", "b"):
        ledger.add(name, None)
    ledger.listed("a")
    ledger.forget_all()
    assert len(ledger) == 0 and ledger.take_ready() == []
    ledger.add("a", None)  # claimable again, as new


def test_the_first_batches_ramp_up_to_the_batch_size() -> None:
    """The database starts on a small first batch; every batch after is twice as large, up
    to the batch size, and every row is sent once."""
    ledger = FolderLedger()
    batcher = Batcher(ledger, CdnUrls("https://cdn.example/b"), "p/", batch_size=800)
    ledger.add("f", 1)
    objects = [listed_object(f"p/f/{i:05d}.jpg") for i in range(4_000)]
    batches = batcher.page("f", objects) + batcher.listed("f") + batcher.flush()
    assert [len(b.rows) for b in batches] == [100, 200, 400, 800, 800, 800, 800, 100]
    assert sorted(r.file_path for b in batches for r in b.rows) == [o.path for o in objects]
