"""Errors the library raises, each carrying the process exit code the CLI turns it into.

Exit codes are part of the tool's interface (scripts branch on them), so they are fixed here
in one place and documented in the README.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2  # click's own code for bad flags
    BAD_INPUT = 3  # malformed file, bad option value
    DATABASE = 4  # cannot connect / authenticate to Postgres
    SCHEMA = 5  # table, column or unique index missing; permission missing
    STORAGE_UNREACHABLE = 6
    STORAGE_AUTH = 7  # key rejected
    BUCKET_NOT_FOUND = 8
    EMPTY_LISTING = 9  # nothing under the prefix: never reported as success
    NOT_SERVICE_ROLE = 10  # key is not a service-role key and the listing came back empty
    INCOMPLETE = 11  # finished, but some folders or rows failed (listed in the report)
    ABORTED = 12  # stopped before finishing (e.g. interrupted); resumable
    PRIVATE_BUCKET = 13  # public cdn_urls of a private bucket would never work: nothing written


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


class IncompleteError(LoaderError):
    exit_code = ExitCode.INCOMPLETE
