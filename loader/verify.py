"""`loader verify`: check the result against Storage itself, and repair what is missing.

Every media file listed now must have exactly one row (the unique index guarantees "one"),
carry its folder's `customer-{id}` tag when the folder is tied to a customer, and have a
cdn_url. Which folder is which customer comes from the latest run over the same bucket and
prefix (what was actually applied), or from the matcher when there was none. Repair is a
migrate run: it is idempotent and writes only what is missing, journaled as usual.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from loader.classify import classify
from loader.db import connection
from loader.listing import (
    FolderFailure,
    ListingEvent,
    SourceOptions,
    for_each_event,
    loose_media,
    open_source,
)
from loader.rows import customer_tag
from loader.sqlfiles import sql

CHECKS = ("missing", "untagged", "no_cdn_url", "conflicting_tags")
BATCH = 5000


@dataclass(slots=True)
class VerifyResult:
    media_files: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    failed_folders: list[FolderFailure] = field(default_factory=list)
    mapping_from: str = "matcher"
    loose_files: list[str] = field(default_factory=list)  # media outside customer folders

    @property
    def ok(self) -> bool:
        return not self.failed_folders and not any(self.counts[c] for c in CHECKS)

    def as_report(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "media_files": self.media_files,
            **{name: self.counts[name] for name in CHECKS},
            "examples": self.examples,
            "failed_folders": [
                {"folder": f.folder, "reason": f.reason} for f in self.failed_folders
            ],
            "mapping_from": self.mapping_from,
            "loose_files": self.loose_files,
        }

    @property
    def repairable(self) -> int:
        return self.counts["missing"] + self.counts["untagged"] + self.counts["no_cdn_url"]


async def _folder_customers(
    conn: asyncpg.Connection, opts: SourceOptions, prefix: str, folders: list[str]
) -> tuple[dict[str, int | None], str]:
    rows = await conn.fetch(sql("latest_run_folders"), opts.bucket, prefix)
    if rows:
        return {r["folder"]: r["customer_id"] for r in rows}, "latest run"
    from loader.match import match_with_database

    matches = await match_with_database(conn, folders)
    return {m.folder: m.customer_id for m in matches}, "matcher"


async def verify(opts: SourceOptions, database_url: str) -> VerifyResult:
    """List Storage again and check every media file's row; never writes."""
    result = VerifyResult()
    async with connection(database_url) as conn, open_source(opts) as opened:
        result.loose_files = loose_media(opened.top)
        customers, result.mapping_from = await _folder_customers(
            conn, opts, opened.source.prefix, opened.top.folders
        )
        pending: list[dict[str, object]] = []

        async def check() -> None:
            if not pending:
                return
            row = await conn.fetchrow(sql("verify_batch"), pending)
            for name in CHECKS:
                result.counts[name] += row[name]
                examples = result.examples.setdefault(name, [])
                examples.extend((row[f"{name}_examples"] or [])[: 20 - len(examples)])
            pending.clear()

        async def handle(event: ListingEvent) -> None:
            if isinstance(event, FolderFailure):
                result.failed_folders.append(event)
                return
            customer = customers.get(event.folder)
            tags = [customer_tag(customer)] if customer is not None else []
            for obj in event.objects:
                kind, _ = classify(obj.path.rsplit("/", 1)[-1], obj.mimetype)
                if kind in ("image", "video"):
                    pending.append({"file_path": obj.path, "tags": tags})
                    result.media_files += 1
            if len(pending) >= BATCH:
                await check()

        await for_each_event(opened, opts.list_concurrency, handle)
        await check()
    return result
