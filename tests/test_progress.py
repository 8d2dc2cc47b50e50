"""Progress a person can read (issue 22, item 1) and a report on every exit (item 2).

On a terminal `loader migrate` draws a bar with % done and an ETA; elsewhere it prints a plain
line every --progress-every seconds and logs `progress` events at that cadence. A run that
stops early (Ctrl-C: exit 12; Storage gone: exit 6) still writes its --report: status, totals
so far, failed folders and the command that resumes it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import asyncpg
import orjson
import pytest
from aiohttp import web

from loader import progress
from loader import rollback as rollback_module
from loader.backup import backup_to_file, restore
from loader.db import init_schema
from loader.devtools.storage_server import Faults, build_app
from loader.errors import ExitCode
from loader.migrate import migrate
from loader.progress import LiveStats
from loader.rollback import rollback
from tests.cli_helpers import child_env, invoke, loader_argv, migrate_args, run_loader
from tests.sample import sample_catalogue
from tests.storage_fixtures import (
    STORAGE_BUCKET,
    STORAGE_KEY,
    ServeStorageApp,
    StartStorage,
    catalogue_of,
)
from tests.test_backup import odd_rows
from tests.test_migrate import options
from tests.test_rollback import dump, seed_odd_tags

pytestmark = pytest.mark.timeout(120)

PREFIX = "originals/customers/"
# Listed one folder per call, two at a time, with Storage's latency: a run of a few seconds
# whatever the machine's speed, so progress has something to show.
SLOW = ("--list-api", "v1", "--match", "none", "--list-concurrency", "2", "--batch-size", "4")
FOLDERS = 60


def names(folders: int = FOLDERS, files: int = 2) -> list[str]:
    return [f"{PREFIX}c{f:04d}/IMG_{n}.jpg" for f in range(folders) for n in range(files)]


def read_all(fd: int) -> bytes:
    """Everything written to a pseudo-terminal until its last writer closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:  # Linux: EIO once the other side is closed
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- item 1: progress ---------------------------------------------------------------------


def test_every_output_computes_its_figures_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """% done, rates and ETA from one clock; a resumed run's earlier folders count as done
    but not towards its pace."""
    now = [100.0]
    monkeypatch.setattr(progress, "time", type("Clock", (), {"monotonic": lambda: now[0]}))
    stats = LiveStats(rates=("objects", "rows"), started=100.0)
    stats.step("listing the top level")
    now[0] = 110.0
    figures = stats.figures()
    assert (figures.total, figures.percent, figures.eta_s) == (None, None, None)
    assert figures.line("migrate") == (
        "migrate: listing the top level, 0 objects (0/s), 0 rows (0/s), elapsed 0:00:10,"
        " ETA unknown"
    )
    stats.begin(100, done=20)  # 20 folders were done by an earlier attempt
    now[0] = 130.0
    stats.done, stats.objects, stats.rows_written = 60, 4000, 3000
    figures = stats.figures()
    assert (figures.percent, figures.eta_s, figures.elapsed_s) == (60.0, 20.0, 30.0)
    assert (figures.objects_per_s, figures.rows_per_s) == (200.0, 150.0)
    assert figures.line("migrate") == (
        "migrate: 60.0% done, 60/100 folders, 4,000 objects (200/s), 3,000 rows (150/s),"
        " elapsed 0:00:30, ETA 0:00:20"
    )
    assert figures.event()["eta_s"] == 20.0 and figures.event()["percent"] == 60.0
    stats.step("comparing")  # a step with no count: no bar, no ETA
    assert stats.figures().line("verify").startswith("verify: comparing, 60 folders, ")
    assert stats.figures().eta_s is None
    rows = LiveStats(unit="rows", rates=(), started=130.0)
    rows.begin(1000)
    now[0] = 140.0
    rows.done = 250
    assert rows.figures().line("rollback") == (
        "rollback: 25.0% done, 250/1,000 rows, 25 rows/s, elapsed 0:00:10, ETA 0:00:30"
    )


