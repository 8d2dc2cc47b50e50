"""`loader sync` (loader/sync.py, sql/sync_schema.sql) on the demo schema: an upload becomes
exactly the row a migrate of the same objects writes, whatever way Storage writes
storage.objects; an upload never fails because of image_assets; installing twice equals
installing once; removing leaves nothing behind; privileges are checked first."""

from __future__ import annotations

import asyncio
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import anyio
import asyncpg
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader import sync
from loader.classify import MEDIA_TYPES
from loader.db import connect, connection
from loader.devtools.objects_table import WRITE_STYLES, ObjectsTable
from loader.errors import ExitCode
from loader.listing import SourceOptions
from loader.match import Customer, match_folders
from loader.match_db import apply_decisions, record_links
from loader.migrate import MigrateOptions, MigrateResult, migrate
from loader.rows import WRITTEN_COLUMNS, CdnUrls, FolderRows
from loader.storage_objects import from_metadata
from tests.cli_helpers import COMPARED_COLUMNS, invoke
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, catalogue_of
from tests.test_written_columns import insert_columns

PREFIX = "originals/customers/"
CDN = "https://cdn.example.com/media"
# Every setting as a flag: install needs no migrate run to take them from.
EXPLICIT_SETTINGS = ("--bucket", "b", "--prefix", PREFIX, "--cdn-base", CDN, "--upload-source", "s")
LINKED = f"{PREFIX}kimminsu-6654/"  # customer 101's folder_name: linked by the matcher
UNLINKED = f"{PREFIX}unknown-0000/"  # no customer has these digits: never linked
STAMP = "2024-05-01T09:30:00.000Z"
BEFORE = [f"{LINKED}IMG_0001.jpg", f"{UNLINKED}a.jpg"]  # there when the library is migrated
# Uploads after install: (name, size, mimetype). Hangul and `%` cannot come through
# Storage's upload route (it refuses non-ASCII keys and `%`), only through SQL: the trigger
# registers whatever storage.objects holds, as migrate does.
UPLOADS = [
    (f"{LINKED}IMG_0002.jpg", 2048, "image/jpeg"),
    (f"{LINKED}2024-05-01/photo (1).PNG", 4096, "image/png"),
    (f"{UNLINKED}b.mov", 10_000, "video/quicktime"),
    (f"{LINKED}.emptyFolderPlaceholder", 0, "application/octet-stream"),
    (f"{LINKED}2024-05-01/.keep.png", 0, "image/png"),
    (f"{LINKED}notes.txt", 10, "text/plain"),
    (f"{LINKED}name with spaces.jpeg", 300, "image/jpeg"),
    (f"{LINKED}사진 한장.heic", 500, "image/heic"),
    (f"{LINKED}100% real.webp", 600, "image/webp"),
    (f"{LINKED}a&b+c (2).gif", 650, "image/gif"),
    (f"{LINKED}scan", 700, "image/png"),  # no extension: a photo by its mimetype
    (f"{LINKED}old.jpg", 800, "image/jpeg"),  # its row was there before (app's own tag)
    (f"{PREFIX}loose.jpg", 1, "image/jpeg"),  # in no customer folder: never registered
    ("elsewhere/kimminsu-6654/x.jpg", 1, "image/jpeg"),  # outside the prefix
]
MEDIA_UPLOADED = {
    f"{LINKED}IMG_0002.jpg",
    f"{LINKED}2024-05-01/photo (1).PNG",
    f"{UNLINKED}b.mov",
    f"{LINKED}name with spaces.jpeg",
    f"{LINKED}사진 한장.heic",
    f"{LINKED}100% real.webp",
    f"{LINKED}a&b+c (2).gif",
    f"{LINKED}scan",
    f"{LINKED}old.jpg",
}
SYNC_RELATIONS = (
    "sync_settings",
    "sync_links",
    "sync_media_types",
    "sync_placeholders",
    "sync_log",
    "sync_errors",
)


async def seed_app_tables(conn: asyncpg.Connection) -> None:
    """Customers, and one image_assets row the user's app wrote before the migration."""
    await conn.executemany(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES ($1, $2, $3, $4)",
        [
            (101, "김민수", "010-1234-6654", "kimminsu-6654"),
            (102, "이지은", "010-5555-1200", None),
            (103, "박서준", "010-7777-3321", None),
        ],
    )
    await conn.execute(
        "INSERT INTO image_assets (file_path, filename, ai_tags, upload_source, created_at)"
        " VALUES ($1, 'old.jpg', '{favorite}', 'app', '2023-01-01T00:00:00Z')",
        f"{LINKED}old.jpg",
    )


