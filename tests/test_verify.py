"""`loader verify` grades what it finds: errors fail, warnings are reported and pass (unless
--strict), each finding exactly counted with its paths; repair fixes only what is safe, and
deleting orphans can be undone exactly."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson
import pytest

from loader.devtools import demo_library as demo
from loader.devtools.storage_server import Catalogue
from loader.errors import BadInputError, ExitCode
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from loader.rollback import rollback
from loader.verify import ERRORS, WARNINGS, verify
from tests.cli_helpers import invoke
from tests.sample import PREFIX, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage
from tests.test_migrate import KEPT, options
from tests.test_rollback import CUSTOMER_FOLDER, seed

LINKED = f"{PREFIX}{CUSTOMER_FOLDER}"  # tied to customer 7 by the matcher
OTHER = f"{PREFIX}kimminsu02-6602"  # no customer


def verify_args(url: str, db_url: str, *extra: str, bucket: str = STORAGE_BUCKET) -> list[str]:
    return ["verify", "--storage-url", url, "--key", STORAGE_KEY, "--bucket", bucket,
            "--database-url", db_url, *extra]  # fmt: skip


async def migrated(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> MigrateOptions:
    await seed(db)
    url = await start_storage(sample_catalogue())
    opts = options(url, db_url, match="auto")
    assert (await migrate(opts)).status == "succeeded"
    return opts


async def test_every_error_finding_is_counted_exactly_with_its_paths(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    opts = await migrated(start_storage, db, db_url)
    clean = await verify(opts.source, db_url)
    assert clean.ok and clean.errors == 0 and clean.warnings == 0, clean.counts
    url = await db.fetchval("SELECT cdn_url FROM image_assets WHERE file_path = $1",
                            f"{LINKED}/IMG_0001.jpg")  # fmt: skip
    await db.execute("DELETE FROM image_assets WHERE file_path = ANY($1)",
                     [f"{LINKED}/IMG_0002.jpg", f"{OTHER}/IMG_0004.jpg"])  # fmt: skip
    await db.execute("UPDATE image_assets SET ai_tags = '{portrait}' WHERE file_path = $1",
                     f"{LINKED}/IMG_0003.jpg")  # fmt: skip
    # customer 8 exists: this image would be shown to the wrong person
    await db.execute("UPDATE image_assets SET ai_tags = ai_tags || '{customer-8}'::text[]"
                     " WHERE file_path = $1", f"{LINKED}/IMG_0004.jpg")  # fmt: skip
    await db.execute("UPDATE image_assets SET cdn_url = NULL WHERE file_path = $1",
                     f"{OTHER}/IMG_0000.jpg")  # fmt: skip
    wrong_urls = {
        f"{OTHER}/IMG_0001.jpg": url,  # another object's URL
        f"{OTHER}/IMG_0002.jpg": url.replace("/object/public/", "/object/sign/"),
        f"{OTHER}/IMG_0003.jpg": url.replace(STORAGE_BUCKET, "private-bucket"),
    }
    for path, bad in wrong_urls.items():
        await db.execute("UPDATE image_assets SET cdn_url = $2 WHERE file_path = $1", path, bad)
    # a CDN in front of the bucket is the object's own URL
    cdn = f"https://cdn.example.com/{LINKED}/IMG_0000.jpg"
    await db.execute("UPDATE image_assets SET cdn_url = $2 WHERE file_path = $1",
                     f"{LINKED}/IMG_0000.jpg", cdn)  # fmt: skip

    found = await verify(opts.source, db_url)
    expected = {
        "missing": [f"{LINKED}/IMG_0002.jpg", f"{OTHER}/IMG_0004.jpg"],
        "untagged": [f"{LINKED}/IMG_0003.jpg"],
        "wrong_customer": [f"{LINKED}/IMG_0004.jpg"],
        "no_cdn_url": [f"{OTHER}/IMG_0000.jpg"],
        "wrong_cdn_url": sorted(wrong_urls),
        "private_bucket_urls": [],  # the bucket is public
    }
    assert {name: found.counts[name] for name in ERRORS} == {
        name: len(paths) for name, paths in expected.items()
    }
    assert {name: found.examples.get(name, []) for name in ERRORS} == expected
    assert found.warnings == 0 and not found.ok
    assert found.repairable == 7  # wrong_cdn_url too: migrate's default refreshes them
    assert sorted(f for f, _ in found.repair_folders) == [CUSTOMER_FOLDER, "kimminsu02-6602"]
    assert dict(found.repair_folders)[CUSTOMER_FOLDER] == 7


async def test_warnings_pass_unless_strict_and_are_counted_exactly(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    opts = await migrated(start_storage, db, db_url)
    orphan = f"{OTHER}/deleted-from-storage.jpg"
    await db.execute("INSERT INTO image_assets (file_path, ai_tags) VALUES ($1, '{}')", orphan)
    await db.execute("UPDATE image_assets SET ai_tags = ai_tags || '{customer-999999}'::text[]"
                     " WHERE file_path = ANY($1)",
                     [f"{LINKED}/IMG_0001.jpg", f"{OTHER}/IMG_0001.jpg"])  # fmt: skip
    found = await verify(opts.source, db_url)
    assert found.ok and found.errors == 0
    assert {name: found.examples.get(name, []) for name in WARNINGS} == {
        "orphan": [orphan],
        "stale_tag": [f"{OTHER}/IMG_0001.jpg"],
        "stale_beside_valid": [f"{LINKED}/IMG_0001.jpg"],
        "duplicate_path": [],
    }
    assert found.warnings == 3

    url = opts.source.storage_url
    assert url is not None
    report = tmp_path / "verify.json"
    done = await invoke(*verify_args(url, db_url, "--report", str(report)))
    assert done.code == 0, done.err
    assert "stale_beside_valid" in done.out and "with 3 warnings" in done.out
    data = orjson.loads(report.read_bytes())
    assert data["findings"]["orphan"] == {"grade": "warning", "label": data["findings"][
        "orphan"]["label"], "count": 1, "examples": [orphan],
        "fix": "loader verify --repair --delete-orphans"}  # fmt: skip
    assert data["errors"] == 0 and data["warnings"] == 3
    strict = await invoke(*verify_args(url, db_url, "--strict"))
    assert strict.code == ExitCode.INCOMPLETE, strict.err


async def test_duplicate_paths_are_a_warning_when_the_unique_index_is_missing(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    opts = await migrated(start_storage, db, db_url)
    await db.execute("ALTER TABLE image_assets DROP CONSTRAINT image_assets_file_path_key")
    twice = f"{OTHER}/IMG_0001.jpg"
    await db.execute("INSERT INTO image_assets (file_path, ai_tags, cdn_url)"
                     " SELECT file_path, ai_tags, cdn_url FROM image_assets"
                     " WHERE file_path = $1", twice)  # fmt: skip
    found = await verify(opts.source, db_url)
    assert found.ok
    assert (found.counts["duplicate_path"], found.examples["duplicate_path"]) == (1, [twice])


async def test_an_error_fails_the_command(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    opts = await migrated(start_storage, db, db_url)
    await db.execute("UPDATE image_assets SET ai_tags = '{}' WHERE file_path = $1",
                     f"{LINKED}/IMG_0003.jpg")  # fmt: skip
    url = opts.source.storage_url
    assert url is not None
    report = tmp_path / "verify.json"
    done = await invoke(*verify_args(url, db_url, "--report", str(report)))
    assert done.code == ExitCode.INCOMPLETE, done.err
    data = orjson.loads(report.read_bytes())
    assert data["findings"]["untagged"]["count"] == 1
    assert data["findings"]["untagged"]["examples"] == [f"{LINKED}/IMG_0003.jpg"]


async def test_repair_fixes_only_what_is_safe_and_orphans_come_back_exactly(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    opts = await migrated(start_storage, db, db_url)
    orphan = f"{OTHER}/gone.jpg"
    await db.execute("INSERT INTO image_assets (file_path, ai_tags, alt_text, cdn_url)"
                     " VALUES ($1, '{}', 'kept whole', NULL)", orphan)  # fmt: skip
    orphan_row = await db.fetchrow("SELECT * FROM image_assets WHERE file_path = $1", orphan)
    await db.execute("DELETE FROM image_assets WHERE file_path = $1", f"{LINKED}/IMG_0002.jpg")
    await db.execute("UPDATE image_assets SET ai_tags = '{portrait,customer-8}'"
                     " WHERE file_path = $1", f"{LINKED}/IMG_0003.jpg")  # fmt: skip
    await db.execute("UPDATE image_assets SET cdn_url = NULL WHERE file_path = $1",
                     f"{OTHER}/IMG_0000.jpg")  # fmt: skip
    url = opts.source.storage_url
    assert url is not None

    done = await invoke(*verify_args(url, db_url, "--repair"))
    assert done.code == ExitCode.INCOMPLETE, done.err  # wrong_customer is left to a person
    after = await verify(opts.source, db_url)
    assert {n: after.counts[n] for n in ERRORS} == {
        "missing": 0, "untagged": 0, "wrong_customer": 1, "no_cdn_url": 0, "wrong_cdn_url": 0,
        "private_bucket_urls": 0,
    }  # fmt: skip
    kept = await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1",
                             f"{LINKED}/IMG_0003.jpg")  # fmt: skip
    assert kept == ["portrait", "customer-8", "customer-7"]  # no tag removed
    assert after.examples["orphan"] == [orphan]  # not deleted without --delete-orphans
    repair_run = await db.fetchrow(
        "SELECT run_id, counts FROM loader.runs ORDER BY run_id DESC LIMIT 1"
    )
    assert (repair_run["counts"]["inserted"], repair_run["counts"]["updated"]) == (1, 2)
    assert repair_run["counts"]["folders"] == 2  # only the affected folders were listed

    deleted = await verify(opts.source, db_url, delete_orphans=True)
    assert deleted.orphans_deleted == 1 and deleted.orphan_run_id is not None
    assert await db.fetchval("SELECT count(*) FROM image_assets WHERE file_path = $1", orphan) == 0
    assert (await verify(opts.source, db_url)).counts["orphan"] == 0
    planned = await rollback(db, deleted.orphan_run_id, dry_run=True)
    assert planned.restored == 1
    assert await db.fetchval("SELECT count(*) FROM image_assets WHERE file_path = $1", orphan) == 0
    assert (await rollback(db, deleted.orphan_run_id)).restored == 1
    assert (
        await db.fetchrow("SELECT * FROM image_assets WHERE file_path = $1", orphan) == orphan_row
    )
    with pytest.raises(BadInputError, match="already rolled back"):  # undone once only
        await rollback(db, deleted.orphan_run_id)
    assert await db.fetchval("SELECT count(*) FROM image_assets WHERE file_path = $1", orphan) == 1


async def test_verify_finds_gaps_and_a_migrate_run_repairs_them(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
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


async def test_delete_orphans_needs_repair(db_url: str) -> None:
    done = await invoke("verify", "--database-url", db_url, "--delete-orphans")
    assert done.code == ExitCode.USAGE
    assert "--delete-orphans needs --repair" in done.err


@pytest.fixture
def library(demo_library: demo.DemoLibrary) -> demo.DemoLibrary:
    return demo_library  # generated once a session (conftest)


@pytest.mark.slow  # ~2 s: the demo library, migrated then verified three times
async def test_after_the_demo_migration_verify_passes_with_stale_tags_as_warnings(
    library: demo.DemoLibrary, demo_catalogue: Catalogue, db: asyncpg.Connection,
    start_storage: StartStorage, db_url: str,
) -> None:  # fmt: skip
    assert demo_catalogue.bucket == "blog-images"  # the manifest, read once a session
    await demo.seed_database(db, library, bucket="blog-images")
    url = await start_storage(demo_catalogue, bucket="blog-images")
    source = SourceOptions(bucket="blog-images", storage_url=url, key=STORAGE_KEY)
    assert (await migrate(MigrateOptions(source=source, database_url=db_url))).status == (
        "succeeded"
    )
    # legacy data: stale customer tags beside the right one, and on rows of unlinked folders
    stale = await db.fetchval(
        "WITH picked AS (SELECT file_path FROM image_assets ORDER BY file_path LIMIT 40)"
        " UPDATE image_assets SET ai_tags = ai_tags || '{customer-999999}'::text[]"
        " WHERE file_path IN (SELECT file_path FROM picked) RETURNING 1"
    )
    assert stale
    found = await verify(source, db_url)
    assert found.errors == 0, {n: found.examples.get(n) for n in ERRORS}
    assert found.counts["stale_tag"] + found.counts["stale_beside_valid"] == 40
    done = await invoke(*verify_args(url, db_url, bucket="blog-images"))
    assert done.code == 0, done.out + done.err
    strict = await invoke(*verify_args(url, db_url, "--strict", bucket="blog-images"))
    assert strict.code == ExitCode.INCOMPLETE
