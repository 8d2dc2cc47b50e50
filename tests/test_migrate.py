"""`loader migrate` end to end: real HTTP Storage server on loopback, real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg

from loader import match_db, runs
from loader import migrate as migrate_module
from loader.db import connection, create_pool, init_schema
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from loader.sink import UpsertSink
from tests.sample import PREFIX, media_names, sample_catalogue, sample_names
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, catalogue_of

KEPT = f"{PREFIX}kimminsu01-6601/IMG_0000.jpg"


def options(url: str, db_url: str, **kw: object) -> MigrateOptions:
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY,
                           list_concurrency=8)  # fmt: skip
    kw.setdefault("match", "none")
    return MigrateOptions(source=source, database_url=db_url, batch_size=500, **kw)  # type: ignore[arg-type]


async def table_writes(db: asyncpg.Connection) -> tuple[int, int]:
    """(n_tup_ins, n_tup_upd) of image_assets, once the statistics have settled."""
    last = None
    for _ in range(20):
        await db.execute("SELECT pg_stat_clear_snapshot()")
        row = await db.fetchrow(
            "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'image_assets'"
        )
        current = (row["n_tup_ins"], row["n_tup_upd"])
        if current == last:
            return current
        last = current
        await asyncio.sleep(0.3)
    return last  # type: ignore[return-value]


async def test_migrate_registers_every_media_file_once_and_keeps_existing_data(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await db.execute(
        "INSERT INTO image_assets (file_path, filename, ai_tags, alt_text, title, status,"
        " upload_source) VALUES ($1, 'IMG_0000.jpg', ARRAY['portrait', NULL, 'best'],"
        " 'keep me', 'Title', 'archived', 'app')",
        KEPT,
    )
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url))
    assert result.status == "succeeded"
    media = media_names()
    rows = await db.fetch("SELECT file_path, ai_tags, cdn_url, upload_source FROM image_assets")
    assert sorted(r["file_path"] for r in rows) == sorted(media)  # once each, nothing else
    assert all(r["cdn_url"] for r in rows)
    kept = await db.fetchrow("SELECT * FROM image_assets WHERE file_path = $1", KEPT)
    assert kept["ai_tags"] == ["portrait", None, "best"]
    assert (kept["alt_text"], kept["title"], kept["status"], kept["upload_source"]) == (
        "keep me", "Title", "archived", "app",
    )  # fmt: skip
    assert result.totals["inserted"] == len(media) - 1
    assert result.totals["updated"] == 1  # the cdn_url it lacked
    assert result.totals["unchanged"] == 0
    stored = await db.fetchrow("SELECT status, counts, finished_at FROM loader.runs")
    assert stored["status"] == "succeeded" and stored["finished_at"] is not None
    assert stored["counts"]["inserted"] == len(media) - 1
    # every generated URL is answered by the Storage server
    async with aiohttp.ClientSession() as http:
        for row in rows:
            async with http.head(row["cdn_url"]) as response:
                assert response.status == 200, row["cdn_url"]


async def test_second_run_writes_nothing(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    await migrate(options(url, db_url))
    before = await table_writes(db)
    again = await migrate(options(url, db_url))
    assert await table_writes(db) == before
    assert (again.totals["inserted"], again.totals["updated"]) == (0, 0)
    assert again.totals["unchanged"] == len(media_names())


async def test_dry_run_plans_without_writing(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    plan = await migrate(options(url, db_url, dry_run=True))
    assert plan.status == "planned"
    assert plan.totals["inserted"] == len(media_names())
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 0
    assert await db.fetchval("SELECT count(*) FROM loader.runs") == 0


async def test_odd_names_and_an_unstorable_path(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """Storage checks key characters on upload only: rows written with SQL can hold `#`, `%`,
    NFD Hangul, or names too long for a btree index. All but the last are registered with
    working URLs; the last fails alone, recorded with its reason, and the run says so."""
    import random
    import string
    import unicodedata

    from tests.storage_fixtures import catalogue_of

    incompressible = "".join(random.Random(1).choices(string.ascii_letters, k=4000))
    folder = f"{PREFIX}odd-0001"
    names = [
        f"{folder}/100% #1.jpg",
        f"{folder}/{unicodedata.normalize('NFD', '김종철')}.png",
        f"{folder}/{'x' * 250}.webp",
        f"{folder}/a?b=c&d.heic",
        f"{folder}/{incompressible}.jpg",  # over the btree key limit of the unique index
    ]
    url = await start_storage(catalogue_of(names))
    result = await migrate(options(url, db_url))
    assert result.status == "incomplete"
    assert result.exit_code == 11
    assert [r["file_path"] for r in result.failed_rows] == [names[-1]]
    assert "index row" in result.failed_rows[0]["reason"]
    rows = await db.fetch("SELECT file_path, cdn_url FROM image_assets ORDER BY file_path")
    assert sorted(r["file_path"] for r in rows) == sorted(names[:-1])
    async with aiohttp.ClientSession() as http:
        for row in rows:
            async with http.get(row["cdn_url"]) as response:
                assert response.status == 200, row["cdn_url"]


async def test_migrate_from_storage_objects_equals_migrate_over_rest(
    start_storage: StartStorage, make_database, db_url: str
) -> None:
    from tests.sample import load_storage_objects

    url = await start_storage(sample_catalogue())
    rest_db = await make_database()
    await migrate(options(url, rest_db))
    async with connection(db_url) as conn:
        await load_storage_objects(conn, sample_catalogue(), STORAGE_BUCKET)
    source = SourceOptions(bucket=STORAGE_BUCKET, source="db", storage_database_url=db_url,
                           storage_url=url)  # fmt: skip
    result = await migrate(MigrateOptions(source=source, database_url=db_url, match="none"))
    assert result.status == "succeeded"
    query = "SELECT file_path, cdn_url, format, mime_type FROM image_assets ORDER BY 1"
    rows = {}
    for name, target in (("rest", rest_db), ("db", db_url)):
        async with connection(target) as conn:
            rows[name] = [tuple(r) for r in await conn.fetch(query)]
    assert rows["db"] == rows["rest"]
    assert len(rows["db"]) == len(media_names())


async def test_small_folders_listed_in_groups_are_each_written_and_done(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """Folders listed together (loader.folder_groups) are still counted and finished one by
    one; a loose file that shares a group's prefix is not registered."""
    folders = [f"cust-{i:03d}" for i in range(60)]
    media = [f"{PREFIX}{f}/{n}" for f in folders for n in ("a.jpg", "2024/b.mp4")]
    names = [*media, *(f"{PREFIX}{f}/notes.txt" for f in folders), f"{PREFIX}cust-01.jpg"]
    url = await start_storage(catalogue_of(names))
    opts = options(url, db_url)
    result = await migrate(replace(opts, source=replace(opts.source, list_concurrency=2)))
    assert result.status == "succeeded"
    assert sorted(await db.fetchval("SELECT array_agg(file_path) FROM image_assets")) == sorted(
        media
    )
    done = await db.fetch("SELECT folder, state, counts FROM loader.folders ORDER BY folder")
    assert [(r["folder"], r["state"]) for r in done] == [(f, "done") for f in folders]
    assert all((r["counts"]["inserted"], r["counts"]["other"]) == (2, 1) for r in done)
    assert result.loose_files == [f"{PREFIX}cust-01.jpg"]
    again = await migrate(opts)
    assert (again.totals["inserted"], again.totals["updated"], again.totals["unchanged"]) == (
        0, 0, len(media),
    )  # fmt: skip


