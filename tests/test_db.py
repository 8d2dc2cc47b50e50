"""The database layer: schema init is idempotent, URLs never leak passwords, bad URLs fail clean,
translated errors keep what asyncpg raised as their cause."""

from __future__ import annotations

import traceback

import asyncpg
import pytest

from loader import db as dbmod
from loader.errors import BadInputError, DatabaseError, ExitCode, SchemaError, as_loader_error
from loader.redact import redact_options, redact_url
from loader.retry import RetryPolicy


async def test_init_schema_is_idempotent(db: asyncpg.Connection) -> None:
    await dbmod.init_schema(db, demo_schema=True)
    await dbmod.init_schema(db, demo_schema=True)
    tables = {
        r["t"]
        for r in await db.fetch(
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
            " WHERE table_schema IN ('public', 'loader', 'storage')"
        )
    }
    assert {
        "public.customers",
        "public.image_assets",
        "storage.objects",
        "loader.runs",
        "loader.journal",
        "loader.chunks",
        "loader.folders",  # a view: each folder of loader.chunks as a row
        "loader.match_decisions",
    } <= tables
    assert await db.fetchval("SELECT max(version) FROM loader.schema_version") == 1


def test_redact_url_hides_password() -> None:
    url = "postgresql://app:s3cr%40t@db.example.com:5432/prod"
    assert "s3cr" not in redact_url(url)
    assert redact_url(url) == "postgresql://app:***@db.example.com:5432/prod"
    assert redact_url("postgresql://app@host/db") == "postgresql://app@host/db"


def test_redact_options_drops_secrets() -> None:
    clean = redact_options(
        {"key": "eyJhbGciOi", "database_url": "postgresql://u:pw@h/d", "batch_size": 5000}
    )
    assert clean == {"key": "***", "database_url": "postgresql://u:***@h/d", "batch_size": 5000}


async def test_wrong_password_is_a_clean_database_error(db_url: str) -> None:
    bad = db_url.replace("postgresql://postgres@", "postgresql://nosuchuser:hunter2@")
    with pytest.raises(DatabaseError) as info:
        await dbmod.connect(bad)
    assert info.value.exit_code == ExitCode.DATABASE
    assert "hunter2" not in str(info.value)
    assert "nosuchuser" in str(info.value)


async def test_unreachable_database_is_a_clean_error() -> None:
    with pytest.raises(DatabaseError, match="cannot connect") as info:
        await dbmod.connect("postgresql://postgres@127.0.0.1:1/postgres")
    assert isinstance(info.value.__cause__, OSError)  # what asyncpg raised, kept as the cause
    assert dbmod.is_transient(info.value)


async def test_a_url_the_driver_cannot_parse_hides_what_the_parser_said() -> None:
    """The parser's message may quote a piece of the password: neither shown nor chained (a
    traceback under LOADER_DEBUG=1 shows the chain)."""
    with pytest.raises(BadInputError) as info:
        await dbmod.connect_once("postgresql://u:hunter2@127.0.0.1:1/d?sslmode=bogus")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    shown = "".join(traceback.format_exception(info.value))
    assert "direct cause" not in shown and "During handling" not in shown


async def test_retries_used_up_keep_the_last_failure_as_the_cause() -> None:
    failures: list[BaseException] = []

    async def attempt() -> None:
        failures.append(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
        raise failures[-1]

    fast = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002)
    with pytest.raises(DatabaseError) as info:
        await dbmod.retrying_attempts(attempt, retry=fast, what="the call")
    assert str(info.value) == "the call failed 3 times: connection was closed"
    assert info.value.__cause__ is failures[-1] and len(failures) == 3
    assert info.value.exit_code == ExitCode.DATABASE
    # Final: a retry around it would multiply the attempts.
    assert not dbmod.is_transient(info.value)


async def test_an_error_a_query_raised_is_translated_with_its_cause(
    db: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.UndefinedTableError) as info:
        await db.execute("SELECT * FROM no_such_table")
    error = as_loader_error(info.value)
    assert isinstance(error, SchemaError)
    assert error.__cause__ is info.value
