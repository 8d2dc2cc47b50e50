"""A run's folders in chunks (loader.chunks): claimed whole, recorded in one write once every
folder of the chunk is done or failed, failed folders split off to be retried alone.

The record's rules are tested without a database (`RunRecord` with its write captured); the
chunk rows, the view `loader.folders` and the retry of a failed folder against a real
PostgreSQL and a Storage server on loopback.
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import replace
from typing import Any

import anyio
import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader import runs
from loader.db import create_pool, init_schema
from loader.devtools.storage_server import Faults
from loader.migrate import migrate
from tests.cli_helpers import (
    joined_workers,
    kill_a_holder,
    loader_argv,
    migrate_args,
    run_loader,
)
from tests.storage_fixtures import BROKEN_FOLDER, STORAGE_BUCKET, Outage, StartStorage, catalogue_of
from tests.test_migrate import PREFIX, options

pytestmark = pytest.mark.timeout(60)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_chunks_hold_a_hundredth_of_the_run_from_one_folder_to_the_maximum(folders: int) -> None:
    size = runs.chunk_size(folders)
    assert 1 <= size <= runs.CHUNK_MAX
    if folders < 2 * runs.CHUNKS_PER_RUN:
        assert size == 1  # a small run records each folder as soon as it is done
    if size < runs.CHUNK_MAX:
        assert folders // size >= runs.CHUNKS_PER_RUN or size == 1


# -- the record, no database ---------------------------------------------------------------


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Each chunk the record writes: (chunk id, done folder -> counts, failed folder ->
    (reason, counts))."""
    calls: list[tuple[int, dict[str, Any], dict[str, Any]]] = []

    async def finish_chunk(pool: Any, worker_id: str, chunk_id: int, chunk: Any) -> None:
        calls.append((chunk_id, dict(chunk.done), dict(chunk.failed)))

    monkeypatch.setattr(runs, "finish_chunk", finish_chunk)
    return calls


async def test_a_chunk_is_written_once_when_its_last_folder_is_settled(written: list) -> None:
    record = runs.RunRecord(pool=None, run_id=1)  # type: ignore[arg-type]
    assert record.claimed(7, [("a", 1), ("b", None), ("c", 3)])
    assert not record.claimed(7, [("a", 1), ("b", None), ("c", 3)])  # in flight: known
    await record.done([("a", Counter(media=2))])
    await record.failed("b", "disk on fire", Counter(media=1))
    assert written == []  # "c" is still open
    await record.done([("c", Counter(media=4, unchanged=4))])
    assert written == [
        (7, {"a": {"media": 2}, "c": {"media": 4, "unchanged": 4}},
         {"b": ("disk on fire", {"media": 1})}),
    ]  # fmt: skip
    # Recorded: a claim whose snapshot predates the write does not hand it out again.
    assert not record.claimed(7, [("a", 1), ("b", None), ("c", 3)])


async def test_a_chunk_taken_over_is_never_written_and_is_forgotten(written: list) -> None:
    record = runs.RunRecord(pool=None, run_id=1)  # type: ignore[arg-type]
    record.claimed(1, [("a", None), ("b", None)])
    record.claimed(2, [("c", None)])
    await record.done([("a", Counter(media=1))])
    record.lost("b")
    await record.done([("c", Counter(media=1))])
    assert [chunk_id for chunk_id, _, _ in written] == [2]
    # Forgotten: the folder may be claimed again in another chunk (a retry of a failure).
    assert record.claimed(3, [("b", None)])


async def test_after_a_lost_lock_every_chunk_in_flight_is_forgotten(written: list) -> None:
    record = runs.RunRecord(pool=None, run_id=1)  # type: ignore[arg-type]
    record.claimed(1, [("a", None), ("b", None)])
    await record.done([("a", Counter(media=1))])
    record.forget_all()
    assert record.claimed(1, [("a", None), ("b", None)])  # whoever claims it first
    with pytest.raises(KeyError):
        record.lost("c")  # never claimed: a bug, not something to ignore
    assert written == []


# -- chunks in the database ----------------------------------------------------------------


async def _chunks(db: asyncpg.Connection, run_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT folders, state, attempts, counts, errors FROM loader.chunks"
        " WHERE run_id = $1 ORDER BY chunk_id",
        run_id,
    )