async def upload(
    table: ObjectsTable, name: str, size: int = 1024, mimetype: str = "image/jpeg"
) -> None:
    """What Storage writes into storage.objects for an accepted upload."""
    await table.write(str(uuid.uuid4()), name, size, mimetype, STAMP, STAMP)


def migrate_options(storage_db: str, target: str) -> MigrateOptions:
    source = SourceOptions(
        bucket=STORAGE_BUCKET, prefix=PREFIX, source="db", storage_database_url=storage_db
    )
    return MigrateOptions(source=source, database_url=target, cdn_base=CDN, backup=False)


async def migrated(storage_db: str, target: str) -> MigrateResult:
    result = await migrate(migrate_options(storage_db, target))
    assert result.status == "succeeded", result
    return result


async def rows(url: str) -> list[tuple[Any, ...]]:
    async with connection(url) as conn:
        found = await conn.fetch(f"SELECT {COMPARED_COLUMNS} FROM image_assets ORDER BY file_path")
    return [tuple(r) for r in found]


async def tags(conn: asyncpg.Connection, name: str) -> list[str] | None:
    return await conn.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", name)


async def synced_library(db_url: str) -> None:
    """The demo tables, a migrated library, and sync installed with the run's settings."""
    async with connection(db_url) as conn:
        await seed_app_tables(conn)
    async with ObjectsTable(db_url, STORAGE_BUCKET).opened() as table:
        for name in BEFORE:
            await upload(table, name)
    await migrated(db_url, db_url)
    async with connection(db_url) as conn:
        await sync.install(conn, sync.SyncSettings())


# -- the rows -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_uploads_give_exactly_the_rows_a_migrate_of_the_same_objects_gives(
    db_url: str, make_database: Callable[..., Any]
) -> None:
    await synced_library(db_url)
    async with (
        ObjectsTable(db_url, STORAGE_BUCKET).opened() as table,
        ObjectsTable(db_url, "other-bucket").opened() as other,
    ):
        for i, (name, size, mimetype) in enumerate(UPLOADS):
            table.style = WRITE_STYLES[i % 2]  # metadata in the INSERT, or in a later UPDATE
            await upload(table, name, size, mimetype)
        await upload(other, f"{LINKED}IMG_0002.jpg")
    fresh = await make_database()
    async with connection(fresh) as conn:
        await seed_app_tables(conn)
    await migrated(db_url, fresh)  # the same objects, listed from storage.objects

    synced = await rows(db_url)
    assert synced == await rows(fresh)
    assert {r[0] for r in synced} == {*BEFORE, *MEDIA_UPLOADED}
    async with connection(db_url) as conn:
        assert await tags(conn, f"{LINKED}2024-05-01/photo (1).PNG") == ["customer-101"]
        assert await tags(conn, f"{UNLINKED}b.mov") == []
        assert await tags(conn, f"{LINKED}old.jpg") == ["favorite", "customer-101"]
        row = await conn.fetchrow(
            "SELECT * FROM image_assets WHERE file_path = $1", f"{LINKED}사진 한장.heic"
        )
        assert row["cdn_url"] == (f"{CDN}/{LINKED}%EC%82%AC%EC%A7%84%20%ED%95%9C%EC%9E%A5.heic")
        assert (row["file_size"], row["mime_type"], row["format"]) == (500, "image/heic", "heic")
        scan = await conn.fetchrow(
            "SELECT * FROM image_assets WHERE file_path = $1", f"{LINKED}scan"
        )
        assert (scan["mime_type"], scan["format"], scan["file_size"]) == ("image/png", "", 700)
        assert await conn.fetchval("SELECT count(*) FROM loader.sync_errors") == 0
        assert await conn.fetchval("SELECT count(*) FROM loader.sync_log WHERE inserted") == 8
    # and a migrate over the synced database finds nothing left to write
    again = await migrated(db_url, db_url)
    assert (again.totals.get("inserted"), again.totals.get("updated")) == (0, 0)


