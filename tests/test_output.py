"""Output a person or a script reads (issue 22, item 7): nothing wraps when stdout is not a
terminal (a long path stays on one line, for grep and copy-paste), `scan --all` shows every
folder, and every figure of a summary says what it is."""

from __future__ import annotations

import re

import asyncpg

from loader.report import SCAN_TOP
from tests.cli_helpers import migrate_args, run_loader
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, catalogue_of
from tests.test_verify import verify_args

PREFIX = "originals/customers/"
LONG_FOLDER = "Park Cheolju-7889 " + "long name " * 8 + "-7889"
LONG_FILE = f"{PREFIX}{LONG_FOLDER}/2024-05-01/" + "KakaoTalk_20240501_123456789 " * 3 + "01.jpg"
# A bare number, or a number with a unit and nothing saying what it counts.
UNLABELLED = re.compile(r"^\s*[\d.,]+\s*(s|ms|%)?\s*$")


def folders(n: int) -> list[str]:
    """`n` folders with 1, 2, ... files: the scan ranks them largest first."""
    return [f"{PREFIX}c{i:04d}/IMG_{k}.jpg" for i in range(n) for k in range(i + 1)]


def scan_args(url: str, *extra: str) -> list[str]:
    return ["scan", "--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET,
            *extra]  # fmt: skip


async def test_a_long_path_stays_on_one_line_when_output_is_not_a_terminal(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(catalogue_of([LONG_FILE, f"{PREFIX}kim-1234/a.jpg"]))
    scanned = await run_loader(*scan_args(url))  # stdout is a pipe here
    assert scanned.code == 0, scanned.err
    assert any(LONG_FOLDER in line for line in scanned.out.splitlines()), scanned.out
    migrated = await run_loader(*migrate_args(url, db_url))
    assert migrated.code == 0, migrated.err
    await db.execute("DELETE FROM image_assets WHERE file_path = $1", LONG_FILE)
    verified = await run_loader(*verify_args(url, db_url))
    assert any(line.strip() == LONG_FILE for line in verified.out.splitlines()), verified.out


async def test_scan_shows_the_largest_folders_and_all_of_them_with_all(
    start_storage: StartStorage,
) -> None:
    url = await start_storage(catalogue_of(folders(SCAN_TOP + 5)))
    default = await run_loader(*scan_args(url))
    assert default.code == 0, default.err
    shown = {f"c{i:04d}" for i in range(SCAN_TOP + 5) if f" c{i:04d} " in default.out}
    assert shown == {f"c{i:04d}" for i in range(5, SCAN_TOP + 5)}  # the largest
    assert "… 5 more folders (--all shows every folder)" in default.out
    every = await run_loader(*scan_args(url, "--all"))
    assert every.code == 0, every.err
    assert all(f" c{i:04d} " in every.out for i in range(SCAN_TOP + 5))
    assert "more folders" not in every.out


async def test_every_figure_of_a_summary_is_labelled(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(catalogue_of(folders(3)))
    scanned = await run_loader(*scan_args(url))
    migrated = await run_loader(*migrate_args(url, db_url))
    verified = await run_loader(*verify_args(url, db_url))
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    rolled = await run_loader("rollback", str(run_id), "--dry-run", "--database-url", db_url)
    for done in (scanned, migrated, verified, rolled):
        assert done.code == 0, done.err
        lines = (done.out + done.err).splitlines()
        assert not [line for line in lines if UNLABELLED.match(line)], done.out + done.err
    assert re.search(r"elapsed \d+\.\d\d s$", scanned.out, re.M), scanned.out
    assert re.search(r"^elapsed \d+\.\d\d s$", migrated.out, re.M), migrated.out
