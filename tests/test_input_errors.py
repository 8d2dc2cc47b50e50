"""Input errors are answers (issue 22, item 4): a damaged backup file for `loader restore` and
a malformed or empty review CSV for `loader match apply` exit 3 with one line naming what is
wrong (and where), and change nothing."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import asyncpg
import orjson
import pytest

from loader.backup import backup_to_file
from loader.db import init_schema
from loader.errors import ExitCode
from tests.cli_helpers import Completed, invoke
from tests.test_backup import damage, dump, odd_rows


def only_error_line(done: Completed) -> str:
    """The command's one line of complaint: stderr holds it and the `database:` line only."""
    assert "Traceback" not in done.err
    lines = [line for line in done.err.splitlines() if not line.startswith("database: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.err
    return lines[0]


def rezip(good: Path, bad: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy backup `good` to `bad`, each member through `change` (None: left out)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = change(item.filename, src.read(item.filename))
            if data is not None:
                out.writestr(item.filename, data)


def _manifest(edit: Callable[[dict], object]) -> Callable[[str, bytes], bytes | None]:
    def change(name: str, data: bytes) -> bytes | None:
        return orjson.dumps(edit(orjson.loads(data))) if name == "manifest.json" else data

    return change


def _corrupt_member(good: Path, bad: Path) -> None:
    """The manifest intact, the rows' compressed bytes overwritten in the middle."""
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("image_assets.copy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 8] = b"\x00\xff" * 4
    bad.write_bytes(bytes(data))


DAMAGED: dict[str, Callable[[Path, Path], None]] = {
    "random bytes": lambda good, bad: bad.write_bytes(os.urandom(2000)),
    "empty": lambda good, bad: bad.write_bytes(b""),
    "truncated": lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
    "zip without the manifest": lambda good, bad: rezip(
        good, bad, lambda name, data: None if name == "manifest.json" else data
    ),
    "manifest not an object": lambda good, bad: rezip(good, bad, _manifest(lambda m: [m])),
    "manifest without checksums": lambda good, bad: rezip(
        good, bad, _manifest(lambda m: {k: v for k, v in m.items() if k != "sha256"})
    ),
    "rows member missing": lambda good, bad: rezip(
        good, bad, lambda name, data: None if name == "image_assets.copy" else data
    ),
    "rows member corrupted": _corrupt_member,
}


@pytest.mark.parametrize("kind", list(DAMAGED))
async def test_a_damaged_backup_file_is_bad_input_and_changes_nothing(
    kind: str, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await init_schema(db)
    await odd_rows(db)
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    await backup_to_file(db, good)
    await damage(db)
    before = await dump(db)
    DAMAGED[kind](good, bad)
    done = await invoke("restore", str(bad), "--database-url", db_url)
    assert done.code == ExitCode.BAD_INPUT, done.err
    line = only_error_line(done)
    assert "backup file" in line and len(line) < 300, line
    assert await dump(db) == before


# -- match apply ---------------------------------------------------------------------------

FOLDERS = "kim-1234\nlee-5678\n"
HEADER = "folder,status,suggested_customer_id,confidence,reason,candidates,decision"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"{HEADER}\nkim-1234,review,1,0.80,why,c\nlee-5678,review,1,0.80,why,c,1\n", ":2: 6 cell"),
        (f"{HEADER}\nkim-1234,review,1,0.80,why,c,1,extra\n", ":2: 8 cell"),
        (f'{HEADER}\nkim-1234,review,1,0.80,"why,c,1\nlee-5678,review,1,0.80,why,c,1\n', ":2: not"),
        (f'{HEADER}\nkim-1234,review,1,0.80,"why"x,c,1\n', ":2: not valid CSV"),
        ("folder,decision,my notes\nkim-1234,1,x\n", ":1: unknown column(s) 'my notes'"),
        ("folder,decision,decision\nkim-1234,1,2\n", ":1: a column appears twice"),
        (f"{HEADER}\nkim-1234,review,1,0.80,why,c,\nlee-5678,review,1,0.80,why,c,\n",
         "no decision filled in: put a customer id"),
        (f"{HEADER}\n", "no decision filled in"),
        ("", ":1: missing column(s) decision, folder"),
    ],
)  # fmt: skip
async def test_a_malformed_review_csv_is_bad_input_naming_the_line(
    text: str, where: str, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await db.execute("INSERT INTO customers (id, name) VALUES (1, '김민수')")
    folders, review = tmp_path / "folders.txt", tmp_path / "review.csv"
    folders.write_text(FOLDERS)
    review.write_text(text, encoding="utf-8")
    done = await invoke("match", "apply", str(review), "--folders", str(folders),
                        "--database-url", db_url)  # fmt: skip
    assert done.code == ExitCode.BAD_INPUT, done.err
    line = only_error_line(done)
    assert where in line, line
    if "no decision" in where:
        assert "`decision` column" in line
    assert await db.fetchval("SELECT count(*) FROM loader.match_decisions") == 0


async def test_a_spreadsheet_s_review_csv_bom_and_crlf_is_read(
    db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await db.execute("INSERT INTO customers (id, name) VALUES (1, '김민수')")
    folders, review = tmp_path / "folders.txt", tmp_path / "review.csv"
    folders.write_text(FOLDERS)
    rows = [HEADER, '"kim-1234",review,1,0.80,"a\r\nb",c,1', "lee-5678,review,,0.10,,,none", ""]
    review.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode())
    done = await invoke("match", "apply", str(review), "--folders", str(folders),
                        "--database-url", db_url)  # fmt: skip
    assert done.code == 0, done.err
    assert "2 decision(s) recorded" in done.out
    decided = dict(await db.fetch("SELECT folder, customer_id FROM loader.match_decisions"))
    assert decided == {"kim-1234": 1, "lee-5678": None}
