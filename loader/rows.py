"""Rows stage: turn a listed Storage object into the image_assets row the loader upserts.

Per-object work here runs for every file of the bucket, so it stays a few dictionary look-ups
and string operations (past ~100k rows/s the client's own per-object work becomes the
bottleneck, not Postgres).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from loader.classify import Kind, classify, extension
from loader.listing import ListedObject

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


@dataclass(slots=True)
class AssetRow:
    """One image_assets row to insert, or to merge into an existing row with the same path.

    The one shape a listed file takes on its way to the wire: `tags` is shared by every row
    of a folder (never mutate it in place), and the tuples below go straight into COPY.
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
        """The row as `WRITTEN_COLUMNS`, for COPY straight into image_assets."""
        return (
            self.file_path, self.filename, self.filename, self.format, self.mime_type,
            self.file_size, self.tags, self.cdn_url, upload_source, "active", created_at, now,
        )  # fmt: skip

    def staged(self) -> tuple:
        """The row as `STAGED_COLUMNS`, for COPY into the staging table."""
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
        path = obj.path
        cut = path.rfind("/") + 1
        filename = path[cut:]
        kind, mime = classify(filename, obj.mimetype)
        if kind not in ("image", "video"):
            return kind, None
        url = None
        if self._base is not None:
            directory = path[:cut]
            url_dir = self._dirs.get(directory)
            if url_dir is None:
                url_dir = self._dirs[directory] = f"{self._base}/{quote(directory, safe='/')}"
            url = url_dir + quote(filename, safe="")
        return kind, AssetRow(
            path, self.folder, filename, extension(filename), mime, obj.size, obj.created_at,
            self.tags, url,
        )  # fmt: skip


def build_row(
    obj: ListedObject, folder: str, customer_id: int | None, cdn: CdnUrls
) -> tuple[Kind, AssetRow | None]:
    """One object's kind and row, on its own (the loader builds rows with `FolderRows`)."""
    return FolderRows(folder, customer_id, cdn).build(obj)
