"""Shared fixtures: a real PostgreSQL (embedded, or $LOADER_TEST_DATABASE_URL) with one fresh
database per test, cloned from a template that already has the demo and loader schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loader import db as dbmod
from loader import embedded

pytest_plugins = ["tests.storage_fixtures"]

TEMPLATE = "loader_test_template"


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a maintenance database on the test server."""
    url = os.environ.get("LOADER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    already_running = embedded.is_running("test-pg")
    server = embedded.ensure_running("test-pg", fast_unsafe=True)
    yield server.url()
    if not already_running:
        embedded.stop("test-pg")


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> str:
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    async with dbmod.connection(_with_database(pg_server_url, TEMPLATE)) as conn:
        await dbmod.init_schema(conn, demo_schema=True)
    return TEMPLATE


@pytest.fixture
async def make_database(
    pg_server_url: str, template_database: str
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of fresh databases (demo + loader schemas); all dropped after the test."""
    names: list[str] = []

    async def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        finally:
            await admin.close()
        names.append(name)
        return _with_database(pg_server_url, name)

    yield make
    admin = await asyncpg.connect(pg_server_url)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_url(make_database: Callable[[], Awaitable[str]]) -> str:
    """A fresh database with the demo and loader schemas, dropped after the test."""
    return await make_database()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """An open connection to the test's own fresh database."""
    async with dbmod.connection(db_url) as conn:
        yield conn