async def test_an_upload_over_http_through_the_storage_server_appears_in_image_assets(
    db_url: str, start_storage: StartStorage
) -> None:
    await synced_library(db_url)
    for style in WRITE_STYLES:
        objects = ObjectsTable(db_url, STORAGE_BUCKET, style=style)
        url = await start_storage(catalogue_of([]), objects=objects)
        name = f"{LINKED}2024-06-0{WRITE_STYLES.index(style) + 1}/from {style}.jpg"
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{url}/object/{STORAGE_BUCKET}/{name}",
                data=b"\xff\xd8jpeg",
                headers={"Authorization": f"Bearer {STORAGE_KEY}", "Content-Type": "image/jpeg"},
            )
            assert response.status == 200, await response.text()
        async with connection(db_url) as conn:
            row = await conn.fetchrow("SELECT * FROM image_assets WHERE file_path = $1", name)
            stored = await conn.fetchrow("SELECT * FROM storage.objects WHERE name = $1", name)
        assert row is not None, style
        assert (row["file_size"], row["mime_type"], row["ai_tags"]) == (
            6,
            "image/jpeg",
            ["customer-101"],
        )
        assert row["cdn_url"] == f"{CDN}/{name.replace(' ', '%20')}"
        assert stored["metadata"]["size"] == 6


# -- the rules, held equal to the Python ones ----------------------------------------------


def run_on_connection(db_url: str, check: Callable[[Callable[..., Any]], None]) -> None:
    """Run hypothesis test `check(fetch)`, where `fetch(query, *args)` runs on one connection
    of an event loop of this thread (hypothesis drives plain functions)."""
    with asyncio.Runner() as runner:
        conn: asyncpg.Connection = runner.run(connect(db_url))
        try:
            check(lambda query, *args: runner.run(conn.fetch(query, *args)))
        finally:
            runner.run(conn.close())


# Names as Storage could hold them, plus what only SQL can write there: Hangul, `%`, `#`.
# Cased letters beyond ASCII are left out: Python lower-cases them, the SQL side (ASCII-only,
# like Storage's keys) does not (docs/sync.md).
SEGMENT = st.text(
    string.ascii_letters + string.digits + " .%?#&+()'~-_!*$=@;:,한글사진é", max_size=6
)
EXTENSION = st.one_of(
    st.builds(
        lambda ext, upper: ext.upper() if upper else ext,
        st.sampled_from(sorted(MEDIA_TYPES)),
        st.booleans(),
    ),
    st.sampled_from(["Jpg", "mOv", "txt", "pdf", "", "tar.gz", "jpg.txt"]),
    SEGMENT,
)
FILENAME = st.one_of(
    st.builds(lambda stem, ext: f"{stem}.{ext}", SEGMENT, EXTENSION),
    st.sampled_from(
        [
            ".keep.png",
            ".emptyFolderPlaceholder",
            ".KEEP",
            ".gitkeep",
            ".DS_Store",
            "a.",
            ".",
            "",
            "noext",
        ]
    ),
    SEGMENT,
)
PATH = st.one_of(
    st.builds(
        lambda folder, dated, name: f"{PREFIX}{folder}/{dated}{name}",
        SEGMENT,
        st.sampled_from(["", "2024-05-01/", "a/b/"]),
        FILENAME,
    ),
    st.builds(lambda name: f"{PREFIX}{name}", FILENAME),  # loose
    st.builds(lambda name: f"other/{name}", FILENAME),  # outside the prefix
)
SIZE = st.one_of(st.integers(-5, 2**40), st.sampled_from([1.5, 2.0, True, False, "12", None]))
MIMETYPE = st.sampled_from(
    [
        "image/png",
        "IMAGE/JPEG",
        "video/mp4",
        "Video/X-Custom",
        "application/pdf",
        "text/plain",
        "image",
        "",
        5,
        None,
    ]
)
METADATA = st.one_of(
    st.fixed_dictionaries({}, optional={"size": SIZE, "mimetype": MIMETYPE}),
    st.sampled_from([None, [], "text"]),
)


def python_row(path: str, metadata: Any, base: str) -> tuple[Any, ...] | None:
    """What migrate writes for one object of storage.objects (`--source db`): the listing
    puts it in the folder of its first segment under the prefix (none for loose files and
    others), `from_metadata` reads it, `FolderRows` builds its row."""
    rest = path[len(PREFIX) :]
    if not path.startswith(PREFIX) or "/" not in rest:
        return None
    folder = rest.split("/", 1)[0]
    _, row = FolderRows(folder, None, CdnUrls(base)).build(
        from_metadata(path, metadata, None, None)
    )
    if row is None:
        return None
    return (
        row.file_path,
        row.folder,
        row.filename,
        row.format,
        row.mime_type,
        row.file_size,
        row.cdn_url,
    )


