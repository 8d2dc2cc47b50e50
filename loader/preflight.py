"""Checks on the user's database before the loader writes anything.

The loader never creates or alters application tables on its own: it says precisely what is
missing and how to fix it. The one exception is the unique index on file_path, created with
`--create-unique-index`, and only when no file_path is duplicated.
"""

from __future__ import annotations

import asyncpg

from loader.errors import SchemaError
from loader.sqlfiles import sql

REQUIRED_COLUMNS: dict[str, str] = {
    "file_path": "text",
    "filename": "",
    "original_filename": "",
    "format": "",
    "mime_type": "",
    "file_size": "",
    "cdn_url": "",
    "ai_tags": "text[]",
    "upload_source": "",
    "status": "",
    "created_at": "",
    "updated_at": "",
}

# Named in the error when image_assets is not found: where the loader looked for it.
SEARCH_PATH_SQL = "SHOW search_path"


async def check_target(
    conn: asyncpg.Connection, *, create_unique_index: bool = False, dry_run: bool = False
) -> list[str]:
    """Raise `SchemaError` with every problem found in `image_assets`; else return notes for
    the plan (a dry run says what it would create instead of creating it)."""
    table = await conn.fetchrow(sql("preflight_table"))
    if table is None:
        raise SchemaError(
            "table image_assets not found (search_path: "
            f"{await conn.fetchval(SEARCH_PATH_SQL)}); create it, or for a local test "
            "database run `loader db init --demo-schema`"
        )
    types = dict(zip(table["columns"], table["types"], strict=True))
    problems = [
        f"column {name} is missing"
        if name not in types
        else f"column {name} is {types[name]}, expected {expected}"
        for name, expected in REQUIRED_COLUMNS.items()
        if name not in types or (expected and types[name] != expected)
    ]
    missing = [p for p, ok in (("SELECT", table["can_select"]), ("INSERT", table["can_insert"]),
                               ("UPDATE", table["can_update"])) if not ok]  # fmt: skip
    if missing:
        problems.append(f"this role lacks {', '.join(missing)} on image_assets")
    if problems:
        raise SchemaError("image_assets is not usable: " + "; ".join(problems))
    if not await conn.fetchval(sql("preflight_unique_index")):
        return await _unique_index_missing(conn, create=create_unique_index, dry_run=dry_run)
    return []


# How many file_paths occur more than once, and how many rows they hold.
DUPLICATE_PATHS_SQL = """
SELECT count(*) AS paths, coalesce(sum(n), 0) AS rows
FROM (SELECT count(*) AS n FROM image_assets GROUP BY file_path HAVING count(*) > 1) AS d
"""
# Only after no duplicate file_path was found. CONCURRENTLY, so the user's application keeps
# writing while it builds.
CREATE_UNIQUE_INDEX_SQL = """
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS image_assets_file_path_key
    ON image_assets (file_path)
"""


async def _unique_index_missing(
    conn: asyncpg.Connection, *, create: bool, dry_run: bool
) -> list[str]:
    dup = await conn.fetchrow(DUPLICATE_PATHS_SQL)
    if dup["paths"]:
        raise SchemaError(
            f"image_assets has no unique index on file_path, and {dup['paths']:,} file_path(s) "
            f"occur more than once ({dup['rows']:,} rows). Merge or delete the duplicates "
            "(keep one row per file_path), then rerun with --create-unique-index"
        )
    if not create:
        raise SchemaError(
            "image_assets has no unique index on file_path (ON CONFLICT needs one). No "
            "duplicates exist: rerun with --create-unique-index, or run "
            "CREATE UNIQUE INDEX CONCURRENTLY ON image_assets (file_path)"
        )
    if dry_run:
        return ["dry run: the unique index on image_assets.file_path would be created"]
    await conn.execute(CREATE_UNIQUE_INDEX_SQL)
    return []
