"""Run bookkeeping in the `loader` schema: runs, per-folder progress, claims between workers.

Postgres is the coordinator. A run's folders are registered in chunks, one row of
loader.chunks each (`chunk_size`); any number of worker processes (`--resume` / `--join`)
claim whole chunks with `FOR UPDATE SKIP LOCKED`, and a worker records a chunk in one write
once every folder of it is done (`RunRecord`). A crash redoes the chunks in flight, their
folders done or not: every write is idempotent, and the journal keeps the counts true. Each
worker holds an advisory lock named after itself on a dedicated connection for its whole
life, so a crashed worker (even SIGKILL) is detected the moment its connection closes, with
no lease timeouts to tune, and its claimed folders are taken over.

A worker can also lose that connection and live on (pg_terminate_backend, a pooler or
network dropping it): to the others it is dead, and they take its folders over. Decision:

- the worker notices (`WorkerLock.guard`: asyncpg's termination listener at once, a check
  query every second for a connection gone silent), stops its pipeline (its folders in flight
  are uncommitted work, redone idempotently), takes a lock again on a new connection under a
  new worker id, and only then claims again; its old id's folders are a dead worker's, for
  whoever claims first, itself included;
- what makes "no folder is written by two workers at once" true is not that timing but the
  database. A claim by a worker whose lock is free gets nothing (sql/chunks_claim.sql).
  Every batch's transaction first locks the chunk rows of its folders that the worker still
  holds (sql/folders_held.sql) and writes only their rows: a takeover skips locked rows, so
  it cannot commit while such a batch commits, and a batch that starts after a takeover
  writes none of that folder's rows. A chunk is recorded done or failed only by its holder. So in
  the moment between the lock's loss and the worker noticing, the worker claims nothing and
  writes only folders no one has taken over yet.

A run no live worker holds (its shared lock is free) is recorded `interrupted` by the first
command that sees it (`mark_interrupted`: `loader runs`, `migrate`, `rollback`). Only a
worker that holds the run's lock sets it `running` again (`WorkerLock.take`, after the lock),
so a marked run really had no live worker when it was marked; a worker whose run was marked
in the moment before it took its lock (a new run before its first worker, a worker between
losing its lock and taking it again) sets it back to running.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import anyio
import asyncpg

from loader.db import connect, retrying, retrying_attempts, until_lost
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
    registering: bool = False  # its folders were still being registered (see create_run)


# A run's folders are registered in chunks of about a hundredth of the run: from 1 folder (a
# small run records each folder as soon as it is done, as people watching it expect) to
# CHUNK_MAX. A no-change re-run of 10,000 folders writes ~300 bookkeeping rows instead of the
# 30,000 of one row per folder (registered, claimed, done); a crash redoes at most CHUNK_MAX
# folders per chunk in flight, cheaply (a re-run's check skips folders already in place).
CHUNKS_PER_RUN = 100
CHUNK_MAX = 100


def chunk_size(folders: int) -> int:
    """How many folders each chunk of a run of `folders` folders holds."""
    return max(1, min(CHUNK_MAX, folders // CHUNKS_PER_RUN))


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
    chunk: int | None = None,
    registering: bool = False,
) -> int:
    """Record a new run and its folders (with their customers) in chunks of `chunk` (by
    default, `chunk_size` of these folders), in one transaction. With `registering`, these
    are its first folders only: workers may start on them while the rest are added
    (`register_folders`); the run is not closed before the last are."""
    size = chunk or chunk_size(len(folders))

    async def create(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            run_id: int = await conn.fetchval(
                sql("run_create"), bucket, prefix, options, registering
            )
            await _add_folders(conn, run_id, folders, size)
            return run_id

    return await retrying(pool, create, what="creating the run")


# The last of a run's folders are registered: it may be closed once they are all done.
REGISTERED_SQL = "UPDATE loader.runs SET registering = false WHERE run_id = $1"


async def register_folders(
    pool: asyncpg.Pool,
    run_id: int,
    folders: Sequence[tuple[str, int | None]],
    *,
    chunk: int,
    last: bool,
) -> None:
    """Add folders to a run created `registering`, in chunks of `chunk` (those it has already
    are kept as they are); with `last`, in the same transaction, its registration is
    complete."""

    async def register(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await _add_folders(conn, run_id, folders, chunk)
            if last:
                await conn.execute(REGISTERED_SQL, run_id)

    await retrying(pool, register, what="registering the run's folders")


async def _add_folders(
    conn: asyncpg.Connection, run_id: int, folders: Sequence[tuple[str, int | None]], chunk: int
) -> None:
    await conn.execute(
        sql("run_add_folders"), run_id, [f for f, _ in folders], [c for _, c in folders], chunk
    )


def _check_status(run_id: int, status: str | None) -> None:
    """`BadInputError` for a run that cannot be worked on: missing, or rolled back."""
    if status is None:
        raise BadInputError(f"run {run_id} does not exist")
    if status == "rolled_back":
        raise BadInputError(f"run {run_id} was rolled back; start a new run instead")


async def adopt_run(pool: asyncpg.Pool, run_id: int) -> RunInfo:
    """The run to resume or join (its status is set running by `WorkerLock.take`);
    `BadInputError` if it does not exist or was rolled back."""
    row = await retrying(
        pool, lambda conn: conn.fetchrow(sql("run_get"), run_id), what="reading the run"
    )
    _check_status(run_id, row and row["status"])
    return RunInfo(
        run_id, row["status"], row["bucket"], row["prefix"], row["options"], row["registering"]
    )


async def mark_interrupted(conn: asyncpg.Connection) -> list[int]:
    """Record as interrupted every run marked running or aborted that no live worker holds;
    their ids. See the module docstring for why a live run is never marked."""
    return [r["run_id"] for r in await conn.fetch(sql("runs_mark_interrupted"))]


@dataclass(slots=True)
class WorkerLock:
    """This worker's liveness lock and its share of the run's, on a connection of its own,
    and what happens when that connection is lost (see the module docstring)."""

    database_url: str
    run_id: int
    worker_id: str = field(default_factory=new_worker_id)
    lost: bool = False  # the lock's connection was lost: `take` again before claiming
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    _conn: asyncpg.Connection | None = None

    async def take(self) -> None:
        """Connect, take the locks, then set the run running: only a holder of the run's
        lock does. `BadInputError` when the run is gone or was rolled back meanwhile."""
        # Named in pg_stat_activity, for a person (and the tests) to find it.
        name = f"loader worker {os.getpid()} run {self.run_id}"

        async def attempt() -> str | None:
            conn = await connect(self.database_url)
            try:
                await conn.execute(sql("worker_lock"), self.worker_id, self.run_id, name)
                status: str | None = await conn.fetchval(sql("run_reopen"), self.run_id)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
            return status

        status = await retrying_attempts(attempt, retry=self.retry, what="taking the worker's lock")
        self.lost = False
        _check_status(self.run_id, status)

    async def retake(self) -> None:
        """After a loss: the old connection is dropped and the worker lives on under a new
        id, so its old id's folders (free now) can be taken over at once, even by itself."""
        if self._conn is not None:
            self._conn.terminate()
        self.worker_id = new_worker_id()
        await self.take()

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block while the lock is held: the moment its connection is lost, `lost`
        is set and the block is cancelled (the block ends quietly; check `lost` after it)."""
        assert self._conn is not None
        conn = self._conn
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await until_lost(conn)
                self.lost = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            yield
            tg.cancel_scope.cancel()  # the block is done: stop watching

    async def release(self) -> None:
        if self._conn is None:
            return
        if self.lost:
            self._conn.terminate()  # a lost connection may not answer a polite close
        else:
            await self._conn.close()


@asynccontextmanager
async def worker_lock(database_url: str, run_id: int) -> AsyncIterator[WorkerLock]:
    """Hold a worker's lock (`WorkerLock`) for the block."""
    lock = WorkerLock(database_url, run_id)
    try:
        await lock.take()
        yield lock
    finally:
        await lock.release()


