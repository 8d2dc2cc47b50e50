"""Sink stage: write batches of rows into image_assets, one transaction per batch.

Two paths, both journaled in the same transaction as the rows they write:
- COPY fast path (when image_assets has the column types the loader writes): one query finds
  which paths exist; the new rows go straight into image_assets by binary COPY and are
  journaled as one compact entry per folder; the rows that exist go through the set-based
  path. While the last probe found none of its paths (a first run), the next batch skips the
  probe and is COPYed whole; a path that exists fails that transaction, and the batch is
  probed as above in a new one. A concurrent writer that inserted one of the new paths meanwhile
  makes the COPY fail on the unique index: the whole batch is then redone through the
  set-based path.
- Set-based path (sql/upsert_batch.sql): the batch is COPYed into a temporary staging table
  and one `INSERT … ON CONFLICT` statement merges it, journaling before-images of the rows
  that existed.

Each transaction of a run's worker starts by locking the rows of its folders that the worker
still holds (sql/folders_held.sql) and writes only their rows: a folder taken over by another
worker (this one's liveness lock was lost, see loader.runs) is never written by both at once;
its rows are left out and the folder is reported in `BatchOutcome.lost`.

Failures: transient ones (lost connection, deadlock, serialization, admin shutdown) are
retried on a fresh pool connection with backoff; data errors split the batch in halves until
the bad rows are isolated, recorded in loader.row_failures with their reason, and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

import asyncpg
import asyncpg.exceptions as pgexc

from loader import pgcopy
from loader.db import retrying
from loader.errors import SchemaError
from loader.retry import RetryPolicy
from loader.rows import (
    STAGED_COLUMNS,
    WRITTEN_COLUMN_TYPES,
    WRITTEN_COLUMNS,
    AssetRow,
    FolderCheck,
)
from loader.sqlfiles import sql
from loader.storage_objects import prefix_end

# Errors caused by some row's values: retrying the same batch cannot help, splitting can.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    pgexc.DataError,
    pgexc.IntegrityConstraintViolationError,
    pgexc.CardinalityViolationError,
    pgexc.ProgramLimitExceededError,
    # Caught before the wire: a value binary COPY cannot encode (an integer out of bigint
    # range, a Storage timestamp that is not ISO 8601). A ValueError or KeyError of our own
    # code is not among these: it is a bug, and stops the run (exit 1).
    pgcopy.UnencodableValue,
)
# The table is not what preflight saw (dropped or altered mid-run): stop the run.
SCHEMA_ERRORS: tuple[type[BaseException], ...] = (
    pgexc.UndefinedTableError,
    pgexc.UndefinedColumnError,
    pgexc.InsufficientPrivilegeError,
    pgexc.UndefinedFunctionError,
)


NUL_REASON = "the name contains a NUL byte, which Postgres text cannot store (rename the object)"


def printable(path: str) -> str:
    """A path as it can be stored and shown: NUL written as the two characters \\0."""
    return path.replace("\x00", "\\0")


@dataclass(slots=True)
class BatchOutcome:
    """Per-folder counts (inserted / updated / unchanged / failed) and the rows that failed."""

    per_folder: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[tuple[AssetRow, str]] = field(default_factory=list)
    retries: int = 0
    lost: set[str] = field(default_factory=set)  # folders no longer the worker's: not written

    def add(self, other: BatchOutcome) -> None:
        for folder, counts in other.per_folder.items():
            self.per_folder.setdefault(folder, Counter()).update(counts)
        self.failures.extend(other.failures)
        self.retries += other.retries
        self.lost |= other.lost


def storable_rows(rows: Sequence[AssetRow], outcome: BatchOutcome) -> Sequence[AssetRow]:
    """The rows Postgres can store: text cannot hold NUL, so a name with one is a failed row
    (added to `outcome`), not a failed batch. `rows` itself in the usual case."""
    if not any("\x00" in row.file_path for row in rows):
        return rows
    for row in rows:
        if "\x00" in row.file_path:
            outcome.failures.append((row, NUL_REASON))
            outcome.per_folder.setdefault(row.folder, Counter())["failed"] += 1
    return [row for row in rows if "\x00" not in row.file_path]


def merge_duplicates(rows: Sequence[AssetRow]) -> list[AssetRow]:
    """One row per file_path, tags united in first-seen order, sorted by file_path.

    ON CONFLICT cannot touch a row twice in one statement (SQLSTATE 21000), and a batch sorted
    by file_path locks rows in one global order, so two connections never deadlock.
    """
    by_path: dict[str, AssetRow] = {}
    for row in rows:
        seen = by_path.get(row.file_path)
        if seen is None:
            by_path[row.file_path] = row
        else:
            # A new list (`tags` is shared with the other rows of the folder); each new tag
            # once, as loader.merge_tags appends them.
            merged = list(seen.tags)
            merged.extend(t for t in row.tags if t not in merged)
            seen.tags = merged
    return [by_path[path] for path in sorted(by_path)]


@dataclass(slots=True)
class UpsertSink:
    """Writes batches for one run (`--dry-run` plans them with `loader.plan.PlanSink`)."""

    pool: asyncpg.Pool
    run_id: int | None
    upload_source: str
    overwrite_cdn: bool
    # The worker whose folders these rows are (each transaction checks it still holds them);
    # None: rows written outside a worker's claims (a benchmark).
    worker_id: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # None: decided on the first write from the table's column types.
    copy_fast_path: bool | None = None
    # The last probe found none of its batch's paths (a first run into a table without these
    # rows): the next batch goes straight to COPY without a probe; one path that exists fails
    # it on the unique index, and the batch is then probed as usual.
    expect_new: bool = False

    async def write(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        """Write `rows` (already merged by file_path); never raises for bad rows."""
        outcome = BatchOutcome()
        storable = storable_rows(rows, outcome)
        for row, reason in outcome.failures:
            await self._record_failure(row, reason)
        outcome.add(await self._write_split(storable))
        return outcome

    async def has_rows_under(self, prefix: str) -> bool:
        """Whether image_assets has any row whose path starts with `prefix` (not empty)."""
        return await retrying(
            self.pool,
            lambda conn: conn.fetchval(sql("assets_under_prefix"), prefix, prefix_end(prefix)),
            retry=self.retry,
            what="looking for existing rows",
        )

    async def unchanged_folders(self, checks: Sequence[FolderCheck]) -> list[bool]:
        """For each folder check, whether its rows are all in image_assets as the upsert
        would leave them (sql/folders_unchanged.sql): nothing to write for that folder."""
        assert not self.overwrite_cdn, "a check cannot tell whether each cdn_url is the new one"
        if not checks:
            return []

        async def check(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            return await conn.fetch(
                sql("folders_unchanged"),
                [c.prefix for c in checks],
                [prefix_end(c.prefix) for c in checks],
                [c.tag for c in checks],
                [c.media for c in checks],
                [c.digest for c in checks],
                [c.url_prefix for c in checks],
                [c.encoded for c in checks],
            )

        records = await retrying(self.pool, check, retry=self.retry, what="re-run check")
        same = {r["n"] for r in records}
        return [n in same for n in range(1, len(checks) + 1)]

    async def _write_split(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        outcome = BatchOutcome()
        if not rows:
            return outcome
        try:
            return await self._write_with_retry(rows)
        except DATA_ERRORS as exc:
            if len(rows) == 1:
                reason = _reason(exc)
                await self._record_failure(rows[0], reason)
                outcome.failures.append((rows[0], reason))
                outcome.per_folder[rows[0].folder] = Counter(failed=1)
                return outcome
        middle = len(rows) // 2
        outcome.add(await self._write_split(rows[:middle]))
        outcome.add(await self._write_split(rows[middle:]))
        return outcome

    async def _prepare(self) -> None:
        """Once per sink: the run exists (the journal has no foreign key per row, this is its
        one check per run) and whether the COPY fast path fits the table."""

        async def check(conn: asyncpg.Connection) -> tuple[bool, asyncpg.Record | None]:
            exists = self.run_id is None or await conn.fetchrow(sql("run_get"), self.run_id)
            return bool(exists), await conn.fetchrow(sql("preflight_table"))

        exists, table = await retrying(self.pool, check, retry=self.retry, what="sink setup")
        if not exists:
            raise SchemaError(f"run {self.run_id} does not exist in loader.runs")
        if self.copy_fast_path is None:
            types = dict(zip(table["columns"], table["types"], strict=True)) if table else {}
            self.copy_fast_path = all(types.get(c) == t for c, t in WRITTEN_COLUMN_TYPES.items())

    async def _write_with_retry(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        outcome = BatchOutcome()
        if self.copy_fast_path is None:
            await self._prepare()

        def count_retry(_: BaseException) -> None:
            outcome.retries += 1

        async def write(conn: asyncpg.Connection) -> list[tuple[str, int, int, int]]:
            if self.copy_fast_path:
                try:
                    return await self._copy_new_rows(conn, rows, outcome.lost)
                except pgexc.UniqueViolationError:
                    pass  # a concurrent writer inserted one of the paths: ON CONFLICT decides
            async with conn.transaction():
                held = await self._held(conn, rows, outcome.lost)
                return await self._upsert(conn, held) if held else []

        try:
            records = await retrying(
                self.pool, write, retry=self.retry, what=f"batch of {len(rows)} rows",
                on_retry=count_retry,
            )  # fmt: skip
        except SCHEMA_ERRORS as exc:
            raise SchemaError(f"cannot write image_assets: {exc}") from exc
        for folder, inserted, updated, unchanged in records:
            counts = outcome.per_folder.setdefault(folder, Counter())
            counts.update(inserted=inserted, updated=updated, unchanged=unchanged)
        return outcome

    async def _held(
        self, conn: asyncpg.Connection, rows: Sequence[AssetRow], lost: set[str]
    ) -> Sequence[AssetRow]:
        """First in a transaction: the rows of the folders this worker still holds, whose
        folder rows stay locked until it ends (sql/folders_held.sql); the others go to `lost`."""
        if self.worker_id is None:
            return rows
        folders = sorted({row.folder for row in rows})
        records = await conn.fetch(sql("folders_held"), self.run_id, folders, self.worker_id)
        held = {r["folder"] for r in records}
        if len(held) == len(folders):
            return rows
        lost.update(f for f in folders if f not in held)
        return [row for row in rows if row.folder in held]

    async def _copy_new_rows(
        self, conn: asyncpg.Connection, rows: Sequence[AssetRow], lost: set[str]
    ) -> list[tuple[str, int, int, int]]:
        """The fast path, in one transaction: new rows by COPY, rows that would change by
        `_upsert`, rows that exist unchanged not sent again."""
        if self.expect_new:
            # A transaction of its own, not a savepoint: rows written in a subtransaction would
            # carry its xid as xmin, not the journaled one, and rollback would see them as
            # changed by someone else.
            try:
                async with conn.transaction():
                    held = await self._held(conn, rows, lost)
                    if not held:
                        return []
                    return await self._insert(conn, held, await conn.fetchval(sql("sink_now")))
            except pgexc.UniqueViolationError:
                self.expect_new = False
        async with conn.transaction():
            rows = await self._held(conn, rows, lost)
            if not rows:
                return []
            probe = await conn.fetchrow(
                sql("sink_probe"),
                [row.file_path for row in rows],
                # One tag per row, as the loader sends; a row with several (merged duplicates)
                # is sent to the upsert whenever it exists.
                [row.tags[0] if len(row.tags) == 1 else None for row in rows],
                [row.cdn_url for row in rows],
                self.overwrite_cdn,
            )
            existing = set(probe["existing"])
            changing = set(probe["changing"])
            changing.update(n for n in existing if len(rows[n - 1].tags) > 1)
            if len(existing) == len(rows) and not changing:
                # A re-run's usual batch: every row there as it should be (counted in C).
                unchanged = Counter(map(_folder_of, rows))
                new = []
            else:
                unchanged = Counter(rows[n - 1].folder for n in existing - changing)
                new = [row for n, row in enumerate(rows, 1) if n not in existing]
            counts: list[tuple[str, int, int, int]] = [
                (folder, 0, 0, n) for folder, n in unchanged.items()
            ]
            self.expect_new = not existing
            if new:
                counts += await self._insert(conn, new, probe["now"])
            if changing:
                counts += await self._upsert(conn, [rows[n - 1] for n in sorted(changing)])
            return counts

    async def _insert(
        self, conn: asyncpg.Connection, rows: Sequence[AssetRow], now: datetime
    ) -> list[tuple[str, int, int, int]]:
        """COPY `rows` (none of which exists) into image_assets and journal them, per folder
        one entry; inside the caller's transaction."""
        await conn.copy_to_table(
            "image_assets",
            source=_stream(pgcopy.new_rows(rows, self.upload_source, now)),
            columns=WRITTEN_COLUMNS,
            format="binary",
        )
        folders, bases, names, firsts, sizes = _journal_groups(rows)
        await conn.execute(
            sql("journal_inserts_add"), self.run_id, folders, bases, names, firsts, sizes
        )
        return [(f, n, 0, 0) for f, n in zip(folders, sizes, strict=True)]

    async def _upsert(
        self, conn: asyncpg.Connection, rows: Sequence[AssetRow]
    ) -> list[tuple[str, int, int, int]]:
        """The set-based path (inside the caller's transaction): stage, then ON CONFLICT."""
        await conn.execute(sql("sink_stage"))
        await conn.copy_to_table(
            "loader_stage", schema_name="pg_temp", source=_stream(pgcopy.staged_rows(rows)),
            columns=STAGED_COLUMNS, format="binary",
        )  # fmt: skip
        records = await conn.fetch(
            sql("upsert_batch"), self.upload_source, self.overwrite_cdn, self.run_id
        )
        return [tuple(r) for r in records]

    async def _record_failure(self, row: AssetRow, reason: str) -> None:
        if self.run_id is None:
            return
        await retrying(
            self.pool,
            lambda conn: conn.execute(
                sql("row_failure_add"), self.run_id, printable(row.file_path), row.folder, reason
            ),
            retry=self.retry,
            what=f"recording the failure of {row.file_path!r}",
        )