async def test_the_sql_row_of_an_object_is_the_row_migrate_builds(db_url: str) -> None:
    async with connection(db_url) as conn:
        await sync.install(
            conn, sync.SyncSettings(bucket="b", prefix=PREFIX, cdn_base=CDN, upload_source="s")
        )

    def check(fetch: Callable[..., Any]) -> None:
        @settings(max_examples=150, deadline=None)
        @given(
            objects=st.lists(st.tuples(PATH, METADATA), min_size=1, max_size=25),
            base=st.sampled_from([CDN, f"{CDN}/", "http://127.0.0.1:5000/object/public/m"]),
        )
        def same(objects: list[tuple[str, Any]], base: str) -> None:
            found = fetch(
                "SELECT o.n, o.metadata::jsonb AS metadata, r.*"
                " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS o (name, metadata, n)"
                " LEFT JOIN LATERAL loader.sync_row(o.name, o.metadata::jsonb, now(), $3, $4)"
                " AS r ON true ORDER BY o.n",
                [path for path, _ in objects],
                # as JSON text (a list would be taken for an array dimension); None: SQL NULL
                [None if meta is None else orjson.dumps(meta).decode() for _, meta in objects],
                PREFIX,
                base,
            )
            for (path, _), got in zip(objects, found, strict=True):
                # the metadata as the database holds it (JSON numbers normalised by jsonb)
                want = python_row(path, got["metadata"], base)
                sql_row = (
                    None
                    if got["file_path"] is None
                    else (
                        got["file_path"],
                        got["folder"],
                        got["filename"],
                        got["format"],
                        got["mime_type"],
                        got["file_size"],
                        got["cdn_url"],
                    )
                )
                assert sql_row == want, path

        same()

    await anyio.to_thread.run_sync(run_on_connection, db_url, check)


# Few characters, each often: every kind of character the encoding treats its own way.
URL_PATH = st.text(st.sampled_from("aZ09/._~-% ?#&+'é한\n"), max_size=12)


async def test_the_sql_url_path_is_python_s_quote(db_url: str) -> None:
    async with connection(db_url) as conn:
        await sync.install(
            conn, sync.SyncSettings(bucket="b", prefix=PREFIX, cdn_base=CDN, upload_source="s")
        )

    def check(fetch: Callable[..., Any]) -> None:
        @settings(max_examples=100, deadline=None)
        @given(paths=st.lists(URL_PATH, min_size=1, max_size=40))
        def same(paths: list[str]) -> None:
            found = fetch(
                "SELECT loader.sync_url_path(p) AS url"
                " FROM unnest($1::text[]) WITH ORDINALITY AS t (p, n) ORDER BY n",
                paths,
            )
            assert [r["url"] for r in found] == [quote(p, safe="/") for p in paths]

        same()

    await anyio.to_thread.run_sync(run_on_connection, db_url, check)


# A small library for the links rule: customers with folder_names (exact and normalized
# links), two claiming one customer (a conflict), one linked by name and phone digits.
LINK_CUSTOMERS = [
    Customer(1, "김민수", "010-1111-6654", "kimminsu-6654"),
    Customer(2, "이지은", "010-2222-1200", "LeeJiEun_1200"),
    Customer(3, "박서준", "010-3333-3321", None),
    Customer(4, "최우아", "010-4444-7788", "choewooa-7788"),
    Customer(5, "정하늘", None, None),
]
LINK_FOLDERS = [
    "kimminsu-6654",
    "leejieun-1200",
    "parkseojun-3321",
    "choewooa-7788",
    "choewooa-7788-2",
    "unknown-0000",
    "jeonghaneul",
]


async def test_a_folder_s_customer_is_the_matcher_s_or_none_never_another(db_url: str) -> None:
    """loader.sync_customer (the trigger's link) over random decisions against the matcher's
    links with those decisions: the same customer, or none where a decision would make the
    matcher link a folder it did not link before (the next `match` or `migrate` does);
    never a different customer."""
    async with connection(db_url) as conn:
        await sync.install(
            conn, sync.SyncSettings(bucket="b", prefix=PREFIX, cdn_base=CDN, upload_source="s")
        )
        for c in LINK_CUSTOMERS:
            await conn.execute(
                "INSERT INTO customers (id, name, phone, folder_name) VALUES ($1, $2, $3, $4)",
                c.id,
                c.name,
                c.phone,
                c.folder_name,
            )
        before = {m.folder: m.customer_id for m in match_folders(LINK_FOLDERS, LINK_CUSTOMERS)}
        await record_links(conn, list(before.items()))
    assert sum(c is not None for c in before.values()) >= 3  # the library links something
    ids = [c.id for c in LINK_CUSTOMERS]

    def check(fetch: Callable[..., Any]) -> None:
        @settings(max_examples=60, deadline=None)
        @given(
            decided=st.dictionaries(
                st.sampled_from(LINK_FOLDERS),
                st.one_of(st.none(), st.sampled_from(ids)),
                max_size=4,
            )
        )
        def same(decided: dict[str, int | None]) -> None:
            fetch("DELETE FROM loader.match_decisions")
            fetch(
                "INSERT INTO loader.match_decisions (folder, customer_id)"
                " SELECT * FROM unnest($1::text[], $2::bigint[])",
                list(decided),
                list(decided.values()),
            )
            now = {
                m.folder: m.customer_id
                for m in match_folders(LINK_FOLDERS, LINK_CUSTOMERS, decisions=decided)
            }
            for folder in LINK_FOLDERS:
                linked = fetch("SELECT loader.sync_customer($1) AS c", folder)[0]["c"]
                if folder in decided:
                    assert linked == decided[folder], folder
                else:
                    assert linked in (now[folder], None), folder
                    if linked is None and now[folder] is not None:
                        assert before[folder] != now[folder], folder  # only a new link waits
                    if before[folder] not in decided.values():
                        assert linked == before[folder], folder

        same()

    await anyio.to_thread.run_sync(run_on_connection, db_url, check)