async def test_rollback_in_small_chunks_is_exact_and_counts_every_row(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Applied a chunk at a time (for progress), a rollback still gives the table back byte
    for byte: inserts, restores of NULL/'{}'/'{NULL}' tags, and a later run undone first."""
    monkeypatch.setattr(rollback_module, "APPLY_CHUNK", 4)
    await seed_odd_tags(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    first = await migrate(options(url, db_url, match="none"))
    second = await migrate(options(url, db_url, match="auto"))  # tags run 1's rows
    for run in (second, first):
        stats = LiveStats(unit="rows", rates=())
        await rollback(db, run.run_id, stats=stats)
        counts = await db.fetchval("SELECT counts FROM loader.rollbacks WHERE run_id = $1",
                                   run.run_id)  # fmt: skip
        assert stats.done == stats.total == sum(counts.values()) > 4  # several chunks
    assert await dump(db) == before


async def test_backup_and_restore_of_a_file_count_its_rows(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    """One COPY line per row, whatever the values hold (newlines, tabs, backslashes)."""
    await init_schema(db)
    await odd_rows(db)
    await db.execute("UPDATE image_assets SET alt_text = E'two\\nlines\\tand a \\\\'")
    rows = await db.fetchval("SELECT count(*) FROM image_assets")
    stats = LiveStats(unit="rows", rates=())
    await backup_to_file(db, tmp_path / "b.zip", stats)
    assert stats.done == stats.total == rows
    stats = LiveStats(unit="rows", rates=())
    await restore(db, str(tmp_path / "b.zip"), stats)
    assert stats.done == rows and stats.phase == "restoring image_assets"


async def test_a_terminal_shows_a_bar_with_percent_and_eta(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(catalogue_of(names()), faults=Faults(latency_ms=100))
    main, terminal = os.openpty()
    # A terminal of 160 columns: room for every figure of the bar.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**child_env(), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    for name in ("NO_COLOR", "CI", "TTY_COMPATIBLE", "FORCE_COLOR"):
        env.pop(name, None)
    try:
        child = await anyio.open_process(loader_argv(*migrate_args(url, db_url, *SLOW)),
                                         stdin=subprocess.DEVNULL, stdout=terminal,
                                         stderr=terminal, env=env)  # fmt: skip
    finally:
        os.close(terminal)  # the child holds it now: its exit closes the last writer
    try:
        with anyio.fail_after(90):
            output, _ = await asyncio.gather(anyio.to_thread.run_sync(read_all, main),
                                             child.wait())  # fmt: skip
    finally:
        os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert child.returncode == 0, text
    # The bar's figures, as drawn while the run went on (the bar itself is cleared at the end).
    drawn = [line for line in re.split(r"[\r\n]", text) if "ETA" in line]
    percents = [int(m[1]) for line in drawn if (m := re.search(r"\b(\d{1,3})%", line))]
    etas = [m[0] for line in drawn if (m := re.search(r"ETA \d+:\d{2}:\d{2}", line))]
    assert percents and etas, text
    assert all(0 <= p <= 100 for p in percents) and max(percents) > 0, percents
    assert any("folders" in line and "objects" in line and "/s" in line for line in drawn)
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 2 * FOLDERS


async def test_not_a_terminal_prints_lines_and_logs_progress_events(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    url = await start_storage(catalogue_of(names()), faults=Faults(latency_ms=100))
    log = tmp_path / "migrate.log.jsonl"
    done = await run_loader(*migrate_args(url, db_url, *SLOW, "--progress-every", "0.2",
                                          "--log-file", str(log)))  # fmt: skip
    assert done.code == 0, done.err
    lines = [line for line in done.err.splitlines() if line.startswith("migrate:")]
    assert lines, done.err
    counted = [line for line in lines if "%" in line]
    assert counted, lines
    for line in counted:
        assert re.search(r"^migrate: \d+\.\d% done, ", line), line
        assert re.search(r"\d+/60 folders", line), line
        assert re.search(r"[\d,]+ objects \([\d,]+/s\)", line), line
        assert re.search(r"[\d,]+ rows \([\d,]+/s\)", line), line
        assert re.search(r"elapsed \d+:\d{2}:\d{2}, ETA (\d+:\d{2}:\d{2}|unknown)$", line), line
    assert "migrate:" not in done.out  # stdout keeps the summary only
    events = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress
    assert all(e["command"] == "migrate" and e["unit"] == "folders" for e in progress)
    counting = [e for e in progress if e["total"] is not None]
    assert counting and all(e["total"] == FOLDERS for e in counting)
    assert [e["done"] for e in counting] == sorted(e["done"] for e in counting)
    run_id = next(e["run_id"] for e in events if e["event"] == "run_created")
    for e in counting:
        assert e["run_id"] == run_id
        assert 0 <= e["percent"] <= 100 and e["objects_per_s"] >= 0 and e["rows_per_s"] >= 0
        assert e["eta_s"] is None or e["eta_s"] >= 0
        assert {"objects", "rows_written", "elapsed_s", "errors"} <= e.keys()


@pytest.mark.slow  # ~1.5 s: a Storage server with 100 ms latency
async def test_quiet_shows_no_progress_but_the_log_keeps_its_events(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    url = await start_storage(catalogue_of(names(20)), faults=Faults(latency_ms=100))
    log = tmp_path / "migrate.log.jsonl"
    done = await invoke(*migrate_args(url, db_url, *SLOW, "--progress-every", "0.2", "--quiet",
                                      "--log-file", str(log)))  # fmt: skip
    assert done.code == 0, done.err
    assert "migrate:" not in done.err and "ETA" not in done.err
    events = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert any(e["event"] == "progress" for e in events)


async def test_progress_every_0_prints_no_lines_and_logs_no_progress(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    url = await start_storage(catalogue_of(names(10)), faults=Faults(latency_ms=50))
    log = tmp_path / "migrate.log.jsonl"
    done = await invoke(*migrate_args(url, db_url, *SLOW, "--progress-every", "0",
                                      "--log-file", str(log)))  # fmt: skip
    assert done.code == 0, done.err
    assert "ETA" not in done.err
    events = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert events and not any(e["event"] == "progress" for e in events)


@pytest.mark.slow  # ~3 s: five commands, verify against a Storage server with 100 ms latency
async def test_verify_rollback_and_backup_show_progress_lines(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    """Not a terminal: each long command prints its lines (here at every 0.05 s) on stderr,
    ending with its count done; stdout keeps its summary."""
    # No latency while migrating (only sets up the rows; its output is not checked here),
    # Storage's 100 ms from verify on: the command whose progress lines need a slow listing.
    faults = Faults(latency_ms=0)
    url = await start_storage(catalogue_of(names(20)), faults=faults)
    every = ("--progress-every", "0.05")
    migrated = await invoke(*migrate_args(url, db_url, "--list-api", "v1", "--match", "none",
                                          "--list-concurrency", "1", "--report",
                                          str(tmp_path / "m.json")))  # fmt: skip
    assert migrated.code == 0, migrated.err
    run_id = orjson.loads((tmp_path / "m.json").read_bytes())["run_id"]
    source = ("--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET)
    faults.latency_ms = 100  # read by the server at each request
    verified = await invoke("verify", *source, "--list-api", "v1", "--list-concurrency", "1",
                            "--database-url", db_url, *every)  # fmt: skip
    assert verified.code == 0, verified.err
    assert re.search(r"^verify: .*\d+/20 folders", verified.err, re.M), verified.err
    backup = tmp_path / "b.zip"
    taken = await invoke("backup", "--to", str(backup), "--database-url", db_url, *every)
    assert taken.code == 0, taken.err
    undone = await invoke("rollback", str(run_id), "--database-url", db_url, *every)
    assert undone.code == 0, undone.err
    restored = await invoke("restore", str(backup), "--database-url", db_url, *every)
    assert restored.code == 0, restored.err
    for done in (verified, taken, undone, restored):
        assert "ETA" not in done.out


# -- item 2: a report on every exit -------------------------------------------------------


@dataclass(slots=True)
class Switchable:
    """A Storage server with latency on which listing fails with HTTP 500: one folder
    (`broken`) always, every folder once `down` is set."""

    url: str
    down: bool = False


BROKEN = "c0000"  # listed first: it has failed long before the run is stopped


async def switchable_storage(serve: ServeStorageApp, folders: int) -> Switchable:
    app = build_app(catalogue_of(names(folders)), bucket=STORAGE_BUCKET, key=STORAGE_KEY,
                    faults=Faults(latency_ms=60))  # fmt: skip
    state = Switchable(url="")

    @web.middleware
    async def fail(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
        if "/object/list" in request.path:
            body = await request.json()  # aiohttp keeps the body for the handler
            prefix = str(body.get("prefix", ""))
            if state.down or prefix.startswith(f"{PREFIX}{BROKEN}"):
                # Slow failures: each one is recorded long before the next one comes.
                await anyio.sleep(0.1)
                error = {"statusCode": "500", "error": "internal", "message": "disk on fire"}
                return web.json_response(error, status=500)
        return await handler(request)

    app.middlewares.append(fail)
    state.url = await serve(app)
    return state


# The run has a failed folder and folders done: time to stop it.
FAILED_AND_DONE = (
    "SELECT count(*) FILTER (WHERE state = 'failed') > 0"
    " AND count(*) FILTER (WHERE state = 'done') > 0 FROM loader.folders"
)


async def _wait_until(db: asyncpg.Connection, child: anyio.abc.Process, query: str) -> None:
    with anyio.fail_after(60):
        while not await db.fetchval(query):
            assert child.returncode is None, "the run finished before it could be stopped"
            await anyio.sleep(0.05)


async def _stderr(child: anyio.abc.Process) -> str:
    assert child.stderr is not None
    return b"".join([chunk async for chunk in child.stderr]).decode()


async def _check_report(
    report: dict[str, Any], db: asyncpg.Connection, code: ExitCode, err: str
) -> None:
    """Status, exit code, totals so far, failed folders and the resume command, as the run
    and the error line have them."""
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    assert report["run_id"] == run_id
    assert report["status"] == "stopped" and report["totals_from"] == "database"
    assert report["exit_code"] == code
    assert report["error"] in err
    # The resume command is the error line's own, word for word.
    assert report["resume"].startswith(f"loader migrate --resume {run_id} --storage-url ")
    assert f"with: {report['resume']}" in err
    assert STORAGE_KEY not in orjson.dumps(report).decode()
    # Totals so far: what the table and the run's bookkeeping hold.
    rows = await db.fetchval("SELECT count(*) FROM image_assets")
    assert rows > 0 and report["inserted"] == rows == report["totals"]["inserted"]
    done = await db.fetchval(
        "SELECT count(*) FROM loader.folders WHERE run_id = $1 AND state = 'done'", run_id
    )
    assert sum(f["state"] == "done" for f in report["folders"]) == done > 0
    failed = await db.fetch(
        "SELECT folder FROM loader.folders WHERE run_id = $1 AND state = 'failed'", run_id
    )
    assert {f["folder"] for f in report["failed_folders"]} == {r["folder"] for r in failed}
    assert BROKEN in {f["folder"] for f in report["failed_folders"]}
    assert all("disk on fire" in f["reason"] for f in report["failed_folders"])


async def test_a_run_stopped_by_ctrl_c_writes_its_report(
    serve_storage_app: ServeStorageApp, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    storage = await switchable_storage(serve_storage_app, 40)
    report = tmp_path / "migrate.json"
    args = migrate_args(storage.url, db_url, *SLOW, "--retries", "2", "--report", str(report))
    child = await anyio.open_process(loader_argv(*args), env=child_env(),
                                     stdin=subprocess.DEVNULL)  # fmt: skip
    await _wait_until(db, child, FAILED_AND_DONE)
    child.send_signal(signal.SIGINT)
    with anyio.fail_after(30):
        await child.wait()
    err = await _stderr(child)
    assert child.returncode == ExitCode.ABORTED, err
    body = orjson.loads(report.read_bytes())
    await _check_report(body, db, ExitCode.ABORTED, err)
    assert "interrupted (SIGINT)" in body["error"]
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


async def test_a_run_stopped_by_storage_going_away_writes_its_report(
    serve_storage_app: ServeStorageApp, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    storage = await switchable_storage(serve_storage_app, 40)
    report = tmp_path / "migrate.json"
    args = migrate_args(storage.url, db_url, *SLOW, "--retries", "2", "--report", str(report))
    child = await anyio.open_process(loader_argv(*args), env=child_env(),
                                     stdin=subprocess.DEVNULL)  # fmt: skip
    await _wait_until(db, child, FAILED_AND_DONE)
    storage.down = True  # the whole server fails from now on
    with anyio.fail_after(90):
        await child.wait()
    err = await _stderr(child)
    assert child.returncode == ExitCode.STORAGE_UNREACHABLE, err
    body = orjson.loads(report.read_bytes())
    await _check_report(body, db, ExitCode.STORAGE_UNREACHABLE, err)
    assert "looks down" in body["error"]


async def test_every_exit_of_migrate_writes_the_report(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    """0 and a refusal before any run (13: a private bucket) write their report too."""
    url = await start_storage(catalogue_of(names(3)))
    report = tmp_path / "ok.json"
    done = await invoke(*migrate_args(url, db_url, *SLOW, "--report", str(report)))
    assert done.code == 0, done.err
    body = orjson.loads(report.read_bytes())
    assert body["status"] == "succeeded" and body["exit_code"] == 0 and body["resume"] is None
    private = await start_storage(catalogue_of(names(3)), public=False)
    report = tmp_path / "private.json"
    refused = await invoke(*migrate_args(private, db_url, *SLOW, "--report", str(report)))
    assert refused.code == ExitCode.PRIVATE_BUCKET, refused.err
    body = orjson.loads(report.read_bytes())
    assert body["run_id"] is None and body["status"] == "failed"
    assert body["exit_code"] == ExitCode.PRIVATE_BUCKET and "private" in body["error"]
    assert body["resume"] is None
