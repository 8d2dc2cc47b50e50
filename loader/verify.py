"""`loader verify`: check the result against Storage itself, and repair what is safe.

The listing streams into a session-local table (COPY, a few thousand objects at a time), and
one SQL statement compares it with image_assets, so memory stays flat whatever the bucket's
size. Which folder is which customer comes from the latest run over the same bucket and
prefix (what was actually applied), or from the matcher when there was none.

Findings come in two grades. Errors make verify fail: a file with no row, a matched file
without its customer tag, a row tagged with another existing customer than its folder's, a
row without cdn_url or with one pointing at another object, a public URL of a private
bucket (it never works); with `check_urls_n`, a sampled cdn_url that does not answer 200.
Warnings are reported but
pass (unless `strict`): rows whose object is gone (orphans), tags of customers that do not
exist (stale), rows whose extra customer tags are all stale, duplicated file_paths when the
unique index is missing.

Repair is a journaled migrate run over the folders holding repairable files (no row, missing
tag, a cdn_url missing or not pointing at the file's object: what migrate's default fixes):
it never removes a tag. Orphans are deleted only on request, as a run
of their own whose deleted rows are kept whole (`loader rollback` of that run puts them back).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg

from loader.classify import classify
from loader.db import connection, init_schema
from loader.errors import BadInputError
from loader.listing import (
    FolderFailure,
    ListingEvent,
    OpenedSource,
    SourceOptions,
    for_each_event,
    loose_media,
    open_source,
)
from loader.progress import LiveStats
from loader.sqlfiles import sql
from loader.sync import status as sync_status
from loader.urlcheck import UrlFailure, check_urls

ERRORS = (
    "missing", "untagged", "wrong_customer", "no_cdn_url", "wrong_cdn_url", "private_bucket_urls"
)  # fmt: skip
WARNINGS = ("orphan", "stale_tag", "stale_beside_valid", "duplicate_path")
FINDINGS = ERRORS + WARNINGS
REPAIRABLE = ("missing", "untagged", "no_cdn_url", "wrong_cdn_url")
LABELS = {
    "missing": "files with no image_assets row",
    "untagged": "rows missing their folder's customer tag",
    "wrong_customer": "rows tagged with another existing customer than their folder's",
    "no_cdn_url": "rows without cdn_url",
    "wrong_cdn_url": "rows whose cdn_url points at another object (or is not a URL)",
    "private_bucket_urls": "cdn_urls that are public URLs of a private bucket (never work)",
    "orphan": "rows whose object is no longer in Storage",
    "stale_tag": "rows with tags of customers that do not exist",
    "stale_beside_valid": "rows whose other customer tags are all stale",
    "duplicate_path": "file_paths held by several rows (no unique index)",
}
# What fixes a finding, when something does (a person, for a row tagged with another customer).
FIXES = {
    **dict.fromkeys(REPAIRABLE, "loader verify --repair"),
    "wrong_customer": "a person: untag the row, or link the folder to that customer"
    " (loader match apply)",
    "private_bucket_urls": "loader migrate --cdn-base URL --cdn-url overwrite",
    "orphan": "loader verify --repair --delete-orphans",
}
EXAMPLES = 20
COPY_BATCH = 5000
COLUMNS = ("file_path", "folder", "media", "enc_path")


@dataclass(slots=True)
class VerifyResult:
    media_files: int = 0
    objects: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINDINGS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)
    failed_folders: list[FolderFailure] = field(default_factory=list)
    mapping_from: str = "matcher"
    cdn_base: str = ""
    repair_folders: list[tuple[str, int | None]] = field(default_factory=list)
    orphan_run_id: int | None = None  # the run that deleted orphans (delete_orphans=True)
    orphans_deleted: int = 0
    listing_s: float = 0.0  # listing Storage and copying it into the session table
    compare_s: float = 0.0  # the comparison in SQL
    loose_files: list[str] = field(default_factory=list)  # media outside customer folders
    urls_checked: int = 0
    url_failures: list[UrlFailure] = field(default_factory=list)
    sync: str = ""  # whether `loader sync` registers new uploads, in one line

    @property
    def errors(self) -> int:
        return sum(self.counts[name] for name in ERRORS)

    @property
    def warnings(self) -> int:
        return sum(self.counts[name] for name in WARNINGS)

    @property
    def ok(self) -> bool:
        """No error finding, every folder listed, every checked cdn_url answering 200
        (warnings do not count)."""
        return not self.failed_folders and not self.errors and not self.url_failures

    def passes(self, *, strict: bool = False) -> bool:
        return self.ok and not (strict and self.warnings)

    @property
    def repairable(self) -> int:
        return sum(self.counts[name] for name in REPAIRABLE)

    def as_report(self) -> dict[str, Any]:
        def finding(name: str, grade: str) -> dict[str, Any]:
            return {"grade": grade, "label": LABELS[name], "count": self.counts[name],
                    "fix": FIXES.get(name), "examples": self.examples.get(name, [])}  # fmt: skip

        return {
            "ok": self.ok,
            "media_files": self.media_files,
            "objects": self.objects,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": {
                **{name: finding(name, "error") for name in ERRORS},
                **{name: finding(name, "warning") for name in WARNINGS},
            },
            "failed_folders": [
                {"folder": f.folder, "reason": f.reason} for f in self.failed_folders
            ],
            "mapping_from": self.mapping_from,
            "cdn_base": self.cdn_base,
            "orphans_deleted": self.orphans_deleted,
            "orphan_run_id": self.orphan_run_id,
            "listing_s": round(self.listing_s, 3),
            "compare_s": round(self.compare_s, 3),
            "loose_files": self.loose_files,
            "urls_checked": self.urls_checked,
            "urls_failing": [{"url": f.url, "answer": f.answer} for f in self.url_failures],
            "sync": self.sync,
        }


# Folder -> customer of the latest run over bucket $1 and prefix $2 not rolled back.
LATEST_RUN_FOLDERS_SQL = """
SELECT folder, customer_id FROM loader.folders
WHERE run_id = (SELECT max(run_id) FROM loader.runs
                WHERE bucket = $1 AND prefix = $2 AND status <> 'rolled_back')