async def test_the_trigger_writes_the_written_columns(db: asyncpg.Connection) -> None:
    await sync.install(
        db, sync.SyncSettings(bucket="b", prefix=PREFIX, cdn_base=CDN, upload_source="s")
    )
    body = await db.fetchval(
        "SELECT prosrc FROM pg_proc WHERE oid = 'loader.sync_object()'::regprocedure"
    )
    assert insert_columns(body, r"public\.image_assets") == WRITTEN_COLUMNS


# -- later links ----------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_a_folder_linked_later_tags_new_uploads_at_once_and_migrate_tags_the_earlier(
    db_url: str, tmp_path: Path
) -> None:
    await synced_library(db_url)
    newcomer = f"{PREFIX}newcomer-4321/"
    async with ObjectsTable(db_url, STORAGE_BUCKET).opened() as table, connection(db_url) as conn:
        await upload(table, f"{UNLINKED}first.jpg")
        await upload(table, f"{newcomer}first.jpg")
        assert await tags(conn, f"{UNLINKED}first.jpg") == []
        assert await tags(conn, f"{newcomer}first.jpg") == []
        # a person decides (as `loader match apply` and `loader review` record it)
        await apply_decisions(conn, {"unknown-0000": 103}, write_folder_name=False)
        # the matcher links a folder: its customer now has it as folder_name
        await conn.execute(
            "INSERT INTO customers (id, name, phone, folder_name)"
            " VALUES (104, '한지민', '010-9999-4321', 'newcomer-4321')"
        )
        matched = await invoke(
            "match",
            "--source",
            "db",
            "--bucket",
            STORAGE_BUCKET,
            "--database-url",
            db_url,
            "--report",
            str(tmp_path / "m.json"),
            "--review",
            str(tmp_path / "r.csv"),
        )
        assert matched.code == 0, matched.err
        await upload(table, f"{UNLINKED}second.jpg")
        await upload(table, f"{newcomer}second.jpg")
        assert await tags(conn, f"{UNLINKED}second.jpg") == ["customer-103"]
        assert await tags(conn, f"{newcomer}second.jpg") == ["customer-104"]
        assert await tags(conn, f"{UNLINKED}first.jpg") == []  # until the next migrate
    # `loader migrate` tags the rows uploaded before the link (journaled, undoable)
    again = await migrated(db_url, db_url)
    assert again.totals.get("updated") == 3  # the two first.jpg and a.jpg of BEFORE
    async with connection(db_url) as conn:
        assert await tags(conn, f"{UNLINKED}first.jpg") == ["customer-103"]
        assert await tags(conn, f"{newcomer}first.jpg") == ["customer-104"]
    checked = await invoke(
        "verify", "--source", "db", "--bucket", STORAGE_BUCKET, "--database-url", db_url
    )
    assert checked.code == 0, checked.err
    assert "sync: installed (media/originals/customers/" in checked.err


# -- uploads never fail ---------------------------------------------------------------------

