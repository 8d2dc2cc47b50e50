"""Through a real PgBouncer (the system package, default settings): every command works
through a session-mode pooler; a transaction-mode pooler is refused before anything is written.

One PgBouncer per mode serves the whole module (a wildcard database entry reaches each test's
fresh database). Commands run as subprocesses, as a user runs them, with the pooler's URL as
their only way to the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import orjson
import pytest

from loader import db as dbmod
from loader.devtools.storage_server import Faults
from loader.errors import ExitCode, TransactionPoolerError
from tests import pgbouncer
from tests.cli_helpers import migrate_args, run_loader
from tests.sample import media_names, sample_catalogue
from tests.storage_fixtures import StartStorage

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(pgbouncer.available() is not None, reason=str(pgbouncer.available())),
]

SLOW = ("--list-api", "v1", "--page-size", "50", "--batch-size", "100",
        "--list-concurrency", "2", "--match", "none")  # fmt: skip


@pytest.fixture(scope="module")
def session_pooler(pg_server_url: str) -> Iterator[pgbouncer.Pooler]:
    with pgbouncer.running(pg_server_url, "session") as pooler:
        yield pooler


@pytest.fixture(scope="module")
def transaction_pooler(pg_server_url: str) -> Iterator[pgbouncer.Pooler]:
    with pgbouncer.running(pg_server_url, "transaction") as pooler:
        yield pooler


async def _assets(db: asyncpg.Connection) -> list[tuple]:
    rows = await db.fetch("SELECT * FROM image_assets ORDER BY file_path")
    return [tuple(r) for r in rows]


async def test_every_command_works_through_a_session_pooler(
    start_storage: StartStorage,
    db: asyncpg.Connection,
    db_url: str,
    session_pooler: pgbouncer.Pooler,
    tmp_path: Path,
) -> None:
    pooled = session_pooler.url(db_url)
    # Latency (read at each request) while the two workers share the run, so both take
    # folders; none for the commands after, whose point is their result through the pooler.
    latency = Faults(latency_ms=20)
    url = await start_storage(sample_catalogue(), faults=latency)

    # two workers share one run
    prepared = await run_loader(*migrate_args(url, pooled, *SLOW, "--prepare"))
    assert prepared.code == 0, prepared.err
    run_id = prepared.out.strip()
    results = []

    async def worker() -> None:
        results.append(await run_loader(*migrate_args(url, pooled, *SLOW, "--join", run_id)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    paths = {r["file_path"] for r in await db.fetch("SELECT file_path FROM image_assets")}
    assert paths == media_names()
    folders = await db.fetch("SELECT state, attempts, claimed_by FROM loader.folders")
    assert {f["state"] for f in folders} == {"done"}
    assert {f["attempts"] for f in folders} == {1}
    assert len({f["claimed_by"] for f in folders}) == 2

    # an empty re-run changes nothing
    latency.latency_ms = 0
    migrated = await _assets(db)
    report = tmp_path / "rerun.json"
    rerun = await run_loader(*migrate_args(url, pooled, *SLOW, "--report", str(report)))
    assert rerun.code == 0, rerun.err
    body = orjson.loads(report.read_bytes())
    assert (body["inserted"], body["updated"], body["unchanged"]) == (0, 0, len(media_names()))
    assert await _assets(db) == migrated

    verified = await run_loader("verify", *migrate_args(url, pooled)[1:])
    assert verified.code == 0, verified.err

    # a backup to a file; the run rolled back; the backup restored
    backup = tmp_path / "assets.zip"
    taken = await run_loader("backup", "--to", str(backup), "--database-url", pooled)
    assert taken.code == 0, taken.err
    undone = await run_loader("rollback", run_id, "--database-url", pooled)
    assert undone.code == 0, undone.err
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 0
    restored = await run_loader("restore", str(backup), "--database-url", pooled)
    assert restored.code == 0, restored.err
    assert await _assets(db) == migrated


async def test_a_transaction_pooler_is_refused_before_anything_is_written(
    start_storage: StartStorage,
    db: asyncpg.Connection,
    db_url: str,
    transaction_pooler: pgbouncer.Pooler,
) -> None:
    pooled = transaction_pooler.url(db_url)
    url = await start_storage(sample_catalogue())
    for argv in (migrate_args(url, pooled, *SLOW), ("runs", "--database-url", pooled)):
        done = await run_loader(*argv)
        assert done.code == ExitCode.TRANSACTION_POOLER, done.err
        lines = done.err.strip().splitlines()
        assert "transaction-mode pooler" in lines[-1]
        assert "session pooler" in lines[-1] and "direct connection" in lines[-1]
        assert not any("Traceback" in line for line in lines)
    assert await db.fetchval("SELECT count(*) FROM loader.runs") == 0
    assert await db.fetchval("SELECT count(*) FROM loader.folders") == 0
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 0


async def test_supabase_transaction_pooler_is_known_by_its_address() -> None:
    url = "postgresql://postgres.abcdefgh:s3cret@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"
    with pytest.raises(TransactionPoolerError) as caught:
        await dbmod.require_session(url)  # refused before any connection is tried
    message = str(caught.value)
    assert "port 6543" in message and "s3cret" not in message
    assert "postgres.abcdefgh:***@aws-0-eu-west-1.pooler.supabase.com:6543" in message
