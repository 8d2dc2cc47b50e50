"""Postgres connections: which database, connecting with clean errors, schema setup."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import asyncpg
import orjson

from loader import embedded
from loader.errors import (
    BadInputError,
    DatabaseError,
    TransactionPoolerError,
    first_line,
)
from loader.redact import redact_url
from loader.retry import RetryPolicy
from loader.sqlfiles import sql

CONNECT_TIMEOUT_S = 10.0
T = TypeVar("T")


def resolve_database_url(explicit: str | None = None) -> str:
    """`--database-url`, else `$DATABASE_URL`, else the embedded server (started if needed)."""
    url = explicit or os.environ.get("DATABASE_URL")
    if url:
        check_url_form(url)
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


def _invalid_url(url: str) -> BadInputError:
    """The error for a URL that cannot be parsed, naming it masked. Raised `from None`: what
    the parser said is neither shown nor chained (a traceback under LOADER_DEBUG=1 shows the
    chain), as it may quote the password or a piece of it, unmasked."""
    return BadInputError(f"the database URL {redact_url(url)} is not valid: {_URL_FORM}")


def _cannot_connect(url: str, exc: BaseException) -> DatabaseError:
    return DatabaseError(f"cannot connect to database {redact_url(url)}: {first_line(exc)}")


_URL_FORM = (
    "expected a postgresql:// URL (percent-encode '/', '@', ':'"
    " and '%' in a password; keyword DSNs such as 'host=... password=...' are not accepted)"
)


def check_url_form(url: str) -> None:
    """`BadInputError` unless `url` is a `postgresql://` (or `postgres://`) URL. A keyword DSN
    (`host=... dbname=...`) is refused: the loader prints, records and hands out (resume
    commands) the URL it was given, and masks its password by position, which needs a URL."""
    scheme, sep, _ = url.partition("://")
    try:
        if not sep or scheme.lower() not in ("postgresql", "postgres"):
            raise ValueError(scheme)
        urlsplit(url).port  # noqa: B018 (raises for a port out of range or not a number)
    except ValueError:
        raise _invalid_url(url) from None  # hidden on purpose: see _invalid_url


# What the driver raises for a URL it cannot parse (caught before `_CONNECT_ERRORS`: its
# configuration errors are interface errors too).
_URL_ERRORS = (
    ValueError,  # a password with an unencoded '/' or '@', a bad port or parameter
    OverflowError,  # port beyond 65535
)
_CONNECT_ERRORS = (
    OSError,
    socket.gaierror,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# Supabase's transaction pooler (Supavisor) always listens on 6543 of *.pooler.supabase.com.
_SUPABASE_POOLER_HOST = ".pooler.supabase.com"
_SUPABASE_TRANSACTION_PORT = 6543
_PROBE_ROUNDS = 3
_sessions_checked: set[str] = set()


def _transaction_pooler_error(url: str, seen: str) -> TransactionPoolerError:
    return TransactionPoolerError(
        f"the database URL {redact_url(url)} leads to a transaction-mode pooler ({seen}):"
        " the loader needs a database session of its own per connection (its folder claims,"
        " worker liveness locks and staging tables live in the session, and a transaction"
        " pooler hands each transaction to any server connection); use the session pooler"
        " (on Supabase: the same pooler host on port 5432) or the direct connection"
        " (db.<project-ref>.supabase.co:5432); nothing was written"
    )


async def require_session(url: str) -> None:
    """`TransactionPoolerError` when `url` reaches PostgreSQL through transaction pooling.

    Checked once per URL and process, before the first connection a command uses. Supabase's
    transaction pooler is known by its address. Any other pooler is recognised by what a
    session guarantees: two connections held open at once are served by two server backends,
    each the same for the connection's life. The probe holds two connections and asks each for
    its backend's pid, alternately, a few times: one pid for both connections, or a pid that
    changes, or a prepared statement that vanished between two messages, is transaction (or
    statement) pooling. On an idle pool the pooler hands the freed backend to the next
    transaction, so both connections see one pid at once; under load a connection's pid
    changes between rounds; a pooler that hides itself through every round of both signals
    would also keep the loader's session state, which is what the check protects.
    """
    if url in _sessions_checked:
        return
    parts = urlsplit(url)
    with contextlib.suppress(ValueError):
        if (parts.hostname or "").endswith(_SUPABASE_POOLER_HOST) and (
            parts.port == _SUPABASE_TRANSACTION_PORT
        ):
            raise _transaction_pooler_error(url, "Supabase's transaction pooler, port 6543")
    # Unnamed statements: named ones of other clients may sit on a pooled backend.
    first = await connect_once(url, statement_cache_size=0)
    try:
        second = await connect_once(url, statement_cache_size=0)
        try:
            seen = await _pooling_seen(first, second)
        finally:
            await second.close()
    finally:
        await first.close()
    if seen is not None:
        raise _transaction_pooler_error(url, seen)
    _sessions_checked.add(url)


BACKEND_PID_SQL = "SELECT pg_backend_pid()"


async def _pooling_seen(first: asyncpg.Connection, second: asyncpg.Connection) -> str | None:
    """What shows that the two open connections do not each own a backend, or None."""
    pids: tuple[int, int] | None = None
    try:
        for _ in range(_PROBE_ROUNDS):
            now = (await first.fetchval(BACKEND_PID_SQL), await second.fetchval(BACKEND_PID_SQL))
            if now[0] == now[1]:
                return "two open connections were served by one server backend"
            if pids is not None and pids != now:
                return "a connection's server backend changed between two queries"
            pids = now
    except (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError):
        return "a server backend's prepared statements were not the connection's own"
    return None


async def connect_once(url: str, **options: Any) -> asyncpg.Connection:
    """A bare connection (no codecs, no session check; `options` for asyncpg.connect).
    Failures become `DatabaseError`, or `BadInputError` for a URL that cannot be parsed."""
    check_url_form(url)
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S, **options)
    except _URL_ERRORS:
        raise _invalid_url(url) from None  # hidden on purpose: see _invalid_url
    except _CONNECT_ERRORS as exc:
        raise _cannot_connect(url, exc) from exc


async def connect(url: str) -> asyncpg.Connection:
    """One connection, with jsonb decoded by orjson, after `require_session`."""
    await require_session(url)
    conn = await connect_once(url)
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


def _session_settings(read_only: bool) -> str:
    """The settings every pooled connection runs with, applied by `SET` after connecting.

    Not as startup parameters: poolers (PgBouncer, Supavisor) refuse a startup packet with
    settings they do not know (`unsupported startup parameter: plan_cache_mode`).

    Plans are always made for the actual parameters (`plan_cache_mode`): a generic plan
    cached while image_assets was empty stays a sequential scan after it fills (a cached plan
    never notices the table grew); re-planning a batch statement costs well under 1 ms.
    `read_only` (a dry run) makes every transaction read-only: PostgreSQL itself then refuses
    any write, so a plan cannot change the database even by mistake.
    """
    return (
        "SET plan_cache_mode = force_custom_plan;"
        f" SET default_transaction_read_only = {'on' if read_only else 'off'};"
    )


async def create_pool(url: str, size: int, *, read_only: bool = False) -> asyncpg.Pool:
    """A pool of `size` connections (the `--db-concurrency` knob), each with the session
    settings of `_session_settings`. The pool's reset on release (`RESET ALL` among others)
    would drop them, so the reset query re-applies them in the same round trip."""
    await require_session(url)
    settings = _session_settings(read_only)

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        await conn.execute(settings)

    async def reset(conn: asyncpg.Connection) -> None:
        await conn.execute(f"{conn.get_reset_query()}\n{settings}")

    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=size,
            max_size=size,
            init=init,
            reset=reset,
            timeout=CONNECT_TIMEOUT_S,
        )
    except _URL_ERRORS:
        raise _invalid_url(url) from None  # hidden on purpose: see _invalid_url
    except _CONNECT_ERRORS as exc:
        raise _cannot_connect(url, exc) from exc
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


class RetriesExhaustedError(DatabaseError):
    """A database call that failed on each of its attempts (`retrying`): final, though its
    cause, the last failure, was transient."""


def is_transient(exc: BaseException) -> bool:
    """Whether the same call may pass on a fresh connection: one of `TRANSIENT_ERRORS`, or a
    connection that could not be opened for such a reason (`connect` says `DatabaseError`).
    A call whose own retries are used up is not: an outer retry would multiply them."""
    if isinstance(exc, RetriesExhaustedError):
        return False
    if isinstance(exc, DatabaseError):
        return isinstance(exc.__cause__, TRANSIENT_ERRORS)
    return isinstance(exc, TRANSIENT_ERRORS)


async def retrying(
    pool: asyncpg.Pool,
    call: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen: one shared default is safe)
    what: str = "database call",
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run `call(conn)` on a pool connection, retrying transient failures with the retry
    policy's backoff on a fresh connection; `RetriesExhaustedError` (a `DatabaseError`, caused
    by the last failure) once its attempts are used up. Other failures propagate as raised."""

    async def attempt() -> T:
        async with pool.acquire() as conn:
            return await call(conn)

    return await retrying_attempts(attempt, retry=retry, what=what, on_retry=on_retry)


