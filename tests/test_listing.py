"""The listing engine against the project's Storage server (and storage.objects): every
object exactly once, date sub-folders descended, pages past the 1,500 cap, faults survived,
and clean errors for the wrong bucket or key."""

from __future__ import annotations

import asyncpg
import pytest

from loader.devtools.storage_server import Faults
from loader.errors import BucketNotFoundError, NotServiceRoleError, StorageAuthError
from loader.listing import ListedObject, SourceOptions
from loader.scan import scan
from tests.sample import BIG_FOLDER_FILES, PREFIX, load_storage_objects, sample_catalogue
from tests.sample import sample_names as all_names
from tests.storage_fixtures import (
    BROKEN_FOLDER,
    STORAGE_BUCKET,
    STORAGE_KEY,
    Outage,
    StartStorage,
    fake_jwt,
)


async def listed_paths(opts: SourceOptions) -> list[str]:
    seen: list[str] = []

    def collect(obj: ListedObject, kind: str, mime: str | None) -> None:
        seen.append(obj.path)

    report = await scan(opts, on_object=collect)
    assert report.failures == []
    return seen


@pytest.mark.parametrize("api", ["v1", "v2", "auto"])
async def test_rest_listing_returns_every_object_once(
    start_storage: StartStorage, api: str
) -> None:
    url = await start_storage(sample_catalogue())
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api=api)
    paths = await listed_paths(opts)
    assert sorted(paths) == sorted(all_names())
    assert len(paths) == len(set(paths))
    # date sub-folders descended, and the folder past one v1 page listed whole
    assert f"{PREFIX}kimminsu00-6600/2024-05-02/photo 2 (1).PNG" in paths
    assert sum(p.startswith(f"{PREFIX}parkbig-1234/IMG_") for p in paths) == BIG_FOLDER_FILES


async def test_v1_with_small_pages_matches_v2(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    v1 = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v1",
                       page_size=7)  # fmt: skip
    v2 = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v2")
    assert sorted(await listed_paths(v1)) == sorted(await listed_paths(v2))


async def test_db_source_matches_rest(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    catalogue = sample_catalogue()
    await load_storage_objects(db, catalogue, STORAGE_BUCKET)
    url = await start_storage(catalogue)
    rest = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY)
    from_db = SourceOptions(bucket=STORAGE_BUCKET, source="db", storage_database_url=db_url)
    assert sorted(await listed_paths(from_db)) == sorted(await listed_paths(rest))


async def test_scan_counts_kinds(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    report = await scan(SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY))
    totals = report.totals()
    assert totals["other"] == 12  # notes.txt in each kimminsu folder
    assert totals["placeholder"] == 1 + 2 * 4  # root .keep.png + 2 in every third folder
    assert totals["video"] == 12 + 1
    assert report.loose["placeholder"] == 1
    assert len(report.folders) == 14


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_listing_survives_ten_percent_faults(start_storage: StartStorage, api: str) -> None:
    faults = Faults(fail_rate=0.10, stall_s=3.0, retry_after=0, seed=7)
    url = await start_storage(sample_catalogue(), faults=faults)
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api=api,
                         page_size=100, request_timeout_s=1.0, retries=10)  # fmt: skip
    seen: list[str] = []
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.append(obj.path))
    assert report.failures == []
    assert report.retries > 0
    assert sorted(seen) == sorted(all_names())


async def test_folder_that_keeps_failing_is_reported_and_the_walk_goes_on(
    outage: Outage,
) -> None:
    seen: list[str] = []
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=outage.url, key=STORAGE_KEY,
                         retries=2)  # fmt: skip
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.append(obj.path))
    assert [f.folder for f in report.failures] == [BROKEN_FOLDER]
    assert "failed after 2 attempts" in report.failures[0].reason
    broken = f"{PREFIX}{BROKEN_FOLDER}/"
    assert BROKEN_FOLDER not in report.folders
    assert sorted(seen) == sorted(n for n in all_names() if not n.startswith(broken))


async def test_a_bucket_check_that_keeps_failing_stops_the_scan(
    start_storage: StartStorage,
) -> None:
    faults = Faults(fail_rate=1.0, kinds=("500",), seed=1)
    url = await start_storage(sample_catalogue(), faults=faults)
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, retries=2)
    # even the bucket check fails: the run must stop with a clear, retryable-storage error
    from loader.errors import StorageUnreachableError

    with pytest.raises(StorageUnreachableError, match="failed after 2 attempts"):
        await scan(opts)


async def test_unknown_bucket(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    with pytest.raises(BucketNotFoundError, match="nope"):
        await scan(SourceOptions(bucket="nope", storage_url=url, key=STORAGE_KEY))


async def test_wrong_key(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    with pytest.raises(StorageAuthError) as info:
        await scan(SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key="wrong-key"))
    assert "wrong-key" not in str(info.value)


async def test_anon_key_lists_nothing_and_says_why(start_storage: StartStorage) -> None:
    anon = fake_jwt("anon")
    url = await start_storage(sample_catalogue(), anon_key=anon)
    with pytest.raises(NotServiceRoleError, match="'anon'"):
        await scan(SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=anon))
