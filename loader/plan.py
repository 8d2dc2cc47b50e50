"""`migrate --dry-run`: the plan's sink and its record, in place of the upsert and the run.

The worker runs the same pipeline either way; a dry run hands it these two instead of
`UpsertSink` and the run's folder record, so neither branches on it. `PlanSink` asks the
database what the upsert would do with each batch (sql/plan_batch.sql, read-only
connections, nothing staged) and `Plan` keeps each folder's planned counts for the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from loader.db import retrying
from loader.rows import AssetRow
from loader.sink import BatchOutcome, storable_rows
from loader.sqlfiles import sql


@dataclass(slots=True)
class PlanSink:
    """What the upsert would do with each batch, per folder; writes nothing."""

    pool: asyncpg.Pool
    overwrite_cdn: bool

    async def write(self, rows: Sequence[AssetRow]) -> BatchOutcome:
        outcome = BatchOutcome()
        storable = storable_rows(rows, outcome)  # as the upsert
        if not storable:
            return outcome
        # json_to_recordset's input (the pool encodes it): only what the plan reads.
        payload = [
            {"file_path": r.file_path, "folder": r.folder, "tags": r.tags, "cdn_url": r.cdn_url}
            for r in storable
        ]
        records = await retrying(
            self.pool,
            lambda conn: conn.fetch(sql("plan_batch"), payload, self.overwrite_cdn),
            what=f"planning a batch of {len(storable)} rows",
        )
        for folder, inserted, updated, unchanged in records:
            counts = outcome.per_folder.setdefault(folder, Counter())
            counts.update(inserted=inserted, updated=updated, unchanged=unchanged)
        return outcome


@dataclass(slots=True)
class Plan:
    """Each planned folder's outcome: its customer and counts, and whether its listing
    failed (a dry run reports every folder, so it holds them all)."""

    customers: dict[str, int | None]
    folders: list[dict[str, Any]] = field(default_factory=list)

    async def done(self, folders: list[tuple[str, Counter[str]]]) -> None:
        for name, counts in folders:
            self._add(name, "planned", counts)

    async def failed(self, folder: str, reason: str, counts: Counter[str]) -> None:
        self._add(folder, "failed", counts, error=reason)

    def lost(self, folder: str) -> None:
        raise AssertionError(f"a plan claims nothing, yet {folder!r} was taken over")

    def _add(self, folder: str, state: str, counts: Counter[str], **more: Any) -> None:
        self.folders.append({"folder": folder, "customer_id": self.customers[folder],
                             "state": state, "counts": dict(counts), **more})  # fmt: skip
