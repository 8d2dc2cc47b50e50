"""The binary COPY encoder: what it writes reads back exactly as asyncpg's own encoder writes it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import pgcopy
from loader.rows import STAGED_COLUMNS, WRITTEN_COLUMNS, AssetRow
from loader.sqlfiles import sql

# Both encode with a "%" byte: new_rows writes them into a bytes %-format, so the round trips
# below check that they are escaped.
NOW = datetime(2026, 3, 4, 5, 6, 7, 891237, tzinfo=UTC)
SOURCE = "storage-import 100%s ✓"

FOLDER_TAGS = ["customer-42"]  # shared by several rows, as FolderRows does
VARIED_ROWS = [
    AssetRow("a/plain.jpg", "a", "plain.jpg", "jpg", "image/jpeg", 1234, None, [], "http://c/a"),
    AssetRow(
        "b/고양이 사진.png", "b", "고양이 사진.png", "png", "image/png", 0,
        "2024-01-02T03:04:05Z", FOLDER_TAGS, "http://c/b/%EA%B3%A0",
    ),
    AssetRow(
        "b/odd ?#% name.webp", "b", "odd ?#% name.webp", "webp", None, None,
        "2024-01-02T03:04:05.1+09:00", FOLDER_TAGS, None,
    ),
    AssetRow(
        "c/back\\slash\ttab\nnewline.gif", "c", "back\\slash\ttab\nnewline.gif", "gif",
        "image/gif", 2**63 - 1, "2024-06-30T23:59:59.123456+00:00", ["two", "tags"], "u",
    ),
    AssetRow(
        "d/null-tag.jpg", "d", "null-tag.jpg", "jpg", "image/jpeg", 7,
        "2023-12-31T23:59:59.12", ["x", None, "ÿ"], "",  # type: ignore[list-item]
    ),
    AssetRow(
        "d/naive.jpg", "d", "naive.jpg", "jpg", "image/jpeg", 8, "2020-02-29T12:00:00.123",
        [""], "http://c/d/naive.jpg",
    ),
    AssetRow(
        "d/frac4.mp4", "d", "frac4.mp4", "mp4", "video/mp4", 9, "2021-05-06 07:08:09.1234-03:30",
        FOLDER_TAGS, None,
    ),
    AssetRow(
        "d/frac5.mp4", "d", "frac5.mp4", "mp4", "video/mp4", 10, "1999-12-31T23:59:59.12345Z",
        FOLDER_TAGS, None,
    ),
    AssetRow(
        "e/old.jpg", "e", "old.jpg", "", "image/jpeg", 11, "1970-01-01T00:00:00.000001+00:00",
        ["🐈"], None,
    ),
]  # fmt: skip


def aware(created_at: str | None) -> datetime:
    """The reference's created_at: the rule pgcopy documents (naive is UTC). asyncpg itself
    would read a naive datetime as local time, so the reference is given aware ones."""
    if created_at is None:
        return NOW
    value = datetime.fromisoformat(created_at)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


COLUMN_LIST = ", ".join(WRITTEN_COLUMNS)


async def assert_new_rows_round_trip(conn: asyncpg.Connection, rows: list[AssetRow]) -> None:
    """COPY `rows` with asyncpg's encoder into ref and with pgcopy into ours; same rows back."""
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ref (LIKE image_assets INCLUDING DEFAULTS);"
        "CREATE TEMP TABLE IF NOT EXISTS ours (LIKE image_assets INCLUDING DEFAULTS);"
        "TRUNCATE ref, ours"
    )
    await conn.copy_records_to_table(
        "ref", records=[r.record(aware(r.created_at), SOURCE, NOW) for r in rows],
        columns=WRITTEN_COLUMNS,
    )  # fmt: skip
    await conn.copy_to_table(
        "ours", source=io.BytesIO(pgcopy.new_rows(rows, SOURCE, NOW)), columns=WRITTEN_COLUMNS,
        format="binary",
    )  # fmt: skip
    ref = await conn.fetch(f"SELECT {COLUMN_LIST} FROM ref ORDER BY file_path")
    ours = await conn.fetch(f"SELECT {COLUMN_LIST} FROM ours ORDER BY file_path")
    assert len(ours) == len(rows)
    assert [tuple(r) for r in ours] == [tuple(r) for r in ref]


