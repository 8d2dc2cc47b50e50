"""Every statement the loader runs is checked against the schema it runs on (the demo's
application tables and the loader's own schema): each file in sql/, and each inline statement,
a module-level constant of the loader package whose name ends in `_SQL` (the rule:
loader/sqlfiles.py). A statement that drifted from the tables (a renamed column, a dropped
function, a wrong parameter type) fails here, not in a user's run; so does SQL written
straight into a call, where this check could not find it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import asyncpg
import pytest

import loader
from loader.sqlfiles import names, sql

# Statements that work on a session's temporary tables (or on sync's tables) are checked after
# the statement that creates them (in the same rolled-back transaction): by file name, or by
# `module.` for inline statements.
SETUP_BY_PREFIX = {
    "verify_": "verify_prepare",
    "orphans_delete": "verify_prepare",
    "rollback_plan": "rollback_plan_create",
    "rollback_apply": "rollback_plan_create",
    "rollback_summary": "rollback_plan_create",
    "upsert_batch": "sink_stage",
    "sync_": "sync_schema",  # sync's tables and functions exist only once it is installed
    "loader.verify.": "verify_prepare",
    "loader.sync.": "sync_schema",
}

# The asyncpg calls that take a statement as their first argument.
QUERY_METHODS = {"execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany",
                 "prepare", "cursor", "copy_from_query"}  # fmt: skip


def setup_for(name: str) -> str | None:
    for prefix, setup in SETUP_BY_PREFIX.items():
        if name.startswith(prefix) and name != setup:
            return setup
    return None


def _modules() -> list[str]:
    # __main__ would run the command line.
    return [info.name for info in pkgutil.walk_packages(loader.__path__, "loader.")
            if info.name != "loader.__main__"]  # fmt: skip


def _defined_sql_names(module_name: str) -> list[str]:
    """The `*_SQL` names a module assigns at its top level (not those it imports)."""
    module = importlib.import_module(module_name)
    source = Path(module.__file__ or "").read_text(encoding="utf-8")
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        found += [t.id for t in targets if isinstance(t, ast.Name) and t.id.endswith("_SQL")]
    return found


def inline_statements() -> dict[str, str]:
    """Every inline statement of the loader package by `module.NAME`, with the text it holds
    when imported (so a constant built from pieces is checked as the loader runs it)."""
    statements = {}
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for name in _defined_sql_names(module_name):
            value = getattr(module, name)
            assert isinstance(value, str), f"{module_name}.{name} is not a statement"
            statements[f"{module_name}.{name}"] = value
    return statements


def literal_statements(source: str) -> list[int]:
    """The lines of `source` where a string literal is passed as a query method's statement:
    SQL the drift check cannot find (it belongs in a `*_SQL` constant)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in QUERY_METHODS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


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


async def failures(conn: asyncpg.Connection, statements: dict[str, str]) -> dict[str, str]:
    """Each statement that does not prepare, with PostgreSQL's reason."""
    failed = {}
    for name, text in statements.items():
        try:
            await check(conn, text, setup_for(name))
        except asyncpg.PostgresError as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


async def test_every_statement_in_sql_prepares_against_the_schema(db: asyncpg.Connection) -> None:
    assert await failures(db, {name: sql(name) for name in names()}) == {}
    assert len(names()) > 40  # the files were found at all


async def test_every_inline_statement_prepares_against_the_schema(
    db: asyncpg.Connection,
) -> None:
    statements = inline_statements()
    assert await failures(db, statements) == {}
    assert len(statements) > 30  # the constants were found at all
    assert "loader.match_db.LOAD_CUSTOMERS_SQL" in statements


async def test_a_drifted_statement_fails(db: asyncpg.Connection) -> None:
    drifted = sql("verify_sample_urls").replace("cdn_url", "cdn_link")
    assert drifted != sql("verify_sample_urls")
    with pytest.raises(asyncpg.UndefinedColumnError):
        await check(db, drifted)


async def test_a_drifted_inline_statement_fails(
    db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loader import match_db

    monkeypatch.setattr(
        match_db, "LOAD_CUSTOMERS_SQL", match_db.LOAD_CUSTOMERS_SQL.replace("phone", "telephone")
    )
    failed = await failures(db, inline_statements())
    assert list(failed) == ["loader.match_db.LOAD_CUSTOMERS_SQL"]
    assert failed["loader.match_db.LOAD_CUSTOMERS_SQL"].startswith("UndefinedColumnError")


def test_no_statement_is_written_straight_into_a_call() -> None:
    root = Path(loader.__file__).parent
    found = [f"{path.relative_to(root.parent)}:{line}" for path in sorted(root.rglob("*.py"))
             for line in literal_statements(path.read_text(encoding="utf-8"))]  # fmt: skip
    assert found == []
    assert literal_statements("async def f(conn):\n    await conn.fetchval('SELECT 1')") == [2]
