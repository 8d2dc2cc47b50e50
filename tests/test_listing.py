"""The listing engine against the project's Storage server (and storage.objects): every
object exactly once, date sub-folders descended, pages past the 1,500 cap, faults survived,
clean errors for the wrong bucket or key, a failed folder for a malformed answer or query, and
a bug in the loader's own parsing left a bug (exit 1), never a failed folder."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import anyio
import asyncpg
import pytest
from aiohttp import web

from loader import listing, storage_client
from loader.devtools.storage_server import Faults, build_app
from loader.errors import (
    BucketNotFoundError,
    DatabaseError,
    NotServiceRoleError,
    StorageAuthError,
    as_loader_error,
    leaves,
)
from loader.folder_groups import SAMPLE_FOLDERS, Grouping
from loader.listing import (
    FolderFailure,
    FolderPage,
    ListedObject,
    ListingEvent,
    SourceOptions,
    folder_chunks,
    open_source,
    walk,
)
from loader.scan import scan
from loader.storage_objects import V2Page, decode_v2_page
from tests.sample import BIG_FOLDER_FILES, PREFIX, load_storage_objects, sample_catalogue
from tests.sample import sample_names as all_names
from tests.storage_fixtures import (
    BROKEN_FOLDER,
    STORAGE_BUCKET,
    STORAGE_KEY,
    Outage,
    ServeStorageApp,
    StartStorage,
    catalogue_of,
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


# -- folders listed in groups (loader.folder_groups) ------------------------------------------

SMALL_FOLDERS = [f"cust-{i:03d}" for i in range(60)]


def small_folders_catalogue() -> list[str]:
    """60 small folders (4 objects, one in a date folder) and loose files that share their
    prefixes: a group listing sees those, and must leave them out."""
    names = [f"{PREFIX}{f}/{n}" for f in SMALL_FOLDERS for n in ("a.jpg", "b.png", "2024/c.mp4",
                                                                   "d.txt")]  # fmt: skip
    return [*names, f"{PREFIX}cust-01.jpg", f"{PREFIX}cust-02x.png"]


Mode = Literal["plain", "folders-only", "whole-bucket", "group-fails"]


async def small_folders_server(serve_storage_app: ServeStorageApp, mode: Mode) -> str:
    """The Storage server, or one that treats a v2 prefix that is not a folder differently
    from the real server (which matches it as a plain string): as matching nothing, as
    matching everything, or failing."""
    app = build_app(catalogue_of(small_folders_catalogue()), bucket=STORAGE_BUCKET,
                    key=STORAGE_KEY)  # fmt: skip
    served: dict[str, str] = {}

    @web.middleware
    async def prefixes(request: web.Request, handler: Callable[..., Awaitable]) -> object:
        if mode != "plain" and request.path.endswith(f"/list-v2/{STORAGE_BUCKET}"):
            body = await request.json()
            if not body.get("with_delimiter") and not body["prefix"].endswith("/"):
                if mode == "folders-only":
                    return web.json_response({"hasNext": False, "folders": [], "objects": []})
                if mode == "group-fails" and body["prefix"] == f"{PREFIX}cust-02":
                    error = {"statusCode": "500", "error": "internal", "message": "on fire"}
                    return web.json_response(error, status=500)
                if mode == "whole-bucket":  # asks itself for the whole prefix instead
                    body["prefix"] = PREFIX
                    async with (
                        aiohttp.ClientSession(
                            headers={"Authorization": request.headers["Authorization"]}
                        ) as session,
                        session.post(served["url"] + request.path, json=body) as answer,
                    ):
                        return web.json_response(await answer.json(), status=answer.status)
        return await handler(request)

    app.middlewares.append(prefixes)
    served["url"] = await serve_storage_app(app)
    return served["url"]


@pytest.mark.parametrize("mode", ["plain", "folders-only", "whole-bucket"])
async def test_small_folders_are_listed_in_groups_each_object_once(
    serve_storage_app: ServeStorageApp, mode: Mode
) -> None:
    url = await small_folders_server(serve_storage_app, mode)
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v2",
                         list_concurrency=2)  # fmt: skip
    seen: list[str] = []
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.append(obj.path))
    assert report.failures == []
    assert sorted(seen) == sorted(small_folders_catalogue())  # loose files from the top level
    assert sorted(report.folders) == SMALL_FOLDERS
    if mode == "plain":
        # bucket check + top level + one call per folder would be 62: groups share calls.
        assert report.calls < 30
    if mode == "folders-only":
        assert report.calls > len(SMALL_FOLDERS)  # every group member listed again alone


async def test_a_group_that_keeps_failing_fails_each_of_its_folders(
    serve_storage_app: ServeStorageApp,
) -> None:
    url = await small_folders_server(serve_storage_app, "group-fails")
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v2",
                         list_concurrency=2, retries=2)  # fmt: skip
    seen: list[str] = []
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.append(obj.path))
    group = [f"cust-02{i}" for i in range(10)]
    assert sorted(f.folder for f in report.failures) == group
    assert all("failed after 2 attempts" in f.reason for f in report.failures)
    assert sorted(seen) == sorted(
        n
        for n in small_folders_catalogue()
        if not n.startswith(tuple(f"{PREFIX}{f}/" for f in group))
    )


async def test_a_group_keeps_only_folders_of_the_run(serve_storage_app: ServeStorageApp) -> None:
    """A folder the walk does not know (created after the run listed the top level) shares
    the group's prefix: its objects are not the group's."""
    url = await small_folders_server(serve_storage_app, "plain")
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v2")
    run_folders = [f for f in SMALL_FOLDERS if f != "cust-015"]
    async with open_source(opts) as opened:
        grouping = Grouping(run_folders, opened.source.group_page_size)
        grouping.observe(SAMPLE_FOLDERS, SAMPLE_FOLDERS)  # small folders: group at once
        send, receive = anyio.create_memory_object_stream[ListingEvent](100)
        events: list[ListingEvent] = []
        async with anyio.create_task_group() as tg:
            chunks = folder_chunks(run_folders, grouping, concurrency=4)
            tg.start_soon(lambda: walk(opened.source, chunks, send, concurrency=4,
                                       grouping=grouping))  # fmt: skip
            async with receive:
                events = [event async for event in receive]
        calls = opened.source.request_counts().calls
    pages = [e for e in events if isinstance(e, FolderPage)]
    assert not [e for e in events if isinstance(e, FolderFailure)]
    assert sorted(e.folder for e in pages if e.last) == run_folders  # each folder ends once
    listed = sorted(o.path for e in pages for o in e.objects)
    assert listed == sorted(n for n in small_folders_catalogue()
                            if n.split("/")[2] in run_folders)  # fmt: skip
    assert calls < 2 + len(run_folders) // 5


async def test_group_pages_zero_lists_each_folder_alone(serve_storage_app: ServeStorageApp) -> None:
    url = await small_folders_server(serve_storage_app, "plain")
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api="v2",
                         list_concurrency=2, group_pages=0)  # fmt: skip
    seen: list[str] = []
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.append(obj.path))
    assert sorted(seen) == sorted(small_folders_catalogue())
    assert report.calls >= len(SMALL_FOLDERS)  # one call (at least) per folder


# -- malformed answers are the server's failure, a bug in the loader is a bug -----------------

Api = Literal["v1", "v2"]


def break_page_parsing(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    """A bug (a KeyError) in the loader's own parsing of a folder's page; the top level
    parses as it should."""
    if api == "v1":
        real_v1 = listing.v1_entries

        def v1_entries(level: str, entries: list[dict[str, Any]]) -> Any:
            if level == PREFIX:
                return real_v1(level, entries)
            raise KeyError("a bug")

        monkeypatch.setattr(listing, "v1_entries", v1_entries)
    else:

        def decode(raw: bytes) -> V2Page:
            page = decode_v2_page(raw)
            if page.folders:  # the top level (listed with the delimiter)
                return page
            raise KeyError("a bug")

        monkeypatch.setattr(storage_client, "decode_v2_page", decode)


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_a_bug_while_parsing_a_page_is_no_failed_folder(
    start_storage: StartStorage, monkeypatch: pytest.MonkeyPatch, api: Api
) -> None:
    url = await start_storage(sample_catalogue())
    break_page_parsing(monkeypatch, api)
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api=api)
    with pytest.raises(Exception) as info:
        await scan(opts)
    assert {type(leaf) for leaf in leaves(info.value)} == {KeyError}
    assert as_loader_error(info.value) is None  # a bug: exit 1


async def run_main(*args: str) -> int:
    """`loader ARGS` as the console script runs it, but in-process (a monkeypatch reaches
    it) on a worker thread (the test's event loop serves Storage); its exit code. An exception
    leaving `main` is printed and exits 1, as the interpreter would."""
    from loader.cli import main

    quieted = {name: logging.getLogger(name).level for name in ("asyncpg", "asyncio")}
    argv = sys.argv

    def call() -> int:
        try:
            main()
        except SystemExit as done:
            return int(done.code or 0)
        except Exception as exc:
            sys.stderr.write("".join(traceback.format_exception(exc)))
            return 1
        return 0

    sys.argv = ["loader", *args]
    try:
        return await anyio.to_thread.run_sync(call)
    finally:
        sys.argv = argv
        for name, level in quieted.items():  # main quiets them for the whole process
            logging.getLogger(name).setLevel(level)


async def test_a_bug_while_parsing_a_page_exits_1_with_its_traceback_under_loader_debug(
    start_storage: StartStorage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    url = await start_storage(sample_catalogue())
    break_page_parsing(monkeypatch, "v1")
    args = ("scan", "--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET,
            "--list-api", "v1")  # fmt: skip
    monkeypatch.delenv("LOADER_DEBUG", raising=False)
    assert await run_main(*args) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err and "failed folder" not in err
    monkeypatch.setenv("LOADER_DEBUG", "1")
    assert await run_main(*args) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a bug'" in err


async def test_a_failed_storage_objects_query_fails_its_folder_with_its_cause(
    db: asyncpg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = sample_catalogue()
    await load_storage_objects(db, catalogue, STORAGE_BUCKET)
    real_sql = listing.sql
    failing = "SELECT name FROM storage.objects WHERE bucket_id = $1 AND $2 < $3 AND 1 / 0 = 1"
    monkeypatch.setattr(listing, "sql", lambda name: failing if name == "storage_db_objects_under"
                        else real_sql(name))  # fmt: skip
    opts = SourceOptions(bucket=STORAGE_BUCKET, source="db", storage_database_url=db_url)
    report = await scan(opts)
    assert report.failures and not report.folders
    assert {f.reason for f in report.failures} == {"database error: division by zero"}
    async with open_source(opts) as opened:
        with pytest.raises(DatabaseError) as info:
            async for _ in opened.source.walk_folder(opened.top.folders[0]):
                pass
    assert isinstance(info.value.__cause__, asyncpg.DivisionByZeroError)


def malformed_server_middleware(api: Api) -> Callable[..., Awaitable[object]]:
    """Folder `bad` lists an entry without a name, folder `odd` one whose metadata is not an
    object and whose created_at is a number."""
    bad, odd = f"{PREFIX}bad/", f"{PREFIX}odd/"
    answers: dict[tuple[Api, str], Any] = {
        ("v1", bad): [{"id": "1", "metadata": None}],
        ("v1", odd): [{"name": "c.jpg", "id": "2", "metadata": "none", "created_at": 5}],
        ("v2", bad): {"hasNext": False, "objects": [{"id": "1", "metadata": None}]},
        ("v2", odd): {"hasNext": False, "objects": [{"name": f"{odd}c.jpg", "metadata": "none",
                                                     "created_at": 5}]},
    }  # fmt: skip
    route = "/object/list/" if api == "v1" else "/object/list-v2/"

    @web.middleware
    async def malformed(request: web.Request, handler: Callable[..., Awaitable]) -> object:
        if route in request.path:
            answer = answers.get((api, (await request.json())["prefix"]))
            if answer is not None:
                return web.json_response(answer)
        return await handler(request)

    return malformed


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_a_malformed_answer_fails_its_folder_and_odd_fields_read_as_unknown(
    serve_storage_app: ServeStorageApp, api: Api
) -> None:
    names = [f"{PREFIX}good/a.jpg", f"{PREFIX}bad/b.jpg", f"{PREFIX}odd/c.jpg"]
    app = build_app(catalogue_of(names), bucket=STORAGE_BUCKET, key=STORAGE_KEY)
    app.middlewares.append(malformed_server_middleware(api))
    url = await serve_storage_app(app)
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY, list_api=api,
                         group_pages=0, retries=2)  # fmt: skip
    seen: dict[str, ListedObject] = {}
    report = await scan(opts, on_object=lambda obj, kind, mime: seen.setdefault(obj.path, obj))
    assert [f.folder for f in report.failures] == ["bad"]
    reason = report.failures[0].reason
    assert f"{api} list answered an entry without a name: {{'id': '1', 'metadata': None}}" in reason
    assert sorted(seen) == [f"{PREFIX}good/a.jpg", f"{PREFIX}odd/c.jpg"]
    odd = seen[f"{PREFIX}odd/c.jpg"]
    assert (odd.size, odd.mimetype, odd.created_at) == (None, None, None)
