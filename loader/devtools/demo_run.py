"""`loader demo run` (what `make demo` runs) and `loader demo serve`, on a generated library.

`demo run` starts the embedded PostgreSQL, seeds a fresh demo database and a
Storage-compatible server on loopback, then runs what a user runs: match, migrate, verify,
and migrate once more to show that a re-run writes nothing. Stops what it started.

`demo serve` seeds the same way and keeps the Storage server up on a fixed loopback port,
printing the three environment variables that point every `loader` command at the demo.
"""

from __future__ import annotations

import secrets
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from loader import db, embedded
from loader.devtools import DEMO_PORT
from loader.devtools.demo_library import (
    DemoLibrary,
    MatchQuality,
    SeedCounts,
    evaluate,
    generate_library,
    seed_database,
    write_manifest,
    write_truth,
)
from loader.devtools.storage_server import Catalogue, running_server
from loader.listing import SourceOptions, list_folders
from loader.match_db import match_with_database
from loader.match_files import write_report, write_review_csv
from loader.migrate import MigrateOptions, MigrateResult, migrate
from loader.redact import redact_url
from loader.report import console, print_migrate_summary, print_verify_result
from loader.state_folder import state_dir
from loader.verify import VerifyResult, verify

DEMO_BUCKET = "blog-images"
DEMO_DATABASE = "loader_demo"
# The key of the loopback demo server only: printed on purpose so it can be exported.
DEMO_KEY = "demo-service-role-key"

NEXT_STEPS = """
next: try every command on this data (README.md, "From the demo to every command"):
  1. in one terminal, keep the demo Storage server up (it prints three lines to export):
       loader demo serve
  2. in another terminal, paste those export lines, then:
       loader scan
       loader match
       loader migrate --dry-run
       loader migrate
       loader verify
       loader runs
(`loader` is .venv/bin/loader after `make install`.)"""


@dataclass(slots=True)
class DemoPaths:
    folder: Path
    manifest: Path
    truth: Path
    match_report: Path
    review_csv: Path

    @classmethod
    def under(cls, folder: Path) -> DemoPaths:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(
            folder,
            folder / "manifest.jsonl",
            folder / "truth.json",
            folder / "match.json",
            folder / "review.csv",
        )


@dataclass(slots=True)
class DemoOutcome:
    database_url: str
    seeded: SeedCounts
    quality: MatchQuality
    first: MigrateResult
    second: MigrateResult
    verified: VerifyResult
    paths: DemoPaths


# `loader demo run` starts from a clean demo database (DEMO_DATABASE) on the embedded server.
DROP_DEMO_DATABASE_SQL = "DROP DATABASE IF EXISTS loader_demo WITH (FORCE)"
CREATE_DEMO_DATABASE_SQL = "CREATE DATABASE loader_demo"


async def demo_database(server_url: str) -> str:
    """A fresh `loader_demo` database on the embedded server, with the demo schema."""
    async with db.connection(server_url) as admin:
        await admin.execute(DROP_DEMO_DATABASE_SQL)
        await admin.execute(CREATE_DEMO_DATABASE_SQL)
    url = server_url.rsplit("/", 1)[0] + f"/{DEMO_DATABASE}"
    async with db.connection(url) as conn:
        await db.init_schema(conn, demo_schema=True)
    return url


async def seed(scale: int, database_url: str, paths: DemoPaths) -> tuple[SeedCounts, DemoLibrary]:
    """Generate the library, write its manifest and truth, and load the demo database."""
    library = generate_library(scale)
    write_manifest(paths.manifest, library)
    write_truth(paths.truth, library)
    async with db.connection(database_url) as conn:
        counts = await seed_database(conn, library, bucket=DEMO_BUCKET)
    return counts, library


