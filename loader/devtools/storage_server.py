"""A Supabase-Storage-compatible HTTP server for tests, the demo and benchmarks.

It serves the routes the loader uses, and uploads, with the wire format of the real server
(supabase/storage v1.11.2, see docs/storage.md and tests/storage-recordings/):

- `GET /bucket/{id}`
- `POST /object/list/{bucket}` (v1: one level, offset pages, limit capped at 1500)
- `POST /object/list-v2/{bucket}` (v2: cursor pages, recursive or one level)
- `GET`/`HEAD /object/public/{bucket}/{path}`
- `GET /object/authenticated/{bucket}/{path}` and `GET /object/{bucket}/{path}` (the key's
  download routes; private buckets too)
- `POST /object/{bucket}/{path}` (upload; `x-upsert: true` to replace; with `objects`, also
  written into a database's `storage.objects` as the real server writes it, see
  `loader.devtools.objects_table`)

in one of two layouts (`layout=`): "bare", at the root, like a self-hosted server, which
answers any other path with the framework's 404 (`statusCode` a number; inside its `/object`
and `/bucket` route groups a Storage-style body with `statusCode` "404"); or "gateway",
under `/storage/v1` like a Supabase project behind its gateway, which answers a path outside
`/storage/v1/` with the gateway's `{"message":"no Route matched with those values"}`.
A private bucket (`public=False`) answers its public route with "Bucket not found".

Choices where the real server's behaviour is unknown or not worth copying:

- Names sort by code point (Postgres `COLLATE "C"`); folder and file of the same name in one
  folder list folder first.
- With the anon key, lists are empty (row-level security hides every row) and `GET /bucket`
  answers "Bucket not found", because RLS hides `storage.buckets` rows from anon too.
- A v2 listing with the delimiter treats `prefix` as a folder (like v1), and builds `name`
  from the prefix as sent; without the delimiter `prefix` is a plain case-sensitive prefix.
- Injected faults (`Faults`) hit the bucket and list routes only, before authentication.
  An error fault's kind is its HTTP status too (the real server sends 503s as HTTP 400
  with statusCode "503" in the body; a proxy in front of it sends real 503s).

The catalogue keeps every entry as pre-serialized JSON so a v1 page is one bytes join:
per folder a sorted list of children (v1 entry bytes), plus one sorted list of every name
for v2 and lookups. A million objects load in 5-6 s and take about 0.75 GB.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import mimetypes
import operator
import os
import random
import signal
import socket
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from loader.classify import classify
from loader.devtools.objects_table import ObjectsTable
from loader.devtools.pictures import picture
from loader.devtools.storage_model import (
    Record,
    is_valid_key,
    iso_timestamp,
    object_id,
    object_metadata,
    read_manifest,
)

DEFAULT_BUCKET = "media"
V1_MAX_LIMIT = 1500
V2_MAX_LIMIT = 1000
FAULT_KINDS = ("429", "500", "503", "544", "stall", "reset", "truncated")
SORT_COLUMNS = ("name", "updated_at", "created_at", "last_accessed_at")

_NAME_FIELD = b'{"name":'
_FOLDER_FIELDS = (
    b',"id":null,"updated_at":null,"created_at":null,"last_accessed_at":null,"metadata":null}'
)
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
_CURSOR_TAG = "l:"


@dataclass(slots=True, frozen=True)
class StoredObject:
    """One object in the catalogue; `id` left empty is derived as uuid5 of bucket and name."""

    name: str
    size: int
    mimetype: str
    created_at: str
    updated_at: str
    id: str = ""


def _epoch_timestamp(epoch_s: float) -> str:
    return iso_timestamp(datetime.fromtimestamp(epoch_s, UTC))


def _file_entry(leaf: str, record: Record, bucket: str) -> bytes:
    name, size, mimetype, created_at, updated_at, stored_id = record
    entry = {
        "name": leaf,
        "id": stored_id or object_id(bucket, name),
        "updated_at": updated_at,
        "created_at": created_at,
        "last_accessed_at": created_at,
        "metadata": object_metadata(name, size, mimetype, updated_at),
    }
    # orjson's result keeps a 4 KiB buffer behind a 400-byte entry; an exact-size copy is
    # what makes a million kept entries fit in memory.
    return bytes(memoryview(orjson.dumps(entry)))


def _fields_after_name(entry: bytes, leaf: str) -> bytes:
    """The rest of a v1 entry after its `"name"` field, starting at the comma."""
    return entry[len(_NAME_FIELD) + len(orjson.dumps(leaf)) :]


def _leaf(name: str) -> str:
    return name[name.rfind("/") + 1 :]


def _folder_path(prefix: str) -> str:
    """`a/b` and `a/b/` both name the folder `a/b/`; the root is ``."""
    stripped = prefix.rstrip("/")
    return f"{stripped}/" if stripped else ""


def _timestamp_order(column: str, entry: bytes) -> tuple[bool, str]:
    # Postgres sorts NULLs (folders) last in ascending order and first in descending.
    value = orjson.loads(entry)[column]
    return value is None, value or ""


def encode_cursor(key: str) -> str:
    """The v2 `nextCursor` for a page ending at `key`, as the real server encodes it."""
    return base64.b64encode((_CURSOR_TAG + key).encode()).decode()


def decode_cursor(cursor: str) -> str | None:
    """The key a v2 cursor resumes after, or None if it is not one of ours."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except ValueError:
        return None
    return text[len(_CURSOR_TAG) :] if text.startswith(_CURSOR_TAG) else None


