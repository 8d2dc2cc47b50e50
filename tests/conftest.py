"""Shared fixtures: a real PostgreSQL (embedded, or $LOADER_TEST_DATABASE_URL) with one fresh
database per test, cloned from a template that already has the demo and loader schemas (on the
embedded server in a tmpfs tablespace, each cloned while the test before runs). And the test
tiers: `e2e` and `browser` marks set from what each test calls (pyproject.toml's markers)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import inspect
import os
import shutil
import textwrap
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loader import db as dbmod
from loader import embedded
from loader.devtools import demo_library as demo
from loader.devtools.storage_server import Catalogue

pytest_plugins = ["tests.storage_fixtures"]

TEMPLATE = "loader_test_template"
DEMO_BUCKET = "blog-images"
TABLESPACE = "loader_test_tmpfs"

# What makes a test `e2e` or `browser` (markers: pyproject.toml): a name (or a module's) in
# the code of the test function, of a fixture it uses, or of a tests/ function they name.
MARKING_NAMES = {
    "e2e": {"run_loader", "loader_argv", "anyio.run_process", "anyio.open_process", "subprocess",
            "pty", "os.openpty", "pgbouncer.running"},
    "browser": {"webdriver"},
}  # fmt: skip
_markers_of_function: dict[Callable[..., object], frozenset[str]] = {}
# Explicit marks for tests of a module being finished elsewhere (to move into it then):
# module -> test -> marker.
MARKED_HERE: dict[str, dict[str, str]] = {}


def _dotted_prefixes(node: ast.AST) -> list[str]:
    """`a`, `a.b` and `a.b.c` for the expression `a.b.c`; nothing for other nodes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return []
    parts.append(node.id)
    parts.reverse()
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _markers_of(
    function: Callable[..., object], calling: tuple[object, ...] = ()
) -> frozenset[str]:
    """The markers `function`'s source calls for, with those of the tests/ functions it names."""
    if function in _markers_of_function:
        return _markers_of_function[function]
    if function in calling:  # recursion
        return frozenset()
    inner = inspect.unwrap(getattr(getattr(function, "hypothesis", None), "inner_test", function))
    try:
        nodes = list(ast.walk(ast.parse(textwrap.dedent(inspect.getsource(inner)))))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    used = {name for node in nodes for name in _dotted_prefixes(node)}
    found = {marker for marker, names in MARKING_NAMES.items() if used & names}
    names = {node.id for node in nodes if isinstance(node, ast.Name)}
    namespace = getattr(inner, "__globals__", {})
    for name in names:
        named = namespace.get(name)
        if inspect.isfunction(named) and named.__module__.startswith("tests."):
            found |= _markers_of(named, (*calling, function))
    _markers_of_function[function] = frozenset(found)
    return _markers_of_function[function]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `e2e` each test that runs the loader (or PgBouncer, or a pseudo-terminal) as a
    process and `browser` each that drives Chromium, decided per test from what it and its
    fixtures call; an explicit mark in the test module covers what this cannot see."""
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        found = set(_markers_of(function))
        fixtures = getattr(item, "_fixtureinfo", None)
        for definitions in fixtures.name2fixturedefs.values() if fixtures else ():
            for definition in definitions:
                found |= _markers_of(definition.func)
        here = MARKED_HERE.get(function.__module__.rsplit(".", 1)[-1], {})
        if getattr(item, "originalname", item.name) in here:
            found.add(here[getattr(item, "originalname", item.name)])
        for marker in sorted(found):
            item.add_marker(marker)


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


async def _tmpfs_tablespace(admin: asyncpg.Connection) -> str | None:
    """A tablespace in /dev/shm for the template and so every test database, on the embedded
    server; None elsewhere. A test database is ~300 files: on ext4, after the thousands the
    previous tests' databases left deleted, creating them took 0.3-0.5 s a database (inode
    allocation skips recently deleted inodes), on tmpfs 20-40 ms."""
    if os.environ.get("LOADER_TEST_DATABASE_URL") or not os.access("/dev/shm", os.W_OK):
        return None
    data_dir = await admin.fetchval("SHOW data_directory")
    digest = hashlib.sha1(data_dir.encode()).hexdigest()[:12]
    location = Path("/dev/shm") / f"loader-test-pg-{digest}"  # one per test server
    try:
        existing = await admin.fetchval(
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = $1", TABLESPACE
        )
        if existing == str(location) and location.is_dir():
            return TABLESPACE
        if existing is not None:  # its folder is gone (a reboot): so are its test databases
            for (name,) in await admin.fetch(
                "SELECT datname FROM pg_database d JOIN pg_tablespace t ON t.oid = dattablespace"
                " WHERE spcname = $1", TABLESPACE,
            ):  # fmt: skip
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.execute(f'DROP TABLESPACE "{TABLESPACE}"')
        shutil.rmtree(location, ignore_errors=True)
        location.mkdir()
        if os.geteuid() == 0:  # the server runs as its system user (loader.embedded)
            import pwd

            owner = pwd.getpwnam(embedded.SYSTEM_USER)
            os.chown(location, owner.pw_uid, owner.pw_gid)
        await admin.execute(f"CREATE TABLESPACE \"{TABLESPACE}\" LOCATION '{location}'")
    except (OSError, KeyError, asyncpg.PostgresError) as e:
        warnings.warn(f"test databases stay on disk (slower): no tablespace in /dev/shm: {e}",
                      stacklevel=2)  # fmt: skip
        return None
    return TABLESPACE


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> str:
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        tablespace = await _tmpfs_tablespace(admin)
        where = f' TABLESPACE "{tablespace}"' if tablespace else ""
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"{where}')
    finally:
        await admin.close()
    async with dbmod.connection(_with_database(pg_server_url, TEMPLATE)) as conn:
        await dbmod.init_schema(conn, demo_schema=True)
    return TEMPLATE


class FreshDatabases:
    """Test databases cloned from the template one ahead of need and dropped behind, by tasks
    on the session's event loop: a clone (~30 ms) runs while the test before waits on I/O."""

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url, self.template = server_url, template
        self.next: asyncio.Task[str] | None = None
        self.drops: list[asyncio.Task[None]] = []

    async def _admin(self, statement: str) -> None:
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    async def _clone(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    async def take(self) -> str:
        ready = self.next or asyncio.ensure_future(self._clone())
        self.next = asyncio.ensure_future(self._clone())
        return await ready

    def drop(self, name: str) -> None:
        statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        self.drops.append(asyncio.ensure_future(self._admin(statement)))

    async def close(self) -> None:
        if self.next is not None:
            with contextlib.suppress(Exception):  # not cloned: nothing to drop
                self.drop(await self.next)
        for failed in await asyncio.gather(*self.drops, return_exceptions=True):
            if isinstance(failed, BaseException):
                warnings.warn(f"a test database was not dropped: {failed}", stacklevel=1)


@pytest.fixture(scope="session")
async def fresh_databases(
    pg_server_url: str, template_database: str
) -> AsyncIterator[FreshDatabases]:
    databases = FreshDatabases(pg_server_url, template_database)
    yield databases
    await databases.close()


@pytest.fixture
async def make_database(
    pg_server_url: str, fresh_databases: FreshDatabases
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of fresh databases (demo + loader schemas); all dropped after the test."""
    names: list[str] = []

    async def make() -> str:
        names.append(await fresh_databases.take())
        return _with_database(pg_server_url, names[-1])

    yield make
    for name in names:
        fresh_databases.drop(name)


@pytest.fixture
async def db_url(make_database: Callable[[], Awaitable[str]]) -> str:
    """A fresh database with the demo and loader schemas, dropped after the test."""
    return await make_database()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """An open connection to the test's own fresh database."""
    async with dbmod.connection(db_url) as conn:
        yield conn


# The demo library (~10k objects) for the tests that serve it: generated, written as a
# manifest and read back once a session (~0.5 s each time). Neither is changed by a test: the
# library is only read (seed_database copies it into the test's own database), and a
# Catalogue is immutable (the Storage server only reads it).
@pytest.fixture(scope="session")
def demo_library() -> demo.DemoLibrary:
    return demo.generate_library()


@pytest.fixture(scope="session")
def demo_catalogue(
    demo_library: demo.DemoLibrary, tmp_path_factory: pytest.TempPathFactory
) -> Catalogue:
    """The demo library as the Storage server serves it, bucket DEMO_BUCKET."""
    manifest = tmp_path_factory.mktemp("demo") / "manifest.jsonl"
    demo.write_manifest(manifest, demo_library)
    return Catalogue.from_manifest(manifest, bucket=DEMO_BUCKET)