Folders = list[tuple[str, int | None]]  # folder names with their customer ids


async def claim_chunks(
    pool: asyncpg.Pool, run_id: int, worker_id: str, chunks: int, known: Sequence[int] = ()
) -> list[tuple[int, Folders]]:
    """Up to `chunks` chunks of the run for this worker, each with its folders and their
    customer ids, and the chunks it holds already but for those `known` (in flight)."""
    rows = await retrying(
        pool,
        lambda conn: conn.fetch(sql("chunks_claim"), run_id, worker_id, chunks, list(known)),
        what="claiming folders",
    )
    return [
        (chunk_id, [(r["folder"], r["customer_id"]) for r in group])
        for chunk_id, group in groupby(rows, key=lambda r: r["chunk_id"])
    ]


@dataclass(slots=True)
class _Chunk:
    """A claimed chunk: its folders, and what became of each so far."""

    customers: dict[str, int | None]
    open: set[str]  # folders neither done, failed nor lost yet
    done: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    lost: bool = False  # another worker took it over: nothing of it is recorded here


class RunRecord:
    """Where a worker records its folders done or failed: each claimed chunk in one write,
    once every folder of it is (sql/chunk_finish.sql), and only while the worker holds it.
    Chunks in flight only are held here; a recorded one lives in the database only."""

    def __init__(self, pool: asyncpg.Pool, run_id: int) -> None:
        self.pool, self.run_id, self.worker_id = pool, run_id, ""
        self._chunks: dict[int, _Chunk] = {}
        self._chunk_of: dict[str, int] = {}
        # Chunks recorded (an int each): a claim whose snapshot predates the record still
        # returns one among the worker's own, which must not be walked again.
        self._recorded: set[int] = set()

    def in_flight(self) -> list[int]:
        """The chunks claimed and not recorded yet."""
        return list(self._chunks)

    def claimed(self, chunk_id: int, folders: Folders) -> bool:
        """Take a claimed chunk in; False when it is in flight already (a claim returns the
        chunks the worker holds too)."""
        if chunk_id in self._chunks or chunk_id in self._recorded:
            return False
        self._chunks[chunk_id] = _Chunk(dict(folders), {f for f, _ in folders})
        self._chunk_of.update((f, chunk_id) for f, _ in folders)
        return True

    async def done(self, folders: list[tuple[str, Counter[str]]]) -> None:
        for folder, counts in folders:
            chunk_id, chunk = self._settle(folder)
            chunk.done[folder] = dict(counts)
            await self._finish_if_complete(chunk_id, chunk)

    async def failed(self, folder: str, reason: str, counts: Counter[str]) -> None:
        chunk_id, chunk = self._settle(folder)
        chunk.failed[folder] = (reason, dict(counts))
        await self._finish_if_complete(chunk_id, chunk)

    def lost(self, folder: str) -> None:
        """Another worker took the folder over, so its whole chunk (they are claimed whole):
        nothing of it is recorded here."""
        chunk_id, chunk = self._settle(folder)
        chunk.lost = True
        if not chunk.open:
            self._forget(chunk_id, chunk)

    def forget_all(self) -> None:
        """The worker's lock was lost: its chunks are for whoever claims them first."""
        self._chunks.clear()
        self._chunk_of.clear()
        self._recorded.clear()

    def _settle(self, folder: str) -> tuple[int, _Chunk]:
        chunk_id = self._chunk_of[folder]
        chunk = self._chunks[chunk_id]
        chunk.open.remove(folder)
        return chunk_id, chunk

    async def _finish_if_complete(self, chunk_id: int, chunk: _Chunk) -> None:
        if chunk.open:
            return
        if not chunk.lost:
            # Known until recorded: a claim meanwhile returns it among the worker's own.
            await finish_chunk(self.pool, self.worker_id, chunk_id, chunk)
            self._recorded.add(chunk_id)
        self._forget(chunk_id, chunk)

    def _forget(self, chunk_id: int, chunk: _Chunk) -> None:
        del self._chunks[chunk_id]
        for folder in chunk.customers:
            del self._chunk_of[folder]


