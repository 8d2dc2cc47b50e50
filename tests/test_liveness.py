"""Liveness that notices (issue 21): a worker whose lock connection is terminated stops
writing the folders others may now take over, and takes its lock again; a run's backup whose
connection is terminated is taken again while it can still be a "before" image, and says so in
the loader's words when it cannot; a run no live worker holds is recorded interrupted by the
first command that sees it, never while a worker holds it.

Faults are real: pg_terminate_backend on the connections the loader holds, SIGKILL of a worker
process, and table locks that hold a run's first write (or its backup's copy) back until the
fault is in place.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import anyio
import asyncpg
import orjson
import pytest

from loader import runs
from loader.backup import restore
from loader.db import init_schema
from loader.devtools.storage_server import Faults
from loader.eventlog import EventLog
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, MigrateResult, migrate
from loader.rollback import rollback
from tests.cli_helpers import child_env, loader_argv, migrate_args, run_loader
from tests.sample import sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, catalogue_of
from tests.test_backup import dump, odd_rows

pytestmark = pytest.mark.timeout(120)

PREFIX = "originals/customers/"
SLOW = ("--list-api", "v1", "--page-size", "50", "--batch-size", "50",
        "--list-concurrency", "2", "--match", "none")  # fmt: skip


def library(folders: int = 50, files: int = 100) -> list[str]:
    return [f"{PREFIX}c{f:03d}/IMG_{n:04d}.jpg" for f in range(folders) for n in range(files)]


def worker_options(url: str, db_url: str, **kw: object) -> MigrateOptions:
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY,
                           list_api="v1", page_size=50, list_concurrency=2)  # fmt: skip
    return MigrateOptions(source=source, database_url=db_url, batch_size=50, match="none",
                          **kw)  # type: ignore[arg-type]  # fmt: skip


# Who claimed each folder (with its chunk: worker id, and the application_name of the claiming
# connection), and who wrote each row of image_assets (application_name) while which worker
# held its folder, as committed at that moment. Each worker's pool connects with its own
# application_name, so a write names its worker.
RECORD_CLAIMS_AND_WRITES = """
CREATE TABLE public.claim_log (n bigserial, folder text, worker text, app text,
                               tx xid8 DEFAULT pg_current_xact_id());
CREATE TABLE public.write_log (n bigserial, folder text, app text, holder text);
CREATE FUNCTION public.log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'claimed' AND NEW.attempts <> OLD.attempts THEN
        INSERT INTO public.claim_log (folder, worker, app)
        SELECT folder, NEW.claimed_by, current_setting('application_name')
        FROM unnest(NEW.folders) AS folder;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER log_claim AFTER UPDATE ON loader.chunks
    FOR EACH ROW EXECUTE FUNCTION public.log_claim();
CREATE FUNCTION public.log_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    name text := split_part(substr(NEW.file_path, length('originals/customers/') + 1), '/', 1);
BEGIN
    INSERT INTO public.write_log (folder, app, holder)
    VALUES (name, current_setting('application_name'),
            (SELECT claimed_by FROM loader.folders WHERE folder = name));
    RETURN NEW;
END $$;
CREATE TRIGGER log_write AFTER INSERT OR UPDATE ON image_assets
    FOR EACH ROW EXECUTE FUNCTION public.log_write();
"""

# The backend holding a worker's liveness lock (worker_lock.sql): a bigint advisory key is
# shown in pg_locks as its high and low 32 bits.
LOCK_HOLDER = """
SELECT l.pid, a.application_name
FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock' AND l.objsubid = 1
  AND l.classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295
  AND l.objid::bigint = hashtextextended($1, 0) & 4294967295
