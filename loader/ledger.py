"""The folder ledger: each folder a worker has in flight, and the rule that says it is done.

A folder is the unit of progress (recorded with its chunk, loader.runs.RunRecord), and
marking it done is the promise a resume relies on: every row of it is committed. So the rule
lives here, in one place, with no I/O, and every event that does not fit a folder's state
raises `IllegalTransition` (a bug in the loader, never a data problem) instead of being
ignored:

    add ──> listing ──(listed)──> listed ──(outstanding = 0)──> finishing ──(finished)──> gone
               │   ╲                  │
            (failed) (lost)         (lost)
               ▼       ╲              ▼
            failed      lost ──(listing over, outstanding = 0)──> gone
               └──(outstanding = 0)──> gone

`outstanding` counts the batches holding the folder's rows or its re-run check that are not
committed yet, the one still being filled included (`hold`). A folder is ready once it is
listed to the end, neither failed nor lost, and nothing of it is outstanding; `take_ready`
hands ready folders out once (state finishing) for the caller to record, and `finished`
forgets them when that is recorded. A lost folder (another worker holds it now) may still
be listed by this one: its pages are dropped (`state` says lost) and it is forgotten once
its listing is over and its last batch committed; a failed one once its last batch
committed. So memory holds the folders in flight, never the whole run: a done folder lives
in the database only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

State = Literal["listing", "listed", "failed", "lost", "finishing"]


class IllegalTransition(RuntimeError):
    """An event that does not fit the folder's state: a bug in the loader."""


@dataclass(slots=True)
class _Entry:
    customer_id: int | None
    state: State = "listing"
    outstanding: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    listing: bool = True  # its listing may still send pages


class FolderLedger:
    """The folders a worker has in flight (see the module docstring)."""

    __slots__ = ("_entries", "_ready")

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._ready: dict[str, None] = {}  # ready folders, in the order they became ready

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, folder: object) -> bool:
        return folder in self._entries

    def state(self, folder: str) -> State | None:
        entry = self._entries.get(folder)
        return entry.state if entry is not None else None

    def add(self, folder: str, customer_id: int | None) -> None:
        """A folder claimed (or planned): it is being listed."""
        if folder in self._entries:
            raise IllegalTransition(f"folder {folder!r} added twice")
        self._entries[folder] = _Entry(customer_id)

    def customer(self, folder: str) -> int | None:
        return self._entry(folder, "listing", "listed").customer_id

    def counts(self, folder: str) -> Counter[str]:
        """The folder's counts so far (kinds listed, rows written), to add to in place."""
        return self._entry(folder, "listing", "listed").counts

    def hold(self, folder: str) -> None:
        """A batch now holds rows (or the check) of the folder: not done until it commits."""
        self._entry(folder, "listing", "listed").outstanding += 1

    def listed(self, folder: str) -> None:
        """The folder's listing reached its end."""
        entry = self._entry(folder, "listing", "lost")
        if not entry.listing:
            raise IllegalTransition(f"folder {folder!r} listed twice")
        entry.listing = False
        if entry.state == "listing":
            entry.state = "listed"
        self._settle(folder, entry)

    def committed(self, folder: str, counts: Counter[str] | None = None) -> None:
        """One batch holding the folder committed, with the folder's counts in it."""
        entry = self._entry(folder, "listing", "listed", "failed", "lost")
        if entry.outstanding == 0:
            raise IllegalTransition(f"folder {folder!r} committed with no batch outstanding")
        entry.outstanding -= 1
        if counts and entry.state != "lost":
            entry.counts.update(counts)
        self._settle(folder, entry)

    def failed(self, folder: str) -> Counter[str] | None:
        """Its listing failed: never done in this run (its rows sent still commit); the
        counts it had, to record with the failure (None: lost, another worker's to record)."""
        entry = self._entry(folder, "listing", "lost")
        entry.listing = False
        if entry.state == "lost":
            self._settle(folder, entry)
            return None
        entry.state = "failed"
        counts = entry.counts.copy()
        self._settle(folder, entry)
        return counts

    def lost(self, folder: str) -> bool:
        """Another worker holds the folder now (this one's lock was lost): never done here.
        False when it was known lost already."""
        entry = self._entries.get(folder)
        # A failed folder was recorded failed already: its later batches change nothing.
        if entry is None or entry.state in ("lost", "failed"):
            return False
        if entry.state not in ("listing", "listed"):
            raise IllegalTransition(f"folder {folder!r} lost while {entry.state}")
        entry.state = "lost"
        self._ready.pop(folder, None)
        self._settle(folder, entry)
        return True

    def take_ready(self) -> list[tuple[str, Counter[str]]]:
        """The ready folders, each handed out once, with their counts: record them done,
        then call `finished`."""
        ready = []
        for folder in self._ready:
            entry = self._entries[folder]
            entry.state = "finishing"
            ready.append((folder, entry.counts))
        self._ready.clear()
        return ready

    def finished(self, folders: list[str]) -> None:
        """Folders handed out by `take_ready` are recorded done: forget them."""
        for folder in folders:
            self._entry(folder, "finishing")
            del self._entries[folder]

    def forget_all(self) -> None:
        """The worker lost its lock: every folder in flight is another worker's to redo."""
        self._entries.clear()
        self._ready.clear()

    def _entry(self, folder: str, *allowed: State) -> _Entry:
        entry = self._entries.get(folder)
        if entry is None:
            raise IllegalTransition(f"folder {folder!r} is not in flight")
        if entry.state not in allowed:
            raise IllegalTransition(f"folder {folder!r} is {entry.state}, not {'/'.join(allowed)}")
        return entry

    def _settle(self, folder: str, entry: _Entry) -> None:
        if entry.outstanding:
            return
        if entry.state == "listed":
            self._ready[folder] = None
        elif entry.state == "failed" or (entry.state == "lost" and not entry.listing):
            del self._entries[folder]