def _v2_body(folders: list[bytes], objects: list[bytes], next_key: str | None) -> bytes:
    if next_key is None:
        head = b'{"hasNext":false'
    else:
        head = b'{"hasNext":true,"nextCursor":%s,"nextCursorKey":%s' % (
            orjson.dumps(encode_cursor(next_key)),
            orjson.dumps(next_key),
        )
    return b'%s,"folders":[%s],"objects":[%s]}' % (head, b",".join(folders), b",".join(objects))


EMPTY_V2_PAGE = _v2_body([], [], None)


@dataclass(slots=True)
class _Folder:
    """The children directly under one folder, in listing order."""

    leaves: list[str]
    entries: list[bytes]  # each child as its v1 JSON object
    is_file: bytearray  # 0 for a folder, 1 for a file: the tie-break in the sort order


class Catalogue:
    """The objects of one bucket, indexed for the list routes. Build with a `from_*` method."""

    def __init__(
        self, records: Iterable[Record], *, bucket: str = DEFAULT_BUCKET, root: Path | None = None
    ) -> None:
        self.root = root
        self.bucket = bucket
        by_name = {record[0]: record for record in records}
        self._names = sorted(by_name)
        self._entries = [
            _file_entry(_leaf(name), by_name.pop(name), bucket) for name in self._names
        ]
        # Where each entry's fields after its name start: a v2 page rewrites only the name
        # (the full key), so per object it encodes one string and slices once.
        self._cuts = [len(_NAME_FIELD) + len(orjson.dumps(_leaf(name))) for name in self._names]
        self._folders = self._index_folders()

    @classmethod
    def from_directory(cls, root: Path, *, bucket: str = DEFAULT_BUCKET) -> Catalogue:
        """Every file below `root` is an object named by its relative path; the public route
        serves the files' bytes."""
        root = Path(root).resolve()
        return cls(_scan_directory(root), bucket=bucket, root=root)

    @classmethod
    def from_manifest(cls, path: Path, *, bucket: str = DEFAULT_BUCKET) -> Catalogue:
        """Load JSON lines `{"name","size","mimetype","created_at","updated_at"}` (optional
        `"id"`); raise BadInputError naming the first bad line."""
        return cls(read_manifest(Path(path)), bucket=bucket)

    @classmethod
    def from_objects(
        cls, objects: Iterable[StoredObject], *, bucket: str = DEFAULT_BUCKET
    ) -> Catalogue:
        """A catalogue of the given objects (a later duplicate name replaces an earlier one)."""
        return cls(
            ((o.name, o.size, o.mimetype, o.created_at, o.updated_at, o.id) for o in objects),
            bucket=bucket,
        )

    def with_object(self, obj: StoredObject, content: bytes) -> Catalogue:
        """A copy with `obj` added (or replaced); a directory catalogue also writes `content`.

        Rebuilds the index: fine for the occasional upload of tests and the demo.
        """
        if self.root is not None:
            path = self.root / obj.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        kept = (o for o in self if o.name != obj.name)
        catalogue = Catalogue.from_objects([*kept, obj], bucket=self.bucket)
        catalogue.root = self.root
        return catalogue

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[StoredObject]:
        """Every object, in name order."""
        return map(self._decode, self._names, self._entries)

    def get(self, name: str) -> StoredObject | None:
        """The object named exactly `name`, if any."""
        i = bisect_left(self._names, name)
        if i < len(self._names) and self._names[i] == name:
            return self._decode(name, self._entries[i])
        return None

    def list_folder(
        self,
        prefix: str,
        *,
        limit: int,
        offset: int = 0,
        search: str = "",
        column: str = "name",
        descending: bool = False,
    ) -> bytes:
        """A v1 listing page (JSON array) of the folder `prefix`, matched case-insensitively."""
        folder = self._folders.get(_folder_path(prefix).lower())
        if folder is None:
            return b"[]"
        entries = folder.entries
        if search:
            needle = search.lower()
            entries = [
                entry
                for leaf, entry in zip(folder.leaves, entries, strict=True)
                if leaf.lower().startswith(needle)
            ]
        if column != "name":
            entries = sorted(entries, key=lambda entry: _timestamp_order(column, entry))
        if descending:
            entries = entries[::-1]
        return b"[%s]" % b",".join(entries[offset : offset + limit])

    def list_tree(self, prefix: str, *, limit: int, after: str | None = None) -> bytes:
        """A v2 page without delimiter: objects whose names start with `prefix` (exact case),
        recursively, after the key `after`."""
        names = self._names
        start = bisect_left(names, prefix)
        if after is not None:
            start = max(start, bisect_right(names, after))
        stop = start
        end = min(len(names), start + limit)
        while stop < end and names[stop].startswith(prefix):
            stop += 1
        more = stop < len(names) and names[stop].startswith(prefix)
        dumps = orjson.dumps
        objects = [
            _NAME_FIELD + dumps(name) + entry[cut:]
            for name, entry, cut in zip(
                names[start:stop], self._entries[start:stop], self._cuts[start:stop], strict=True
            )
        ]
        return _v2_body([], objects, names[stop - 1] if more else None)

    def list_level(self, prefix: str, *, limit: int, after: str | None = None) -> bytes:
        """A v2 page with delimiter: the folders and objects directly under folder `prefix`."""
        base = _folder_path(prefix)
        folder = self._folders.get(base.lower())
        if folder is None:
            return EMPTY_V2_PAGE
        start = 0 if after is None else _resume_index(folder, after)
        stop = min(len(folder.leaves), start + limit)
        folders: list[bytes] = []
        objects: list[bytes] = []
        key = ""
        for i in range(start, stop):
            leaf = folder.leaves[i]
            head = b'{"key":%s,"name":' % orjson.dumps(leaf)
            if folder.is_file[i]:
                key = base + leaf
                objects.append(
                    head + orjson.dumps(key) + _fields_after_name(folder.entries[i], leaf)
                )
            else:
                key = f"{base}{leaf}/"
                folders.append(head + orjson.dumps(key) + _FOLDER_FIELDS)
        return _v2_body(folders, objects, key if stop < len(folder.leaves) else None)

    def _decode(self, name: str, entry: bytes) -> StoredObject:
        fields = orjson.loads(entry)
        meta = fields["metadata"]
        return StoredObject(
            name=name,
            size=meta["size"],
            mimetype=meta["mimetype"],
            created_at=fields["created_at"],
            updated_at=fields["updated_at"],
            id=fields["id"],
        )

    def _index_folders(self) -> dict[str, _Folder]:
        # Keyed by lower-cased path because v1 matches prefixes case-insensitively: `Kim/`
        # and `kim/` list as one folder holding both sets of children.
        subfolders: defaultdict[str, dict[str, None]] = defaultdict(dict)
        files: defaultdict[str, tuple[list[str], list[bytes]]] = defaultdict(lambda: ([], []))
        previous_parent = None
        for name, entry in zip(self._names, self._entries, strict=True):
            cut = name.rfind("/") + 1
            parent = name[:cut]
            # Names are sorted, so each folder path turns up in one run of names.
            if parent != previous_parent:
                previous_parent, (leaves, entries) = parent, files[parent.lower()]
                path = ""
                for segment in parent.split("/")[:-1]:
                    subfolders[path.lower()][segment] = None
                    path += segment + "/"
            leaves.append(name[cut:])
            entries.append(entry)
        index = {}
        for key in subfolders.keys() | files.keys():
            leaves, entries = files.get(key, ([], []))
            is_file = bytearray(b"\x01") * len(leaves)
            # Most folders hold only files, of one spelling, already in order: keep them as is.
            if key in subfolders or not all(map(operator.le, leaves, leaves[1:])):
                children = sorted(
                    [
                        *zip(leaves, is_file, entries, strict=True),
                        *(
                            (leaf, 0, _NAME_FIELD + orjson.dumps(leaf) + _FOLDER_FIELDS)
                            for leaf in subfolders.get(key, ())
                        ),
                    ]
                )
                leaves = [child[0] for child in children]
                is_file = bytearray(child[1] for child in children)
                entries = [child[2] for child in children]
            index[key] = _Folder(leaves, entries, is_file)
        return index