_folder_of = attrgetter("folder")


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    """A COPY stream as asyncpg's async-iterable source (a file object it would read chunk
    by chunk through a thread pool)."""
    yield data


def _reason(exc: BaseException) -> str:
    """One line saying why a row could not be written."""
    if isinstance(exc, pgcopy.UnencodableValue):
        return f"a value cannot be written ({exc})"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _journal_groups(
    rows: Sequence[AssetRow],
) -> tuple[list[str], list[str], list[str], list[int], list[int]]:
    """Per folder (rows arrive grouped by folder, sorted by path): its name, the common
    directory of its paths, and where its names start and how many in one flat list."""
    folders: list[str] = []
    bases: list[str] = []
    firsts: list[int] = []
    sizes: list[int] = []
    names: list[str] = []
    start = 0
    while start < len(rows):
        folder = rows[start].folder
        end = start
        while end < len(rows) and rows[end].folder == folder:
            end += 1
        # Sorted paths: the longest directory of the first that the last is in is the
        # common directory of all of them (found a directory at a time, not a character:
        # at 100,000 folders of 10, the character loop was most of this function's time).
        first, last = rows[start].file_path, rows[end - 1].file_path
        base = first[: first.rfind("/") + 1]
        while not last.startswith(base):
            base = base[: base.rfind("/", 0, len(base) - 1) + 1]
        folders.append(folder)
        bases.append(base)
        firsts.append(len(names) + 1)
        sizes.append(end - start)
        names.extend(row.file_path[len(base) :] for row in rows[start:end])
        start = end
    return folders, bases, names, firsts, sizes
