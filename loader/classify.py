"""What a Storage object is: image, video, other, or a placeholder that is not a customer file.

Extension lists are the user's (the ones their own scripts counted). The extension decides
first, because Storage mimetypes are whatever the uploader sent (often
application/octet-stream); the metadata mimetype is used only when the extension says nothing.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["image", "video", "other", "placeholder"]

IMAGE_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
}
VIDEO_TYPES: dict[str, str] = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "flv": "video/x-flv",
    "m4v": "video/x-m4v",
}
MEDIA_TYPES = IMAGE_TYPES | VIDEO_TYPES
# What `classify` answers for a media extension (lower case) of a name that is not a
# dot-file, whatever the mimetype: the row builder's table for the common case.
MEDIA_KINDS: dict[str, tuple[Kind, str]] = {
    **{ext: ("image", mime) for ext, mime in IMAGE_TYPES.items()},
    **{ext: ("video", mime) for ext, mime in VIDEO_TYPES.items()},
}

PLACEHOLDER_NAMES = frozenset({".keep.png", ".emptyfolderplaceholder", ".keep", ".gitkeep"})


def extension(filename: str) -> str:
    """Lower-case extension without the dot ('' when there is none)."""
    dot = filename.rfind(".")
    return filename[dot + 1 :].lower() if dot > 0 else ""


def classify(filename: str, mimetype: str | None = None) -> tuple[Kind, str | None]:
    """The kind of a file (by its last path segment) and its normalized mime type.

    Dot-files (`.keep.png`, `.emptyFolderPlaceholder`, `.DS_Store`) are placeholders: never
    customer files, whatever their extension.
    """
    if filename.startswith(".") or filename.lower() in PLACEHOLDER_NAMES:
        return "placeholder", None
    ext = extension(filename)
    if ext in IMAGE_TYPES:
        return "image", IMAGE_TYPES[ext]
    if ext in VIDEO_TYPES:
        return "video", VIDEO_TYPES[ext]
    if mimetype:
        major = mimetype.split("/", 1)[0].lower()
        if major == "image":
            return "image", mimetype.lower()
        if major == "video":
            return "video", mimetype.lower()
    return "other", mimetype.lower() if mimetype else None


def classify_path(path: str, mimetype: str | None = None) -> tuple[Kind, str | None]:
    """`classify` of a path's last segment, by the `MEDIA_KINDS` table for the common case
    (a media extension on a name that is not a dot-file): the per-object step of a walk."""
    cut = path.rfind("/") + 1
    dot = path.rfind(".")
    # A dot inside the name, which does not start with one: the table decides.
    if dot > cut and path[cut] != ".":
        known = MEDIA_KINDS.get(path[dot + 1 :].lower())
        if known is not None:
            return known
    return classify(path[cut:], mimetype)