# How image_assets is broken, how it is mended, and the error the trigger records meanwhile.
BREAKAGES = {
    "renamed": (
        "ALTER TABLE image_assets RENAME TO image_assets_old",
        "ALTER TABLE image_assets_old RENAME TO image_assets",
        "42P01",
    ),
    "column_gone": (
        "ALTER TABLE image_assets DROP COLUMN format",
        "ALTER TABLE image_assets ADD COLUMN format text",
        "42703",
    ),
    "constraint": (
        "ALTER TABLE image_assets ADD CONSTRAINT tiny CHECK (file_size < 100) NOT VALID",
        "ALTER TABLE image_assets DROP CONSTRAINT tiny",
        "23514",
    ),
    "no_unique_index": (
        "ALTER TABLE image_assets DROP CONSTRAINT image_assets_file_path_key",
        "ALTER TABLE image_assets ADD UNIQUE (file_path)",
        "42P10",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
async def test_an_upload_succeeds_whatever_image_assets_holds(db_url: str, breakage: str) -> None:
    await synced_library(db_url)
    broken, mended, sqlstate = BREAKAGES[breakage]
    async with ObjectsTable(db_url, STORAGE_BUCKET).opened() as table, connection(db_url) as conn:
        await conn.execute(broken)
        await upload(table, f"{LINKED}while broken.jpg", 5000)
        await conn.execute(mended)
        await upload(table, f"{LINKED}after.jpg", 50)
        names = await conn.fetchval(
            "SELECT array_agg(name ORDER BY name) FROM storage.objects"
            " WHERE name LIKE '%.jpg' AND name LIKE $1",
            f"{LINKED}%",
        )
        assert f"{LINKED}while broken.jpg" in names and f"{LINKED}after.jpg" in names
        assert await tags(conn, f"{LINKED}while broken.jpg") is None
        assert await tags(conn, f"{LINKED}after.jpg") == ["customer-101"]
        errors = await conn.fetch("SELECT name, operation, sqlstate FROM loader.sync_errors")
        found = await sync.status(conn)
    # the "upsert" write is an INSERT (its permission check rolled back with what it caught)
    assert [tuple(e) for e in errors] == [(f"{LINKED}while broken.jpg", "INSERT", sqlstate)]
    assert found.errors == 1 and found.recent_errors[0]["sqlstate"] == sqlstate


async def test_an_upload_while_image_assets_is_locked_waits_its_lock_timeout_only(
    db_url: str,
) -> None:
    await synced_library(db_url)
    async with (
        ObjectsTable(db_url, STORAGE_BUCKET).opened() as table,
        connection(db_url) as holder,
        connection(db_url) as conn,
    ):
        async with holder.transaction():
            await holder.execute("LOCK TABLE image_assets IN ACCESS EXCLUSIVE MODE")
            with anyio.fail_after(30):  # the lock is held until this upload returns
                await upload(table, f"{LINKED}during a restore.jpg")
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM storage.objects WHERE name = $1",
                f"{LINKED}during a restore.jpg",
            )
            == 1
        )
        assert await tags(conn, f"{LINKED}during a restore.jpg") is None
        assert await conn.fetchval("SELECT sqlstate FROM loader.sync_errors") == "55P03"


# -- roles and privileges -------------------------------------------------------------------

STORAGE_ROLES = ("anon", "authenticated", "service_role", "supabase_storage_admin")


async def test_uploads_of_storage_s_roles_are_registered_and_those_roles_get_nothing(
    db_url: str,
) -> None:
    await synced_library(db_url)
    async with connection(db_url) as conn:
        for role in STORAGE_ROLES:
            # Roles belong to the whole test server: made once, as Supabase has them.
            await conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN "
                "duplicate_object THEN NULL; END $$"
            )
            await conn.execute(
                f"GRANT USAGE ON SCHEMA storage TO {role};"
                f" GRANT SELECT, INSERT, UPDATE ON storage.objects TO {role};"
                f" GRANT SELECT ON storage.buckets TO {role}"
            )
        for role in STORAGE_ROLES:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {role}")
                await conn.execute(
                    "INSERT INTO storage.objects (bucket_id, name, metadata)"
                    " VALUES ($1, $2, '{\"size\": 3}')",
                    STORAGE_BUCKET,
                    f"{LINKED}by {role}.png",
                )
        for role in STORAGE_ROLES:
            assert await tags(conn, f"{LINKED}by {role}.png") == ["customer-101"], role
        assert await conn.fetchval("SELECT count(*) FROM loader.sync_errors") == 0
        functions = await conn.fetch(
            "SELECT p.oid::regprocedure::text AS f FROM pg_proc AS p"
            " WHERE p.pronamespace = 'loader'::regnamespace"
            " AND p.proname LIKE 'sync%'"
        )
        assert len(functions) == 6
        for role in STORAGE_ROLES:
            granted = await conn.fetchrow(
                "SELECT has_schema_privilege($1, 'loader', 'USAGE') AS schema,"
                " has_table_privilege($1, 'image_assets', 'INSERT') AS assets,"
                " bool_or(has_function_privilege($1, f, 'EXECUTE')) AS functions"
                " FROM unnest($2::text[]) AS f",
                role,
                [r["f"] for r in functions],
            )
            assert dict(granted) == {"schema": False, "assets": False, "functions": False}, role
        definer = await conn.fetchrow(
            "SELECT prosecdef, proconfig FROM pg_proc"
            " WHERE oid = 'loader.sync_object()'::regprocedure"
        )
    assert definer["prosecdef"]
    assert set(definer["proconfig"]) == {"search_path=pg_catalog, pg_temp", "lock_timeout=200ms"}


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


