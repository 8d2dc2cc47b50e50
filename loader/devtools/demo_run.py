"""`loader demo run` (what `make demo` runs): the whole job on a generated library.

Starts the embedded PostgreSQL, seeds a fresh demo database and a Storage-compatible server
on loopback, then runs what a user runs: match, migrate, verify, and migrate once more to
show that a re-run writes nothing. Stops what it started.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loader import db, embedded
from loader.config import state_dir
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
from loader.match import match_with_database, write_report, write_review_csv
from loader.migrate import MigrateOptions, MigrateResult, migrate
from loader.sqlfiles import sql
from loader.verify import VerifyResult, verify

DEMO_BUCKET = "blog-images"
DEMO_DATABASE = "loader_demo"


@dataclass(slots=True)
class DemoPaths:
    folder: Path
    manifest: Path
    truth: Path
    match_report: Path
    review_csv: Path
    migrate_report: Path

    @classmethod
    def under(cls, folder: Path) -> DemoPaths:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(
            folder,
            folder / "manifest.jsonl",
            folder / "truth.json",
            folder / "match.json",
            folder / "review.csv",
            folder / "migrate.json",
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


async def demo_database(server_url: str) -> str:
    """A fresh `loader_demo` database on the embedded server, with the demo schema."""
    async with db.connection(server_url) as admin:
        await admin.execute(sql("demo_drop_database"))
        await admin.execute(sql("demo_create_database"))
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
        say(f"database: {db.describe(database_url)} (embedded)")
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
