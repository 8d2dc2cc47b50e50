"""Source stage: list every object under a prefix, one top-level (customer) folder at a time.

Two sources share one interface (`Source`): the Storage REST API (v2 recursive cursor pages
when the server has them, else v1 one level at a time with offset paging) and Supabase's own
catalogue table `storage.objects` read over a database connection. `walk` runs folder walks
concurrently (a fixed number of workers fed by a bounded stream) and streams each page out as
soon as it is listed, so memory stays flat whatever the bucket size. A page is emitted only
after it was read whole, so a retried page never emits an object twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import anyio
import asyncpg
from anyio.abc import ObjectSendStream

from loader.db import create_pool, resolve_database_url
from loader.errors import (
    BadInputError,
    BucketNotFoundError,
    DatabaseError,
    EmptyListingError,
    LoaderError,
    NotServiceRoleError,
    StorageUnreachableError,
)
from loader.folder_groups import PAGES_PER_GROUP, FolderGroup, Grouping
from loader.outage import OutageDetector
from loader.redact import RECORDED, redact
from loader.retry import ATTEMPTS, RetryPolicy
from loader.sqlfiles import sql
from loader.storage_client import (
    HEDGE_AFTER,
    STALL_FACTOR,
    V1_PAGE_CAP,
    V2_PAGE_CAP,
    ClientStats,
    KeyKind,
    RateLimiter,
    StorageClient,
    StorageRequestError,
    TailPolicy,
    key_kind,
    public_url_base,
    resolve_base_url,
)
from loader.storage_objects import ListedObject, entry_object, from_metadata, prefix_end

ListApi = Literal["auto", "v1", "v2"]


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
    """A Storage backend: lists the prefix's top level and walks one folder's sub-tree.

    Adding a backend is one class implementing this protocol, with an `open(opts)` async
    context manager that preflights it (bucket exists, key can see it), plus one line in
    `SOURCES`. `label` names what listed (in reports); `public_url_base` is where the bucket's
    public URLs live (`{Storage API root}/object/public/{bucket}`, None when unknown);
    `bucket_public` is the bucket's `public` flag (None when unknown); `warnings` are things
    the user should hear before the work starts. `group_page_size` is the page size of
    `walk_prefix`, 0 when the backend cannot list a string prefix recursively (v1): folders
    are then listed one at a time (see `loader.folder_groups`).
    """

    prefix: str
    public_url_base: str | None
    bucket_public: bool | None
    warnings: list[str]

    @property
    def label(self) -> str: ...

    @property
    def group_page_size(self) -> int: ...

    async def top_level(self) -> TopLevel: ...

    def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]: ...

    def walk_prefix(self, prefix: str) -> AsyncIterator[list[ListedObject]]:
        """Every object whose name starts with `prefix` (relative to `self.prefix`, any string)."""
        ...

    def request_counts(self) -> ClientStats:
        """Requests made so far (retries, hedges, ...), for progress and reports."""
        ...


def normalize_prefix(prefix: str) -> str:
    """`originals/customers` → `originals/customers/`; '' or '/' is the bucket root."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


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
        bucket_record: dict[str, Any] | None = None,
        key: KeyKind | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.api: ListApi = api
        # v1 silently caps at 1500: asking for more would make a short page look full.
        self.page_size = min(page_size, V1_PAGE_CAP)
        self.public_url_base: str | None = public_url_base(client.base_url, bucket)
        public = (bucket_record or {}).get("public")
        self.bucket_public: bool | None = public if isinstance(public, bool) else None
        self.key = key
        self.warnings: list[str] = []

    @classmethod
    @asynccontextmanager
    async def open(cls, opts: SourceOptions) -> AsyncIterator[RestSource]:
        """Resolve the URL form, check the bucket (whatever the form) and the key's kind.

        A missing bucket is `NotServiceRoleError` only when the key is known not to be the
        service role (see `top_level` for why the key's kind is the only evidence); with a
        key of unknown kind it stays `BucketNotFoundError`, with a hint.
        """
        if not opts.storage_url:
            raise BadInputError("no Storage URL: pass --storage-url or set SUPABASE_URL")
        if not opts.key:
            raise BadInputError("no key: pass --key or set SUPABASE_SERVICE_ROLE_KEY")
        _check_storage_url(opts.storage_url)
        kind = key_kind(opts.key)
        client_options = _client_options(opts)
        try:
            resolved = await resolve_base_url(
                opts.storage_url, opts.key, opts.bucket, **client_options
            )
        except BucketNotFoundError as exc:
            if kind.service is False:
                raise NotServiceRoleError(
                    f"{exc}, or {kind} cannot see it: {_not_service_cause(kind)}"
                ) from exc
            if kind.service is None:
                raise BucketNotFoundError(f"{exc}. {_unknown_role_hint(kind, 'bucket')}") from exc
            raise
        async with StorageClient(resolved.url, opts.key, **client_options) as client:
            rest = cls(
                client,
                opts.bucket,
                opts.prefix,
                api=opts.list_api,
                page_size=opts.page_size,
                bucket_record=resolved.bucket,
                key=kind,
            )
            if kind.service is False:
                rest.warnings.append(
                    f"the key is {kind}, not the service role: row-level security will hide"
                    " objects and listings may come back empty"
                )
            yield rest

    @property
    def label(self) -> str:
        return self.api

    @property
    def group_page_size(self) -> int:
        # Without the delimiter v2 matches `prefix` as a plain string (`name LIKE 'prefix%'`
        # in the server's SQL); v1 lists one folder level only.
        return V2_PAGE_CAP if self.api == "v2" else 0

    def request_counts(self) -> ClientStats:
        return self.client.counts()

    async def top_level(self) -> TopLevel:
        """The top level. No folders is `NotServiceRoleError` only on evidence that the key
        is not the service role, and the key's own claim is the only evidence there is: a
        JWT whose role is not service_role, or an `sb_publishable_` key.

        The server gives none. Row-level security filters rows silently: objects hidden from
        the key list as `200 []`, as a missing prefix or bucket does (recordings 21, 22, 61),
        and `GET /bucket/{id}` reads `storage.buckets` under the key's role, so a hidden
        bucket answers NoSuchBucket as a missing one does. A bucket record the key can read
        beside an empty listing is what a service key sees under an empty prefix too. So a
        key of unknown kind (neither a JWT nor an sb_ key) listing nothing is
        `EmptyListingError`, with a hint that a key that is not the service role would see
        nothing as well.
        """
        top = await self._top_level_any()
        if not top.folders and self.key is not None:
            if self.key.service is False:
                raise NotServiceRoleError(
                    f"no folders {_where(self.prefix)} with {self.key}:"
                    f" {_not_service_cause(self.key)}"
                )
            if self.key.service is None:
                raise EmptyListingError(
                    f"no folders {_where(self.prefix)}: check --bucket and --prefix."
                    f" {_unknown_role_hint(self.key, 'objects')}"
                )
        return top

    async def _top_level_any(self) -> TopLevel:
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
            top.folders.extend(f.key for f in page.folders or ())
            top.loose_files.extend(page.objects)
            cursor = page.nextCursor
            if not page.hasNext or not cursor:
                self.api = "v2"
                return top

    async def _top_level_v1(self) -> TopLevel:
        top = TopLevel(folders=[])
        async for entries in self._v1_level(self.prefix):
            folders, objects = v1_entries(self.prefix, entries)
            top.folders.extend(folders)
            top.loose_files.extend(objects)
        return top

    def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]:
        folder_prefix = f"{self.prefix}{folder}/"
        if self.api == "v2":
            return self._walk_v2(folder_prefix)
        return self._walk_v1(folder_prefix)

    def walk_prefix(self, prefix: str) -> AsyncIterator[list[ListedObject]]:
        assert self.api == "v2", "v1 lists folders, not string prefixes"
        return self._walk_v2(f"{self.prefix}{prefix}")

    async def _walk_v2(self, folder_prefix: str) -> AsyncIterator[list[ListedObject]]:
        cursor: str | None = None
        while True:
            page = await self.client.list_v2(
                self.bucket, folder_prefix, cursor=cursor, limit=V2_PAGE_CAP, delimiter=False
            )
            yield page.objects
            cursor = page.nextCursor
            if not page.hasNext or not cursor:
                return

    async def _walk_v1(self, folder_prefix: str) -> AsyncIterator[list[ListedObject]]:
        # Depth-first over sub-folders; a folder is an entry whose id is null (no trailing
        # slash: the user's `endsWith('/')` test missed every date folder).
        pending = [folder_prefix]
        while pending:
            level = pending.pop()
            async for entries in self._v1_level(level):
                folders, objects = v1_entries(level, entries)
                pending.extend(f"{level}{name}/" for name in folders)
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


