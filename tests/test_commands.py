"""The commands run whole, in-process (click's CliRunner), on the paths behind the README's
guarantees: a folder that keeps failing (exit 11, then --resume finishes it), a run stopped
midway (exit 12, then --resume), --max-rps, and the bodies of `verify --repair`, `rollback`,
`runs` and `demo run`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import asyncpg
import orjson
import pytest
from aiohttp import web

from loader import embedded
from loader.devtools.storage_server import Faults, build_app
from loader.errors import ExitCode
from loader.storage_client import RateLimiter
from tests.cli_helpers import invoke, migrate_args
from tests.sample import PREFIX, media_names, sample_catalogue
from tests.storage_fixtures import (
    BROKEN_FOLDER,
    STORAGE_BUCKET,
    STORAGE_KEY,
    Outage,
    ServeStorageApp,
)


def args(url: str, db_url: str, *extra: str) -> list[str]:
    return [*migrate_args(url, db_url, "--retries", "2", "--match", "none"), *extra]


async def test_a_folder_that_keeps_failing_exits_11_and_resume_finishes_it(
    outage: Outage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    first = await invoke(*args(outage.url, db_url, "--report", str(report)))
    assert first.code == ExitCode.INCOMPLETE, first.err
    body = orjson.loads(report.read_bytes())
    assert [f["folder"] for f in body["failed_folders"]] == [BROKEN_FOLDER]
    assert "disk on fire" in body["failed_folders"][0]["reason"]
    assert f"loader migrate --resume {body['run_id']}" in first.out
    registered = {r[0] for r in await db.fetch("SELECT file_path FROM image_assets")}
    broken = {n for n in media_names() if n.startswith(f"{PREFIX}{BROKEN_FOLDER}/")}
    assert broken and registered == media_names() - broken  # the walk went on without it

    scan = await invoke("scan", "--storage-url", outage.url, "--key", STORAGE_KEY,
                        "--bucket", STORAGE_BUCKET, "--retries", "2")  # fmt: skip
    assert scan.code == ExitCode.INCOMPLETE and "could not be listed" in scan.err

    outage.on = False  # the outage ends
    resumed = await invoke(*args(outage.url, db_url, "--resume", str(body["run_id"])))
    assert resumed.code == 0, resumed.err
    registered = {r[0] for r in await db.fetch("SELECT file_path FROM image_assets")}
    assert registered == media_names()
    assert await db.fetchval("SELECT status FROM loader.runs") == "succeeded"


@asynccontextmanager
async def tcp_proxy(target_host: str, target_port: int) -> AsyncIterator[tuple[int, anyio.Event]]:
    """A loopback TCP proxy to the database: yields its port and an event that, once set,
    drops every proxied connection and refuses new ones (the database "dies")."""
    dead = anyio.Event()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError,
                                 anyio.ClosedResourceError):  # fmt: skip
            async for chunk in source:
                await sink.send(chunk)

    async def handle(client: anyio.abc.SocketStream) -> None:
        server = await anyio.connect_tcp(target_host, target_port)
        async with client, server, anyio.create_task_group() as tg:
            tg.start_soon(pipe, client, server)
            await pipe(server, client)
            tg.cancel_scope.cancel()

    async def serve_until_dead() -> None:
        async with anyio.create_task_group() as connections:
            connections.start_soon(listener.serve, handle)
            await dead.wait()
            connections.cancel_scope.cancel()  # drops every proxied connection
        await listener.aclose()  # and refuses new ones

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_until_dead)
        try:
            yield port, dead
        finally:
            dead.set()


@pytest.mark.slow  # ~7 s: a slow Storage server, retries against a dead database
async def test_a_run_stopped_midway_exits_12_and_resume_finishes_it(
    start_storage: Callable[..., Awaitable[str]], db: asyncpg.Connection, db_url: str
) -> None:
    """The database dies mid-run (connections dropped, new ones refused): after its retries
    the run stops with exit 12 and says how to resume; with the database back, --resume
    finishes it with every file once."""
    latency = Faults(latency_ms=100)  # read at each request: 0 for the resume
    slow = await start_storage(sample_catalogue(), faults=latency)
    target = urlsplit(db_url)
    async with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as (port, dead):
        via_proxy = urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{port}"))
        slow_args = migrate_args(
            slow,
            via_proxy,
            "--list-api",
            "v1",
            "--page-size",
            "50",
            "--list-concurrency",
            "2",
            "--batch-size",
            "100",
            "--match",
            "none",
        )

        async def die_after_first_folder() -> None:
            with anyio.fail_after(60):
                while not await db.fetchval(
                    "SELECT count(*) FROM loader.folders WHERE state = 'done'"
                ):  # fmt: skip
                    await anyio.sleep(0.05)
            dead.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(die_after_first_folder)
            stopped = await invoke(*slow_args)
    assert stopped.code == ExitCode.ABORTED, stopped.err
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    assert f"--resume {run_id}" in stopped.err
    assert await db.fetchval(
        "SELECT count(*) FROM loader.folders WHERE run_id = $1 AND state <> 'done'", run_id
    )  # fmt: skip

    latency.latency_ms = 0  # only the stopped run needed a slow server
    resumed = await invoke(*migrate_args(slow, db_url, "--resume", str(run_id)))
    assert resumed.code == 0, resumed.err
    rows = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r[0] for r in rows) == sorted(media_names())  # each once


async def test_max_rps_spaces_every_request(
    serve_storage_app: ServeStorageApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request the server answered went through the limiter, and by any moment T after
    the first request at most 1 + T * rps had been let through: each grant is checked against
    that bound, which the limiter guarantees however late a task resumes (no timing luck)."""
    app = build_app(sample_catalogue(), bucket=STORAGE_BUCKET, key=STORAGE_KEY)
    answered: list[str] = []  # every request, also the URL probe's 404 on the other form

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        answered.append(request.path)
        return await handler(request)

    app.middlewares.insert(0, count)  # outermost: sees what the layout middleware answers
    url = await serve_storage_app(app)
    first_call: list[float] = []
    starts: list[float] = []
    wait = RateLimiter.wait

    async def recorded(self: RateLimiter) -> None:
        first_call.append(first_call[0] if first_call else time.monotonic())
        await wait(self)
        starts.append(time.monotonic())

    monkeypatch.setattr(RateLimiter, "wait", recorded)
    rps = 40.0
    done = await invoke("scan", "--storage-url", url, "--key", STORAGE_KEY, "--bucket",
                        STORAGE_BUCKET, "--max-rps", str(rps))  # fmt: skip
    assert done.code == 0, done.err
    assert len(starts) == len(answered) > 5
    for k, started in enumerate(sorted(starts)):
        assert started - first_call[0] >= k / rps - 0.001, (k, started - first_call[0])