async def test_a_rerun_checks_whole_folders_and_writes_only_those_that_changed(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, monkeypatch: Any
) -> None:
    """The re-run's quick check (sql/folders_unchanged.sql) passes a folder only when every
    row is in place with its tag and a cdn_url; any difference sends the folder row by row."""
    folders = sorted({n.split("/")[2] for n in sample_names() if n.count("/") >= 3})
    await db.executemany(
        "INSERT INTO customers (id, name, folder_name) VALUES ($1, $2, $3)",
        [(i + 1, f"고객{i}", folder) for i, folder in enumerate(folders)],
    )
    url = await start_storage(sample_catalogue())
    opts = options(url, db_url, match="auto")
    await migrate(opts)
    deleted, retagged, unlinked, edited = (
        f"{PREFIX}kimminsu0{i}-660{i}/IMG_0000.jpg" for i in (0, 1, 2, 4)
    )
    extra = f"{PREFIX}kimminsu03-6603/not-in-storage.jpg"
    await db.execute("DELETE FROM image_assets WHERE file_path = $1", deleted)
    await db.execute("UPDATE image_assets SET ai_tags = '{other}' WHERE file_path = $1", retagged)
    await db.execute("UPDATE image_assets SET cdn_url = NULL WHERE file_path = $1", unlinked)
    await db.execute("UPDATE image_assets SET alt_text = 'mine' WHERE file_path = $1", edited)
    await db.execute("INSERT INTO image_assets (file_path, filename) VALUES ($1, 'x')", extra)
    checked: list[str] = []
    written: set[str] = set()
    check, write = UpsertSink.unchanged_folders, UpsertSink.write

    async def spy_check(self: UpsertSink, checks: list[Any], **kw: Any) -> list[bool]:
        checked.extend(c.folder for c in checks)
        return await check(self, checks, **kw)

    async def spy_write(self: UpsertSink, rows: list[Any]) -> Any:
        written.update(row.folder for row in rows)
        return await write(self, rows)

    monkeypatch.setattr(UpsertSink, "unchanged_folders", spy_check)
    monkeypatch.setattr(UpsertSink, "write", spy_write)
    again = await migrate(opts)
    assert sorted(checked) == folders  # every folder held and checked whole
    assert written == {"kimminsu00-6600", "kimminsu01-6601", "kimminsu02-6602", "kimminsu03-6603"}
    assert (again.totals["inserted"], again.totals["updated"]) == (1, 2)
    assert again.totals["unchanged"] == len(media_names()) - 3
    # The report's per-folder journal counts name the folders that were written.
    journaled = {f["folder"]: (f["inserted"], f["updated"]) for f in again.folders}
    assert {f: c for f, c in journaled.items() if c != (0, 0)} == {
        "kimminsu00-6600": (1, 0), "kimminsu01-6601": (0, 1), "kimminsu02-6602": (0, 1),
    }  # fmt: skip
    assert len(journaled) == len(folders)
    row = await db.fetchrow("SELECT ai_tags FROM image_assets WHERE file_path = $1", retagged)
    assert row["ai_tags"] == ["other", "customer-2"]
    assert await db.fetchval("SELECT cdn_url FROM image_assets WHERE file_path = $1", unlinked)
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", deleted)
    assert await db.fetchval("SELECT alt_text FROM image_assets WHERE file_path = $1", edited)
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", extra) == []
    third = await migrate(opts)  # and then nothing is left to write
    assert (third.totals["inserted"], third.totals["updated"]) == (0, 0)