def v1_entries(level: str, entries: list[dict[str, Any]]) -> tuple[list[str], list[ListedObject]]:
    """The sub-folder names and the objects of one v1 page of `level` (the client checked
    that every entry is an object with a string name). v1 entries carry only the last path
    segment as their name."""
    folders: list[str] = []
    objects: list[ListedObject] = []
    for entry in entries:
        if entry.get("id") is None:
            folders.append(entry["name"])
        else:
            objects.append(entry_object(level + entry["name"], entry))
    return folders, objects


# The bucket's public flag; no row: the bucket does not exist.
BUCKET_PUBLIC_SQL = "SELECT public FROM storage.buckets WHERE id = $1"


class DbSource:
    """Lists from Supabase's catalogue table `storage.objects` over a database connection:
    one streamed, server-side-cursor query per folder instead of many HTTP calls.

    Prefix ranges compare `name COLLATE "C"` (byte order), as Supabase declares the column,
    so the `(bucket_id, name)` index serves them.
    """

    label = "db"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bucket: str,
        prefix: str,
        *,
        page_size: int = 1000,
        bucket_public: bool | None = None,
        public_url_base: str | None = None,
    ) -> None:
        self.pool = pool
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.page_size = page_size
        self.bucket_public = bucket_public
        self.public_url_base = public_url_base
        self.warnings: list[str] = []

    @classmethod
    @asynccontextmanager
    async def open(cls, opts: SourceOptions) -> AsyncIterator[DbSource]:
        """Check the bucket in storage.buckets; with `--storage-url`, find the Storage API
        root that answers, for the bucket's public URLs."""
        base = None
        if opts.storage_url:
            _check_storage_url(opts.storage_url)
            resolved = await resolve_base_url(
                opts.storage_url, opts.key, opts.bucket, **_client_options(opts)
            )
            base = public_url_base(resolved.url, opts.bucket)
        url = resolve_database_url(opts.storage_database_url)
        pool = await create_pool(url, max(1, min(opts.list_concurrency, 8)))
        try:
            async with pool.acquire() as conn:
                public = await conn.fetchval(BUCKET_PUBLIC_SQL, opts.bucket)
            if public is None:
                raise BucketNotFoundError(
                    f"bucket {opts.bucket!r} does not exist in storage.buckets"
                )
            yield cls(pool, opts.bucket, opts.prefix, page_size=opts.page_size,
                      bucket_public=public, public_url_base=base)  # fmt: skip
        finally:
            await pool.close()

    @property
    def group_page_size(self) -> int:
        return self.page_size

    def request_counts(self) -> ClientStats:
        return ClientStats()

    async def top_level(self) -> TopLevel:
        lo, hi = _prefix_range(self.prefix)
        async with self.pool.acquire() as conn:
            folders = await conn.fetch(sql("storage_db_top_folders"), self.bucket, lo, hi)
            files = await conn.fetch(sql("storage_db_loose_files"), self.bucket, lo, hi)
        return TopLevel(
            folders=[r["folder"] for r in folders],
            loose_files=[
                from_metadata(r["name"], r["metadata"], r["created_at"], r["updated_at"])
                for r in files
            ],
        )

    def walk_folder(self, folder: str) -> AsyncIterator[list[ListedObject]]:
        return self.walk_prefix(f"{folder}/")

    async def walk_prefix(self, prefix: str) -> AsyncIterator[list[ListedObject]]:
        """Objects under `prefix`, a page at a time. A query that fails (the server refused
        it, or a socket error) is `DatabaseError`: the walk records the folder and goes on."""
        lo, hi = _prefix_range(f"{self.prefix}{prefix}")
        try:
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                cursor = await conn.cursor(sql("storage_db_objects_under"), self.bucket, lo, hi)
                while True:
                    rows = await cursor.fetch(self.page_size)
                    yield [
                        from_metadata(r["name"], r["metadata"], r["created_at"], r["updated_at"])
                        for r in rows
                    ]
                    if len(rows) < self.page_size:
                        return
        except (asyncpg.PostgresError, OSError) as exc:
            raise DatabaseError(f"database error: {exc}") from exc


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) in byte order covering every name that starts with `prefix`."""
    if not prefix:
        return "", "\U0010ffff"
    return prefix, prefix_end(prefix)


async def walk(
    source: Source,
    chunks: AsyncIterable[list[str]],
    send: ObjectSendStream[ListingEvent],
    *,
    concurrency: int,
    grouping: Grouping,
) -> None:
    """Walk the folders of `chunks` (a claim loop, or `folder_chunks` of a known list) with
    `concurrency` workers, sending pages (and failures) to `send`.

    Each chunk is split into groups (`grouping`): a folder listed alone, or several folders
    listed by one recursive listing of a prefix they share. A folder's pages are sent as they
    are listed, and its last page (`last=True`) once its whole group is listed.

    Closes `send` when every folder is done. A group whose listing fails for good (a
    `LoaderError`: retries exhausted, a non-retryable or malformed answer, a failed query)
    becomes a `FolderFailure` for each folder of it; the walk goes on, unless the Storage
    server looks down as a whole (`loader.outage`): then it raises `StorageUnreachableError`.
    Any other exception is a bug and ends the walk.
    """
    group_send, group_receive = anyio.create_memory_object_stream[FolderGroup](concurrency)
    outage = OutageDetector.for_concurrency(concurrency)

    async def feed() -> None:
        async with group_send:
            async for chunk in chunks:
                for group in grouping.groups(chunk):
                    await group_send.send(group)

    async def fail(group: FolderGroup, reason: str) -> None:
        for folder in group.folders:
            await send.send(FolderFailure(folder, reason))

    async def worker() -> None:
        async for group in group_receive:
            try:
                objects = await _list_group(source, group, send, outage)
            except StorageUnreachableError as exc:
                outage.failed(group.label, exc)  # raises when the server as a whole is down
                await fail(group, str(exc))
            except LoaderError as exc:
                await fail(group, str(exc))
            else:
                grouping.observe(len(group.folders), objects)

    async with send, group_receive, anyio.create_task_group() as tg:
        tg.start_soon(feed)
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker, name="list-worker")


async def _list_group(
    source: Source, group: FolderGroup, send: ObjectSendStream[ListingEvent],
    outage: OutageDetector,
) -> int:  # fmt: skip
    """List one group, sending each folder's objects as pages; returns the objects sent.

    Each folder's latest page is held back and sent last, with `last=True`, once the whole
    group is listed: one event per folder of a small group, not a page and then an empty
    last one (half the events at 100,000 folders of 10)."""
    finals: dict[str, list[ListedObject]] = {}
    if group.alone:
        sent = await _send_folder(source, group.folders[0], send, outage, finals)
    else:
        sent = await _send_members(source, group, send, outage, finals)
    for folder in group.folders:
        await send.send(FolderPage(folder, finals.get(folder, []), last=True))
    return sent


async def _send_members(
    source: Source, group: FolderGroup, send: ObjectSendStream[ListingEvent],
    outage: OutageDetector, finals: dict[str, list[ListedObject]],
) -> int:  # fmt: skip
    """List a group of several folders by its prefix; each folder's latest page goes to
    `finals` instead of `send`."""
    members = set(group.folders)
    start = len(source.prefix)
    under = f"{source.prefix}{group.prefix}"
    sent = 0
    async for objects in source.walk_prefix(group.prefix):
        outage.listed()
        pages: dict[str, list[ListedObject]] = {}
        run: str | None = None  # `prefix/folder/` of the previous object, if it was kept
        page: list[ListedObject] = []
        for obj in objects:
            path = obj.path
            if run is not None and path.startswith(run):  # mostly: the folder of the last one
                page.append(obj)
                continue
            slash = path.find("/", start)
            folder = path[start:slash]
            # Only the group's own folders: a loose file or a folder that is not in the run
            # may share the prefix.
            if slash > 0 and folder in members and path.startswith(under):
                run = path[: slash + 1]
                page = pages.setdefault(folder, [])
                page.append(obj)
            else:
                run = None
        for folder, page in pages.items():
            sent += len(page)
            await _hold_back(folder, page, send, finals)
    # A top-level folder holds at least one object: a member with none means the prefix was
    # not matched as a plain string, so that folder is listed again on its own.
    for folder in group.folders:
        if folder not in finals:
            sent += await _send_folder(source, folder, send, outage, finals)
    return sent


async def _send_folder(
    source: Source, folder: str, send: ObjectSendStream[ListingEvent], outage: OutageDetector,
    finals: dict[str, list[ListedObject]],
) -> int:  # fmt: skip
    """List one folder on its own; its latest page goes to `finals` instead of `send`."""
    sent = 0
    async for objects in source.walk_folder(folder):
        outage.listed()
        sent += len(objects)
        await _hold_back(folder, objects, send, finals)
    return sent


async def _hold_back(
    folder: str, page: list[ListedObject], send: ObjectSendStream[ListingEvent],
    finals: dict[str, list[ListedObject]],
) -> None:  # fmt: skip
    """Hold `page` back as the folder's latest, sending the one it replaces."""
    if (held := finals.get(folder)) is not None:
        await send.send(FolderPage(folder, held, last=False))
    finals[folder] = page


