"""Run bookkeeping in the `loader` schema: runs, per-folder progress, claims between workers.

Postgres is the coordinator. A run's folders are rows of loader.folders; any number of
worker processes (`--resume` / `--join`) claim them with `FOR UPDATE SKIP LOCKED`. Each
worker holds an advisory lock named after itself on a dedicated connection for its whole
life, so a crashed worker (even SIGKILL) is detected the moment its connection closes, with
no lease timeouts to tune, and its claimed folders are taken over.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from loader.db import connect, retrying
from loader.errors import BadInputError
from loader.retry import RetryPolicy
from loader.sqlfiles import sql


@dataclass(slots=True)
class RunInfo:
    run_id: int
    status: str
    bucket: str
    prefix: str
    options: dict[str, Any]


def new_worker_id() -> str:
    """Unique per process and per run attempt: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def create_run(
    pool: asyncpg.Pool,
    *,
    bucket: str,
    prefix: str,
    options: dict[str, Any],
    folders: Sequence[tuple[str, int | None]],
) -> int:
    """Record a new run and its folders (with their customers) in one transaction."""

    async def create(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            run_id: int = await conn.fetchval(sql("run_create"), bucket, prefix, options)
            await conn.execute(
                sql("run_add_folders"),
                run_id,
                [f for f, _ in folders],
                [c for _, c in folders],
            )
            return run_id

    return await retrying(pool, create, what="creating the run")


async def reopen_run(pool: asyncpg.Pool, run_id: int) -> RunInfo:
    """The run to resume or join; `BadInputError` if it does not exist or was rolled back."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(sql("run_get"), run_id)
        if row is None:
            raise BadInputError(f"run {run_id} does not exist")
        if row["status"] == "rolled_back":
            raise BadInputError(f"run {run_id} was rolled back; start a new run instead")
        await conn.execute(sql("run_reopen"), run_id)
    return RunInfo(run_id, "running", row["bucket"], row["prefix"], row["options"])


@asynccontextmanager
async def worker_lock(database_url: str, worker_id: str, run_id: int) -> AsyncIterator[None]:
    """Hold this worker's liveness lock, and its share of the run's, for the block."""
    conn = await connect(database_url)
    try:
        await conn.execute(sql("worker_lock"), worker_id, run_id)
        yield
    finally:
        await conn.close()


async def claim_folders(
    pool: asyncpg.Pool, run_id: int, worker_id: str, limit: int
) -> list[tuple[str, int | None]]:
    """Up to `limit` folders of the run for this worker, with their customer ids."""
    rows = await retrying(
        pool,
        lambda conn: conn.fetch(sql("folders_claim"), run_id, worker_id, limit),
        what="claiming folders",
    )
    return [(r["folder"], r["customer_id"]) for r in rows]


async def finish_folders(
    pool: asyncpg.Pool, run_id: int, done: Sequence[tuple[str, Counter[str]]]
) -> None:
    """Mark folders done, with their counts, once every one of their rows is committed."""
    if not done:
        return
    await retrying(
        pool,
        lambda conn: conn.execute(
            sql("folders_done"), run_id, [f for f, _ in done], [dict(c) for _, c in done]
        ),
        what="marking folders done",
    )


async def fail_folder(
    pool: asyncpg.Pool, run_id: int, folder: str, reason: str, counts: Counter[str]
) -> None:
    """Mark a folder failed; a later `--resume` retries it."""
    await retrying(
        pool,
        lambda conn: conn.execute(sql("folders_failed"), run_id, folder, reason, dict(counts)),
        what="marking a folder failed",
    )


async def finalize_run(pool: asyncpg.Pool, run_id: int) -> str:
    """Close the run if no folder is left; returns its status, 'running' while folders are
    still pending or claimed (idempotent: a closed run returns its stored status)."""
    return await retrying(
        pool, lambda conn: conn.fetchval(sql("run_finalize"), run_id), what="closing the run"
    )


async def other_holders(pool: asyncpg.Pool, run_id: int, worker_id: str) -> tuple[int, int]:
    """(other workers holding folders of the run, how many of them are live)."""
    row = await retrying(
        pool,
        lambda conn: conn.fetchrow(sql("run_live_holders"), run_id, worker_id),
        what="checking other workers",
    )
    return row["holders"], row["live"]


async def has_open_folders(pool: asyncpg.Pool, run_id: int) -> bool:
    """Whether any folder of the run is still pending or claimed."""
    return await retrying(
        pool,
        lambda conn: conn.fetchval(sql("run_open_folders"), run_id),
        what="checking open folders",
    )


async def mark_aborted(pool: asyncpg.Pool, run_id: int) -> None:
    """Record that a worker stopped midway (other workers, or a resume, may still finish)."""
    await retrying(
        pool,
        lambda conn: conn.execute(sql("run_abort"), run_id),
        retry=RetryPolicy(attempts=2),
        what="abort",
    )


async def run_report(pool: asyncpg.Pool, run_id: int) -> dict[str, Any]:
    """Whole-run totals, per-folder rows and failed rows, as stored (all workers, resumes)."""

    async def read(conn: asyncpg.Connection) -> dict[str, Any]:
        # One snapshot for all the reads: another worker may commit meanwhile.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            run = await conn.fetchrow(sql("run_get"), run_id)
            totals = await conn.fetchval(sql("run_totals"), run_id)
            journal = await conn.fetch(sql("run_journal_counts"), run_id)
            stored = await conn.fetch(sql("run_folders_report"), run_id)
            failures = [dict(r) for r in await conn.fetch(sql("run_row_failures"), run_id)]
        journaled = {r["folder"]: r for r in journal}
        folders = []
        for record in stored:
            folder = dict(record)
            counts = journaled.get(folder["folder"])
            folder["inserted"] = counts["inserted"] if counts else 0
            folder["updated"] = counts["updated"] if counts else 0
            folders.append(folder)
        return {"run": dict(run), "totals": totals, "folders": folders, "failed_rows": failures}

    return await retrying(pool, read, what="reading the run report")


async def recent_runs(conn: asyncpg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs with status, counts and folder progress (for `loader runs`)."""
    return [dict(r) for r in await conn.fetch(sql("runs_list"), limit)]