async def finish_chunk(pool: asyncpg.Pool, worker_id: str, chunk_id: int, chunk: _Chunk) -> None:
    """Record a chunk whose every folder is done or failed (if the worker still holds it)."""
    # In the chunk's own order, whatever order its folders were settled in.
    done = [f for f in chunk.customers if f in chunk.done]
    failed = [f for f in chunk.customers if f in chunk.failed]
    args = (
        chunk_id,
        worker_id,
        done,
        [chunk.customers[f] for f in done],
        chunk.done,
        failed,
        [chunk.customers[f] for f in failed],
        {f: counts for f, (_, counts) in chunk.failed.items()},
        {f: reason for f, (reason, _) in chunk.failed.items()} or None,
    )
    await retrying(
        pool, lambda conn: conn.execute(sql("chunk_finish"), *args), what="recording folders"
    )


async def finalize_run(pool: asyncpg.Pool, run_id: int) -> str:
    """Close the run if no folder is left; returns its status, 'running' while folders are
    still pending or claimed (idempotent: a closed run returns its stored status).
    `BadInputError` for a run rolled back under its worker (`rollback --force`): the
    worker's batches since wrote nothing (sql/folders_held.sql)."""
    status: str = await retrying(
        pool, lambda conn: conn.fetchval(sql("run_finalize"), run_id), what="closing the run"
    )
    _check_status(run_id, status)
    return status