async def folder_chunks(
    folders: list[str], grouping: Grouping, concurrency: int
) -> AsyncIterator[list[str]]:
    """`folders` in chunks of one group size per list worker (the size grows as folders are
    listed, so each chunk is cut when the walk asks for it)."""
    at = 0
    while at < len(folders):
        size = concurrency * grouping.size
        yield folders[at : at + size]
        at += size


async def for_each_event(
    opened: OpenedSource,
    concurrency: int,
    handle: Callable[[ListingEvent], Awaitable[None]],
) -> None:
    """Walk every top-level folder of `opened` and hand each page or failure to `handle`
    as it arrives (a slow `handle` slows the walk: the stream between them is bounded)."""
    send, receive = anyio.create_memory_object_stream[ListingEvent](concurrency * 2)
    grouping = opened.grouping()
    chunks = folder_chunks(opened.top.folders, grouping, concurrency)
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: walk(opened.source, chunks, send, concurrency=concurrency, grouping=grouping)
        )
        async with receive:
            async for event in receive:
                await handle(event)


@dataclass(slots=True, frozen=True)
class SourceOptions:
    """Where to list from and how hard to push (every knob is a CLI flag). Immutable: a run
    works with the options it started with (a resumed run's come from the run, by `replace`).
    The fields marked RECORDED are stored with the run and shown in its reports."""

    bucket: str = field(default="blog-images", metadata=RECORDED)
    prefix: str = field(default="originals/customers/", metadata=RECORDED)
    source: str = field(default="rest", metadata=RECORDED)  # a key of SOURCES
    storage_url: str | None = field(default=None, metadata=RECORDED)
    key: str | None = field(default=None, metadata=RECORDED)  # recorded masked
    list_api: ListApi = field(default="auto", metadata=RECORDED)
    list_concurrency: int = field(default=32, metadata=RECORDED)
    page_size: int = field(default=1000, metadata=RECORDED)
    # 0: every folder listed by calls of its own
    group_pages: int = field(default=PAGES_PER_GROUP, metadata=RECORDED)
    max_rps: float | None = None
    request_timeout_s: float = 30.0
    stall_factor: float | None = STALL_FACTOR  # None: only the request timeout cuts
    hedge_after: float | None = HEDGE_AFTER  # None: no hedged requests
    retries: int = ATTEMPTS
    storage_database_url: str | None = None