async def test_a_failed_folder_is_split_off_and_retried_alone(
    outage: Outage, db: asyncpg.Connection, db_url: str
) -> None:
    pool = await create_pool(db_url, 2)
    try:
        async with pool.acquire() as conn:
            await init_schema(conn)
        names = [
            *(f"kimminsu{i:02d}-66{i:02d}" for i in range(12)),
            "lee nam-gu-8768",
            "parkbig-1234",
        ]
        run_id = await runs.create_run(
            pool, bucket=STORAGE_BUCKET, prefix=PREFIX, options={"match": "none"},
            folders=[(f, None) for f in names], chunk=5,
        )  # fmt: skip
    finally:
        await pool.close()
    assert [len(c["folders"]) for c in await _chunks(db, run_id)] == [5, 5, 4]

    # As `loader migrate` without --report: only the folders not done are read back.
    # Two attempts at the broken folder, not the default six: its failure is the point.
    opts = options(outage.url, db_url, resume=run_id, folder_rows=False)
    first = await migrate(replace(opts, source=replace(opts.source, retries=2)))
    assert first.status == "incomplete"
    assert [(f["folder"], f["state"]) for f in first.folders] == [(BROKEN_FOLDER, "failed")]
    assert first.totals["folders"] == len(names) and first.totals["folders_failed"] == 1
    chunks = await _chunks(db, run_id)
    # The broken folder's chunk is recorded done without it; it failed in a chunk of its own.
    assert [(len(c["folders"]), c["state"]) for c in chunks] == [
        (4, "done"), (5, "done"), (4, "done"), (1, "failed"),
    ]  # fmt: skip
    assert chunks[3]["folders"] == [BROKEN_FOLDER] and BROKEN_FOLDER not in chunks[0]["folders"]
    assert "disk on fire" in chunks[3]["errors"][BROKEN_FOLDER]
    assert set(chunks[0]["counts"]) == set(chunks[0]["folders"])  # each folder's counts
    view = await db.fetch(
        "SELECT folder, state, error FROM loader.folders WHERE run_id = $1", run_id
    )
    assert sorted(r["folder"] for r in view) == sorted(names)
    assert {r["folder"] for r in view if r["state"] == "failed"} == {BROKEN_FOLDER}

    outage.on = False
    second = await migrate(options(outage.url, db_url, resume=run_id))
    assert second.status == "succeeded"
    chunks = await _chunks(db, run_id)
    assert [c["state"] for c in chunks] == ["done"] * 4
    assert chunks[3]["attempts"] == 2 and chunks[3]["errors"] is None  # retried alone
    assert chunks[0]["attempts"] == 1  # the others were not walked again
    assert second.totals["folders"] == second.totals["folders_done"] == len(names)
    assert sorted(f["folder"] for f in second.folders) == sorted(names)  # every folder's row


async def test_a_claim_takes_the_chunks_asked_for_and_returns_those_held_already(
    db: asyncpg.Connection, db_url: str
) -> None:
    pool = await create_pool(db_url, 2)
    try:
        async with pool.acquire() as conn:
            await init_schema(conn)
        folders = [(f"c{i:03d}", i) for i in range(40)]
        run_id = await runs.create_run(
            pool, bucket=STORAGE_BUCKET, prefix=PREFIX, options={}, folders=folders, chunk=4
        )
        async with runs.worker_lock(db_url, run_id) as lock:
            first = await runs.claim_chunks(pool, run_id, lock.worker_id, 3)
            assert [f for _, chunk in first for f in chunk] == folders[:12]
            again = await runs.claim_chunks(pool, run_id, lock.worker_id, 2)
            # Two more, with the three held already (as for a claim whose reply was lost), in
            # the order of the chunks.
            assert [f for _, chunk in again for f in chunk] == folders[:20]
            # Those known to be in flight are left out.
            known = [chunk_id for chunk_id, _ in again[:4]]
            third = await runs.claim_chunks(pool, run_id, lock.worker_id, 1, known)
            assert [f for _, chunk in third for f in chunk] == folders[16:24]
        # A worker whose lock is gone gets nothing, not even what it held.
        assert await runs.claim_chunks(pool, run_id, lock.worker_id, 2) == []
    finally:
        await pool.close()