async def retrying_attempts(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen: one shared default is safe)
    what: str = "database call",
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """`retrying` for work that opens its own connection (a worker's lock, a run's backup):
    `attempt()` again after each transient failure (`is_transient`), with the same backoff."""
    attempts = retry.attempts
    for number in range(attempts):
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if number + 1 == attempts:
                raise RetriesExhaustedError(f"{what} failed {attempts} times: {exc}") from exc
            if on_retry is not None:
                on_retry(exc)
            await anyio.sleep(retry.delay(number))
    raise AssertionError("unreachable")


# A connection held for a long time (a worker's liveness lock, a run's backup snapshot) is
# checked this often, and counts as lost when its check takes longer than the timeout.
HELD_CHECK_S = 1.0
HELD_CHECK_TIMEOUT_S = 10.0
# The check: its backend answers, so the session's advisory locks and open transaction are
# still there.
CONNECTION_ALIVE_SQL = "SELECT 1"


async def until_lost(conn: asyncpg.Connection, *, every_s: float = HELD_CHECK_S) -> None:
    """Return once `conn` is lost. A connection the server closes (pg_terminate_backend, a
    restart) is noticed at once through asyncpg's termination listener; one that goes silent
    (a network partition) by a query every `every_s` that fails or does not answer within
    `HELD_CHECK_TIMEOUT_S`. Nothing else may use `conn` meanwhile (one query at a time)."""
    closed = anyio.Event()

    def on_close(_: asyncpg.Connection) -> None:
        closed.set()

    conn.add_termination_listener(on_close)
    try:
        while not conn.is_closed():
            with anyio.move_on_after(every_s):
                await closed.wait()
            if closed.is_set():
                return
            try:
                with anyio.fail_after(HELD_CHECK_TIMEOUT_S):
                    await conn.fetchval(CONNECTION_ALIVE_SQL)
            except TRANSIENT_ERRORS:
                return
    finally:
        conn.remove_termination_listener(on_close)
