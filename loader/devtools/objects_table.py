"""The Storage server's writes into `storage.objects` (`loader storage serve --database-url`).

Supabase Storage keeps every object it accepts as a row of `storage.objects` in the project's
PostgreSQL. With a database, the project's server writes each accepted upload there in the
same statements, so whatever watches that table (`loader sync`'s trigger) sees in tests what it
sees in production. Two ways, read from supabase/storage's source:

- "upsert", the server since v0.35 (2023-04) up to the recorded 1.11.2: a permission check
  INSERTs the row with what the request said (mimetype and declared length, no size) in a
  transaction it rolls back; once the file is stored, one
  `INSERT … ON CONFLICT (name, bucket_id) DO UPDATE SET metadata, version, …` writes it with
  its full metadata (an overwrite with `x-upsert: true` is that statement's UPDATE).
- "insert-update", servers before v0.35: the row is INSERTed without metadata before the file
  is stored, and its metadata set by an UPDATE afterwards, each in its own transaction.

Not copied: the request's role (`SET ROLE` to anon, authenticated or service_role), which
the real server sets for the permission check and row-level security; the rows are written
as the database URL's user.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from loader.db import create_pool
from loader.devtools.storage_model import object_metadata
from loader.sqlfiles import sql

WriteStyle = Literal["upsert", "insert-update"]
WRITE_STYLES: tuple[WriteStyle, ...] = ("upsert", "insert-update")


class _Rollback(Exception):
    """Ends the permission check's transaction, as the real server's does."""


# Bucket $1 in storage.buckets, public or not ($2), for the rows the server writes.
BUCKET_SQL = """
INSERT INTO storage.buckets (id, name, public) VALUES ($1, $1, $2) ON CONFLICT (id) DO NOTHING
"""
# The metadata of object $2 of bucket $1 once its file is stored ($3 metadata, $4 updated_at):
# the second write of Supabase Storage before v0.35.
OBJECT_METADATA_SQL = """
UPDATE storage.objects SET metadata = $3, updated_at = $4 WHERE bucket_id = $1 AND name = $2
"""


@dataclass(slots=True)
class ObjectsTable:
    """`storage.objects` of the database at `url`, written for bucket `bucket`."""

    url: str
    bucket: str
    public: bool = True
    style: WriteStyle = "upsert"
    _pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[ObjectsTable]:
        """Ready to write: a small pool, and the bucket's row in storage.buckets."""
        self._pool = await create_pool(self.url, 2)
        try:
            await self._pool.execute(BUCKET_SQL, self.bucket, self.public)
            yield self
        finally:
            await self._pool.close()
            self._pool = None

    async def context(self, app: Any) -> AsyncIterator[None]:
        """aiohttp's cleanup context: `opened` while the app runs."""
        async with self.opened():
            yield

    async def write(
        self, object_id: str, name: str, size: int, mimetype: str, created_at: str,
        updated_at: str,
    ) -> None:  # fmt: skip
        """Write one accepted upload (a new object, or an overwrite of `name`)."""
        assert self._pool is not None, "used outside the app's cleanup context"
        created, updated = _timestamp(created_at), _timestamp(updated_at)
        metadata = object_metadata(name, size, mimetype, updated_at)
        version = str(uuid.uuid4())
        args = (object_id, self.bucket, name, version, created)
        async with self._pool.acquire() as conn:
            if self.style == "insert-update":
                await conn.execute(sql("storage_server_object_insert"), *args)
                await conn.execute(OBJECT_METADATA_SQL, self.bucket, name,
                                   metadata, updated)  # fmt: skip
                return
            try:
                async with conn.transaction():
                    declared = {"mimetype": mimetype, "contentLength": size}
                    await conn.execute(sql("storage_server_object_upsert"), *args, declared,
                                       created)  # fmt: skip
                    raise _Rollback
            except _Rollback:
                pass
            await conn.execute(sql("storage_server_object_upsert"), *args, metadata, updated)


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)
