"""A small Storage library with every shape the loader must handle, for listing and migrate
tests: date sub-folders, a folder past one v1 page (1,500), placeholders, non-media files,
upper-case extensions, and names with spaces, parentheses, `?`, `&` and `+`."""

from __future__ import annotations

import datetime as dt

import asyncpg

from loader.devtools.storage_server import Catalogue
from tests.storage_fixtures import STORAGE_TIMESTAMP, catalogue_of

PREFIX = "originals/customers/"
BIG_FOLDER_FILES = 1_600
STAMP = dt.datetime.fromisoformat(STORAGE_TIMESTAMP)


def sample_names() -> list[str]:
    names = [f"{PREFIX}.keep.png"]
    for i in range(12):
        folder = f"{PREFIX}kimminsu{i:02d}-{6600 + i}"
        names += [f"{folder}/IMG_{n:04d}.jpg" for n in range(5)]
        names += [f"{folder}/2024-05-0{d}/photo {d} (1).PNG" for d in range(1, 4)]
        names += [f"{folder}/2024-05-01/clip.MOV", f"{folder}/notes.txt"]
        if i % 3 == 0:
            names += [f"{folder}/.emptyFolderPlaceholder", f"{folder}/2024-06-01/.keep.png"]
    odd = f"{PREFIX}lee nam-gu-8768"
    names += [f"{odd}/what?.jpg", f"{odd}/a&b+c.heic", f"{odd}/x'y (2).webp"]
    big = f"{PREFIX}parkbig-1234"
    names += [f"{big}/IMG_{n:05d}.jpeg" for n in range(BIG_FOLDER_FILES)]
    names += [f"{big}/2023-01-01/v.mp4"]
    return names


def sample_catalogue() -> Catalogue:
    return catalogue_of(sample_names())


def media_names() -> set[str]:
    """The names a migration must register (images and videos, no placeholders)."""
    media_ext = (".jpg", ".jpeg", ".png", ".heic", ".webp", ".mov", ".mp4")
    return {
        n
        for n in sample_names()
        if n.lower().endswith(media_ext) and not n.rsplit("/", 1)[-1].startswith(".")
    }


async def load_storage_objects(conn: asyncpg.Connection, catalogue: Catalogue, bucket: str) -> None:
    """Put `catalogue` into storage.objects as Supabase keeps it (for --source db)."""
    await conn.execute(
        "INSERT INTO storage.buckets (id, name, public) VALUES ($1, $1, true)"
        " ON CONFLICT DO NOTHING",
        bucket,
    )
    await conn.copy_records_to_table(
        "objects",
        schema_name="storage",
        columns=["bucket_id", "name", "metadata", "created_at", "updated_at"],
        records=[
            (
                bucket,
                obj.name,
                {"size": obj.size, "mimetype": obj.mimetype},
                STAMP,
                STAMP,
            )
            for obj in catalogue
        ],
    )