async def test_install_checks_its_privileges_first_and_names_the_missing_grant(
    db_url: str,
) -> None:
    await synced_library(db_url)
    role = f"sync_installer_{uuid.uuid4().hex[:8]}"
    async with connection(db_url) as conn:
        await sync.remove(conn)
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        try:
            await conn.execute(
                f"GRANT USAGE ON SCHEMA storage, loader TO {role};"
                f" GRANT SELECT ON ALL TABLES IN SCHEMA storage TO {role};"
                f" GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA loader, public"
                f" TO {role}; GRANT CREATE ON SCHEMA loader TO {role}"
            )
            url = as_role(db_url, role)
            refused = await invoke("sync", "install", "--database-url", url)
            assert refused.code == ExitCode.SCHEMA, refused.err
            assert f"GRANT TRIGGER ON storage.objects TO {role}" in refused.err
            await conn.execute(
                f"GRANT TRIGGER ON storage.objects TO {role};"
                f" REVOKE CREATE ON SCHEMA loader FROM {role}"
            )
            before = await catalogue(conn)
            refused = await invoke("sync", "install", "--database-url", url)
            assert refused.code == ExitCode.SCHEMA, refused.err
            assert f"GRANT CREATE ON SCHEMA loader TO {role}" in refused.err
            assert await catalogue(conn) == before  # nothing was created
            await conn.execute(f"GRANT CREATE ON SCHEMA loader TO {role}")
            installed = await invoke("sync", "install", "--database-url", url)
            assert installed.code == 0, installed.err
            # a trigger may be created with TRIGGER, dropped only by the table's owner
            assert "only the owner of storage.objects (postgres)" in installed.err
            removed = await invoke("sync", "remove", "--database-url", url)
            assert removed.code == ExitCode.SCHEMA, removed.err
            assert f"GRANT postgres TO {role}" in removed.err
            still = await sync.status(conn)
            assert still.installed and not still.missing
            await sync.remove(conn)
        finally:
            await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_without_a_run_or_storage_objects_install_refuses(db_url: str) -> None:
    no_run = await invoke("sync", "install", "--database-url", db_url)
    assert no_run.code == ExitCode.BAD_INPUT, no_run.err
    assert "--bucket, --prefix, --upload-source, --cdn-base" in no_run.err
    async with connection(db_url) as conn:
        await conn.execute("DROP SCHEMA storage CASCADE")
    elsewhere = await invoke("sync", "install", "--database-url", db_url, *EXPLICIT_SETTINGS)
    assert elsewhere.code == ExitCode.SCHEMA, elsewhere.err
    assert "schedule `loader migrate`" in elsewhere.err
    async with connection(db_url) as conn:
        assert not (await sync.status(conn)).installed


async def test_install_names_the_unique_index_the_trigger_needs(db_url: str) -> None:
    async with connection(db_url) as conn:
        await conn.execute("ALTER TABLE image_assets DROP CONSTRAINT image_assets_file_path_key")
    refused = await invoke("sync", "install", "--database-url", db_url, *EXPLICIT_SETTINGS)
    assert refused.code == ExitCode.SCHEMA, refused.err
    assert "no unique index on file_path" in refused.err
    assert "loader migrate --create-unique-index" in refused.err


# -- install, status, remove ----------------------------------------------------------------


