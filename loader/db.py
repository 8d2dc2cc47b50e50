"""Postgres connections: which database, connecting with clean errors, schema setup."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson

from loader import embedded
from loader.config import redact_url
from loader.errors import DatabaseError
from loader.sqlfiles import sql

CONNECT_TIMEOUT_S = 10.0


def resolve_database_url(explicit: str | None = None) -> str:
    """`--database-url`, else `$DATABASE_URL`, else the embedded server (started if needed)."""
    url = explicit or os.environ.get("DATABASE_URL")
    if url:
        return url
    return embedded.ensure_running().url()


def describe(url: str) -> str:
    """A one-line, password-free description of the database in use."""
    return redact_url(url)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
        )


def _connect_error(url: str, exc: BaseException) -> DatabaseError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseError(f"cannot connect to database {redact_url(url)}: {reason}")


_CONNECT_ERRORS = (
    OSError,
    socket.gaierror,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ValueError,
)


async def connect(url: str) -> asyncpg.Connection:
    """One connection, with jsonb decoded by orjson. Failures become `DatabaseError`."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except _CONNECT_ERRORS as exc:
        raise _connect_error(url, exc) from None
    await _init_connection(conn)
    return conn


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """`connect` as a context manager that always closes."""
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def create_pool(url: str, size: int) -> asyncpg.Pool:
    """A pool of `size` connections (the `--db-concurrency` knob)."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=size, max_size=size, init=_init_connection, timeout=CONNECT_TIMEOUT_S
        )
    except _CONNECT_ERRORS as exc:
        raise _connect_error(url, exc) from None
    assert pool is not None
    return pool


async def init_schema(conn: asyncpg.Connection, *, demo_schema: bool = False) -> None:
    """Create the loader's bookkeeping schema (idempotent); with `demo_schema`, also the
    application tables and a `storage` catalogue as a local/demo database has them."""
    async with conn.transaction():
        # Serialise concurrent inits (two workers joining a run may both call this).
        await conn.execute(sql("advisory_lock_init"))
        if demo_schema:
            await conn.execute(sql("demo_schema"))
        await conn.execute(sql("loader_schema"))