@dataclass(slots=True)
class OpenedSource:
    source: Source
    top: TopLevel
    warnings: list[str]
    group_pages: int = PAGES_PER_GROUP

    def grouping(self) -> Grouping:
        """How a walk of this source groups its top-level folders."""
        return Grouping(self.top.folders, self.source.group_page_size, self.group_pages)


SourceOpener = Callable[[SourceOptions], AbstractAsyncContextManager[Source]]

# Every Storage backend, by its `--source` name.
SOURCES: dict[str, SourceOpener] = {"rest": RestSource.open, "db": DbSource.open}

_RLS = "row-level security hides buckets and objects from keys that are not the service role"
_JWT_SERVICE_KEY = (
    "the JWT with role service_role (the eyJ... service_role key from the project's API"
    " settings, SERVICE_ROLE_KEY in a self-hosted setup)"
)


def _not_service_cause(kind: KeyKind) -> str:
    """Why a key known not to be the service role sees nothing, and which key to pass.

    sb_secret_ keys work only through Supabase's hosted API gateway (it translates them into
    JWTs), so they are offered first only to a publishable key's user, whose server evidently
    sits behind that gateway; a JWT key's user may have a self-hosted, JWT-only server.
    """
    if kind.sb_api_key:
        return (
            f"{_RLS}; pass the service-role key: the project's sb_secret_ key, or"
            f" {_JWT_SERVICE_KEY}"
        )
    return (
        f"{_RLS}; pass the service-role key: {_JWT_SERVICE_KEY}, or, through Supabase's"
        " hosted API gateway only, an sb_secret_ key"
    )