async def test_verify_repair_rollback_and_runs_commands(
    start_storage: Callable[..., Awaitable[str]], db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    source = ["--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET,
              "--database-url", db_url]  # fmt: skip
    first = await invoke(*migrate_args(url, db_url, "--match", "none"))
    assert first.code == 0, first.err
    await db.execute("DELETE FROM image_assets WHERE file_path LIKE '%IMG_0003.jpg'")
    missing = len([n for n in media_names() if n.endswith("IMG_0003.jpg")])

    found = await invoke("verify", *source)
    assert found.code == ExitCode.INCOMPLETE, found.err
    repaired = await invoke("verify", "--repair", *source)
    assert repaired.code == 0, repaired.err
    assert f"{missing:,} inserted" in repaired.err
    assert {r[0] for r in await db.fetch("SELECT file_path FROM image_assets")} == media_names()

    runs = await invoke("runs", "--database-url", db_url)
    assert runs.code == 0, runs.err
    assert "succeeded" in runs.out and "loader runs" in runs.out
    run_ids = [r[0] for r in await db.fetch("SELECT run_id FROM loader.runs ORDER BY run_id")]
    assert len(run_ids) == 2  # the migrate and the repair

    undone = await invoke("rollback", str(run_ids[1]), "--database-url", db_url)
    assert undone.code == 0, undone.err
    assert f"run {run_ids[1]} rolled back: {missing:,} rows deleted" in undone.out
    assert await db.fetchval("SELECT count(*) FROM image_assets") == len(media_names()) - missing
    again = await invoke("rollback", str(run_ids[1]), "--database-url", db_url)
    assert again.code == ExitCode.BAD_INPUT, again.err
    unknown = await invoke("rollback", "999", "--database-url", db_url)
    assert unknown.code == ExitCode.BAD_INPUT and "999" in unknown.err


@pytest.mark.slow  # ~2 s: the whole demo, seeded and migrated twice
async def test_demo_run_command(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`loader demo run` (what `make demo` runs) on the test server: seeds, migrates,
    verifies, re-runs, and ends with the next steps."""
    base = pg_server_url.rsplit("/", 1)[0]
    server = SimpleNamespace(url=lambda database="postgres": f"{base}/{database}")
    monkeypatch.setattr(embedded, "ensure_running", lambda *a, **kw: server)
    monkeypatch.setattr(embedded, "is_running", lambda *a, **kw: True)  # not ours to stop
    done = await invoke("demo", "run", env={"LOADER_STATE_DIR": str(tmp_path)})
    assert done.code == 0, done.err
    assert "re-run" in done.out and "0 inserted, 0 updated" in done.out
    assert "loader demo serve" in done.out  # the next steps
    assert (tmp_path / "demo" / "manifest.jsonl").exists()
