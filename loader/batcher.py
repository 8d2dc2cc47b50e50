"""Rows stage: listed pages in, batches out.

The batcher owns what is not sent yet: the open batch of rows, the open batch of re-run
checks, each folder's row builder while it is listed, and the objects of a folder held back
for a check. It tells the ledger when a batch takes rows of a folder (`FolderLedger.hold`)
and when a folder is listed to the end, so the ledger alone decides when a folder is done.
Pure and synchronous: it returns the batches that filled up, and the caller sends them.

A re-run checks a folder listed whole in one query (sql/folders_unchanged.sql) instead of
building and probing its rows, while `checking` is on (the worker turns it on and off from
what the sink finds): its objects are held until its listing ends, up to HOLD_OBJECTS; a
larger folder goes row by row.

The first batches are smaller, doubling up to `batch_size` (from a RAMP-th of it): the
database has nothing to do until the first batch is full, and a full one waits for the
listing of ~100 folders of 100 files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from loader.ledger import FolderLedger
from loader.rows import AssetRow, CdnUrls, FolderCheck, FolderRows, folder_check
from loader.sink import merge_duplicates
from loader.storage_objects import ListedObject

# A folder is held for a check while it has at most this many objects: enough for most
# customer folders, little memory for the folders being listed at once.
HOLD_OBJECTS = 2_000
# The first batch holds batch_size // RAMP rows (or checked files), each next one twice as
# many, up to batch_size.
RAMP = 8


@dataclass(slots=True)
class Batch:
    """One transaction's worth: rows (merged, sorted by path), or folders to check whole."""

    rows: list[AssetRow]
    folders: list[str]  # the folders this batch holds (`FolderLedger.hold`), each once
    checks: list[FolderCheck] = field(default_factory=list)
    # For checks: each checked folder's row builder, to write its rows when the check fails.
    builders: dict[str, FolderRows] = field(default_factory=dict)


class Batcher:
    """Turns listed pages into batches of up to `batch_size` rows (see the module docstring)."""

    __slots__ = (
        "_builders", "_cdn", "_check_builders", "_check_media", "_checks", "_held", "_ledger",
        "_limit", "_prefix", "_row_folders", "_rows", "batch_size", "checking",
    )  # fmt: skip

    def __init__(self, ledger: FolderLedger, cdn: CdnUrls, prefix: str, batch_size: int) -> None:
        self._ledger = ledger
        self._cdn = cdn
        self._prefix = prefix
        self.batch_size = batch_size
        self._limit = max(1, batch_size // RAMP)  # the next batch's size
        self.checking = False
        self._rows: list[AssetRow] = []
        self._row_folders: dict[str, None] = {}
        self._checks: list[FolderCheck] = []
        self._check_builders: dict[str, FolderRows] = {}
        self._check_media = 0
        self._builders: dict[str, FolderRows] = {}  # folders being listed
        self._held: dict[str, list[ListedObject]] = {}  # held back for a check

    def page(self, folder: str, objects: list[ListedObject]) -> list[Batch]:
        """A page of the folder's listing; the batches it filled."""
        if self._ledger.state(folder) == "lost":
            return []  # another worker's now: its rows would not be written
        builder = self._builders.get(folder)
        if builder is None:
            builder = FolderRows(folder, self._ledger.customer(folder), self._cdn)
            self._builders[folder] = builder
            if self.checking:
                self._held[folder] = []
        held = self._held.get(folder)
        if held is not None:
            if self.checking and len(held) + len(objects) <= HOLD_OBJECTS:
                held.extend(objects)
                return []
            # Too large to hold, or checks stopped: its rows as usual from here.
            objects = held + objects
            del self._held[folder]
        return self._add_rows(folder, builder, objects)

    def listed(self, folder: str) -> list[Batch]:
        """The folder's listing ended (after its last page); the batches that filled."""
        builder = self._builders.pop(folder, None)
        held = self._held.pop(folder, None)
        if self._ledger.state(folder) == "lost":
            self._ledger.listed(folder)
            return []
        batches: list[Batch] = []
        if held is not None and builder is not None:
            kinds: Counter[str] = Counter()
            prefix = f"{self._prefix}{folder}/"
            check = folder_check(builder, prefix, held, kinds) if self.checking else None
            if check is None:
                batches = self._add_rows(folder, builder, held)
            else:
                self._ledger.counts(folder).update(kinds)
                if check.media:  # nothing to write: done as it is
                    self._ledger.hold(folder)
                    self._checks.append(check)
                    self._check_builders[folder] = builder
                    self._check_media += check.media
                    if self._check_media >= self._limit:
                        batches.append(self._take_checks())
        # Last: a folder whose rows all went out becomes ready now, not before.
        self._ledger.listed(folder)
        return batches

    def failed(self, folder: str) -> None:
        """The folder's listing failed: what is not sent of it is dropped."""
        self._builders.pop(folder, None)
        self._held.pop(folder, None)

    def flush(self) -> list[Batch]:
        """Everything open, as batches (checks first)."""
        batches = [self._take_checks()] if self._checks else []
        if self._rows:
            batches.append(self._take_rows())
        return batches

    def forget_all(self) -> None:
        """The worker lost its lock: nothing open is sent."""
        self._rows, self._row_folders = [], {}
        self._checks, self._check_builders, self._check_media = [], {}, 0
        self._builders.clear()
        self._held.clear()

    def _add_rows(
        self, folder: str, builder: FolderRows, objects: list[ListedObject]
    ) -> list[Batch]:
        rows: list[AssetRow] = []
        builder.add_page(objects, rows, self._ledger.counts(folder))
        batches = []
        start = 0
        while start < len(rows):
            chunk = rows[start : start + self._limit - len(self._rows)]
            if folder not in self._row_folders:
                self._row_folders[folder] = None
                self._ledger.hold(folder)
            self._rows.extend(chunk)
            start += len(chunk)
            if len(self._rows) >= self._limit:
                batches.append(self._take_rows())
        return batches

    def _take_rows(self) -> Batch:
        batch = Batch(merge_duplicates(self._rows), list(self._row_folders))
        self._rows, self._row_folders = [], {}
        self._limit = min(self.batch_size, self._limit * 2)
        return batch

    def _take_checks(self) -> Batch:
        checks, builders = self._checks, self._check_builders
        self._checks, self._check_builders, self._check_media = [], {}, 0
        self._limit = min(self.batch_size, self._limit * 2)
        return Batch([], [c.folder for c in checks], checks, builders)
