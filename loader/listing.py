"""Source stage: list every object under a prefix, one top-level (customer) folder at a time.

Two sources share one interface (`Source`): the Storage REST API (v2 recursive cursor pages
when the server has them, else v1 one level at a time with offset paging) and Supabase's own
catalogue table `storage.objects` read over a database connection. `walk` runs folder walks
concurrently (a fixed number of workers fed by a bounded stream) and streams each page out as
soon as it is listed, so memory stays flat whatever the bucket size. A page is emitted only
after it was read whole, so a retried page never emits an object twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
import asyncpg
from anyio.abc import ObjectSendStream

from loader.db import create_pool, resolve_database_url
from loader.errors import (
    BadInputError,
    BucketNotFoundError,
    EmptyListingError,
    LoaderError,
    NotServiceRoleError,
)
from loader.retry import ATTEMPTS, RetryPolicy
from loader.sqlfiles import sql
from loader.storage_client import (
    V1_PAGE_CAP,
    V2_PAGE_CAP,
    RateLimiter,
    StorageClient,
    StorageRequestError,
    jwt_role,
    resolve_base_url,
)

ListApi = Literal["auto", "v1", "v2"]


@dataclass(slots=True)
class ListedObject:
    """One Storage object: `path` is its full key inside the bucket."""

    path: str
    size: int | None
    mimetype: str | None
    created_at: str | None
    updated_at: str | None


@dataclass(slots=True)
class TopLevel:
    """What sits directly under the prefix: customer folders, and loose files."""

    folders: list[str]
    loose_files: list[ListedObject] = field(default_factory=list)


@dataclass(slots=True)
class FolderPage:
    """Some objects of `folder`; `last` marks the final page of that folder's walk."""

    folder: str
    objects: list[ListedObject]
    last: bool


@dataclass(slots=True)
class FolderFailure:
    """A folder whose walk failed after retries; pages already sent for it stand."""

    folder: str
    reason: str


ListingEvent = FolderPage | FolderFailure


class Source(Protocol):
    """Anything that can list the prefix's top level and walk one folder's sub-tree."""

    prefix: str

    async def top_level(self) -> TopLevel: ...

    def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]: ...


