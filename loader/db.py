"""Postgres connections: which database, connecting with clean errors, schema setup."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import asyncpg
import orjson

from loader import embedded
from loader.config import redact_url
from loader.errors import DatabaseError, first_line
from loader.retry import RetryPolicy
from loader.sqlfiles import sql

CONNECT_TIMEOUT_S = 10.0
T = TypeVar("T")


def resolve_database_url(explicit: str | None = None) -> str:
    """`--database-url`, else `$DATABASE_URL`, else the embedded server (started if needed)."""
    url = explicit or os.environ.get("DATABASE_URL")
    if url:
        return url
    return embedded.ensure_running().url()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary format (jsonb: a version byte, then the text) so COPY can carry json too.
    await conn.set_type_codec(
        "json", schema="pg_catalog", format="binary",
        encoder=orjson.dumps, decoder=orjson.loads,
    )  # fmt: skip
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
    )  # fmt: skip


def _connect_error(url: str, exc: BaseException) -> DatabaseError:
    reason = first_line(exc)
    if isinstance(exc, ValueError):
        # The parser's message may quote a piece of the password: not shown.
        reason = (
            "not a valid postgresql:// URL (percent-encode '/', '@' and ':' in a password;"
            " keyword DSNs such as 'host=... password=...' are not accepted)"
        )
    return DatabaseError(f"cannot connect to database {redact_url(url)}: {reason}")


_CONNECT_ERRORS = (
    OSError,
    socket.gaierror,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ValueError,  # unparseable URL: a password with an unencoded '/' or '@', a bad port
    OverflowError,  # port beyond 65535
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


async def create_pool(url: str, size: int, *, read_only: bool = False) -> asyncpg.Pool:
    """A pool of `size` connections (the `--db-concurrency` knob).

    `read_only` (a dry run) makes every transaction on the pool read-only: PostgreSQL itself
    then refuses any write, so a plan cannot change the database even by mistake.

    Plans are always made for the actual parameters (`plan_cache_mode`): a generic plan
    cached while image_assets was empty stays a sequential scan after it fills
    (a cached plan never notices the table grew); re-planning a batch statement costs well
    under 1 ms.
    """
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=size,
            max_size=size,
            init=_init_connection,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={
                "plan_cache_mode": "force_custom_plan",
                "default_transaction_read_only": "on" if read_only else "off",
            },
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


# Failures that say nothing about the statement: the same call on a fresh connection may pass.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.TransactionRollbackError,  # 40001 serialization, 40P01 deadlock
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 pg_terminate_backend, cancels
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    # The pool's reset of a connection the server just closed: "cannot switch to state 15"
    # (raised on release, after a restart or pg_terminate_backend); a fresh connection works.
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


async def retrying(
    pool: asyncpg.Pool,
    call: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen: one shared default is safe)
    what: str = "database call",
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run `call(conn)` on a pool connection, retrying transient failures with the retry
    policy's backoff on a fresh connection; `DatabaseError` once its attempts are used up."""
    attempts = retry.attempts
    for attempt in range(attempts):
        try:
            async with pool.acquire() as conn:
                return await call(conn)
        except TRANSIENT_ERRORS as exc:
            if attempt + 1 == attempts:
                raise DatabaseError(f"{what} failed {attempts} times: {exc}") from None
            if on_retry is not None:
                on_retry(exc)
            await anyio.sleep(retry.delay(attempt))
    raise AssertionError("unreachable")
