"""cdn_url refresh (issue 22, item 3): migrate's default fills a NULL cdn_url and refreshes
one pointing at another object, keeps one pointing at the same object behind a CDN, and
verify then agrees: the documented flow (migrate, then verify) ends clean on legacy rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from loader.errors import ExitCode
from loader.migrate import migrate
from loader.sink import UpsertSink
from loader.storage_client import public_url_base
from loader.verify import verify
from tests.cli_helpers import invoke, migrate_args
from tests.sample import PREFIX, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, StartStorage
from tests.test_migrate import options
from tests.test_verify import verify_args

FILLED = f"{PREFIX}kimminsu00-6600/IMG_0000.jpg"  # NULL
ELSEWHERE = f"{PREFIX}kimminsu00-6600/IMG_0001.jpg"  # the https://old.cdn/x
OTHER_PATH = f"{PREFIX}kimminsu00-6600/IMG_0002.jpg"  # another path on the old host
SIGNED = f"{PREFIX}kimminsu00-6600/IMG_0003.jpg"  # a signed Storage URL (expires)
SAME_ROUTE = f"{PREFIX}kimminsu01-6601/2024-05-01/photo 1 (1).PNG"  # Storage's path on a CDN
CDN_PATH = f"{PREFIX}kimminsu01-6601/IMG_0000.jpg"  # a CDN's own path ending in /bucket/path


def legacy_urls(storage_url: str) -> dict[str, str | None]:
    own_path = "/object/public/" + STORAGE_BUCKET + "/" + quote(SAME_ROUTE, safe="/")
    return {
        FILLED: None,
        ELSEWHERE: "https://old.cdn/x",
        OTHER_PATH: "https://old.cdn/images/IMG_0002.jpg",
        SIGNED: f"{storage_url}/object/sign/{STORAGE_BUCKET}/{SIGNED}?token=abc",
        SAME_ROUTE: f"https://cdn.example.com{own_path}",
        CDN_PATH: f"https://cdn.example.com/{STORAGE_BUCKET}/{CDN_PATH}?w=300",
    }


async def seed_legacy(db: asyncpg.Connection, urls: dict[str, str | None]) -> None:
    await db.executemany(
        "INSERT INTO image_assets (file_path, filename, ai_tags, cdn_url, upload_source)"
        " VALUES ($1, 'legacy', '{portrait}', $2, 'admin')",
        list(urls.items()),
    )


async def cdn_urls(db: asyncpg.Connection, paths: Any) -> dict[str, str | None]:
    rows = await db.fetch(
        "SELECT file_path, cdn_url FROM image_assets WHERE file_path = ANY($1)", list(paths)
    )
    return {r["file_path"]: r["cdn_url"] for r in rows}


async def test_migrate_then_verify_ends_clean_on_legacy_cdn_urls(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    legacy = legacy_urls(url)
    await seed_legacy(db, legacy)
    own = public_url_base(url, STORAGE_BUCKET)

    done = await invoke(*migrate_args(url, db_url))
    assert done.code == 0, done.err
    urls = await cdn_urls(db, legacy)
    kept = {SAME_ROUTE, CDN_PATH}
    assert {p: urls[p] for p in kept} == {p: legacy[p] for p in kept}
    assert {p: urls[p] for p in set(legacy) - kept} == {
        p: f"{own}/{quote(p, safe='/')}" for p in set(legacy) - kept
    }
    checked = await invoke(*verify_args(url, db_url))
    assert checked.code == 0, checked.out + checked.err
    assert "wrong_cdn_url" in checked.out and "problems found" not in checked.out

    again = await invoke(*migrate_args(url, db_url))  # kept URLs stay kept
    assert again.code == 0, again.err
    assert await cdn_urls(db, legacy) == urls
    # the first run's refreshes and fills only: the kept rows and the re-run changed nothing
    assert await db.fetchval("SELECT count(*) FROM loader.journal_updates") == len(legacy) - 2


@pytest.mark.slow  # ~1.2 s: two migrations and four verifications
async def test_verify_names_the_fix_and_repair_refreshes_what_migrate_would(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    assert (await migrate(options(url, db_url))).status == "succeeded"
    legacy = legacy_urls(url)
    for path, value in legacy.items():
        await db.execute("UPDATE image_assets SET cdn_url = $2 WHERE file_path = $1", path, value)

    found = await verify(options(url, db_url).source, db_url)
    assert found.examples["wrong_cdn_url"] == sorted([ELSEWHERE, OTHER_PATH, SIGNED])
    assert found.examples["no_cdn_url"] == [FILLED]
    shown = await invoke(*verify_args(url, db_url))
    assert shown.code == ExitCode.INCOMPLETE
    assert "fix: loader verify --repair" in shown.out

    repaired = await invoke(*verify_args(url, db_url, "--repair"))
    assert repaired.code == 0, repaired.out + repaired.err
    after = await cdn_urls(db, legacy)
    assert after[SAME_ROUTE] == legacy[SAME_ROUTE] and after[CDN_PATH] == legacy[CDN_PATH]
    assert (await verify(options(url, db_url).source, db_url)).ok


async def test_the_rerun_check_passes_kept_urls_and_fails_a_url_to_refresh(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, monkeypatch: Any
) -> None:
    """sql/folders_unchanged.sql: a folder whose rows carry kept CDN URLs (names that need
    percent-encoding included) passes whole; one with a URL the upsert would refresh does
    not, and the re-run refreshes exactly that row."""
    url = await start_storage(sample_catalogue())
    opts = options(url, db_url)
    await migrate(opts)
    legacy = legacy_urls(url)
    for path in (SAME_ROUTE, CDN_PATH, ELSEWHERE):
        await db.execute("UPDATE image_assets SET cdn_url = $2 WHERE file_path = $1",
                         path, legacy[path])  # fmt: skip
    written: set[str] = set()
    checked: list[str] = []
    write, check = UpsertSink.write, UpsertSink.unchanged_folders

    async def spy_write(self: UpsertSink, rows: list[Any]) -> Any:
        written.update(row.folder for row in rows)
        return await write(self, rows)

    async def spy_check(self: UpsertSink, checks: list[Any]) -> list[bool]:
        checked.extend(c.folder for c in checks)
        return await check(self, checks)

    monkeypatch.setattr(UpsertSink, "write", spy_write)
    monkeypatch.setattr(UpsertSink, "unchanged_folders", spy_check)
    again = await migrate(opts)
    assert "kimminsu01-6601" in checked and "kimminsu00-6600" in checked
    assert written == {"kimminsu00-6600"}
    assert (again.totals["inserted"], again.totals["updated"]) == (0, 1)
    urls = await cdn_urls(db, legacy)
    assert urls[SAME_ROUTE] == legacy[SAME_ROUTE] and urls[CDN_PATH] == legacy[CDN_PATH]
    assert urls[ELSEWHERE] == f"{public_url_base(url, STORAGE_BUCKET)}/{ELSEWHERE}"
