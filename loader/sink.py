"""Sink stage: write batches of rows into image_assets, one SQL statement per batch.

The statement (sql/upsert_batch.sql) takes the whole batch as one JSON parameter
(`json_to_recordset`): measured within ~15% of COPY-into-temp-table on this kind of machine
at a tenth of the client CPU, and a single statement keeps the journal in the same
transaction as the rows it describes.

Failures: transient ones (lost connection, deadlock, serialization, admin shutdown) are
retried on a fresh pool connection with backoff; data errors split the batch in halves until
the bad rows are isolated, recorded in loader.row_failures with their reason, and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import asyncpg.exceptions as pgexc

from loader.db import retrying
from loader.errors import SchemaError
from loader.retry import RetryPolicy
from loader.rows import AssetRow
from loader.sqlfiles import sql

# Errors caused by some row's values: retrying the same batch cannot help, splitting can.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    pgexc.DataError,
    pgexc.IntegrityConstraintViolationError,
    pgexc.CardinalityViolationError,
    pgexc.ProgramLimitExceededError,
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

    def add(self, other: BatchOutcome) -> None:
        for folder, counts in other.per_folder.items():
            self.per_folder.setdefault(folder, Counter()).update(counts)
        self.failures.extend(other.failures)
        self.retries += other.retries


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
            seen.tags.extend(t for t in row.tags if t not in seen.tags)
    return [by_path[path] for path in sorted(by_path)]


@dataclass(slots=True)
class UpsertSink:
    """Writes batches for one run (or plans them, with `dry_run`)."""

    pool: asyncpg.Pool
    run_id: int | None
    upload_source: str
    overwrite_cdn: bool
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    async def write(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        """Write `rows` (already merged by file_path); never raises for bad rows."""
        outcome = BatchOutcome()
        # Postgres text cannot hold NUL: such a name is a failed row, not a failed batch.
        if any("\x00" in row.file_path for row in rows):
            storable = []
            for row in rows:
                if "\x00" not in row.file_path:
                    storable.append(row)
                    continue
                await self._record_failure(row, NUL_REASON)
                outcome.failures.append((row, NUL_REASON))
                outcome.per_folder.setdefault(row.folder, Counter())["failed"] += 1
            outcome.add(await self._write_split(storable))
            return outcome
        return await self._write_split(rows)

    async def _write_split(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        outcome = BatchOutcome()
        if not rows:
            return outcome
        try:
            return await self._write_with_retry(rows)
        except DATA_ERRORS as exc:
            if len(rows) == 1:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                await self._record_failure(rows[0], reason)
                outcome.failures.append((rows[0], reason))
                outcome.per_folder[rows[0].folder] = Counter(failed=1)
                return outcome
        middle = len(rows) // 2
        outcome.add(await self._write_split(rows[:middle]))
        outcome.add(await self._write_split(rows[middle:]))
        return outcome

    async def _write_with_retry(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        payload = [row.as_json() for row in rows]
        outcome = BatchOutcome()

        def count_retry(_: BaseException) -> None:
            outcome.retries += 1

        async def upsert(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            if self.dry_run:
                return await conn.fetch(sql("plan_batch"), payload, self.overwrite_cdn)
            return await conn.fetch(
                sql("upsert_batch"), payload, self.upload_source, self.overwrite_cdn, self.run_id
            )

        try:
            records = await retrying(
                self.pool, upsert, retry=self.retry, what=f"batch of {len(rows)} rows",
                on_retry=count_retry,
            )  # fmt: skip
        except SCHEMA_ERRORS as exc:
            raise SchemaError(f"cannot write image_assets: {exc}") from None
        for record in records:
            outcome.per_folder[record["folder"]] = Counter(
                inserted=record["inserted"],
                updated=record["updated"],
                unchanged=record["unchanged"],
            )
        return outcome

    async def _record_failure(self, row: AssetRow, reason: str) -> None:
        if self.dry_run or self.run_id is None:
            return
        await retrying(
            self.pool,
            lambda conn: conn.execute(
                sql("row_failure_add"), self.run_id, printable(row.file_path), row.folder, reason
            ),
            retry=self.retry,
            what=f"recording the failure of {row.file_path!r}",
        )
