"""An honest "done": a worker never exits 0 while folders of its run are left unwritten.

Faults are real: the claim's database connection is terminated with pg_terminate_backend,
before the claim runs and right after it commits (the reply is lost, the retry runs again);
and one of three joined worker processes is SIGKILLed while it holds folders.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import asyncpg
import pytest

from loader import runs
from loader.devtools.storage_server import Faults
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from tests.cli_helpers import joined_workers, kill_a_holder, loader_argv, migrate_args, run_loader
from tests.sample import media_names, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage

pytestmark = pytest.mark.timeout(120)

SLOW = ("--list-api", "v1", "--page-size", "50", "--batch-size", "100",
        "--list-concurrency", "2", "--match", "none")  # fmt: skip


def _lose_claim_connections(
    monkeypatch: pytest.MonkeyPatch, admin: asyncpg.Connection, when: str, times: int
) -> list[int]:
    """Make the first `times` claims lose their connection: `before` the claim runs, or
    `after` it committed (so the worker never sees the folders it was given)."""
    real_retrying = runs.retrying
    lost: list[int] = []

    async def retrying(pool: Any, call: Callable[[Any], Awaitable[Any]], **kw: Any) -> Any:
        if kw.get("what") != "claiming folders":
            return await real_retrying(pool, call, **kw)

        async def faulty(conn: Any) -> Any:
            if len(lost) >= times:
                return await call(conn)
            pid = conn.get_server_pid()
            if when == "before":
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                lost.append(pid)
                return await call(conn)
            await call(conn)  # committed: the folders are now this worker's
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            lost.append(pid)
            raise asyncpg.exceptions.ConnectionDoesNotExistError("reply lost after commit")

        return await real_retrying(pool, faulty, **kw)

    monkeypatch.setattr(runs, "retrying", retrying)
    return lost


@pytest.mark.slow  # ~1.3 s each: a Storage server with latency, a connection killed
@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_claim_whose_connection_dies_still_writes_every_folder(
    when: str,
    monkeypatch: pytest.MonkeyPatch,
    start_storage: StartStorage,
    db: asyncpg.Connection,
    db_url: str,
) -> None:
    url = await start_storage(sample_catalogue())
    lost = _lose_claim_connections(monkeypatch, db, when, times=3)
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY,
                           list_api="v1", page_size=50, list_concurrency=2)  # fmt: skip
    result = await migrate(MigrateOptions(source=source, database_url=db_url, batch_size=100,
                                          match="none"))  # fmt: skip
    assert len(lost) == 3
    assert result.status == "succeeded", result.folders
    assert result.exit_code == 0
    states = await db.fetch("SELECT state, count(*) AS n FROM loader.folders GROUP BY state")
    assert {r["state"]: r["n"] for r in states} == {"done": 14}
    paths = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in paths) == sorted(media_names())
    assert await db.fetchval("SELECT status FROM loader.runs") == "succeeded"


async def test_survivors_take_over_the_folders_of_a_worker_killed_late(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    latency = Faults(latency_ms=80)  # read by the server at each request
    url = await start_storage(sample_catalogue(), faults=latency)
    prepared = await run_loader(*migrate_args(url, db_url, *SLOW, "--prepare"))
    assert prepared.code == 0, prepared.err
    run_id = prepared.out.strip()
    argv = loader_argv(*migrate_args(url, db_url, *SLOW, "--join", run_id))
    workers = await joined_workers(argv, 3)

    async def late() -> bool:  # several folders are done; the victim holds some right then
        return await db.fetchval("SELECT count(*) FROM loader.folders WHERE state = 'done'") >= 4

    victim = await kill_a_holder(db, workers, late)
    # The survivors still hold folders and must take over the victim's: no need to be slow.
    latency.latency_ms = 0
    with anyio.fail_after(90):
        codes = [await w.wait() for w in workers]
    assert sorted(codes) == [-signal.SIGKILL, 0, 0]
    assert victim.returncode == -signal.SIGKILL
    assert await db.fetchval("SELECT status FROM loader.runs") == "succeeded"
    states = await db.fetch("SELECT DISTINCT state FROM loader.folders")
    assert [r["state"] for r in states] == ["done"]
    paths = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in paths) == sorted(media_names())
