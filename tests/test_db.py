"""The database layer: schema init is idempotent, URLs never leak passwords, bad URLs fail clean."""

from __future__ import annotations

import asyncpg
import pytest

from loader import db as dbmod
from loader.errors import DatabaseError, ExitCode
from loader.redact import redact_options, redact_url


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
        "loader.folders",
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
    with pytest.raises(DatabaseError, match="cannot connect"):
        await dbmod.connect("postgresql://postgres@127.0.0.1:1/postgres")