async def test_new_rows_read_back_as_asyncpg_writes_them(db: asyncpg.Connection) -> None:
    await assert_new_rows_round_trip(db, VARIED_ROWS)
    # And the values themselves, for a few columns, not only "the same as asyncpg".
    got = await db.fetchrow(
        "SELECT ai_tags, created_at, updated_at, upload_source, status, file_size FROM ours"
        " WHERE file_path = 'd/null-tag.jpg'"
    )
    assert got["ai_tags"] == ["x", None, "ÿ"]
    assert got["created_at"] == datetime(2023, 12, 31, 23, 59, 59, 120000, tzinfo=UTC)
    assert got["updated_at"] == NOW
    assert (got["upload_source"], got["status"], got["file_size"]) == (SOURCE, "active", 7)
    offset = await db.fetchval("SELECT created_at FROM ours WHERE file_path = 'd/frac4.mp4'")
    assert offset == datetime(2021, 5, 6, 10, 38, 9, 123400, tzinfo=UTC)


def test_constants_exercise_the_format_escaping() -> None:
    # A precondition of the round trips, not a property of pgcopy.
    assert b"%" in pgcopy._timestamptz(NOW)
    assert b"%" in SOURCE.encode()


async def test_no_rows_is_a_valid_stream(db: asyncpg.Connection) -> None:
    await assert_new_rows_round_trip(db, [])
    assert pgcopy.new_rows([], SOURCE, NOW) == pgcopy.HEADER + pgcopy.TRAILER


async def test_staged_rows_read_back_as_asyncpg_writes_them(db: asyncpg.Connection) -> None:
    columns = ", ".join(STAGED_COLUMNS)
    select = f"SELECT {columns} FROM pg_temp.loader_stage ORDER BY file_path"
    # The staging table is emptied at every commit: each COPY and its read in a transaction.
    async with db.transaction():
        await db.execute(sql("sink_stage"))
        await db.copy_records_to_table(
            "loader_stage", schema_name="pg_temp", records=[r.staged() for r in VARIED_ROWS],
            columns=STAGED_COLUMNS,
        )  # fmt: skip
        ref = await db.fetch(select)
    async with db.transaction():
        await db.copy_to_table(
            "loader_stage", schema_name="pg_temp", columns=STAGED_COLUMNS, format="binary",
            source=io.BytesIO(pgcopy.staged_rows(VARIED_ROWS)),
        )  # fmt: skip
        ours = await db.fetch(select)
    assert len(ours) == len(VARIED_ROWS)
    assert [tuple(r) for r in ours] == [tuple(r) for r in ref]
    assert ours[0]["created_at"] is None  # a/plain.jpg: text NULL, not NOW


# Text Postgres can store: no NUL, no lone surrogates (not UTF-8).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
OFFSETS = st.none() | st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Years 2..9998: asyncpg's reference converts to UTC, which must stay inside datetime's range.
STAMPS = st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=OFFSETS).map(
    datetime.isoformat
)
SIZES = st.none() | st.integers(-(2**63), 2**63 - 1)
TAG_LISTS = st.lists(st.none() | TEXT, max_size=4)


@st.composite
def asset_rows(draw: st.DrawFn) -> list[AssetRow]:
    paths = draw(st.lists(TEXT, min_size=1, max_size=12, unique=True))
    shared = draw(TAG_LISTS)  # one list object shared by some rows, as in a folder
    rows = []
    for path in paths:
        folder, name, fmt = draw(TEXT), draw(TEXT), draw(TEXT)
        mime, size, created_at = draw(st.none() | TEXT), draw(SIZES), draw(st.none() | STAMPS)
        tags, cdn_url = draw(st.just(shared) | TAG_LISTS), draw(st.none() | TEXT)
        rows.append(AssetRow(path, folder, name, fmt, mime, size, created_at, tags, cdn_url))
    return rows


@pytest.mark.slow  # ~1 s: 50 examples, each a COPY round trip
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=asset_rows())
async def test_new_rows_round_trip_property(db: asyncpg.Connection, rows: list[AssetRow]) -> None:
    # One connection for every example: the tables are truncated at the start of each.
    await assert_new_rows_round_trip(db, rows)


def test_malformed_timestamp_is_an_unencodable_value() -> None:
    bad = AssetRow("p", "f", "p", "jpg", None, 1, "yesterday", [], None)
    with pytest.raises(pgcopy.UnencodableValue, match="yesterday"):
        pgcopy.new_rows([VARIED_ROWS[0], bad], SOURCE, NOW)


@pytest.mark.parametrize("size", [2**63, -(2**63) - 1])
@pytest.mark.parametrize("encode", [pgcopy.staged_rows, lambda r: pgcopy.new_rows(r, "s", NOW)])
def test_size_outside_bigint_is_an_unencodable_value(encode, size: int) -> None:
    big = AssetRow("p", "f", "p", "jpg", None, size, None, [], None)
    with pytest.raises(pgcopy.UnencodableValue, match="out of range"):
        encode([big])