async def run_demo(scale: int = 1, *, say: Callable[[str], None] = print) -> DemoOutcome:
    """Seed, serve, match, migrate, verify, re-run; returns what each step produced."""
    paths = DemoPaths.under(state_dir() / "demo")
    was_running = embedded.is_running()
    server = embedded.ensure_running()
    try:
        database_url = await demo_database(server.url())
        say(f"database: {redact_url(database_url)} (embedded)")
        seeded, library = await seed(scale, database_url, paths)
        say(f"seeded {seeded.customers:,} customers, {seeded.objects:,} Storage objects, "
            f"{seeded.existing_assets:,} existing image_assets rows")  # fmt: skip
        key = f"demo-{secrets.token_hex(16)}"
        catalogue = Catalogue.from_manifest(paths.manifest, bucket=DEMO_BUCKET)
        async with running_server(catalogue, bucket=DEMO_BUCKET, key=key) as storage_url:
            say(f"storage: {storage_url} (bucket {DEMO_BUCKET}, {len(catalogue):,} objects)")
            source = SourceOptions(bucket=DEMO_BUCKET, storage_url=storage_url, key=key)
            folders = await list_folders(source)
            async with db.connection(database_url) as conn:
                matches = await match_with_database(conn, folders)
            write_report(matches, paths.match_report)
            write_review_csv(matches, paths.review_csv)
            quality = evaluate(matches, library)
            first = await migrate(MigrateOptions(source=source, database_url=database_url))
            verified = await verify(source, database_url)
            # A second run must find nothing to do: the proof that re-running is safe.
            second = await migrate(MigrateOptions(source=source, database_url=database_url))
        return DemoOutcome(database_url, seeded, quality, first, second, verified, paths)
    finally:
        if not was_running:
            embedded.stop()


def print_demo_outcome(outcome: DemoOutcome) -> None:
    """The demo's story: match quality, the migration, verification, and the re-run."""
    out = console()
    q = outcome.quality
    out.print(
        f"\nmatch: {q.links} of {q.folders} folders tied to a customer "
        f"(precision {q.precision:.3f}, recall {q.recall:.3f}, wrong links {q.wrong_links}); "
        f"report {outcome.paths.match_report}, review list {outcome.paths.review_csv}"
    )
    print_migrate_summary(outcome.first)
    print_verify_result(outcome.verified)
    s = outcome.second.totals
    out.print(
        f"re-run (run {outcome.second.run_id}): {s.get('inserted', 0)} inserted, "
        f"{s.get('updated', 0)} updated, {s.get('unchanged', 0):,} unchanged"
    )


def demo_environment(storage_url: str, database_url: str) -> dict[str, str]:
    """What `loader` reads from the environment to work on the demo."""
    return {
        "SUPABASE_URL": storage_url,
        "SUPABASE_SERVICE_ROLE_KEY": DEMO_KEY,
        "DATABASE_URL": database_url,
    }


def export_lines(environment: dict[str, str]) -> str:
    """`export NAME=value` lines a POSIX shell takes as pasted."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())


async def serve_demo(
    server_url: Callable[[], str],
    folder: Path,
    *,
    scale: int = 1,
    host: str = "127.0.0.1",
    port: int = DEMO_PORT,
    on_ready: Callable[[dict[str, str]], None],
) -> None:
    """Seed a fresh demo library and serve it until cancelled; `on_ready` gets the
    environment once the Storage server is listening. `server_url` gives the PostgreSQL
    server's URL (starting it if need be); the library's files go to `folder`.

    The port is bound before anything else: when it is taken (another `demo serve` holds
    it), the OSError (EADDRINUSE, exit 3) comes before the demo database and manifest are
    rewritten under the server that holds it, and before a database server is started."""
    with socket.create_server((host, port)) as sock:
        paths = DemoPaths.under(folder)
        database_url = await demo_database(server_url())
        await seed(scale, database_url, paths)
        catalogue = Catalogue.from_manifest(paths.manifest, bucket=DEMO_BUCKET)
        async with running_server(
            catalogue, bucket=DEMO_BUCKET, key=DEMO_KEY, host=host, sock=sock
        ) as storage_url:
            on_ready(demo_environment(storage_url, database_url))
            await anyio.sleep_forever()