def _unknown_role_hint(kind: KeyKind, hidden: Literal["bucket", "objects"]) -> str:
    """A hint, not a finding: a key that does not say its role might not be the service role."""
    what = "an existing bucket" if hidden == "bucket" else "existing objects"
    return (
        f"Hint: {kind} says nothing of its role; a key that is not the service role would get"
        f" the same answer (row-level security would hide {what} from it)"
    )


def _client_options(opts: SourceOptions) -> dict[str, Any]:
    return {
        "connections": opts.list_concurrency,
        "timeout_s": opts.request_timeout_s,
        "retry": RetryPolicy(attempts=opts.retries),
        "limiter": RateLimiter(opts.max_rps) if opts.max_rps else None,
        "tail": TailPolicy(opts.stall_factor, opts.hedge_after),
    }


@asynccontextmanager
async def open_source(opts: SourceOptions) -> AsyncIterator[OpenedSource]:
    """Open the backend `opts.source` names (its own preflight) and list its top level.

    Zero top-level folders is never a success: `EmptyListingError` (a backend may raise a
    more precise error first, such as `NotServiceRoleError`).
    """
    opener = SOURCES.get(opts.source)
    if opener is None:
        raise BadInputError(f"unknown source {opts.source!r}: one of {', '.join(SOURCES)}")
    async with opener(opts) as source:
        top = await source.top_level()
        if not top.folders:
            raise EmptyListingError(
                f"no folders {_where(source.prefix)}: check --bucket and --prefix"
            )
        yield OpenedSource(source, top, source.warnings, opts.group_pages)