async def test_a_rerun_with_the_same_inputs_reuses_the_last_matching(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, monkeypatch: Any
) -> None:
    """Matching is a pure function of the folders, the customers and the decisions: with the
    same inputs a run takes the last result from loader.match_memo; any change matches again."""
    folders = sorted({n.split("/")[2] for n in sample_names() if n.count("/") >= 3})
    await db.executemany(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES ($1, $2, $3, $4)",
        [(i + 1, f"고객{i}", f"010-0000-{6600 + i}", folder if i % 2 else None)
         for i, folder in enumerate(folders)],
    )  # fmt: skip
    url = await start_storage(sample_catalogue())
    opts = options(url, db_url, match="auto")
    matched = []
    real = match_db.match_folders
    monkeypatch.setattr(
        match_db, "match_folders", lambda *a, **k: matched.append(1) or real(*a, **k)
    )

    async def links(run_id: int | None) -> list[tuple[str, int | None]]:
        rows = await db.fetch(
            "SELECT folder, customer_id FROM loader.folders WHERE run_id = $1 ORDER BY 1", run_id
        )
        return [tuple(r) for r in rows]

    first = await migrate(opts)
    second = await migrate(opts)
    assert len(matched) == 1  # the second run matched nothing
    assert second.match_summary == first.match_summary
    assert await links(second.run_id) == await links(first.run_id)
    assert any(c is not None for _, c in await links(first.run_id))
    await db.execute("UPDATE customers SET phone = '010-0000-0000' WHERE id = 2")
    await migrate(opts)
    assert len(matched) == 2  # a customer changed: matched again
    await migrate(opts)
    assert len(matched) == 2  # and remembered again
    await db.execute(
        "INSERT INTO loader.match_decisions (folder, customer_id) VALUES ($1, NULL)", folders[0]
    )
    decided = await migrate(opts)
    assert len(matched) == 3  # a person's decision is an input too
    assert (folders[0], None) in await links(decided.run_id)


