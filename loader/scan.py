"""`loader scan`: list the bucket and count what is there, per customer folder and per kind."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loader.classify import Kind, classify_path
from loader.listing import (
    FolderFailure,
    ListedObject,
    ListingEvent,
    SourceOptions,
    for_each_event,
    loose_media,
    open_source,
)
from loader.progress import LiveStats

ObjectCallback = Callable[[ListedObject, Kind, str | None], None]


@dataclass(slots=True)
class ScanReport:
    api: str
    folders: dict[str, Counter[str]] = field(default_factory=dict)
    loose: Counter[str] = field(default_factory=Counter)
    loose_media: list[str] = field(default_factory=list)  # named in the summary
    failures: list[FolderFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    elapsed_s: float = 0.0

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter(self.loose)
        for counts in self.folders.values():
            total.update(counts)
        return total


async def scan(
    opts: SourceOptions,
    *,
    on_object: ObjectCallback | None = None,
    stats: LiveStats | None = None,
) -> ScanReport:
    """List everything under `opts.prefix`, classify each object, and count.

    `on_object` sees every object exactly once (with its kind and normalized mime type), as
    soon as its page is listed. Folders that fail after retries are in `failures`.
    """
    stats = stats or LiveStats()
    started = time.monotonic()
    async with open_source(opts) as opened:
        report = ScanReport(api=opened.source.label, warnings=opened.warnings)
        stats.begin(len(opened.top.folders))

        def tally(counts: Counter[str], objects: list[ListedObject]) -> None:
            for obj in objects:
                kind, mime = classify_path(obj.path, obj.mimetype)
                counts[kind] += 1
                if on_object is not None:
                    on_object(obj, kind, mime)
            stats.objects += len(objects)

        tally(report.loose, opened.top.loose_files)
        report.loose_media = loose_media(opened.top)

        async def handle(event: ListingEvent) -> None:
            if isinstance(event, FolderFailure):
                report.failures.append(event)
                stats.errors += 1
                stats.done += 1
                return
            tally(report.folders.setdefault(event.folder, Counter()), event.objects)
            if event.last:
                stats.done += 1
            counts = opened.source.request_counts()
            stats.calls, stats.retries = counts.calls, counts.retries

        await for_each_event(opened, opts.list_concurrency, handle)
        counts = opened.source.request_counts()
        report.calls, report.retries = counts.calls, counts.retries
    report.elapsed_s = time.monotonic() - started
    return report
