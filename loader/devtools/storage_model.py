"""What a Storage object looks like, written once for the two tools that fake one: the
Storage-compatible server (`storage_server`, which answers list calls) and the demo generator
(`demo_library`, which also fills `storage.objects`). Both must agree exactly, or the REST
and `--source db` listings of the demo would differ.

Facts (docs/storage.md): which keys the real server accepts, its timestamp format, the object
metadata it keeps; and the project's own conventions: an object's id derived from bucket and
name, an eTag derived from what would change with the content, and the manifest (one JSON
object per line) that carries a catalogue from the generator to the server.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from loader.errors import BadInputError

_VALID_KEY = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]+")
_ID_NAMESPACE = uuid.NAMESPACE_URL.bytes

# One manifest row: (name, size, mimetype, created_at, updated_at, id); id "" means derive it.
Record = tuple[str, int, str, str, str, str]


def is_valid_key(name: str) -> bool:
    """True if the real server would accept `name` as an object key on upload.

    Only ASCII letters, digits and `_/!.*'() &$=@;:+,?-` are allowed; Hangul or any other
    non-ASCII, `%` and `#` are rejected (`400 InvalidKey`).
    """
    return _VALID_KEY.fullmatch(name) is not None


def iso_timestamp(moment: datetime) -> str:
    """Format an aware datetime the way Storage does: `2026-11-26T07:45:28.228Z`."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def object_id(bucket: str, name: str) -> str:
    """The object's id: uuid5(NAMESPACE_URL, "bucket/name"), stable across runs."""
    # Same value as str(uuid.uuid5(...)) at a third of the cost, which is seconds saved when
    # loading a million-line manifest without ids.
    digest = bytearray(hashlib.sha1(_ID_NAMESPACE + f"{bucket}/{name}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def object_metadata(name: str, size: int, mimetype: str, updated_at: str) -> dict[str, Any]:
    """The `metadata` Storage keeps for an object (an empty mimetype: none was recorded)."""
    # A real eTag is the content's md5; hashing what would change with the content keeps
    # it stable across runs and different after an update.
    etag = hashlib.md5(f"{name}\n{size}\n{updated_at}".encode()).hexdigest()
    return {
        "eTag": f'"{etag}"',
        "size": size,
        "mimetype": mimetype,
        "cacheControl": "no-cache",
        "lastModified": updated_at,
        "contentLength": size,
        "httpStatusCode": 200,
    }


def write_manifest_row(
    out: BinaryIO, name: str, size: int, mimetype: str, created_at: str, updated_at: str
) -> None:
    """Append one object to a manifest."""
    row = {"name": name, "size": size, "mimetype": mimetype, "created_at": created_at,
           "updated_at": updated_at}  # fmt: skip
    out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def read_manifest(path: Path) -> Iterator[Record]:
    """The objects of a manifest; `BadInputError` names the first line that is not a row."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                name, size, mimetype = row["name"], row["size"], row["mimetype"]
                yield name, size, mimetype, row["created_at"], row["updated_at"], row.get("id", "")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise BadInputError(f"{path}:{number}: not a manifest row ({exc})") from exc
