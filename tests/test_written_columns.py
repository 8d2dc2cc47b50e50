"""The written row has one definition (loader.rows.WRITTEN_COLUMN_TYPES / STAGED_COLUMNS):
every other place that names those columns is checked against it, so a drift fails here."""

from __future__ import annotations

import re

import asyncpg

from loader.preflight import REQUIRED_COLUMNS
from loader.rows import STAGED_COLUMNS, WRITTEN_COLUMN_TYPES, WRITTEN_COLUMNS
from loader.sqlfiles import sql


def insert_columns(statement: str, table: str) -> tuple[str, ...]:
    found = re.search(rf"INSERT INTO {table}\b[^(]*\(([^)]*)\)", statement)
    assert found, f"no INSERT INTO {table}"
    return tuple(c.strip() for c in found.group(1).split(","))


def test_upsert_writes_the_written_columns() -> None:
    assert insert_columns(sql("upsert_batch"), "image_assets") == WRITTEN_COLUMNS


def test_preflight_requires_the_written_columns() -> None:
    assert set(REQUIRED_COLUMNS) == set(WRITTEN_COLUMNS)


async def test_demo_schema_has_the_written_columns_and_types(db: asyncpg.Connection) -> None:
    table = await db.fetchrow(sql("preflight_table"))
    types = dict(zip(table["columns"], table["types"], strict=True))
    assert {c: types.get(c) for c in WRITTEN_COLUMNS} == WRITTEN_COLUMN_TYPES


async def test_the_staging_table_and_the_sink_statements_agree(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await db.execute(sql("sink_stage"))
        staged = await db.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pg_temp.loader_stage'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
        assert tuple(r["attname"] for r in staged) == STAGED_COLUMNS
        # every statement of the write path parses and plans against the schema
        for name in ("upsert_batch", "sink_probe", "journal_inserts_add", "plan_batch"):
            await db.prepare(sql(name))