"""


async def _folder_customers(
    conn: asyncpg.Connection, opts: SourceOptions, prefix: str, folders: list[str]
) -> tuple[dict[str, int | None], str]:
    rows = await conn.fetch(LATEST_RUN_FOLDERS_SQL, opts.bucket, prefix)
    if rows:
        return {r["folder"]: r["customer_id"] for r in rows}, "latest run"
    from loader.match_db import match_with_database

    matches = await match_with_database(conn, folders)
    return {m.folder: m.customer_id for m in matches}, "matcher"


async def _cdn_base(
    conn: asyncpg.Connection, opts: SourceOptions, opened: OpenedSource, cdn_base: str | None
) -> tuple[str, str | None]:
    """The base of every file's own URL (as the run built it: `--cdn-base`, the latest run's,
    or the bucket's public URLs on the Storage root that answered), and that public route
    when the bucket is private (such URLs never work)."""
    source = opened.source
    if cdn_base is None:
        recorded = await conn.fetchval(sql("latest_run_options"), opts.bucket, source.prefix)
        recorded = recorded or {}
        cdn_base = recorded.get("public_url_base") or recorded.get("cdn_base")
    base = cdn_base or source.public_url_base
    if base is None:
        raise BadInputError("--source db needs --storage-url or --cdn-base to check cdn_url")
    storage = source.public_url_base
    private_route = (
        urlsplit(storage).path + "/" if storage and source.bucket_public is False else None
    )
    return base.rstrip("/"), private_route


# A folder whose listing failed: its rows are neither checked nor called orphans.
FOLDER_FAILED_SQL = "UPDATE verify_folders SET failed = true WHERE folder = $1"
# Autovacuum never analyzes temporary tables: give the planner real row counts.
ANALYZE_SQL = "ANALYZE verify_folders, verify_objects"


async def verify(
    opts: SourceOptions,
    database_url: str,
    *,
    cdn_base: str | None = None,
    delete_orphans: bool = False,
    check_urls_n: int = 0,
    stats: LiveStats | None = None,
) -> VerifyResult:
    """List Storage again and grade every media file's row and every row under the prefix.

    Writes nothing but its session's temporary tables, unless `delete_orphans`: then the
    orphan rows found are deleted by a run of their own (see `_delete_orphans`).
    `check_urls_n` > 0 also fetches the cdn_urls of that many media files, sampled at random
    (all of them when there are fewer), and reports those that do not answer 200.
    `stats` follows the listing folder by folder, then names the step under way.
    """
    stats = stats or LiveStats()
    result = VerifyResult()
    async with connection(database_url) as conn, open_source(opts) as opened:
        await init_schema(conn)  # the loader's own tables (runs, deleted_rows) may be new
        result.sync = (await sync_status(conn)).line()
        prefix = opened.source.prefix
        customers, result.mapping_from = await _folder_customers(
            conn, opts, prefix, opened.top.folders
        )
        result.cdn_base, private_route = await _cdn_base(conn, opts, opened, cdn_base)
        result.loose_files = loose_media(opened.top)
        sample = _Reservoir(check_urls_n)
        stats.begin(len(opened.top.folders))
        await conn.execute(sql("verify_prepare"))
        await conn.copy_records_to_table(
            "verify_folders",
            records=[(f, customers.get(f)) for f in opened.top.folders],
            columns=("folder", "customer_id"),
        )
        pending: list[tuple[str, str, bool, str | None]] = []

        async def flush() -> None:
            if pending:
                await conn.copy_records_to_table("verify_objects", records=pending,
                                                 columns=COLUMNS)  # fmt: skip
                pending.clear()

        def add(path: str, folder: str, mimetype: str | None) -> None:
            kind, _ = classify(path.rsplit("/", 1)[-1], mimetype)
            media = kind in ("image", "video")
            pending.append((path, folder, media, quote(path, safe="/") if media else None))
            result.objects += 1
            result.media_files += media
            if media:
                sample.offer(path)

        # Files directly under the prefix belong to no customer folder: migrate does not
        # register them (they are named instead), so they are neither missing nor orphans.
        for loose in opened.top.loose_files:
            pending.append((loose.path, "", False, None))
            result.objects += 1

        async def handle(event: ListingEvent) -> None:
            if isinstance(event, FolderFailure):
                result.failed_folders.append(event)
                stats.errors += 1
                stats.done += 1
                await conn.execute(FOLDER_FAILED_SQL, event.folder)
                return
            for obj in event.objects:
                add(obj.path, event.folder, obj.mimetype)
            stats.objects += len(event.objects)
            if event.last:
                stats.done += 1
            if len(pending) >= COPY_BATCH:
                await flush()

        started = time.monotonic()
        await for_each_event(opened, opts.list_concurrency, handle)
        await flush()
        result.listing_s = time.monotonic() - started
        stats.step("comparing with image_assets")
        await conn.execute(ANALYZE_SQL)
        unique = await conn.fetchval(sql("preflight_unique_index"))
        await conn.execute(
            sql("verify_findings"), prefix, result.cdn_base, not unique, private_route
        )
        for row in await conn.fetch(sql("verify_summary"), EXAMPLES):
            result.counts[row["finding"]] = row["total"]
            result.examples[row["finding"]] = list(row["examples"] or [])
        result.compare_s = time.monotonic() - started - result.listing_s
        if result.repairable:
            repair = await conn.fetch(sql("verify_repair_folders"), REPAIRABLE)
            result.repair_folders = [(r["folder"], r["customer_id"]) for r in repair]
        if delete_orphans and result.counts["orphan"]:
            stats.step("deleting orphan rows")
            await _delete_orphans(conn, opts, prefix, result)
        if sample.items:
            stats.step(f"checking {len(sample.items):,} cdn_urls")
            rows = await conn.fetch(sql("verify_sample_urls"), sample.items)
            urls = [r["cdn_url"] for r in rows]
            result.urls_checked = len(urls)
            result.url_failures = await check_urls(urls)
    return result


async def _delete_orphans(
    conn: asyncpg.Connection, opts: SourceOptions, prefix: str, result: VerifyResult
) -> None:
    """Delete the orphans just found, in one transaction with a run of their own; each
    deleted row is kept whole in loader.deleted_rows under that run."""
    options = {"action": "delete_orphans", "bucket": opts.bucket, "prefix": prefix}
    async with conn.transaction():
        run_id = await conn.fetchval(sql("run_create"), opts.bucket, prefix, options, False)
        result.orphans_deleted = await conn.fetchval(sql("orphans_delete"), run_id)
        await conn.fetchval(sql("run_finalize"), run_id)
    result.orphan_run_id = run_id


@dataclass(slots=True)
class _Reservoir:
    """A uniform random sample of at most `size` items from a stream of unknown length."""

    size: int
    items: list[str] = field(default_factory=list)
    seen: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def offer(self, item: str) -> None:
        if self.size <= 0:
            return
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif (j := self.rng.randrange(self.seen)) < self.size:
            self.items[j] = item