def _resume_index(folder: _Folder, after: str) -> int:
    # A cursor key names a folder (trailing slash) or a file; resume right after that child.
    is_file = 0 if after.endswith("/") else 1
    leaf = _leaf(after[: len(after) - 1 + is_file])
    i = bisect_left(folder.leaves, leaf)
    while i < len(folder.leaves) and folder.leaves[i] == leaf and folder.is_file[i] <= is_file:
        i += 1
    return i


def _scan_directory(root: Path) -> Iterator[Record]:
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath, filename)
            stat = path.stat()
            mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            stamp = _epoch_timestamp(stat.st_mtime)
            yield path.relative_to(root).as_posix(), stat.st_size, mimetype, stamp, stamp, ""


@dataclass(slots=True)
class Faults:
    """Failures and delays to inject into the bucket and list routes.

    Each request first waits `latency_ms` ± uniform `jitter_ms`, then with probability
    `fail_rate` fails in one of `kinds`, chosen uniformly: an HTTP 429 (`Retry-After:
    retry_after`), 500, 503 or 544 error body; a "stall" (sleep `stall_s`, then answer); a
    "reset" (connection dropped without a response); or a "truncated" JSON body. `seed` makes
    the sequence reproducible for a given order of requests. `stall_every` N > 0 also stalls
    every Nth request (the Nth, 2Nth, ...), whatever the draw: a fault a test can count on.
    """

    latency_ms: float = 0
    jitter_ms: float = 0
    fail_rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    stall_s: float = 30.0
    retry_after: int = 1
    seed: int | None = None
    stall_every: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.stall_every < 0:
            raise ValueError("stall_every must be 0 (off) or a positive count")