def _check_storage_url(url: str) -> None:
    """The key travels in headers only: a Storage URL carrying credentials (`user:pw@`, a
    query such as `?apikey=`) would put them in every request line and error message."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError as exc:
        raise BadInputError(f"invalid Storage URL {redact(url)}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"invalid Storage URL {redact(url)}: expected http(s)://host[/path]")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise BadInputError(
            f"the Storage URL {redact(url)} carries credentials or a query: give the bare"
            " project or Storage URL, and the key with --key or SUPABASE_SERVICE_ROLE_KEY"
        )


async def list_folders(opts: SourceOptions) -> list[str]:
    """The customer folders directly under the prefix (after the same preflight)."""
    async with open_source(opts) as opened:
        return opened.top.folders


def loose_media(top: TopLevel) -> list[str]:
    """Images and videos directly under the prefix, outside any customer folder. They belong
    to no customer, so migrate does not register them; every command names them instead."""
    from loader.classify import classify

    return sorted(
        o.path for o in top.loose_files
        if classify(o.path.rsplit("/", 1)[-1], o.mimetype)[0] in ("image", "video")
    )  # fmt: skip


def loose_media_warning(paths: list[str], *, show: int = 10) -> str | None:
    """The one line that says loose media files were left out (None when there are none)."""
    if not paths:
        return None
    more = f" and {len(paths) - show:,} more (see the report)" if len(paths) > show else ""
    return (
        f"{len(paths):,} media file(s) lie directly under the prefix, outside any customer"
        f" folder, and are not registered: {', '.join(paths[:show])}{more}"
    )


def _where(prefix: str) -> str:
    return f"under {prefix!r}" if prefix else "in the bucket"