async def catalogue(conn: asyncpg.Connection) -> dict[str, Any]:
    """Everything sync could leave behind: the loader schema's relations, functions and their
    settings and rights, constraints, triggers on storage.objects and its rights, and what
    sync's own tables hold."""
    found: dict[str, Any] = {}
    queries = {
        "relations": "SELECT relname, relkind, relacl::text FROM pg_class"
        " WHERE relnamespace = 'loader'::regnamespace ORDER BY 1",
        "functions": "SELECT oid::regprocedure::text, prosrc, proconfig, prosecdef,"
        " proacl::text FROM pg_proc WHERE pronamespace = 'loader'::regnamespace"
        " ORDER BY 1",
        "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'loader'::regnamespace ORDER BY 1",
        "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE tgrelid = 'storage.objects'::regclass AND NOT tgisinternal ORDER BY 1",
        "rights": "SELECT relacl::text FROM pg_class WHERE oid = 'storage.objects'::regclass"
        " UNION ALL SELECT nspacl::text FROM pg_namespace WHERE nspname = 'loader'",
        "types": "SELECT typname FROM pg_type WHERE typnamespace = 'loader'::regnamespace"
        " ORDER BY 1",
    }
    for name, query in queries.items():
        found[name] = [tuple(r) for r in await conn.fetch(query)]
    for table in SYNC_RELATIONS:
        if await conn.fetchval("SELECT to_regclass($1)", f"loader.{table}") is not None:
            found[table] = [
                tuple(r) for r in await conn.fetch(f"SELECT * FROM loader.{table} ORDER BY 1")
            ]
    return found


async def test_install_twice_equals_once_and_remove_leaves_nothing(db_url: str) -> None:
    async with connection(db_url) as conn:
        await seed_app_tables(conn)
    async with ObjectsTable(db_url, STORAGE_BUCKET).opened() as table:
        for name in BEFORE:
            await upload(table, name)
    await migrated(db_url, db_url)
    async with connection(db_url) as conn:
        before = await catalogue(conn)
        first = await invoke("sync", "install", "--database-url", db_url)
        assert first.code == 0, first.err
        once = await catalogue(conn)
        assert set(SYNC_RELATIONS) <= {r[0] for r in once["relations"]}
        assert [t[0] for t in once["triggers"]] == ["loader_sync_insert", "loader_sync_update"]
        second = await invoke("sync", "install", "--database-url", db_url)
        assert second.code == 0, second.err
        assert await catalogue(conn) == once
        assert second.out == first.out
        assert "bucket: media (run 1)" in first.out and "linked folders: 1" in first.out
        status = await invoke("sync", "status", "--database-url", db_url)
        assert status.code == 0 and status.out == first.out
        # A part gone (its trigger dropped by hand): said, and exit 5 for a scheduled check.
        await conn.execute("DROP TRIGGER loader_sync_insert ON storage.objects")
        broken = await invoke("sync", "status", "--database-url", db_url)
        assert broken.code == ExitCode.SCHEMA and broken.out.startswith("sync: broken (")
        assert "loader sync install" in broken.out
        mended = await invoke("sync", "install", "--database-url", db_url)
        assert mended.code == 0 and await catalogue(conn) == once
        removed = await invoke("sync", "remove", "--database-url", db_url)
        assert (removed.code, removed.out.strip()) == (0, "sync removed")
        assert await catalogue(conn) == before
        again = await invoke("sync", "remove", "--database-url", db_url)
        assert (again.code, again.out.strip()) == (0, "sync was not installed")
        status = await invoke("sync", "status", "--database-url", db_url)
        assert status.out.startswith("sync: not installed")
        # the rows it registered are the user's data: they stay
        assert await conn.fetchval("SELECT count(*) FROM image_assets") == 3


async def test_status_shows_settings_from_flags_and_the_run_and_what_was_registered(
    db_url: str,
) -> None:
    await synced_library(db_url)
    async with connection(db_url) as conn:
        found = await sync.install(
            conn, sync.SyncSettings(upload_source="storage-sync", lock_timeout_ms=50)
        )
        assert found.settings == {
            "bucket": STORAGE_BUCKET,
            "prefix": PREFIX,
            "cdn_base": CDN,
            "cdn_url": "fill",
            "upload_source": "storage-sync",
            "match": "auto",
        }
        assert found.fixed["upload_source"] == "storage-sync" and found.fixed["bucket"] is None
        assert (found.lock_timeout, found.links, found.inserted) == ("50ms", 1, 0)
        async with ObjectsTable(db_url, STORAGE_BUCKET).opened() as table:
            await upload(table, f"{LINKED}new.jpg")
        found = await sync.status(conn)
        assert (found.inserted, found.updated, found.errors) == (1, 0, 0)
        assert (
            await conn.fetchval(
                "SELECT upload_source FROM image_assets WHERE file_path = $1", f"{LINKED}new.jpg"
            )
            == "storage-sync"
        )
    lines = sync.status_lines(found)
    assert lines[0] == "sync: installed (media/originals/customers/, 1 row registered)"
    assert "  upload_source: storage-sync (flag)" in lines
    assert "  cdn_base: https://cdn.example.com/media (run 1)" in lines
    assert datetime.now(UTC) >= found.last_registered_at  # type: ignore[operator]
