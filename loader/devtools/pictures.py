"""Small, valid PNG pictures for the objects our Storage server serves from a manifest.

A demo object has a name and a size but no bytes; a page showing it (`loader review`) needs a
real picture. Each picture is made in pure Python (zlib + struct): its colours come from the
object's customer folder (the nearest parent folder that is not a date), so one customer's
pictures look alike and differ from the next customer's, and a shape placed by the file name
tells the pictures of one folder apart. `picture(name, size)` pads the PNG to the object's
catalogued size with a private ancillary chunk (decoders skip it), so `Content-Length` stays
what the listing says.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import zlib

WIDTH, HEIGHT = 64, 48
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PAD_TYPE = b"prVt"  # ancillary, private, reserved bit clear, safe to copy
_CHUNK_OVERHEAD = 12  # length, type, CRC


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def customer_folder(name: str) -> str:
    """The folder whose look a picture takes: its nearest parent that is not a date."""
    parents = name.split("/")[:-1]
    for part in reversed(parents):
        if not _DATE.fullmatch(part):
            return part
    return ""


def png(name: str) -> bytes:
    """A WIDTH x HEIGHT RGB PNG whose look is the customer folder's, with a file-placed disc."""
    folder = hashlib.sha256(customer_folder(name).encode()).digest()
    own = hashlib.sha256(name.encode()).digest()
    background, stripe, disc = folder[0:3], folder[3:6], bytes(255 - b for b in folder[0:3])
    period = 4 + folder[6] % 8
    cx, cy, radius = own[0] % WIDTH, own[1] % HEIGHT, 6 + own[2] % 10
    # Stripes run diagonally: pixel (x, y) takes the colour of position x + y along one line,
    # so each row is a slice of that line (a server answers thousands of these: no per-pixel
    # Python work).
    line = b"".join(stripe if i // period % 2 else background for i in range(WIDTH + HEIGHT))
    rows = bytearray()
    for y in range(HEIGHT):
        row = bytearray(line[3 * y : 3 * (y + WIDTH)])
        reach = radius * radius - (y - cy) ** 2
        if reach >= 0:
            half = math.isqrt(reach)
            start, stop = max(cx - half, 0), min(cx + half + 1, WIDTH)
            if start < stop:
                row[3 * start : 3 * stop] = disc * (stop - start)
        rows += b"\0" + row  # filter byte: none
    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 1))
        + _chunk(b"IEND", b"")
    )


def picture(name: str, size: int) -> bytes | None:
    """`png(name)` padded to exactly `size` bytes, or None when `size` is too small for it."""
    image = png(name)
    room = size - len(image) - _CHUNK_OVERHEAD
    if room < 0:
        return None
    end = len(image) - _CHUNK_OVERHEAD  # IEND is the last chunk, and it is empty
    return image[:end] + _chunk(_PAD_TYPE, bytes(room)) + image[end:]
