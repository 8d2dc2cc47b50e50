"""`loader rollback RUN_ID`: undo one migrate run exactly, from its journal.

`upload_source` alone cannot undo a run (it says nothing about tags added to rows that
already existed), so every change was journaled with the row's previous ai_tags and cdn_url
in the same transaction as the change. Rollback deletes the rows the run inserted and, in rows
it updated, removes exactly the tags it added and restores the cdn_url it replaced, leaving
anything other writers did since in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from loader.errors import BadInputError
from loader.sqlfiles import sql


@dataclass(slots=True)
class RollbackResult:
    run_id: int
    deleted: int
    restored: int
    kept_changed: int  # inserted rows changed since the run, kept (no --force)


async def rollback(conn: asyncpg.Connection, run_id: int, *, force: bool = False) -> RollbackResult:
    """Undo run `run_id` in one transaction; refuses when undoing would break a later run.

    A run a live worker is still on, or one touched by a later run, is refused unless `force`;
    an interrupted run (marked running, no live worker) needs no `force`.
    """
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
                f"{check['touched_later']:,} rows of run {run_id} were changed again by a later"
                " run: roll that run back first, or pass --force"
            )
        done = await conn.fetchrow(sql("rollback_run"), run_id, force)
    kept = 0 if force else check["changed_since"]
    return RollbackResult(run_id, done["deleted"], done["restored"], kept)