def normalize_prefix(prefix: str) -> str:
    """`originals/customers` → `originals/customers/`; '' or '/' is the bucket root."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _from_metadata(path: str, meta: Any, created_at: Any, updated_at: Any) -> ListedObject:
    meta = meta if isinstance(meta, dict) else {}
    size = meta.get("size")
    return ListedObject(
        path=path,
        size=size if isinstance(size, int) else None,
        mimetype=meta.get("mimetype") or None,
        created_at=_iso(created_at),
        updated_at=_iso(updated_at),
    )


def _entry_object(path: str, entry: dict[str, Any]) -> ListedObject:
    return _from_metadata(
        path, entry.get("metadata"), entry.get("created_at"), entry.get("updated_at")
    )


class RestSource:
    """Lists through the Storage REST API.

    `api='auto'` asks v2 for the top level and falls back to v1 for the whole walk when the
    server answers FeatureNotEnabled / not found (servers before v1.19, some hosted projects).
    """

    def __init__(
        self,
        client: StorageClient,
        bucket: str,
        prefix: str,
        *,
        api: ListApi = "auto",
        page_size: int = 1000,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.api: ListApi = api
        # v1 silently caps at 1500: asking for more would make a short page look full.
        self.page_size = min(page_size, V1_PAGE_CAP)

    async def top_level(self) -> TopLevel:
        if self.api != "v1":
            try:
                return await self._top_level_v2()
            except StorageRequestError as exc:
                if self.api == "v2" or exc.status not in ("400", "404", "route"):
                    raise
                self.api = "v1"
        self.api = "v1"
        return await self._top_level_v1()

    async def _top_level_v2(self) -> TopLevel:
        top = TopLevel(folders=[])
        cursor: str | None = None
        while True:
            page = await self.client.list_v2(
                self.bucket, self.prefix, cursor=cursor, limit=V2_PAGE_CAP, delimiter=True
            )
            top.folders.extend(f["key"] for f in page.get("folders") or [])
            top.loose_files.extend(_entry_object(o["name"], o) for o in page["objects"])
            cursor = page.get("nextCursor")
            if not page.get("hasNext") or not cursor:
                self.api = "v2"
                return top

    async def _top_level_v1(self) -> TopLevel:
        top = TopLevel(folders=[])
        async for entries in self._v1_level(self.prefix):
            for entry in entries:
                if entry.get("id") is None:
                    top.folders.append(entry["name"])
                else:
                    top.loose_files.append(self._v1_object(self.prefix, entry))
        return top

    def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]:
        folder_prefix = f"{self.prefix}{folder}/"
        if self.api == "v2":
            return self._walk_v2(folder_prefix)
        return self._walk_v1(folder_prefix)

    async def _walk_v2(self, folder_prefix: str) -> AsyncIterator[list[ListedObject]]:
        cursor: str | None = None
        while True:
            page = await self.client.list_v2(
                self.bucket, folder_prefix, cursor=cursor, limit=V2_PAGE_CAP, delimiter=False
            )
            yield [_entry_object(o["name"], o) for o in page["objects"]]
            cursor = page.get("nextCursor")
            if not page.get("hasNext") or not cursor:
                return

    async def _walk_v1(self, folder_prefix: str) -> AsyncIterator[list[ListedObject]]:
        # Depth-first over sub-folders; a folder is an entry whose id is null (no trailing
        # slash: the user's `endsWith('/')` test missed every date folder).
        pending = [folder_prefix]
        while pending:
            level = pending.pop()
            async for entries in self._v1_level(level):
                objects = []
                for entry in entries:
                    if entry.get("id") is None:
                        pending.append(f"{level}{entry['name']}/")
                    else:
                        objects.append(self._v1_object(level, entry))
                yield objects

    async def _v1_level(self, prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
        offset = 0
        while True:
            page = await self.client.list_v1(
                self.bucket, prefix, limit=self.page_size, offset=offset
            )
            yield page
            if len(page) < self.page_size:
                return
            offset += len(page)

    @staticmethod
    def _v1_object(level: str, entry: dict[str, Any]) -> ListedObject:
        # v1 entries carry only the last path segment as their name.
        return _entry_object(level + entry["name"], entry)


class DbSource:
    """Lists from Supabase's catalogue table `storage.objects` over a database connection:
    one streamed, server-side-cursor query per folder instead of many HTTP calls.

    Prefix ranges compare `name COLLATE "C"` (byte order), as Supabase declares the column,
    so the `(bucket_id, name)` index serves them.
    """

    def __init__(
        self, pool: asyncpg.Pool, bucket: str, prefix: str, *, page_size: int = 1000
    ) -> None:
        self.pool = pool
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.page_size = page_size

    async def top_level(self) -> TopLevel:
        lo, hi = _prefix_range(self.prefix)
        async with self.pool.acquire() as conn:
            folders = await conn.fetch(sql("storage_db_top_folders"), self.bucket, lo, hi)
            files = await conn.fetch(sql("storage_db_loose_files"), self.bucket, lo, hi)
        return TopLevel(
            folders=[r["folder"] for r in folders],
            loose_files=[
                _from_metadata(r["name"], r["metadata"], r["created_at"], r["updated_at"])
                for r in files
            ],
        )

    async def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]:
        lo, hi = _prefix_range(f"{self.prefix}{folder}/")
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(sql("storage_db_objects_under"), self.bucket, lo, hi)
            while True:
                rows = await cursor.fetch(self.page_size)
                yield [
                    _from_metadata(r["name"], r["metadata"], r["created_at"], r["updated_at"])
                    for r in rows
                ]
                if len(rows) < self.page_size:
                    return


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) in byte order covering every name that starts with `prefix`."""
    if not prefix:
        return "", "\U0010ffff"
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def walk(
    source: Source,
    folders: Iterable[str] | AsyncIterable[str],
    send: ObjectSendStream[ListingEvent],
    *,
    concurrency: int,
) -> None:
    """Walk `folders` (a list, or an async iterable such as a claim loop) with `concurrency`
    workers, sending pages (and failures) to `send`.

    Closes `send` when every folder is done. A folder whose listing fails for good (retries
    exhausted, or a non-retryable answer) becomes a `FolderFailure`; the walk goes on.
    """
    folder_send, folder_receive = anyio.create_memory_object_stream[str](concurrency)

    async def feed() -> None:
        async with folder_send:
            if isinstance(folders, AsyncIterable):
                async for folder in folders:
                    await folder_send.send(folder)
            else:
                for folder in folders:
                    await folder_send.send(folder)

    async def worker() -> None:
        async for folder in folder_receive:
            try:
                async for objects in source.walk_folder(folder):
                    await send.send(FolderPage(folder, objects, last=False))
            except LoaderError as exc:
                await send.send(FolderFailure(folder, str(exc)))
            except (KeyError, TypeError) as exc:
                await send.send(FolderFailure(folder, f"malformed listing entry: {exc!r}"))
            except (asyncpg.PostgresError, OSError) as exc:
                await send.send(FolderFailure(folder, f"database error: {exc}"))
            else:
                await send.send(FolderPage(folder, [], last=True))

    async with send, folder_receive, anyio.create_task_group() as tg:
        tg.start_soon(feed)
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker, name="list-worker")