async def test_a_run_of_many_folders_writes_a_row_per_chunk_not_per_folder(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    folders = [f"c{i:04d}" for i in range(450)]
    url = await start_storage(catalogue_of(f"{PREFIX}{f}/a.jpg" for f in folders))
    for _ in range(2):  # the first run, then a re-run that changes nothing
        result = await migrate(options(url, db_url))
        assert result.status == "succeeded"
        assert result.totals["folders_done"] == len(folders)
        chunks = await _chunks(db, result.run_id)
        size = runs.chunk_size(len(folders))
        assert size == 4 and len(chunks) == -(-len(folders) // size)
        assert all(c["state"] == "done" and c["attempts"] == 1 for c in chunks)
        listed = [f for c in chunks for f in c["folders"]]
        assert listed == folders  # in order, each once
    assert result.totals["media"] == len(folders)


@pytest.mark.slow  # ~5 s: three worker processes on a Storage server with latency
async def test_survivors_take_over_the_chunks_of_a_worker_killed_mid_chunk(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """Chunks of several folders (240 folders: 2 each) under three joined workers, one of
    them SIGKILLed while it holds chunks, with rows of chunks not recorded yet in the table:
    the survivors take its chunks over whole, and the table and the run end exact."""
    folders = [f"c{i:04d}" for i in range(240)]
    media = [f"{PREFIX}{f}/{name}" for f in folders for name in ("a.jpg", "2024-01-02/b.png")]
    latency = Faults(latency_ms=40)  # read by the server at each request
    url = await start_storage(catalogue_of(media), faults=latency)
    args = ("--match", "none", "--list-concurrency", "2", "--batch-size", "20")
    prepared = await run_loader(*migrate_args(url, db_url, *args, "--prepare"))
    assert prepared.code == 0, prepared.err
    run_id = int(prepared.out.strip())
    assert runs.chunk_size(len(folders)) == 2
    argv = loader_argv(*migrate_args(url, db_url, *args, "--join", str(run_id)))
    workers = await joined_workers(argv, 3)

    async def ready() -> bool:
        done = await db.fetchval("SELECT count(*) FROM loader.chunks WHERE state = 'done'")
        written = await db.fetchval("SELECT count(*) FROM image_assets")
        return done >= 5 and written > done * 2 * 2  # 2 folders a chunk, 2 files a folder

    await kill_a_holder(db, workers, ready)
    latency.latency_ms = 0  # the takeover is what is tested, not the pace
    with anyio.fail_after(90):
        codes = [await w.wait() for w in workers]
    assert sorted(codes) == [-signal.SIGKILL, 0, 0]
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", run_id) == (
        "succeeded"
    )
    chunks = await _chunks(db, run_id)
    assert {c["state"] for c in chunks} == {"done"} and len(chunks) == 120
    assert max(c["attempts"] for c in chunks) == 2  # the victim's were claimed again
    assert sorted(f for c in chunks for f in c["folders"]) == folders  # each folder once
    paths = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in paths) == sorted(media)
    counted = await db.fetchval("SELECT loader.run_counts($1)", run_id)
    assert counted["inserted"] == len(media) and counted["folders_done"] == len(folders)


# The per-folder table of earlier versions, as they created it.
OLD_FOLDERS_TABLE = """
CREATE TABLE loader.folders (
    run_id bigint NOT NULL REFERENCES loader.runs ON DELETE CASCADE,
    folder text NOT NULL,
    customer_id bigint,
    state text NOT NULL DEFAULT 'pending'
          CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    claimed_by text,
    claimed_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    counts jsonb NOT NULL DEFAULT '{}',
    error text,
    PRIMARY KEY (run_id, folder)
);
"""


async def test_a_database_of_an_earlier_version_keeps_its_runs_folders(
    db: asyncpg.Connection,
) -> None:
    """Each row of the old per-folder table becomes a chunk of one folder, once."""
    await init_schema(db)
    await db.execute("DROP VIEW loader.folders")
    await db.execute(OLD_FOLDERS_TABLE)
    run_id = await db.fetchval(
        "INSERT INTO loader.runs (bucket, prefix) VALUES ('b', 'p/') RETURNING run_id"
    )
    await db.execute(
        "INSERT INTO loader.folders (run_id, folder, customer_id, state, claimed_by, attempts,"
        " counts, error) VALUES ($1, 'a', 7, 'done', 'w1', 1, '{\"media\": 3}', NULL),"
        " ($1, 'b', NULL, 'failed', 'w1', 2, '{\"media\": 1}', 'disk on fire'),"
        " ($1, 'c', NULL, 'pending', NULL, 0, '{}', NULL)",
        run_id,
    )
    await init_schema(db)
    await init_schema(db)  # once: the second finds the view
    view = [
        dict(r)
        for r in await db.fetch(
            "SELECT folder, customer_id, state, claimed_by, attempts, counts, error"
            " FROM loader.folders WHERE run_id = $1 ORDER BY folder",
            run_id,
        )
    ]
    assert view == [
        {"folder": "a", "customer_id": 7, "state": "done", "claimed_by": "w1", "attempts": 1,
         "counts": {"media": 3}, "error": None},
        {"folder": "b", "customer_id": None, "state": "failed", "claimed_by": "w1",
         "attempts": 2, "counts": {"media": 1}, "error": "disk on fire"},
        {"folder": "c", "customer_id": None, "state": "pending", "claimed_by": None,
         "attempts": 0, "counts": {}, "error": None},
    ]  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM loader.chunks WHERE run_id = $1", run_id) == 3
    totals = await db.fetchval("SELECT loader.run_counts($1)", run_id)
    assert (totals["folders"], totals["folders_done"], totals["media"]) == (3, 1, 4)
