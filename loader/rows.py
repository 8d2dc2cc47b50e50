"""Rows stage: turn a listed Storage object into the image_assets row the loader upserts.

Per-object work here runs for every file of the bucket, so it stays a few dictionary look-ups
and string operations (past ~100k rows/s the client's own per-object work becomes the
bottleneck, not Postgres).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import datetime
from urllib.parse import quote

import msgspec

from loader.classify import MEDIA_KINDS, Kind, classify, classify_path
from loader.storage_objects import ListedObject

# The image_assets columns the loader writes, in the order of `AssetRow.record`, with the
# type each has in the schema the loader expects: the one definition the COPY fast path uses
# and that sql/upsert_batch.sql, preflight's required columns and the demo schema are checked
# against (tests/test_written_columns.py). A table whose types differ is written through the
# staging table and SQL casts instead of COPY.
WRITTEN_COLUMN_TYPES: dict[str, str] = {
    "file_path": "text", "filename": "text", "original_filename": "text", "format": "text",
    "mime_type": "text", "file_size": "bigint", "ai_tags": "text[]", "cdn_url": "text",
    "upload_source": "text", "status": "text", "created_at": "timestamp with time zone",
    "updated_at": "timestamp with time zone",
}  # fmt: skip
WRITTEN_COLUMNS: tuple[str, ...] = tuple(WRITTEN_COLUMN_TYPES)
# The staging table's columns (sql/sink_stage.sql), in the order of `AssetRow.staged`.
STAGED_COLUMNS: tuple[str, ...] = (
    "file_path", "folder", "filename", "format", "mime_type", "file_size", "created_at",
    "tags", "cdn_url",
)  # fmt: skip


class AssetRow(msgspec.Struct, gc=False):
    """One image_assets row to insert, or to merge into an existing row with the same path.

    The one shape a listed file takes on its way to the wire: `tags` is shared by every row
    of a folder (never mutate it in place). A msgspec struct rather than a dataclass: built
    once per file, it costs a third as much, and the garbage collector does not track it.
    """

    file_path: str
    folder: str
    filename: str
    format: str
    mime_type: str | None
    file_size: int | None
    created_at: str | None
    tags: list[str]
    cdn_url: str | None  # None: leave cdn_url alone (`--cdn-url keep`)

    def record(self, created_at: datetime, upload_source: str, now: datetime) -> tuple:
        """The row as `WRITTEN_COLUMNS`: the values the sink writes into image_assets, spelled
        out. The sink encodes them with `loader.pgcopy.new_rows`, which tests/test_pgcopy.py
        holds to this definition (and the benchmark's raw COPY uses it)."""
        return (
            self.file_path, self.filename, self.filename, self.format, self.mime_type,
            self.file_size, self.tags, self.cdn_url, upload_source, "active", created_at, now,
        )  # fmt: skip

    def staged(self) -> tuple:
        """The row as `STAGED_COLUMNS`, into the staging table (encoded by
        `loader.pgcopy.staged_rows`, held to this definition by tests/test_pgcopy.py)."""
        return (
            self.file_path, self.folder, self.filename, self.format, self.mime_type,
            self.file_size, self.created_at, self.tags, self.cdn_url,
        )  # fmt: skip


def customer_tag(customer_id: int) -> str:
    """The tag that ties an image to a customer in the user's app."""
    return f"customer-{customer_id}"


class CdnUrls:
    """Builds each file's public URL: `{base}/{path}` with every path segment percent-encoded.

    `base` is `{storage API root}/object/public/{bucket}` by default, or the `--cdn-base` of a
    CDN in front of the bucket. Every character outside RFC 3986's unreserved set is encoded
    (`?` and `#` included, which the official JS client leaves raw, producing broken URLs).
    """

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def url(self, path: str) -> str:
        # One quote() over the whole path keeping '/', the same as quoting each segment, at a
        # quarter of the cost: this runs for every file.
        return f"{self.base}/{quote(path, safe='/')}"


class NoCdnUrls(CdnUrls):
    """`--cdn-url keep`: rows carry no cdn_url, so existing ones stay and new rows get none."""

    def __init__(self) -> None:
        super().__init__("")

    def url(self, path: str) -> None:  # type: ignore[override]
        return None


# Paths that need no percent-encoding (RFC 3986 unreserved characters and '/'), checked once
# per page over all its paths joined by '/' (itself plain): most pages, and quote() is the
# costliest step of a row, so it runs only on the pages that need it.
_PLAIN_PATHS = re.compile(r"[A-Za-z0-9_.~/-]*").fullmatch
_PLAIN_RESTS = re.compile(r"[A-Za-z0-9_.~/\n-]*").fullmatch  # the same, for paths by lines


class FolderRows:
    """Builds the rows of one folder, sharing what all its rows have in common: the tag list
    (one list object for every row; `merge_duplicates` never mutates it) and the encoded URL
    of each directory, so per file only the file name is classified and percent-encoded."""

    __slots__ = ("_base", "_dirs", "folder", "tags")

    def __init__(self, folder: str, customer_id: int | None, cdn: CdnUrls) -> None:
        self.folder = folder
        self.tags: list[str] = [customer_tag(customer_id)] if customer_id is not None else []
        # None: `--cdn-url keep`, rows carry no cdn_url at all.
        self._base = None if isinstance(cdn, NoCdnUrls) else cdn.base
        self._dirs: dict[str, str] = {}

    def build(self, obj: ListedObject) -> tuple[Kind, AssetRow | None]:
        """The object's kind, and its row when it is an image or a video (else None)."""
        rows: list[AssetRow] = []
        kinds: Counter[str] = Counter()
        self.add_page([obj], rows, kinds)
        kind = next(k for k in kinds if k != "media")
        return kind, rows[0] if rows else None  # type: ignore[return-value]

    def add_page(
        self, objects: list[ListedObject], rows: list[AssetRow], kinds: Counter[str]
    ) -> None:
        """Append the rows of a page's images and videos to `rows` and count every object's
        kind in `kinds`: the per-file loop of the whole loader, kept to look-ups and slices
        (what `classify` decides, by a table for the common case)."""
        folder, tags, base, dirs = self.folder, self.tags, self._base, self._dirs
        plain = base is not None and _PLAIN_PATHS("/".join([o.path for o in objects]))
        images = videos = 0
        for obj in objects:
            path = obj.path
            cut = path.rfind("/") + 1
            name = path[cut:]
            meta = obj.metadata
            # `classify_path` inlined (this loop runs for every file), held equal to it by
            # tests/test_properties.py (the folder check classifies with it).
            dot = name.rfind(".")
            ext = name[dot + 1 :].lower() if dot > 0 else ""
            known = MEDIA_KINDS.get(ext) if name[:1] != "." else None
            if known is None:
                kind, mime = classify(name, meta.mimetype if meta is not None else None)
                if kind != "image" and kind != "video":
                    kinds[kind] += 1
                    continue
            else:
                kind, mime = known
            if kind == "image":
                images += 1
            else:
                videos += 1
            if plain:
                url = f"{base}/{path}"
            elif base is None:
                url = None
            else:
                directory = path[:cut]
                url_dir = dirs.get(directory)
                if url_dir is None:
                    url_dir = dirs[directory] = f"{base}/{quote(directory, safe='/')}"
                url = url_dir + quote(name, safe="")
            rows.append(AssetRow(
                path, folder, name, ext, mime,
                meta.size if meta is not None else None, obj.created_at, tags, url,
            ))  # fmt: skip
        if images:
            kinds["image"] += images
        if videos:
            kinds["video"] += videos
        if images or videos:
            kinds["media"] += images + videos


class FolderCheck(msgspec.Struct, gc=False):
    """What a folder listed whole should have in image_assets, for a re-run's quick check
    (sql/folders_unchanged.sql): its media paths as a count and a digest, its tag, and the
    start of its rows' own cdn_urls.

    `objects` are kept to build the rows when the check fails."""

    folder: str
    prefix: str  # the folder's path prefix, `…/folder/`
    tag: str | None
    media: int
    digest: str  # sha256 (hex) of the media paths, sorted by code point, joined by newlines
    # The prefix's own URL, None with `--cdn-url keep`: a path's own URL is it + the rest of
    # the path, percent-encoded as `encoded` says for the rests that need it (None: none does,
    # the common case, which spares the check a look-up per row).
    url_prefix: str | None
    encoded: dict[str, str] | None
    objects: list[ListedObject]


def _media_paths(objects: list[ListedObject], kinds: Counter[str]) -> list[str]:
    """The paths `FolderRows.add_page` would make rows of, counting every kind as it does."""
    paths: list[str] = []
    images = 0
    for obj in objects:
        path = obj.path
        meta = obj.metadata
        kind = classify_path(path, meta.mimetype if meta is not None else None)[0]
        if kind == "image":
            images += 1
        elif kind != "video":
            kinds[kind] += 1
            continue
        paths.append(path)
    if paths:
        kinds["media"] += len(paths)
        if images:
            kinds["image"] += images
        if len(paths) > images:
            kinds["video"] += len(paths) - images
    return paths


def folder_check(
    rows: FolderRows, prefix: str, objects: list[ListedObject], kinds: Counter[str]
) -> FolderCheck | None:
    """The quick check of a folder listed whole (`objects`, all under `prefix`), counting
    their kinds into `kinds`; None when its names cannot be checked that way (a newline or
    NUL would make the joined digest ambiguous): the folder is then written row by row."""
    paths = _media_paths(objects, kinds)
    joined = "\n".join(sorted(paths))
    if "\x00" in joined or joined.count("\n") != max(0, len(paths) - 1):
        return None
    try:
        digest = hashlib.sha256(joined.encode()).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate, which Postgres cannot store either
        return None
    url_prefix, encoded = None, None
    if rows._base is not None:
        url_prefix = f"{rows._base}/{quote(prefix, safe='/')}"
        # Every path starts with `prefix` and none holds a newline: these are their rests,
        # looked at one by one only when some need percent-encoding.
        cut = len(prefix)
        if not _PLAIN_RESTS(joined.replace("\n" + prefix, "\n")[cut:]):
            encoded = {p[cut:]: quote(p[cut:], safe="/") for p in paths
                       if not _PLAIN_PATHS(p, cut)}  # fmt: skip
    tag = rows.tags[0] if rows.tags else None
    return FolderCheck(rows.folder, prefix, tag, len(paths), digest, url_prefix, encoded, objects)


def build_row(
    obj: ListedObject, folder: str, customer_id: int | None, cdn: CdnUrls
) -> tuple[Kind, AssetRow | None]:
    """One object's kind and row, on its own (the loader builds rows with `FolderRows`)."""
    return FolderRows(folder, customer_id, cdn).build(obj)