"""


async def _terminate_a_holders_lock(db: asyncpg.Connection, run_id: int) -> tuple[str, str, int]:
    """Once a few folders are done and both workers hold folders, terminate the liveness-lock
    connection of a worker that holds some. Returns the application_name of that worker's
    pool, its worker id, and the last claim recorded once the lock was gone."""
    with anyio.fail_after(60):
        while True:
            done = await db.fetchval("SELECT count(*) FROM loader.folders WHERE state = 'done'")
            holders = await db.fetch(
                "SELECT DISTINCT claimed_by FROM loader.folders WHERE state = 'claimed'"
            )
            if done >= 4 and len(holders) == 2:
                break
            await anyio.sleep(0.01)
    worker = holders[0]["claimed_by"]
    pid, name = await db.fetchrow(LOCK_HOLDER, worker)
    assert name == f"loader worker {os.getpid()} run {run_id}"  # named for people to find
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    with anyio.fail_after(30):
        while await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await anyio.sleep(0.001)
    last_claim = await db.fetchval("SELECT max(n) FROM claim_log")
    app = await db.fetchval("SELECT app FROM claim_log WHERE worker = $1 LIMIT 1", worker)
    return app, worker, last_claim


@pytest.mark.slow  # ~4 s: two workers on a Storage server with latency
async def test_a_worker_that_loses_its_lock_never_writes_a_folder_another_holds(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    names = library()
    url = await start_storage(catalogue_of(names), faults=Faults(latency_ms=60))
    await db.execute(RECORD_CLAIMS_AND_WRITES)
    prepared = await migrate(worker_options(url, db_url, prepare_only=True))
    run_id = prepared.run_id
    assert run_id is not None
    results: dict[str, MigrateResult] = {}

    async def work(app: str) -> None:
        # application_name as a URL parameter: only the test's own way to tell writers apart
        with EventLog(tmp_path / f"{app}.jsonl") as log:
            opts = worker_options(url, f"{db_url}?application_name={app}", resume=run_id)
            results[app] = await migrate(opts, log=log)

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, "w0")
        tg.start_soon(work, "w1")
        victim, victim_id, lost_at = await _terminate_a_holders_lock(db, run_id)

    assert {app: r.status for app, r in results.items()} == {"w0": "succeeded", "w1": "succeeded"}
    paths = [r[0] for r in await db.fetch("SELECT file_path FROM image_assets")]
    assert sorted(paths) == sorted(names)  # every file, once
    # Every row was written by the worker that held its folder when it was written: the
    # victim never wrote a folder the other had taken over (the old code did, for seconds).
    app_of = {r["worker"]: r["app"] for r in await db.fetch("SELECT worker, app FROM claim_log")}
    writes = await db.fetch("SELECT folder, app, holder FROM write_log")
    assert len(writes) == len(names)
    wrong = [(w["folder"], w["app"], app_of.get(w["holder"])) for w in writes
             if app_of.get(w["holder"]) != w["app"]]  # fmt: skip
    assert not wrong, f"{len(wrong)} rows written by a worker that did not hold the folder"
    # Nor did it claim without its lock: after the lock was gone, at most the one claim then
    # running (a worker claims one chunk at a time) is recorded under its old id; the old code
    # went on claiming, and the other worker took each of those folders over again.
    late = await db.fetchval(
        "SELECT count(DISTINCT tx) FROM claim_log WHERE worker = $1 AND n > $2", victim_id, lost_at
    )
    assert late <= 1, f"{late} claims by a worker whose lock was gone"
    # The victim noticed, and went on under a new lock (a new worker id).
    events = [
        orjson.loads(line) for line in (tmp_path / f"{victim}.jsonl").read_bytes().splitlines()
    ]
    assert [e["event"] for e in events].count("worker_lock_lost") == 1
    started = [e["worker"] for e in events if e["event"] == "worker_started"]
    assert len(started) == len(set(started)) == 2
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", run_id) == (
        "succeeded"
    )


# -- the run's backup ---------------------------------------------------------------------

SNAPSHOT = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND state = 'idle in transaction'
  AND query LIKE '%idle_in_transaction_session_timeout%' AND pid <> ALL ($1::int[])
"""


async def _backup_snapshot(db: asyncpg.Connection, *, not_in: list[int]) -> int:
    """The backend holding the run's backup snapshot (sql/backup_hold_snapshot.sql)."""
    with anyio.fail_after(60):
        while (pid := await db.fetchval(SNAPSHOT, not_in)) is None:
            await anyio.sleep(0.01)
    return pid


