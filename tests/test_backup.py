"""Backups: a run backs up only when it changes rows, from the table as it was when it
started; `loader backup` / `restore` round-trip exactly, from the database and from a file;
`prune` keeps what it is told to."""

from __future__ import annotations

import zipfile
from pathlib import Path

import asyncpg
import orjson
import pytest

from loader.backup import backup_to_file, restore, take_backup
from loader.db import init_schema
from loader.errors import BadInputError
from loader.migrate import migrate
from tests.cli_helpers import run_loader
from tests.sample import sample_catalogue
from tests.storage_fixtures import StartStorage
from tests.test_migrate import options
from tests.test_rollback import seed


async def dump(db: asyncpg.Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every column of every row, in order: what "exactly the same" means here."""
    assets = await db.fetch("SELECT * FROM image_assets ORDER BY file_path")
    customers = await db.fetch("SELECT * FROM customers ORDER BY id")
    return [tuple(r) for r in assets], [tuple(r) for r in customers]


async def odd_rows(db: asyncpg.Connection) -> None:
    """Rows whose values a careless copy would change: NULL vs empty, NULL elements, text
    that needs escaping, time zones, sizes."""
    await seed(db)
    await db.execute(
        "INSERT INTO image_assets (file_path, ai_tags, cdn_url, alt_text, file_size, created_at)"
        " VALUES ('a/empty.jpg', '{}', NULL, '', 0, '2020-01-01 00:00:00.123456+09'),"
        " ('a/nulls.jpg', '{NULL}', 'x', NULL, NULL, '1999-12-31 23:59:59+00'),"
        " ($1, $2, 'u', $3, 12, now())",
        "a/odd\ttab \\ name.jpg",
        ["tab\there", 'quote"', "back\\slash", None, "", "{x,y}"],
        "line\nbreak",
    )


async def damage(db: asyncpg.Connection) -> None:
    await db.execute("DELETE FROM image_assets WHERE file_path = 'a/empty.jpg'")
    await db.execute("UPDATE image_assets SET ai_tags = '{}', cdn_url = 'changed'"
                     " WHERE file_path = 'a/nulls.jpg'")  # fmt: skip
    await db.execute("INSERT INTO image_assets (file_path) VALUES ('a/new.jpg')")
    await db.execute("UPDATE customers SET folder_name = 'renamed' WHERE id = 7")


async def test_backup_damage_restore_round_trips_exactly_in_the_database(
    db: asyncpg.Connection,
) -> None:
    await init_schema(db)
    await odd_rows(db)
    before = await dump(db)
    taken = await take_backup(db)
    assert taken.rows == len(before[0]) and taken.customers == 2
    await damage(db)
    assert await dump(db) != before
    done = await restore(db, str(taken.backup_id))
    assert (done.deleted, done.updated, done.inserted, done.folder_names) == (1, 1, 1, 1)
    assert await dump(db) == before
    again = await restore(db, str(taken.backup_id))  # nothing left to change
    assert (again.deleted, again.updated, again.inserted, again.folder_names) == (0, 0, 0, 0)


async def test_backup_damage_restore_round_trips_exactly_from_a_file(
    db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await init_schema(db)
    await odd_rows(db)
    before = await dump(db)
    path = tmp_path / "assets.zip"
    done = await run_loader("backup", "--to", str(path), "--database-url", db_url)
    assert done.code == 0, done.err
    assert f"{len(before[0])} rows, 2 customers" in done.out
    manifest = orjson.loads(zipfile.ZipFile(path).read("manifest.json"))
    assert manifest["rows"] == len(before[0]) and manifest["checksum"].startswith(
        f"{len(before[0])}:"
    )
    await damage(db)
    restored = await run_loader("restore", str(path), "--database-url", db_url)
    assert restored.code == 0, restored.err
    assert await dump(db) == before


async def test_a_damaged_backup_file_is_refused_and_nothing_changes(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    await init_schema(db)
    await odd_rows(db)
    path = tmp_path / "assets.zip"
    await backup_to_file(db, path)
    await damage(db)
    damaged = await dump(db)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "image_assets.copy":
                data = data.replace(b"a/empty.jpg", b"a/EMPTY.jpg")
            out.writestr(item, data)
    with pytest.raises(BadInputError, match="sha256"):
        await restore(db, str(bad))
    assert await dump(db) == damaged
    with pytest.raises(BadInputError, match="neither a backup id nor a backup file"):
        await restore(db, str(tmp_path / "missing.zip"))
    with pytest.raises(BadInputError, match="backup 99 does not exist"):
        await restore(db, "99")


async def test_a_run_backs_up_only_when_it_changes_rows_and_restores_to_before_it(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await odd_rows(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    first = await migrate(options(url, db_url, match="auto"))
    assert first.backup_id is not None
    rerun = await migrate(options(url, db_url, match="auto"))
    assert rerun.totals["inserted"] == rerun.totals["updated"] == 0
    assert rerun.backup_id is None
    listed = await db.fetch("SELECT backup_id, run_id, reason, rows FROM loader.backups")
    assert [tuple(r) for r in listed] == [(first.backup_id, first.run_id, "run", len(before[0]))]
    # the backup holds the table as it was before the run, though copied while it ran
    await restore(db, str(first.backup_id))
    assert await dump(db) == before
    skipped = await migrate(options(url, db_url, match="auto", backup=False))
    assert skipped.totals["inserted"] > 0 and skipped.backup_id is None
    assert await db.fetchval("SELECT count(*) FROM loader.backups") == 1


async def test_a_run_that_changes_a_table_already_backed_up_keeps_no_duplicate(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await odd_rows(db)
    url = await start_storage(sample_catalogue())
    await init_schema(db)
    manual = await take_backup(db)
    run = await migrate(options(url, db_url, match="auto"))
    assert run.totals["inserted"] > 0
    assert run.backup_id is None  # the table was exactly backup `manual` when it started
    assert await db.fetchval("SELECT array_agg(backup_id) FROM loader.backups") == [
        manual.backup_id
    ]


async def test_restore_is_refused_while_a_run_is_running(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await odd_rows(db)
    await init_schema(db)
    taken = await take_backup(db)
    url = await start_storage(sample_catalogue())
    prepared = await migrate(options(url, db_url, prepare_only=True))
    with pytest.raises(BadInputError, match=f"run\\(s\\) {prepared.run_id} still marked running"):
        await restore(db, str(taken.backup_id))


async def test_list_and_prune_keep_one(db: asyncpg.Connection, db_url: str) -> None:
    await init_schema(db)
    await odd_rows(db)
    ids = [(await take_backup(db)).backup_id for _ in range(3)]
    listed = await run_loader("backup", "list", "--database-url", db_url)
    assert listed.code == 0, listed.err
    assert all(f" {i} " in listed.out for i in ids)
    pruned = await run_loader("backup", "prune", "--keep", "1", "--database-url", db_url)
    assert pruned.code == 0, pruned.err
    assert "2 backup(s) dropped" in pruned.out
    assert await db.fetchval("SELECT array_agg(backup_id) FROM loader.backups") == [ids[-1]]
    left = await db.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'loader' AND tablename LIKE 'backup\\_%'"
    )
    assert left == 2  # image_assets and customers of the one kept


async def test_backups_of_earlier_versions_are_kept_renamed(db: asyncpg.Connection) -> None:
    await init_schema(db)
    await db.execute("DROP TABLE loader.backups CASCADE")
    await db.execute("CREATE TABLE loader.backups (run_id bigint NOT NULL, row jsonb NOT NULL)")
    await db.execute("""INSERT INTO loader.backups VALUES (1, '{"file_path": "a.jpg"}')""")
    await init_schema(db)
    assert await db.fetchval("SELECT row FROM loader.backups_v1") == {"file_path": "a.jpg"}
    assert await db.fetchval("SELECT count(*) FROM loader.backups") == 0
    await init_schema(db)  # idempotent


async def test_a_failed_run_backup_is_a_warning_and_the_run_still_succeeds(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await init_schema(db)
    # the table the run's backup (id 1 in a fresh database) would create is in the way
    await db.execute("CREATE TABLE loader.backup_1_image_assets (x int)")
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url))
    assert result.status == "succeeded" and result.totals["inserted"] > 0
    assert result.backup_id is None
    assert any("backup failed" in w and "journal" in w for w in result.warnings), result.warnings
    assert await db.fetchval("SELECT count(*) FROM loader.backups") == 0


async def test_a_table_with_a_column_type_without_hashing_round_trips_too(
    db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await init_schema(db)
    await odd_rows(db)
    await db.execute("ALTER TABLE image_assets ADD COLUMN meta json")  # json has no hash
    await db.execute("""UPDATE image_assets SET meta = '{"b": 1,  "a": [null]}'""")
    before = await dump(db)
    taken = await take_backup(db)
    assert ":t" in taken.checksum  # hashed by text form
    path = tmp_path / "with-json.zip"
    await backup_to_file(db, path)
    await damage(db)
    await db.execute("""UPDATE image_assets SET meta = '{"a": [null], "b": 1}'""")
    await restore(db, str(taken.backup_id))
    assert await dump(db) == before
    await damage(db)
    await restore(db, str(path))
    assert await dump(db) == before
