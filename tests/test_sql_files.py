"""Every statement in sql/ is checked against the schema it runs on (the demo's application
tables and the loader's own schema), so a file that drifted from the tables (a renamed
column, a dropped function, a wrong parameter type) fails here, not in a user's run."""

from __future__ import annotations

import asyncpg

from loader.sqlfiles import names, sql

# Statements that work on a session's temporary tables are checked after the statement that
# creates them (in the same rolled-back transaction).
SETUP_BY_PREFIX = {
    "verify_": "verify_prepare",
    "orphans_delete": "verify_prepare",
    "rollback_plan": "rollback_plan_create",
    "rollback_apply": "rollback_plan_create",
    "rollback_summary": "rollback_plan_create",
    "upsert_batch": "sink_stage",
    "sync_": "sync_schema",  # sync's tables and functions exist only once it is installed
}


def setup_for(name: str) -> str | None:
    for prefix, setup in SETUP_BY_PREFIX.items():
        if name.startswith(prefix) and name != setup:
            return setup
    return None


class _Undo(Exception):
    """Raised to roll back the transaction a check ran in."""


async def check(conn: asyncpg.Connection, text: str, setup: str | None = None) -> None:
    """Prepare a statement (PostgreSQL parses it and resolves every table, column, function
    and parameter type) inside a transaction that is rolled back. A file of several
    statements (the schema scripts) cannot be prepared as one: it is run, then undone."""
    try:
        async with conn.transaction():
            if setup is not None:
                await conn.execute(sql(setup))
            try:
                async with conn.transaction():  # a savepoint: a refused prepare leaves no mess
                    await conn.prepare(text)
            except asyncpg.PostgresSyntaxError as exc:
                if "multiple commands" not in str(exc):
                    raise
                await conn.execute(text)
            raise _Undo
    except _Undo:
        pass


async def test_every_statement_in_sql_prepares_against_the_schema(db: asyncpg.Connection) -> None:
    failures = {}
    for name in names():
        try:
            await check(db, sql(name), setup_for(name))
        except asyncpg.PostgresError as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert failures == {}
    assert len(names()) > 40  # the files were found at all


async def test_a_drifted_statement_fails(db: asyncpg.Connection) -> None:
    drifted = sql("verify_sample_urls").replace("cdn_url", "cdn_link")
    assert drifted != sql("verify_sample_urls")
    try:
        await check(db, drifted)
    except asyncpg.UndefinedColumnError:
        return
    raise AssertionError("a statement naming a missing column prepared")