async def analyze_count(db: asyncpg.Connection) -> int:
    """How many times image_assets was analyzed by hand (ANALYZE, not autovacuum)."""
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await db.fetchval(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'image_assets'"
    )


async def test_a_run_analyzes_the_table_only_when_autovacuum_will_not(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """Autovacuum analyzes a table once a tenth of it changed: the loader leaves that to it,
    and runs ANALYZE itself when autovacuum is off for the table (or the server)."""
    url = await start_storage(sample_catalogue())
    autovacuum = await db.fetchval("SELECT current_setting('autovacuum')::boolean")
    before = await analyze_count(db)
    await migrate(options(url, db_url))
    assert await analyze_count(db) == before + (0 if autovacuum else 1)
    await db.execute("ALTER TABLE image_assets SET (autovacuum_enabled = false)")
    await db.execute("DELETE FROM image_assets")
    await migrate(options(url, db_url))
    assert await analyze_count(db) == before + (1 if autovacuum else 2)
    await migrate(options(url, db_url))  # nothing changed: no statistics to refresh
    assert await analyze_count(db) == before + (1 if autovacuum else 2)


async def test_folders_registered_behind_the_first_claims_are_all_done(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, monkeypatch: Any
) -> None:
    """The run's first folders are written with it and the rest by chunks while the worker
    already works (the serial start overlapped): every folder is still done, and the run is
    closed only once the last chunk is in."""
    monkeypatch.setattr(migrate_module, "REGISTER_FIRST", 3)
    monkeypatch.setattr(migrate_module, "REGISTER_CHUNK", 5)
    folders = [f"cust-{i:03d}" for i in range(23)]
    media = [f"{PREFIX}{f}/{n}" for f in folders for n in ("a.jpg", "2024/b.mp4")]
    url = await start_storage(catalogue_of(media))
    result = await migrate(options(url, db_url))
    assert result.status == "succeeded"
    assert result.totals["folders_done"] == 23 and result.totals["media"] == len(media)
    assert await db.fetchval("SELECT count(*) FROM image_assets") == len(media)
    assert await db.fetchval("SELECT bool_or(registering) FROM loader.runs") is False


async def test_a_run_whose_registration_was_cut_short_is_completed_by_its_resume(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """A crash between the first folders and the last leaves the run registering with part of
    its folders: it is never closed as done, and its resume registers the rest first."""
    folders = [f"cust-{i:03d}" for i in range(12)]
    media = [f"{PREFIX}{f}/a.jpg" for f in folders]
    url = await start_storage(catalogue_of(media))
    pool = await create_pool(db_url, 2)
    try:
        async with pool.acquire() as conn:
            await init_schema(conn)
        run_id = await runs.create_run(
            pool, bucket=STORAGE_BUCKET, prefix=PREFIX, options={"match": "none"},
            folders=[(f, None) for f in folders[:4]], chunk=1, registering=True,
        )  # fmt: skip
        # Its first folders done, the rest never registered: still nothing to close.
        await db.execute("UPDATE loader.chunks SET state = 'done' WHERE run_id = $1", run_id)
        assert await runs.finalize_run(pool, run_id) == "running"
        assert await runs.has_open_folders(pool, run_id)
    finally:
        await pool.close()
    result = await migrate(options(url, db_url, resume=run_id))
    assert result.status == "succeeded"
    assert result.totals["folders"] == 12 and result.totals["folders_done"] == 12
    paths = await db.fetchval("SELECT array_agg(file_path ORDER BY file_path) FROM image_assets")
    assert paths == sorted(media[4:])  # the first four were marked done without their rows
