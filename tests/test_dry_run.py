"""`loader migrate --dry-run` writes nothing at all: not the loader schema, not the unique
index it would create, not a row. Checked on a database the loader never touched."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from loader.db import connection
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from tests.sample import PREFIX, media_names, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage

# Every object of the database outside the system schemas, and how it is defined.
CATALOGUE = """
SELECT 'class' AS kind, n.nspname || '.' || c.relname || ':' || c.relkind::text AS what
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_to%'
UNION ALL
SELECT 'schema', nspname FROM pg_namespace
UNION ALL
SELECT 'function', p.oid::regprocedure::text FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'index', pg_get_indexdef(indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_to%'
ORDER BY 1, 2
"""
TABLES = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    """The catalogue, and every table's full contents (as text, in a stable order)."""
    tables = {}
    for (name,) in await conn.fetch(TABLES):
        rows = await conn.fetch(f"SELECT t::text AS row FROM {name} AS t ORDER BY 1")
        tables[name] = [r["row"] for r in rows]
    return {"catalogue": [tuple(r) for r in await conn.fetch(CATALOGUE)], "tables": tables}


async def test_dry_run_writes_nothing_on_a_database_without_the_loader_schema(
    make_database: Callable[[], Awaitable[str]], start_storage: StartStorage
) -> None:
    url = await make_database()
    async with connection(url) as conn:
        # The application's tables as a user has them: no loader schema, no unique index on
        # file_path, a customer whose folder will be tagged and rows the run would update.
        await conn.execute("DROP SCHEMA loader CASCADE")
        await conn.execute("ALTER TABLE image_assets DROP CONSTRAINT image_assets_file_path_key")
        await conn.execute("ALTER TABLE image_assets ALTER ai_tags DROP NOT NULL")
        await conn.execute(
            "INSERT INTO customers (id, name, phone, folder_name)"
            " VALUES (1, '김민수', '010-1234-6600', 'kimminsu00-6600')"
        )
        await conn.execute(
            "INSERT INTO image_assets (file_path, ai_tags) VALUES ($1, ARRAY['old']), ($2, NULL)",
            f"{PREFIX}kimminsu00-6600/IMG_0000.jpg",
            f"{PREFIX}kimminsu01-6601/IMG_0000.jpg",
        )
        before = await snapshot(conn)
    assert "loader" not in {what for kind, what in before["catalogue"] if kind == "schema"}

    storage_url = await start_storage(sample_catalogue())
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    plan = await migrate(
        MigrateOptions(source=source, database_url=url, dry_run=True, create_unique_index=True)
    )

    assert plan.status == "planned"
    assert plan.totals["inserted"] == len(media_names()) - 2
    assert plan.totals["updated"] == 2  # a tag to add, a cdn_url to fill
    assert any("unique index" in w and "would be created" in w for w in plan.warnings)
    async with connection(url) as conn:
        assert await snapshot(conn) == before


async def test_plan_counts_what_the_upsert_then_does(
    db_url: str, start_storage: StartStorage
) -> None:
    """The plan's decision per row (it cannot call loader.merge_tags or loader.cdn_url_after)
    equals the write's: a cdn_url of the same object behind a CDN is kept, another refreshed."""
    storage_url = await start_storage(sample_catalogue())
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    async with connection(db_url) as conn:
        await conn.execute(
            "INSERT INTO customers (id, name, phone, folder_name)"
            " VALUES (1, '김민수', '010-1234-6600', 'kimminsu00-6600')"
        )
        await conn.execute(
            "INSERT INTO image_assets (file_path, ai_tags, cdn_url) VALUES"
            " ($1, ARRAY['customer-1'], 'https://cdn.example.com/' || $1),"
            " ($2, ARRAY[NULL, 'customer-1'], 'https://cdn.example.com/' || $2), ($3, '{}', 'x')",
            f"{PREFIX}kimminsu00-6600/IMG_0000.jpg",
            f"{PREFIX}kimminsu00-6600/IMG_0001.jpg",
            f"{PREFIX}kimminsu01-6601/IMG_0000.jpg",
        )
    options = MigrateOptions(source=source, database_url=db_url, dry_run=True)
    plan = await migrate(options)
    done = await migrate(dataclasses.replace(options, dry_run=False))
    for action in ("inserted", "updated", "unchanged"):
        assert plan.totals[action] == done.totals[action], action
    assert (plan.totals["unchanged"], plan.totals["updated"]) == (2, 1)  # 'x' is refreshed
