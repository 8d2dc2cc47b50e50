"""Progress a person can read (issue 22, item 1).

On a terminal `loader migrate` draws a bar with % done and an ETA; elsewhere it prints a plain
line every --progress-every seconds and logs `progress` events at that cadence.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
import struct
import subprocess
import termios
from pathlib import Path

import anyio
import asyncpg
import orjson
import pytest

from loader import progress
from loader import rollback as rollback_module
from loader.backup import backup_to_file, restore
from loader.db import init_schema
from loader.devtools.storage_server import Faults
from loader.migrate import migrate
from loader.progress import LiveStats
from loader.rollback import rollback
from tests.cli_helpers import child_env, invoke, loader_argv, migrate_args, run_loader
from tests.sample import sample_catalogue
from tests.storage_fixtures import (
    STORAGE_BUCKET,
    STORAGE_KEY,
    StartStorage,
    catalogue_of,
)
from tests.test_backup import odd_rows
from tests.test_migrate import options
from tests.test_rollback_exact import dump, seed

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
    await seed(db)
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


async def test_verify_rollback_and_backup_show_progress_lines(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    """Not a terminal: each long command prints its lines (here at every 0.05 s) on stderr,
    ending with its count done; stdout keeps its summary."""
    url = await start_storage(catalogue_of(names(20)), faults=Faults(latency_ms=100))
    every = ("--progress-every", "0.05")
    migrated = await invoke(*migrate_args(url, db_url, "--list-api", "v1", "--match", "none",
                                          "--list-concurrency", "1", "--report",
                                          str(tmp_path / "m.json")))  # fmt: skip
    assert migrated.code == 0, migrated.err
    run_id = orjson.loads((tmp_path / "m.json").read_bytes())["run_id"]
    source = ("--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET)
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