async def other_holders(pool: asyncpg.Pool, run_id: int, worker_id: str) -> tuple[int, int]:
    """(other workers holding folders of the run, how many of them are live)."""
    row = await retrying(
        pool,
        lambda conn: conn.fetchrow(sql("run_live_holders"), run_id, worker_id),
        what="checking other workers",
    )
    return row["holders"], row["live"]


async def has_open_folders(pool: asyncpg.Pool, run_id: int) -> bool:
    """Whether any folder of the run is still pending or claimed, or still to be registered."""
    return await retrying(
        pool,
        lambda conn: conn.fetchval(sql("run_open_folders"), run_id),
        what="checking open folders",
    )


async def folder_counts(pool: asyncpg.Pool, run_id: int) -> tuple[int, int]:
    """(folders done, folders) of the run, all workers and earlier attempts included."""
    row = await retrying(
        pool,
        lambda conn: conn.fetchrow(sql("run_folder_counts"), run_id),
        what="counting the run's folders",
    )
    return row["done"], row["total"]


async def mark_aborted(pool: asyncpg.Pool, run_id: int) -> None:
    """Record that a worker stopped midway (other workers, or a resume, may still finish)."""
    await retrying(
        pool,
        lambda conn: conn.execute(sql("run_abort"), run_id),
        retry=RetryPolicy(attempts=2),
        what="abort",
    )


async def run_report(
    pool: asyncpg.Pool, run_id: int, *, every_folder: bool = True
) -> dict[str, Any]:
    """Whole-run totals, per-folder rows (of every folder, or only of those not done) and
    failed rows, as stored (all workers, resumes)."""

    async def read(conn: asyncpg.Connection) -> dict[str, Any]:
        # One snapshot for all the reads: another worker may commit meanwhile.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            run = await conn.fetchrow(sql("run_get"), run_id)
            totals = await conn.fetchval(sql("run_totals"), run_id)
            stored = await conn.fetch(sql("run_folders_report"), run_id, every_folder)
            journal = await conn.fetch(
                sql("run_journal_counts"),
                run_id,
                None if every_folder else [r["folder"] for r in stored],
            )
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
    """The newest runs with status, counts and folder progress (for `loader runs`); runs no
    live worker holds are recorded interrupted first."""
    await mark_interrupted(conn)
    return [dict(r) for r in await conn.fetch(sql("runs_list"), limit)]