async def test_a_backup_whose_connection_is_lost_before_the_first_change_is_taken_again(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await init_schema(db)
    await odd_rows(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    # Holds the run's first write back until the backup's connection was lost and retaken.
    writes = await asyncpg.connect(db_url)
    held = writes.transaction()
    await held.start()
    await writes.execute("LOCK TABLE image_assets IN SHARE MODE")
    results: list[MigrateResult] = []

    async def run() -> None:
        results.append(await migrate(worker_options(url, db_url)))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            first = await _backup_snapshot(db, not_in=[])
            assert await db.fetchval("SELECT pg_terminate_backend($1)", first)
            await _backup_snapshot(db, not_in=[first])  # taken again, on a new connection
            await held.rollback()
    finally:
        await writes.close()
    [result] = results
    assert result.status == "succeeded" and result.totals["inserted"] > 0
    assert not [w for w in result.warnings if "backup" in w], result.warnings
    assert result.backup_id is not None
    assert await db.fetchval(
        "SELECT run_id FROM loader.backups WHERE backup_id = $1", result.backup_id
    ) == result.run_id  # fmt: skip
    # It is the table before the run, though its snapshot was taken twice.
    await restore(db, str(result.backup_id))
    assert await dump(db) == before


async def test_a_backup_lost_after_the_run_changed_rows_says_so_in_the_loaders_words(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await init_schema(db)
    await odd_rows(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    writes, copies = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    held_writes, held_copies = writes.transaction(), copies.transaction()
    await held_writes.start()
    await writes.execute("LOCK TABLE image_assets IN SHARE MODE")
    results: list[MigrateResult] = []

    async def run() -> None:
        results.append(await migrate(worker_options(url, db_url)))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await _backup_snapshot(db, not_in=[])
            # The copy will wait for this lock once the run's first batch changed rows.
            await held_copies.start()
            await copies.execute("LOCK TABLE loader.backups IN ACCESS EXCLUSIVE MODE")
            await held_writes.rollback()
            with anyio.fail_after(60):
                while (pid := await db.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%backup_take%'"
                )) is None:  # fmt: skip
                    await anyio.sleep(0.01)
            assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
            await held_copies.rollback()
    finally:
        await writes.close()
        await copies.close()
    [result] = results
    assert result.status == "succeeded" and result.backup_id is None
    assert [w for w in result.warnings if "backup" in w] == [
        "the run's backup failed (its database connection was lost after the run had changed"
        " rows, so it can no longer hold the table as it was before the run); its journal still"
        f" undoes the run exactly (loader rollback {result.run_id})"
    ]
    assert await db.fetchval("SELECT count(*) FROM loader.backups") == 0
    assert result.run_id is not None
    await rollback(db, result.run_id)
    assert await dump(db) == before  # what the warning promises


# -- runs no live worker holds ------------------------------------------------------------


async def _status(db: asyncpg.Connection, run_id: int) -> str:
    return await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", run_id)


async def test_a_killed_run_is_recorded_interrupted_by_the_next_runs_and_resumes(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    names = library(20, 60)
    url = await start_storage(catalogue_of(names), faults=Faults(latency_ms=40))
    child = await anyio.open_process(loader_argv(*migrate_args(url, db_url, *SLOW)),
                                     env=child_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    with anyio.fail_after(60):
        while await db.fetchval("SELECT count(*) FROM loader.folders WHERE state = 'done'") < 2:
            assert child.returncode is None, "the run finished before it could be killed"
            await anyio.sleep(0.05)
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    # Its writes wait meanwhile, so it cannot finish while `loader runs` looks at it.
    writes = await asyncpg.connect(db_url)
    try:
        async with writes.transaction():
            await writes.execute("LOCK TABLE image_assets IN SHARE MODE")
            live = await run_loader("runs", "--database-url", db_url)
            assert live.code == 0, live.err
            assert child.returncode is None
            assert await _status(db, run_id) == "running"  # a live run is left alone
            child.send_signal(signal.SIGKILL)
            await child.wait()
    finally:
        await writes.close()
    assert await _status(db, run_id) == "running"  # nobody could mark anything

    listed = await run_loader("runs", "--database-url", db_url)
    assert listed.code == 0, listed.err
    assert await _status(db, run_id) == "interrupted"  # recorded, not only shown
    row = next(line for line in listed.out.splitlines() if re.match(rf"\W*{run_id}\b", line))
    assert "interrupted" in row, listed.out

    resumed = await run_loader(*migrate_args(url, db_url, *SLOW, "--resume", str(run_id)))
    assert resumed.code == 0, resumed.err
    assert await _status(db, run_id) == "succeeded"
    paths = [r[0] for r in await db.fetch("SELECT file_path FROM image_assets")]
    assert sorted(paths) == sorted(names)


@pytest.mark.slow  # ~1.3 s: markers racing a worker on a Storage server with latency
async def test_a_run_is_marked_only_while_no_worker_holds_it(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """Markers racing a worker: a prepared run (no worker yet) is marked; the worker that joins
    it sets it running once it holds the run's lock, and from then on no marker changes it."""
    url = await start_storage(catalogue_of(library(20, 60)), faults=Faults(latency_ms=40))
    prepared = await migrate(worker_options(url, db_url, prepare_only=True))
    run_id = prepared.run_id
    assert run_id is not None
    assert await runs.mark_interrupted(db) == [run_id]
    assert await _status(db, run_id) == "interrupted"
    lock_name = f"loader worker {os.getpid()} run {run_id}"
    seen: list[tuple[bool, str]] = []  # (the worker's lock connection is there, status)

    async def mark_all_the_time() -> None:
        while True:
            await runs.mark_interrupted(db)
            held = await db.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = $1", lock_name
            )
            seen.append((held, await _status(db, run_id)))
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(mark_all_the_time)
        result = await migrate(worker_options(url, db_url, resume=run_id))
        tg.cancel_scope.cancel()
    assert result.status == "succeeded"
    live = [n for n, (held, status) in enumerate(seen) if held and status == "running"]
    assert live, f"never seen running while its worker held the lock: {seen}"
    assert "interrupted" not in [status for _, status in seen[live[0] :]], seen
    assert await _status(db, run_id) == "succeeded"