@dataclass(slots=True)
class ServerStats:
    """Counters a test can read from `app[STATS]`."""

    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)


STATS = web.AppKey("stats", ServerStats)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Rejected(Exception):
    """Raised by a handler to answer with an error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json_response(body: bytes, status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=body, status=status, headers={**_JSON_HEADERS, **headers})


def _error(
    status: str, error: str, message: str, code: str, *, http_status: int = 400, **headers: str
) -> web.Response:
    # The real server answers HTTP 400 and puts the real status, as a string, in the body.
    body = {"statusCode": status, "error": error, "message": message, "code": code}
    return _json_response(orjson.dumps(body), http_status, **headers)


def _invalid(message: str) -> _Rejected:
    return _Rejected(_error("400", "Error", message, "InvalidRequest"))


def _bucket_not_found() -> web.Response:
    return _error("404", "Bucket not found", "Bucket not found", "NoSuchBucket")


_FAULT_ERRORS = {
    "429": ("too many requests", "Too many connections to the database", "SlowDown"),
    "500": ("Internal", "Internal Server Error", "InternalError"),
    "503": (
        "DatabaseConnectionLimit",
        "The database has reached its maximum number of connections. Please try again later.",
        "DatabaseConnectionLimit",
    ),
    "544": ("DatabaseTimeout", "The connection to the database timed out", "DatabaseTimeout"),
}


class _FaultInjector:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.drawn = 0

    async def draw(self) -> str | None:
        """Sleep the configured latency, then pick the fault for this request, if any."""
        faults = self.faults
        self.drawn += 1
        nth = self.drawn
        delay_ms = faults.latency_ms + self.rng.uniform(-faults.jitter_ms, faults.jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if faults.stall_every and nth % faults.stall_every == 0:
            return "stall"
        if self.rng.random() < faults.fail_rate:
            return self.rng.choice(faults.kinds)
        return None

    async def respond(self, kind: str, request: web.Request, handler: Handler) -> web.Response:
        """Answer `request` with the fault `kind`."""
        if kind in _FAULT_ERRORS:
            headers = {"Retry-After": str(self.faults.retry_after)} if kind == "429" else {}
            return _error(kind, *_FAULT_ERRORS[kind], http_status=int(kind), **headers)
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if kind == "stall":
            await asyncio.sleep(self.faults.stall_s)
            return await handler(request)
        response = await handler(request)  # "truncated"
        # Faulty routes answer with in-memory JSON, never a streamed or file response.
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        return _json_response(response.body[: len(response.body) // 2], response.status)


@dataclass(slots=True)
class _Storage:
    catalogue: Catalogue
    bucket: str
    key: str
    anon_key: str | None
    public: bool
    created_at: str
    jwt_only: bool = False
    objects: ObjectsTable | None = None

    def _is_anon(self, request: web.Request) -> bool:
        """Check the bearer token: True for the anon key, False for the service key."""
        header = request.headers.get("Authorization")
        if header is None:
            raise _invalid("headers must have required property 'authorization'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if self.jwt_only and token.count(".") != 2:
            # Read from the real server's source (not recorded): jose's compact-JWS check.
            raise _Rejected(_error("403", "Unauthorized", "Invalid Compact JWS", "AccessDenied"))
        if scheme.lower() == "bearer":
            if hmac.compare_digest(token.encode(), self.key.encode()):
                return False
            if self.anon_key and hmac.compare_digest(token.encode(), self.anon_key.encode()):
                return True
        raise _Rejected(
            _error("403", "Unauthorized", "signature verification failed", "AccessDenied")
        )

    async def get_bucket(self, request: web.Request) -> web.Response:
        if self._is_anon(request) or request.match_info["bucket"] != self.bucket:
            return _bucket_not_found()
        body = {
            "id": self.bucket,
            "name": self.bucket,
            "owner": "",
            "public": self.public,
            "file_size_limit": None,
            "allowed_mime_types": None,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }
        return _json_response(orjson.dumps(body))

    async def list_v1(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if "prefix" not in body:
            raise _invalid("body must have required property 'prefix'")
        prefix = _string(body, "prefix")
        limit = _integer(body, "limit", 100, minimum=1)
        offset = _integer(body, "offset", 0, minimum=0)
        search = _string(body, "search")
        column, descending = _sort_by(body.get("sortBy"))
        if self._is_anon(request) or request.match_info["bucket"] != self.bucket:
            return _json_response(b"[]")
        page = self.catalogue.list_folder(
            prefix,
            limit=min(limit, V1_MAX_LIMIT),
            offset=offset,
            search=search,
            column=column,
            descending=descending,
        )
        return _json_response(page)

    async def list_v2(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        prefix = _string(body, "prefix")
        limit = min(_integer(body, "limit", V2_MAX_LIMIT, minimum=1), V2_MAX_LIMIT)
        after = None
        if cursor := body.get("cursor"):
            after = decode_cursor(cursor) if isinstance(cursor, str) else None
            if after is None:
                raise _invalid("body/cursor is not a valid cursor")
        if self._is_anon(request) or request.match_info["bucket"] != self.bucket:
            return _json_response(EMPTY_V2_PAGE)
        lister = (
            self.catalogue.list_level if body.get("with_delimiter") else self.catalogue.list_tree
        )
        return _json_response(lister(prefix, limit=limit, after=after))

    async def upload(self, request: web.Request) -> web.Response:
        """`POST /object/{bucket}/{path}`: store the body as an object (recordings 06-13, 71,
        79); `x-upsert: true` replaces an existing one, keeping its id."""
        if self._is_anon(request):
            # Not recorded: row-level security refuses the insert for a key without rights.
            return _error("403", "Unauthorized", "new row violates row-level security policy",
                          "AccessDenied")  # fmt: skip
        if request.match_info["bucket"] != self.bucket:
            return _bucket_not_found()
        name = request.match_info["path"]
        if not is_valid_key(name):
            return _error("400", "InvalidKey", f"Invalid key: {name}", "InvalidKey")
        existing = self.catalogue.get(name)
        if existing is not None and request.headers.get("x-upsert", "").lower() != "true":
            return _error("409", "Duplicate", "The resource already exists", "KeyAlreadyExists")
        content = await request.read()
        now = _epoch_timestamp(time.time())
        mimetype = request.headers.get("Content-Type") or "application/octet-stream"
        stored = StoredObject(
            name,
            len(content),
            mimetype.split(";")[0].strip(),
            existing.created_at if existing is not None else now,
            now,
            existing.id if existing is not None else str(uuid.uuid4()),
        )
        if self.objects is not None:
            # The table first, as Storage commits its row before answering.
            try:
                await self.objects.write(stored.id, name, stored.size, stored.mimetype,
                                         stored.created_at, stored.updated_at)  # fmt: skip
            except (asyncpg.PostgresError, OSError) as exc:
                return _error("500", "DatabaseError", f"storage.objects: {exc}", "DatabaseError")
        self.catalogue = self.catalogue.with_object(stored, content)
        return _json_response(orjson.dumps({"Key": f"{self.bucket}/{name}", "Id": stored.id}))

    async def public_object(self, request: web.Request) -> web.StreamResponse:
        # The real server looks the bucket up as public first: a private bucket is "not found".
        if not self.public or request.match_info["bucket"] != self.bucket:
            return _bucket_not_found()
        return self._object_bytes(request)

    async def download(self, request: web.Request) -> web.StreamResponse:
        """`GET /object/authenticated/{bucket}/{path}` (or `/object/{bucket}/{path}`): an
        object's bytes for the key, public bucket or not. Not recorded: the anon key gets
        "Object not found", as row-level security hides the row."""
        if self._is_anon(request):
            return _error("404", "not_found", "Object not found", "NoSuchKey")
        if request.match_info["bucket"] != self.bucket:
            return _bucket_not_found()
        return self._object_bytes(request)

    def _object_bytes(self, request: web.Request) -> web.StreamResponse:
        found = self.catalogue.get(request.match_info["path"])
        if found is None:
            return _error("404", "not_found", "Object not found", "NoSuchKey")
        headers = {"Content-Type": found.mimetype, "Cache-Control": "no-cache"}
        if self.catalogue.root is not None:
            return web.FileResponse(self.catalogue.root / found.name, headers=headers)
        if request.method == "HEAD":
            # The same answer without making the bytes a HEAD never sends (a picture padded
            # to the object's size: most of the time of a test HEADing every cdn_url).
            return web.Response(headers={**headers, "Content-Length": str(found.size)})
        # A catalogue object has a size but no bytes: an image gets a real picture of that
        # size (so pages show it), anything else zeros.
        body = None
        if classify(found.name.rsplit("/", 1)[-1], found.mimetype)[0] == "image":
            body = picture(found.name, found.size)
        return web.Response(body=body if body is not None else bytes(found.size), headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise _Rejected(
            _error("400", "Bad Request", "Body is not valid JSON", "InvalidRequest")
        ) from exc
    if not isinstance(body, dict):
        raise _invalid("body must be object")
    return body


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise _invalid(f"body/{name} must be string")
    return value


def _integer(body: dict[str, Any], name: str, default: int, *, minimum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"body/{name} must be integer")
    if value < minimum:
        raise _invalid(f"body/{name} must be >= {minimum}")
    return value


def _sort_by(sort_by: object) -> tuple[str, bool]:
    """The (column, descending) of a v1 `sortBy`; name ascending when absent."""
    if sort_by is None:
        return "name", False
    if not isinstance(sort_by, dict):
        raise _invalid("body/sortBy must be object")
    column = sort_by.get("column") or "name"
    order = str(sort_by.get("order") or "asc").lower()
    if column not in SORT_COLUMNS:
        raise _invalid(f"body/sortBy/column must be one of {', '.join(SORT_COLUMNS)}")
    if order not in ("asc", "desc"):
        raise _invalid("body/sortBy/order must be asc or desc")
    return column, order == "desc"


GATEWAY_PREFIX = "/storage/v1"
LAYOUTS = ("bare", "gateway")
_STORAGE_ROUTE_GROUPS = ("/object", "/bucket")


def _unknown_route(request: web.Request, layout: str) -> web.Response:
    """What the real stack answers for a path it has no route for (recordings 76, 77)."""
    raw = request.raw_path
    if layout == "gateway":
        if not raw.startswith(GATEWAY_PREFIX + "/"):
            return _json_response(orjson.dumps({"message": "no Route matched with those values"}),
                                  404)  # fmt: skip
        raw = raw[len(GATEWAY_PREFIX) :]  # the gateway strips its prefix before Storage
    message = f"Route {request.method}:{raw} not found"
    if raw.startswith(_STORAGE_ROUTE_GROUPS):
        # Storage's own not-found handler inside its route groups (read from its source).
        return _error("404", "Not Found", message, "InvalidRequest", http_status=404)
    body = {"message": message, "error": "Not Found", "statusCode": 404}
    return _json_response(orjson.dumps(body), 404)


def build_app(
    catalogue: Catalogue,
    *,
    bucket: str,
    key: str,
    anon_key: str | None = None,
    faults: Faults | None = None,
    public: bool = True,
    layout: str = "bare",
    jwt_only: bool = False,
    objects: ObjectsTable | None = None,
) -> web.Application:
    """The Storage app serving `catalogue` as bucket `bucket`, authorised by service `key`.

    `anon_key`, if given, is accepted and sees an empty bucket. `public` marks the bucket
    public: only then does the public object route serve its files. `layout` is "bare"
    (routes at the root) or "gateway" (under `/storage/v1`, as behind Supabase's gateway).

    `jwt_only` answers like the real server reached without Supabase's gateway, which
    verifies every key as a JWT and so refuses an sb_ API key (or any key that is not three
    dot-separated parts) before anything else: HTTP 400, body `{"statusCode": "403",
    "error": "Unauthorized", "message": "Invalid Compact JWS", "code": "AccessDenied"}`.
    That answer is read from supabase/storage's source at the recorded commit (the jwt
    plugin hands jose's error message to `ERRORS.AccessDenied`; servers before 2025-04 used
    jsonwebtoken and said "jwt malformed"), and shaped like recording 62. Without it, any
    configured `key` is accepted whatever its shape (the demo's key is not a JWT) and any
    other key is refused as recording 62's bad signature is.

    `objects`: also write every accepted upload into that database's `storage.objects`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    created_at = _epoch_timestamp(time.time())
    storage = _Storage(catalogue, bucket, key, anon_key, public, created_at, jwt_only, objects)
    injector = _FaultInjector(faults) if faults is not None else None
    stats = ServerStats()

    @web.middleware
    async def unknown_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return _unknown_route(request, layout)
        return await handler(request)

    app = web.Application(middlewares=[unknown_routes])
    app[STATS] = stats
    if objects is not None:
        app.cleanup_ctx.append(objects.context)

    def route(name: str, handler: Handler, *, faulty: bool) -> Handler:
        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Rejected as rejected:
                return rejected.response
            except ConnectionResetError:
                # The client left before its body was read (a request it cut or raced):
                # nobody to answer, and nothing to log.
                return web.Response()

        async def handle(request: web.Request) -> web.StreamResponse:
            stats.requests += 1
            stats.by_route[name] += 1
            kind = await injector.draw() if faulty and injector is not None else None
            if kind is None:
                return await answer(request)
            stats.faults[kind] += 1
            return await injector.respond(kind, request, answer)

        return handle

    get_bucket = route("bucket", storage.get_bucket, faulty=True)
    list_v1 = route("list", storage.list_v1, faulty=True)
    list_v2 = route("list-v2", storage.list_v2, faulty=True)
    public_object = route("public", storage.public_object, faulty=False)
    upload = route("upload", storage.upload, faulty=False)
    download = route("download", storage.download, faulty=False)
    base = GATEWAY_PREFIX if layout == "gateway" else ""
    app.router.add_get(f"{base}/bucket/{{bucket}}", get_bucket)
    app.router.add_post(f"{base}/object/list/{{bucket}}", list_v1)
    app.router.add_post(f"{base}/object/list-v2/{{bucket}}", list_v2)
    app.router.add_get(f"{base}/object/public/{{bucket}}/{{path:.+}}", public_object)
    app.router.add_get(f"{base}/object/authenticated/{{bucket}}/{{path:.+}}", download)
    # After the public and authenticated routes, which it would otherwise shadow.
    app.router.add_get(f"{base}/object/{{bucket}}/{{path:.+}}", download)
    # After the list routes, which it would otherwise shadow.
    app.router.add_post(f"{base}/object/{{bucket}}/{{path:.+}}", upload)
    return app


@asynccontextmanager
async def serve_app(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
) -> AsyncIterator[str]:
    """Serve `app` on `host:port` (0: a free port), or on `sock`, a socket already bound and
    listening (a caller that must hold its port before other work), and yield its base URL."""
    # In-flight requests (a stalled fault) must not hold up shutdown for long.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port) if sock is None else web.SockSite(runner, sock)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield (
            f"http://[{bound_host}]:{bound_port}"
            if ":" in bound_host
            else f"http://{bound_host}:{bound_port}"
        )
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_server(
    catalogue: Catalogue,
    *,
    bucket: str,
    key: str,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    **kw: Any,
) -> AsyncIterator[str]:
    """Run `build_app(catalogue, bucket=..., key=..., **kw)` (on `sock` when given, see
    `serve_app`) and yield its base URL."""
    async with serve_app(
        build_app(catalogue, bucket=bucket, key=key, **kw), host=host, port=port, sock=sock
    ) as url:
        yield url


def serve_forever(
    catalogue: Catalogue, *, bucket: str, key: str, host: str, port: int, **kw: Any
) -> None:
    """Serve until SIGINT or SIGTERM, after printing the URL (for `loader storage serve`)."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with running_server(
            catalogue, bucket=bucket, key=key, host=host, port=port, **kw
        ) as url:
            print(
                f"storage server listening on {url} (bucket {bucket}, {len(catalogue)} objects)",
                flush=True,
            )
            await stop.wait()

    asyncio.run(serve())
