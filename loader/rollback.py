"""`loader rollback RUN_ID`: undo one migrate run exactly, from its journal.

`upload_source` alone cannot undo a run (it says nothing about tags added to rows that
already existed), so the journal records, in the same transaction as each batch, the paths
the run inserted and the before-image of every row it changed, tagged with the transaction
id. A row whose `xmin` is still one of the run's transactions has not been written since:
rollback deletes it (inserted) or puts its before-image back byte for byte (changed). A row
someone changed since is reported: an inserted one is kept, a changed one only loses what
the run did (the tags it added, the cdn_url it wrote), unless `force`, which deletes or
restores regardless. The whole rollback is one transaction, recorded in loader.rollbacks;
`dry_run` computes the same plan and writes nothing (the journal's planner statistics may be
refreshed first, as autovacuum would).

The plan is made in one set-based pass (sql/rollback_plan.sql) and ordered by action, then by
where each row lies in image_assets; each action is applied by its own statement over ranges
of APPLY_CHUNK plan rows, so a long rollback shows its progress (one transaction all the
same) and walks the table's pages in order, each page once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from loader.errors import BadInputError
from loader.progress import LiveStats
from loader.runs import mark_interrupted
from loader.sqlfiles import sql

EXAMPLES = 10
# Plan rows per statement: under half a second of work (900,000 rows restored in 14-19 s in
# table order), few enough statements that their overhead does not show.
APPLY_CHUNK = 20_000
# The statement that applies each action's rows (kept and gone rows change nothing).
APPLY = {
    "delete": "rollback_apply_delete",
    "restore": "rollback_apply_restore",
    "undo_tags": "rollback_apply_undo_tags",
}


@dataclass(slots=True)
class RollbackResult:
    run_id: int
    deleted: int  # rows the run inserted, deleted
    restored: int  # rows the run changed, given back their before state (exactly or partly)
    kept_changed: int  # inserted rows changed since the run, kept (no --force)
    partly_restored: int = 0  # changed rows written by someone since: only the run's part undone
    gone: int = 0  # rows of the run that no longer exist
    dry_run: bool = False
    examples: dict[str, list[str]] = field(default_factory=dict)


class _DryRun(Exception):
    """Raised to roll back the transaction of a dry run."""


async def rollback(
    conn: asyncpg.Connection,
    run_id: int,
    *,
    force: bool = False,
    dry_run: bool = False,
    stats: LiveStats | None = None,
) -> RollbackResult:
    """Undo run `run_id` in one transaction; refuses when undoing would break a later run.

    A run a live worker is still on, or one touched by a later run, is refused unless `force`;
    an interrupted run (no live worker) needs no `force`, and is recorded so first. With
    `dry_run`, returns what would be done and changes nothing. `stats` counts the plan's rows
    as they are applied.
    """
    stats = stats or LiveStats(unit="rows", rates=())
    if not dry_run:
        await mark_interrupted(conn)  # recorded by the first command that sees them
    await conn.execute(sql("rollback_analyze_journal"))
    result: RollbackResult | None = None
    try:
        async with conn.transaction():
            check = await conn.fetchrow(sql("rollback_check"), run_id)
            status = check["status"]
            if status is None:
                raise BadInputError(f"run {run_id} does not exist")
            if status == "rolled_back":
                raise BadInputError(f"run {run_id} is already rolled back")
            if not force and check["live"]:
                raise BadInputError(
                    f"run {run_id} has a live worker; stop its workers first, or pass --force"
                )
            if not force and check["touched_later"]:
                raise BadInputError(
                    f"{check['touched_later']:,} rows of run {run_id} were changed again by a"
                    " later run: roll that run back first, or pass --force"
                )
            run = await conn.fetchrow(sql("run_get"), run_id)
            if (run["options"] or {}).get("action") == "delete_orphans":
                # `verify --repair --delete-orphans` ran: its deleted rows are kept whole.
                back = await conn.fetchval(sql("orphans_restore"), run_id)
                await conn.execute(sql("run_mark_rolled_back"), run_id)
                result = RollbackResult(run_id, deleted=0, restored=back, kept_changed=0,
                                        dry_run=dry_run)  # fmt: skip
                if dry_run:
                    raise _DryRun
                return result
            stats.step("planning")
            await conn.execute(sql("rollback_plan_create"))
            await conn.execute(sql("rollback_plan"), run_id, force)
            summary = await conn.fetch(sql("rollback_summary"), EXAMPLES)
            counts = {r["action"]: r["n"] for r in summary}
            examples = {r["action"]: list(r["examples"]) for r in summary}
            result = RollbackResult(
                run_id,
                deleted=counts.get("delete", 0),
                restored=counts.get("restore", 0) + counts.get("undo_tags", 0),
                kept_changed=counts.get("kept", 0),
                partly_restored=counts.get("undo_tags", 0),
                gone=counts.get("gone", 0),
                dry_run=dry_run,
                examples=examples,
            )
            if dry_run:
                raise _DryRun
            stats.begin(sum(counts.values()))
            result.deleted, result.restored = await _apply(conn, summary, stats)
            await conn.execute(sql("rollback_run"), run_id, force, counts, examples)
    except _DryRun:
        pass
    assert result is not None
    return result


async def _apply(
    conn: asyncpg.Connection, summary: list[asyncpg.Record], stats: LiveStats
) -> tuple[int, int]:
    """Apply the plan summed up in `summary` (rollback_summary.sql), each action's range of
    seq APPLY_CHUNK rows per statement; return the rows deleted and restored."""
    await conn.execute(sql("rollback_apply_join"))
    deleted = restored = 0
    for part in summary:
        statement = APPLY.get(part["action"])
        if statement is None:
            stats.done += part["n"]
            continue
        for low in range(part["first_seq"] - 1, part["last_seq"], APPLY_CHUNK):
            high = min(low + APPLY_CHUNK, part["last_seq"])
            chunk = await conn.fetchrow(sql(statement), low, high)
            if part["action"] == "delete":
                deleted += chunk["applied"]
            else:
                restored += chunk["applied"]
            stats.done += chunk["planned"]
    return deleted, restored
