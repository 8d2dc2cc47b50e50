"""Rollback undoes exactly one run: inserted rows go, updated rows get their tags and
cdn_url back, and what others wrote since stays."""

from __future__ import annotations

import asyncpg
import pytest

from loader.errors import BadInputError
from loader.migrate import migrate
from loader.rollback import rollback
from tests.sample import PREFIX, sample_catalogue
from tests.storage_fixtures import StartStorage
from tests.test_migrate import KEPT, options

CUSTOMER_FOLDER = "kimminsu01-6601"


async def seed(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES"
        " (7, '김민수', '010-1111-6601', $1), (8, '이남구', '010-2222-9999', 'other-0000')",
        CUSTOMER_FOLDER,
    )
    await db.execute(
        "INSERT INTO image_assets (file_path, filename, ai_tags, alt_text)"
        " VALUES ($1, 'IMG_0000.jpg', ARRAY['portrait', NULL], 'keep me')",
        KEPT,
    )


async def test_rollback_restores_the_table_exactly(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    before = [tuple(r) for r in await db.fetch("SELECT * FROM image_assets ORDER BY file_path")]
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    tagged = await db.fetchrow("SELECT ai_tags, cdn_url FROM image_assets WHERE file_path = $1",
                               KEPT)  # fmt: skip
    assert tagged["ai_tags"] == ["portrait", None, "customer-7"]
    assert tagged["cdn_url"].endswith("/IMG_0000.jpg")
    other = f"{PREFIX}{CUSTOMER_FOLDER}/IMG_0001.jpg"
    assert await db.fetchval(
        "SELECT ai_tags FROM image_assets WHERE file_path = $1", other
    ) == ["customer-7"]  # fmt: skip

    undone = await rollback(db, result.run_id)
    assert undone.deleted == result.totals["inserted"]
    assert undone.restored == 1
    after = [tuple(r) for r in await db.fetch("SELECT * FROM image_assets ORDER BY file_path")]
    strip_updated_at = lambda rows: [r[:-1] for r in rows]  # noqa: E731
    assert strip_updated_at(after) == strip_updated_at(before)
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", result.run_id) == (
        "rolled_back"
    )
    with pytest.raises(BadInputError, match="already rolled back"):
        await rollback(db, result.run_id)


async def test_rollback_keeps_what_others_wrote_since(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    await db.execute(
        "UPDATE image_assets SET ai_tags = ai_tags || 'by-app'::text WHERE file_path = $1", KEPT
    )
    await rollback(db, result.run_id)
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", KEPT) == [
        "portrait", None, "by-app",
    ]  # fmt: skip


async def test_rollback_refuses_to_break_a_later_run(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    url = await start_storage(sample_catalogue())
    first = await migrate(options(url, db_url, match="none"))
    await migrate(options(url, db_url, match="auto"))  # adds customer tags to run 1's rows
    with pytest.raises(BadInputError, match="later run"):
        await rollback(db, first.run_id)


async def test_verify_finds_gaps_and_a_migrate_run_repairs_them(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    from loader.verify import verify

    await seed(db)
    url = await start_storage(sample_catalogue())
    opts = options(url, db_url, match="auto")
    await migrate(opts)
    assert (await verify(opts.source, db_url)).ok
    await db.execute("DELETE FROM image_assets WHERE file_path LIKE '%IMG_0003.jpg'")
    await db.execute("UPDATE image_assets SET ai_tags = '{}' WHERE file_path = $1", KEPT)
    await db.execute("UPDATE image_assets SET cdn_url = NULL WHERE file_path LIKE '%clip.MOV'")
    found = await verify(opts.source, db_url)
    assert (found.counts["missing"], found.counts["untagged"], found.counts["no_cdn_url"]) == (
        12, 1, 12,
    )  # fmt: skip
    assert found.mapping_from == "latest run"
    assert KEPT in found.examples["untagged"]
    await migrate(opts)
    assert (await verify(opts.source, db_url)).ok
