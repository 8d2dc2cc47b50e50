"""`loader verify`: check the result against Storage itself, and repair what is missing.

Every media file listed now must have exactly one row (the unique index guarantees "one"),
carry its folder's `customer-{id}` tag when the folder is tied to a customer, and have a
cdn_url that can work (not a public URL of a private bucket); `check_urls` also fetches a
sample of cdn_urls and reports any that do not answer 200. Which folder is which customer
comes from the latest run over the same bucket and prefix (what was actually applied), or
from the matcher when there was none. Repair is a migrate run: it is idempotent and writes
only what is missing, journaled as usual.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

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
from loader.urlcheck import UrlFailure, check_urls

CHECKS = ("missing", "untagged", "no_cdn_url", "conflicting_tags", "private_bucket_urls")
BATCH = 5000


@dataclass(slots=True)
class VerifyResult:
    media_files: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    failed_folders: list[FolderFailure] = field(default_factory=list)
    mapping_from: str = "matcher"
    loose_files: list[str] = field(default_factory=list)  # media outside customer folders
    urls_checked: int = 0
    url_failures: list[UrlFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.failed_folders
            and not any(self.counts[c] for c in CHECKS)
            and not self.url_failures
        )

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
            "urls_checked": self.urls_checked,
            "urls_failing": [{"url": f.url, "answer": f.answer} for f in self.url_failures],
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


async def verify(opts: SourceOptions, database_url: str, *, check_urls_n: int = 0) -> VerifyResult:
    """List Storage again and check every media file's row; never writes.

    `check_urls_n` > 0 also fetches the cdn_urls of that many media files, sampled at random
    (all of them when there are fewer), and reports those that do not answer 200.
    """
    result = VerifyResult()
    sample = _Reservoir(check_urls_n)
    async with connection(database_url) as conn, open_source(opts) as opened:
        result.loose_files = loose_media(opened.top)
        customers, result.mapping_from = await _folder_customers(
            conn, opts, opened.source.prefix, opened.top.folders
        )
        # A private bucket answers its public route with "Bucket not found".
        private_route = (
            f"/object/public/{quote(opts.bucket, safe='')}/"
            if opened.source.bucket_public is False
            else None
        )
        pending: list[dict[str, object]] = []

        async def check() -> None:
            if not pending:
                return
            row = await conn.fetchrow(sql("verify_batch"), pending, private_route)
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
                    sample.offer(obj.path)
            if len(pending) >= BATCH:
                await check()

        await for_each_event(opened, opts.list_concurrency, handle)
        await check()
        if sample.items:
            rows = await conn.fetch(sql("verify_sample_urls"), sample.items)
            urls = [r["cdn_url"] for r in rows]
            result.urls_checked = len(urls)
            result.url_failures = await check_urls(urls)
    return result


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
