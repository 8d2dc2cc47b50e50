"""Errors the library raises, each carrying the process exit code the CLI turns it into.

Exit codes are part of the tool's interface (scripts branch on them), so they are fixed here
in one place with their meaning (`MEANING`, which the README's table must match: a test checks
it).

Library errors become a `LoaderError` once, where the library is called, chained to it
(`raise ... from exc`): aiohttp's in `loader.storage_client`, a connection that cannot be
opened or a call whose retries are used up in `loader.db`, a failed `storage.objects` query in
`loader.listing.DbSource`. `as_loader_error` is the last line, at the top: it unwraps anyio
task groups and names what still arrives as it was raised (a query's asyncpg error on an open
connection, an OS error of a file); anything it does not know stays a bug (exit 1), its
traceback shown with `LOADER_DEBUG=1`.
"""

from __future__ import annotations

import errno
from enum import IntEnum

import asyncpg


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2  # click's own code for bad flags
    BAD_INPUT = 3  # malformed file, bad option value, unwritable output file
    DATABASE = 4  # cannot connect / authenticate to Postgres, or lost it before a run existed
    SCHEMA = 5  # table, column or unique index missing; permission missing
    STORAGE_UNREACHABLE = 6
    STORAGE_AUTH = 7  # key rejected
    BUCKET_NOT_FOUND = 8
    EMPTY_LISTING = 9  # nothing under the prefix: never reported as success
    NOT_SERVICE_ROLE = 10  # key is not a service-role key and the listing came back empty
    INCOMPLETE = 11  # finished, but some folders or rows failed (listed in the report)
    ABORTED = 12  # stopped before finishing (interrupted, database lost); resumable
    PRIVATE_BUCKET = 13  # public cdn_urls of a private bucket would never work: nothing written
    TRANSACTION_POOLER = 14  # the database URL is a transaction-mode pooler: nothing written


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug: rerun with `LOADER_DEBUG=1` for the traceback)",
    ExitCode.USAGE: "bad command line",
    ExitCode.BAD_INPUT: "bad input (malformed file, unknown run id, value out of range, "
    "output file that cannot be written, ...)",
    ExitCode.DATABASE: "cannot connect to the database",
    ExitCode.SCHEMA: "the target table is not usable (missing table, column, unique index, "
    "privilege); `sync status`: sync is installed but a part of it is missing",
    ExitCode.STORAGE_UNREACHABLE: "Storage unreachable (after retries; a run stops early when "
    "the whole server is down, and is resumable)",
    ExitCode.STORAGE_AUTH: "Storage rejected the key",
    ExitCode.BUCKET_NOT_FOUND: "bucket not found",
    ExitCode.EMPTY_LISTING: "nothing under the prefix (never reported as success)",
    ExitCode.NOT_SERVICE_ROLE: "the key is not a service-role key and nothing is visible",
    ExitCode.INCOMPLETE: "finished, but some folders or rows failed (listed in the summary and "
    "report)",
    ExitCode.ABORTED: "stopped midway: interrupted (Ctrl-C, SIGTERM) or the database was lost "
    "(resumable with `--resume RUN_ID`)",
    ExitCode.PRIVATE_BUCKET: "the bucket is private: public cdn_urls would never work (nothing "
    "written; pass `--cdn-base URL` or `--cdn-url keep`)",
    ExitCode.TRANSACTION_POOLER: "the database URL leads to a transaction-mode pooler (port "
    "6543 on Supabase): nothing written; use the session pooler (port 5432) or the direct "
    "connection",
}


class LoaderError(Exception):
    """Base of every expected failure: one clean line for the user, plus an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(LoaderError):
    exit_code = ExitCode.BAD_INPUT


class DatabaseError(LoaderError):
    exit_code = ExitCode.DATABASE


class SchemaError(LoaderError):
    exit_code = ExitCode.SCHEMA


class StorageUnreachableError(LoaderError):
    exit_code = ExitCode.STORAGE_UNREACHABLE


class StorageAuthError(LoaderError):
    exit_code = ExitCode.STORAGE_AUTH


class BucketNotFoundError(LoaderError):
    exit_code = ExitCode.BUCKET_NOT_FOUND


class EmptyListingError(LoaderError):
    exit_code = ExitCode.EMPTY_LISTING


class NotServiceRoleError(LoaderError):
    exit_code = ExitCode.NOT_SERVICE_ROLE


class PrivateBucketError(LoaderError):
    exit_code = ExitCode.PRIVATE_BUCKET


class TransactionPoolerError(LoaderError):
    exit_code = ExitCode.TRANSACTION_POOLER


class AbortedError(LoaderError):
    """A run stopped midway; the message says how to resume it."""

    exit_code = ExitCode.ABORTED


# The connection to Postgres is gone (server stopped or restarted, backend terminated): the
# same work on a new connection, later, would pass.
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown, 57P03 starting up
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,  # database not accepting connections
    asyncpg.InterfaceError,
    ConnectionError,
)
# The database is there but a table, column, function or privilege is not.
_SCHEMA: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.UndefinedTableError,
    asyncpg.exceptions.UndefinedColumnError,
    asyncpg.exceptions.UndefinedFunctionError,
    asyncpg.exceptions.InvalidSchemaNameError,
    asyncpg.exceptions.InsufficientPrivilegeError,
)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, as anyio task groups raise them."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def as_loader_error(exc: BaseException) -> LoaderError | None:
    """The `LoaderError` an exception stands for, or None when it is a bug.

    A task group's ExceptionGroup is unwrapped: the most telling error inside it wins (a
    `LoaderError` raised by a task before the others were cancelled, over the connection
    errors those cancellations may cause).
    """
    mapped = [m for leaf in leaves(exc) if (m := _map_one(leaf)) is not None]
    if not mapped:
        return None
    own = [m for m in mapped if not isinstance(m, DatabaseError)]
    return (own or mapped)[0]


def _map_one(exc: BaseException) -> LoaderError | None:
    """One exception as a `LoaderError` (itself, or one caused by it), None for a bug."""
    if isinstance(exc, LoaderError):
        return exc
    error = _translate(exc)
    if error is not None:
        error.__cause__ = exc
    return error


def _translate(exc: BaseException) -> LoaderError | None:
    if isinstance(exc, _SCHEMA):
        return SchemaError(
            f"the database lacks what the loader needs: {first_line(exc)} (run `loader db init`"
            " for the loader's own tables; check the target table and privileges)"
        )
    if isinstance(exc, _CONNECTION_LOST):
        return DatabaseError(
            f"lost the connection to the database ({first_line(exc)}): check that it is up"
            " and reachable, then run the command again"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        where = f" {exc.filename}" if exc.filename else ""
        return BadInputError(
            f"cannot write{where}: {exc.strerror}: free some space or choose another path"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return BadInputError(f"cannot listen: {exc.strerror}: choose another --port")
    if isinstance(exc, OSError) and exc.filename is not None:
        return BadInputError(f"cannot use {exc.filename}: {exc.strerror or exc}")
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
