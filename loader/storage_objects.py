"""What Storage says about an object, and the v2 list page that carries them.

The one model of a listed object (`ListedObject`) for every source: the REST API's v1 and v2
listings and Supabase's `storage.objects` table. A v2 page is decoded straight into these
objects by msgspec from the response bytes: no dictionary per object and per metadata, and
only the fields the loader reads are materialised (measured on 100-object pages: orjson to
dicts, then one object each, ~5 µs per object; msgspec ~1 µs). The objects are not tracked
by the cyclic garbage collector (`gc=False`: they hold only strings and numbers), so a
million of them in flight cost the collector nothing.

Every field is optional except the name, as the real server answers (recordings 27–31, 55:
folders carry `metadata: null` and null timestamps). An answer that does not fit the typed
model (a size that is not an integer, a metadata that is not an object) is decoded the
lenient way instead, field by field, as before the typed decoder existed: the typed path is
an optimisation, never a new way to fail.
"""

from __future__ import annotations

import datetime as dt
import reprlib
from typing import Any

import msgspec
import orjson


class ObjectMetadata(msgspec.Struct, gc=False):
    """The part of Storage's `metadata` the loader reads."""

    size: int | None = None
    mimetype: str | None = None


class ListedObject(msgspec.Struct, gc=False):
    """One Storage object: `path` is its full key inside the bucket (`name` on the wire)."""

    path: str = msgspec.field(name="name")
    created_at: str | None = None
    updated_at: str | None = None
    metadata: ObjectMetadata | None = None

    @property
    def size(self) -> int | None:
        return self.metadata.size if self.metadata is not None else None

    @property
    def mimetype(self) -> str | None:
        return (self.metadata.mimetype or None) if self.metadata is not None else None


def listed_object(
    path: str,
    size: int | None = None,
    mimetype: str | None = None,
    created_at: str | None = None,
    updated_at: str | None = None,
) -> ListedObject:
    """A `ListedObject` from its parts (sources other than the v2 decoder, and tests)."""
    return ListedObject(path, created_at, updated_at, ObjectMetadata(size, mimetype))


class FolderEntry(msgspec.Struct, gc=False):
    """A folder of a v2 listing with a delimiter: `key` is its last path segment."""

    key: str


class V2Page(msgspec.Struct):
    """One v2 list page (`POST /object/list-v2/{bucket}`)."""

    objects: list[ListedObject]
    folders: list[FolderEntry] | None = None
    hasNext: bool = False
    nextCursor: str | None = None


_V2_DECODER = msgspec.json.Decoder(V2Page)


class MalformedPageError(ValueError):
    """The page is JSON but not what the Storage API answers (no array of entries, or an
    entry that is not an object with a string name)."""


def decode_v2_page(raw: bytes) -> V2Page:
    """A 200 answer of the v2 list. Raises `msgspec.DecodeError` when the body is not
    JSON (a cut-off transfer), `MalformedPageError` when it is not a page, or an entry is not
    an object with its name (a folder's key) as text; the client retries both, then reports
    the server unreachable (exit 6)."""
    try:
        return _V2_DECODER.decode(raw)
    except msgspec.ValidationError:
        pass  # JSON, but not the typed shape: read it field by field
    page = orjson.loads(raw)
    if not isinstance(page, dict) or not isinstance(page.get("objects"), list):
        raise MalformedPageError("v2 list answered without an objects array")
    folders = page.get("folders")
    return V2Page(
        objects=[
            entry_object(_field(o, "name", "v2 list answered an entry"), o) for o in page["objects"]
        ],
        folders=(
            [FolderEntry(_field(f, "key", "v2 list answered a folder")) for f in folders]
            if isinstance(folders, list)
            else None
        ),
        hasNext=bool(page.get("hasNext")),
        nextCursor=page.get("nextCursor") or None,
    )


def decode_v1_page(raw: bytes) -> list[dict[str, Any]]:
    """A 200 answer of the v1 list: entries that are objects with a string `name` (a folder's
    `id` is null). Raises as `decode_v2_page` does."""
    page = orjson.loads(raw)
    if not isinstance(page, list):
        raise MalformedPageError("v1 list answered with something other than a list")
    for entry in page:
        _field(entry, "name", "v1 list answered an entry")
    return page


def _field(entry: Any, name: str, answered: str) -> str:
    """`entry[name]`, which Storage always sends as a string; else `MalformedPageError`
    saying what came instead (shortened by reprlib: it is quoted in an error message)."""
    if not isinstance(entry, dict):
        raise MalformedPageError(f"{answered} that is not an object: {reprlib.repr(entry)}")
    value = entry.get(name)
    if value is None:
        raise MalformedPageError(f"{answered} without a {name}: {reprlib.repr(entry)}")
    if not isinstance(value, str):
        raise MalformedPageError(f"{answered} whose {name} is not text: {reprlib.repr(value)}")
    return value


def _iso(value: Any) -> str | None:
    """A timestamp as text; anything but text or a datetime reads as unknown."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value if isinstance(value, str) else None


def from_metadata(path: str, meta: Any, created_at: Any, updated_at: Any) -> ListedObject:
    """An object from loosely typed parts (a v1 entry, a `storage.objects` row): anything
    unexpected in `metadata` or the timestamps reads as unknown."""
    meta = meta if isinstance(meta, dict) else {}
    size = meta.get("size")
    mimetype = meta.get("mimetype")
    return listed_object(
        path,
        # JSON's true and false are Python ints too, but no size.
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        mimetype if isinstance(mimetype, str) and mimetype else None,
        _iso(created_at),
        _iso(updated_at),
    )


def entry_object(path: str, entry: dict[str, Any]) -> ListedObject:
    """An object from one decoded list entry (v1, or a v2 page the typed model refused)."""
    return from_metadata(
        path, entry.get("metadata"), entry.get("created_at"), entry.get("updated_at")
    )


def prefix_end(prefix: str) -> str:
    """The first string after every string that starts with `prefix` (not empty), in code
    point order, which is UTF-8 byte order: `name >= prefix AND name < prefix_end(prefix)`
    selects exactly the names with that prefix under a byte-order ("C") collation."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
