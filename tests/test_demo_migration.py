"""The must-shows on the demo library (~10k objects, 100 folders, real data shapes): the three
sources list the same objects, and a migration registers every media file once, tags matched
folders exactly once, keeps what was there, and gives every row a working cdn_url."""

from __future__ import annotations

import aiohttp
import anyio
import asyncpg
import pytest

from loader.devtools import demo_library as demo
from loader.devtools.storage_server import Catalogue
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from tests.storage_fixtures import STORAGE_KEY, StartStorage
from tests.test_listing import listed_paths

BUCKET = "blog-images"
# The demo library (~10k objects): ~2 s to list three ways, ~45 s to migrate and fetch.
pytestmark = pytest.mark.slow


@pytest.fixture
def library(demo_library: demo.DemoLibrary) -> demo.DemoLibrary:
    return demo_library  # generated once a session (conftest)


@pytest.fixture
async def demo_env(
    library: demo.DemoLibrary, demo_catalogue: Catalogue, db: asyncpg.Connection,
    start_storage: StartStorage,
) -> tuple[str, set[str]]:  # fmt: skip
    """The library in the test database and behind a Storage server; (url, every object)."""
    assert demo_catalogue.bucket == BUCKET
    await demo.seed_database(db, library, bucket=BUCKET)
    url = await start_storage(demo_catalogue, bucket=BUCKET)
    return url, {o["name"] for o in demo.iter_objects(library)}


async def test_rest_v1_v2_and_db_sources_list_the_same_objects(
    demo_env: tuple[str, set[str]], db_url: str, library: demo.DemoLibrary
) -> None:
    url, everything = demo_env
    results = {}
    for api in ("v1", "v2"):
        opts = SourceOptions(bucket=BUCKET, storage_url=url, key=STORAGE_KEY, list_api=api)
        results[api] = await listed_paths(opts)
    results["db"] = await listed_paths(
        SourceOptions(bucket=BUCKET, source="db", storage_database_url=db_url)
    )
    under_prefix = {n for n in everything if n.startswith(demo.PREFIX)}
    for name, paths in results.items():
        assert len(paths) == len(set(paths)), f"{name} listed an object twice"
        assert set(paths) == under_prefix, name
    # the hard cases are in there: date sub-folders and folders past one v1 page
    assert any(p.count("/") == 4 for p in results["v1"])
    big = [f.name for f in library.folders if f.big]
    for folder in big:
        direct = [p for p in results["v1"] if p.rsplit("/", 1)[0] == demo.PREFIX + folder]
        assert len(direct) > 1500


async def head_all(urls: list[str]) -> dict[str, int]:
    statuses: dict[str, int] = {}
    limit = anyio.Semaphore(32)
    async with aiohttp.ClientSession() as http:

        async def head(url: str) -> None:
            async with limit, http.head(url) as response:
                statuses[url] = response.status

        async with anyio.create_task_group() as tg:
            for url in urls:
                tg.start_soon(head, url)
    return statuses


async def test_migration_of_the_demo_library(
    demo_env: tuple[str, set[str]], db: asyncpg.Connection, db_url: str, library: demo.DemoLibrary
) -> None:
    url, everything = demo_env
    before = {r["file_path"]: dict(r) for r in await db.fetch("SELECT * FROM image_assets")}
    source = SourceOptions(bucket=BUCKET, storage_url=url, key=STORAGE_KEY)
    result = await migrate(MigrateOptions(source=source, database_url=db_url))
    assert result.status == "succeeded"

    rows = {r["file_path"]: dict(r) for r in await db.fetch("SELECT * FROM image_assets")}
    media = {n for n in everything if demo.is_media(n)}
    assert media <= set(rows)  # every Storage media file is registered ...
    assert set(rows) - media <= set(before)  # ... and nothing that is not one was added
    assert result.totals["inserted"] == len(media - set(before))

    # matched folders' files carry their customer's tag exactly once; others carry none new
    linked = dict(await db.fetch("SELECT folder, customer_id FROM loader.folders"))
    assert sum(1 for c in linked.values() if c is not None) >= 60
    for path in media:
        folder = path[len(demo.PREFIX) :].split("/", 1)[0]
        wanted = [] if linked[folder] is None else [f"customer-{linked[folder]}"]
        old_tags = before[path]["ai_tags"] if path in before else []
        expected = old_tags + [t for t in wanted if t not in old_tags]
        assert rows[path]["ai_tags"] == expected, path
        if wanted:
            assert rows[path]["ai_tags"].count(wanted[0]) == 1, path

    # pre-existing rows: tags kept in order, free text and other columns untouched
    for path, old in before.items():
        new = rows[path]
        assert new["ai_tags"][: len(old["ai_tags"])] == old["ai_tags"], path
        for column in ("id", "alt_text", "title", "description", "status", "upload_source",
                       "created_at", "original_filename", "filename", "file_size"):  # fmt: skip
            assert new[column] == old[column], (path, column)
        if old["cdn_url"] is not None:
            assert new["cdn_url"] == old["cdn_url"]  # fill mode keeps a URL that was there

    # every row has a cdn_url; the ones the loader wrote are served by Storage
    assert all(r["cdn_url"] for r in rows.values())
    written = [r["cdn_url"] for p, r in rows.items() if p not in before or not before[p]["cdn_url"]]
    statuses = await head_all(written)
    assert set(statuses.values()) == {200}

    # with --cdn-url overwrite every row points at the Storage server, and all answer 200
    await migrate(MigrateOptions(source=source, database_url=db_url, cdn_url="overwrite"))
    urls = [r["cdn_url"] for r in await db.fetch("SELECT cdn_url FROM image_assets")
            if r["cdn_url"].startswith(url)]  # fmt: skip
    media_urls = await db.fetchval(
        "SELECT count(*) FROM image_assets WHERE file_path = ANY($1::text[])", list(media)
    )
    assert len(urls) >= media_urls
    assert set((await head_all(urls)).values()) == {200}