async def for_each_event(
    opened: OpenedSource,
    concurrency: int,
    handle: Callable[[ListingEvent], Awaitable[None]],
) -> None:
    """Walk every top-level folder of `opened` and hand each page or failure to `handle`
    as it arrives (a slow `handle` slows the walk: the stream between them is bounded)."""
    send, receive = anyio.create_memory_object_stream[ListingEvent](concurrency * 2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: walk(opened.source, opened.top.folders, send, concurrency=concurrency)
        )
        async with receive:
            async for event in receive:
                await handle(event)


@dataclass(slots=True)
class SourceOptions:
    """Where to list from and how hard to push (every knob is a CLI flag)."""

    bucket: str = "blog-images"
    prefix: str = "originals/customers/"
    source: Literal["rest", "db"] = "rest"
    storage_url: str | None = None
    key: str | None = None
    list_api: ListApi = "auto"
    list_concurrency: int = 32
    page_size: int = 1000
    max_rps: float | None = None
    request_timeout_s: float = 30.0
    retries: int = ATTEMPTS
    storage_database_url: str | None = None


@dataclass(slots=True)
class OpenedSource:
    source: Source
    top: TopLevel
    warnings: list[str]
    client: StorageClient | None = None


@asynccontextmanager
async def open_source(opts: SourceOptions) -> AsyncIterator[OpenedSource]:
    """Preflight the source and list its top level.

    REST: the URL is resolved (project URL or Storage root), the bucket must exist (an unknown
    bucket would list as `[]`), and a JWT key whose role is not `service_role` is flagged.
    Zero top-level folders is never a success: `NotServiceRoleError` when the key explains it
    (row-level security hides everything from an anon key), else `EmptyListingError`.
    """
    warnings: list[str] = []
    if opts.source == "db":
        url = resolve_database_url(opts.storage_database_url)
        pool = await create_pool(url, max(1, min(opts.list_concurrency, 8)))
        try:
            async with pool.acquire() as conn:
                if not await conn.fetchval(sql("storage_db_bucket_exists"), opts.bucket):
                    raise BucketNotFoundError(
                        f"bucket {opts.bucket!r} does not exist in storage.buckets"
                    )
            source = DbSource(pool, opts.bucket, opts.prefix, page_size=opts.page_size)
            top = await source.top_level()
            _check_not_empty(top, source.prefix, role=None)
            yield OpenedSource(source, top, warnings)
        finally:
            await pool.close()
        return

    if not opts.storage_url:
        raise BadInputError("no Storage URL: pass --storage-url or set SUPABASE_URL")
    if not opts.key:
        raise BadInputError("no key: pass --key or set SUPABASE_SERVICE_ROLE_KEY")
    role = jwt_role(opts.key)
    if role is not None and role != "service_role":
        warnings.append(
            f"the key's role is {role!r}, not 'service_role': row-level security will hide"
            " objects and listings may come back empty"
        )
    client_options: dict[str, Any] = {
        "connections": opts.list_concurrency,
        "timeout_s": opts.request_timeout_s,
        "retry": RetryPolicy(attempts=opts.retries),
        "limiter": RateLimiter(opts.max_rps) if opts.max_rps else None,
    }
    try:
        base_url = await resolve_base_url(opts.storage_url, opts.key, opts.bucket, **client_options)
    except BucketNotFoundError:
        if role is not None and role != "service_role":
            # Row-level security hides buckets from anon keys too.
            raise NotServiceRoleError(
                f"bucket {opts.bucket!r} is not visible with a {role!r} key: use the"
                " service-role key"
            ) from None
        raise
    async with StorageClient(base_url, opts.key, **client_options) as client:
        rest = RestSource(
            client, opts.bucket, opts.prefix, api=opts.list_api, page_size=opts.page_size
        )
        top = await rest.top_level()
        _check_not_empty(top, rest.prefix, role=role)
        yield OpenedSource(rest, top, warnings, client)


async def list_folders(opts: SourceOptions) -> list[str]:
    """The customer folders directly under the prefix (after the same preflight)."""
    async with open_source(opts) as opened:
        return opened.top.folders


def _check_not_empty(top: TopLevel, prefix: str, *, role: str | None) -> None:
    if top.folders:
        return
    where = f"under {prefix!r}" if prefix else "in the bucket"
    if role is not None and role != "service_role":
        raise NotServiceRoleError(
            f"no folders {where}, and the key's role is {role!r}: use the service-role key"
        )
    raise EmptyListingError(f"no folders {where}: check --bucket and --prefix")
