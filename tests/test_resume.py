"""Crash safety and scale-out: SIGKILL then --resume, two workers on one run, and faults on
both sides (Storage errors and a database connection killed mid-run)."""

from __future__ import annotations

import signal
import subprocess

import anyio
import asyncpg
import pytest

from loader.devtools.storage_server import Faults
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from tests.cli_helpers import COMPARED_COLUMNS, child_env, loader_argv, migrate_args, run_loader
from tests.sample import media_names, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage

SLOW = ("--list-api", "v1", "--page-size", "50", "--batch-size", "100",
        "--list-concurrency", "2", "--match", "none")  # fmt: skip


async def table_rows(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT {COMPARED_COLUMNS} FROM image_assets ORDER BY file_path")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


async def test_sigkill_then_resume_equals_an_uninterrupted_run(
    start_storage: StartStorage, make_database, db: asyncpg.Connection, db_url: str
) -> None:
    latency = Faults(latency_ms=40)  # read by the server at each request
    slow_url = await start_storage(sample_catalogue(), faults=latency)
    child = await anyio.open_process(
        loader_argv(*migrate_args(slow_url, db_url, *SLOW)), env=child_env(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with anyio.fail_after(60):
        while await db.fetchval("SELECT count(*) FROM loader.folders WHERE state = 'done'") < 3:
            assert child.returncode is None, "the run finished before it could be killed"
            await anyio.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    assert await db.fetchval(
        "SELECT count(*) FROM loader.folders WHERE run_id = $1 AND state <> 'done'", run_id
    ) > 0  # fmt: skip

    latency.latency_ms = 0  # only the kill needed a slow run; the resume may be quick
    resumed = await run_loader(*migrate_args(slow_url, db_url, *SLOW, "--resume", str(run_id)))
    assert resumed.code == 0, resumed.err
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", run_id) == (
        "succeeded"
    )

    reference_url = await make_database()
    fast_url = await start_storage(sample_catalogue())
    reference = await run_loader(*migrate_args(fast_url, reference_url, *SLOW))
    assert reference.code == 0, reference.err
    # same rows (the cdn_url host differs between the two servers: compare paths only)
    strip = lambda rows: [(*r[:6], r[6].split("/object/public/")[1], *r[7:]) for r in rows]  # noqa: E731
    assert strip(await table_rows(db_url)) == strip(await table_rows(reference_url))
    # the journal is exact: one entry per inserted row, across the kill
    assert await db.fetchval(
        "SELECT count(*) FROM loader.journal WHERE run_id = $1 AND action = 'insert'", run_id
    ) == len(media_names())  # fmt: skip


async def test_two_joined_workers_do_every_file_exactly_once(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue(), faults=Faults(latency_ms=40))
    prepared = await run_loader(*migrate_args(url, db_url, *SLOW, "--prepare"))
    assert prepared.code == 0, prepared.err
    run_id = prepared.out.strip()
    results = []

    async def worker() -> None:
        results.append(await run_loader(*migrate_args(url, db_url, *SLOW, "--join", run_id)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    paths = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in paths) == sorted(media_names())
    folders = await db.fetch("SELECT state, attempts, claimed_by FROM loader.folders")
    assert {f["state"] for f in folders} == {"done"}
    assert {f["attempts"] for f in folders} == {1}  # no folder done twice
    assert len({f["claimed_by"] for f in folders}) == 2  # both workers took a share
    assert await db.fetchval("SELECT status FROM loader.runs") == "succeeded"


@pytest.mark.slow  # ~2 s: 10% Storage faults and a writer killed
async def test_storage_faults_and_a_killed_db_connection_lose_nothing(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    faults = Faults(fail_rate=0.10, stall_s=2.0, retry_after=0, latency_ms=5, seed=11)
    url = await start_storage(sample_catalogue(), faults=faults)
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY,
                           list_api="v1", page_size=50, request_timeout_s=0.5, retries=12,
                           list_concurrency=4)  # fmt: skip
    opts = MigrateOptions(source=source, database_url=db_url, batch_size=100, match="none")
    killed: list[int] = []

    async def kill_one_writer() -> None:
        with anyio.fail_after(60):
            while not killed:
                pid = await db.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND (query LIKE '%journal_inserts%'"
                    " OR query LIKE '%loader_stage%' OR query LIKE 'COPY \"image_assets\"%')"
                    # mid-statement if we can catch one, else a writer between batches
                    " ORDER BY state = 'active' DESC LIMIT 1"
                )
                if pid and await db.fetchval("SELECT pg_terminate_backend($1)", pid):
                    killed.append(pid)
                await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_one_writer)
        result = await migrate(opts)
        tg.cancel_scope.cancel()
    assert killed, "no writer connection was caught mid-statement"
    assert result.status == "succeeded"
    paths = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in paths) == sorted(media_names())
    assert result.totals["inserted"] == len(media_names())
