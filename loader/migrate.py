"""`loader migrate`: the whole pipeline, visible in one place.

    source (listing.walk) → rows (rows.FolderRows, customer per folder) → batches
    → sink (UpsertSink, `--db-concurrency` connections) → folder progress → report

Every stage runs at once in one anyio task group, connected by bounded memory streams, so a
slow database slows the listing down (backpressure) instead of filling memory.

A folder is the unit of progress: it is done only when it was listed to the end and every
batch holding its rows is committed, and its chunk of folders (loader.chunks) is recorded
once all of them are. A killed run is resumed (`--resume RUN_ID`) by redoing the chunks not
recorded, which is idempotent: the upsert skips rows that already match, and the journal
keeps the first "before" of each row.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import asyncpg
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from loader import runs
from loader.backup import RunBackup
from loader.batcher import Batch, Batcher
from loader.db import create_pool, init_schema, retrying
from loader.errors import (
    BadInputError,
    ExitCode,
    LoaderError,
    PrivateBucketError,
    StorageUnreachableError,
    as_loader_error,
)
from loader.eventlog import EventLog
from loader.ledger import FolderLedger
from loader.listing import (
    FolderFailure,
    ListingEvent,
    OpenedSource,
    SourceOptions,
    folder_chunks,
    loose_media,
    loose_media_warning,
    open_source,
    walk,
)
from loader.plan import Plan, PlanSink
from loader.preflight import check_target
from loader.progress import LiveStats
from loader.redact import RECORDED, recorded_options
from loader.rows import AssetRow, CdnUrls, NoCdnUrls
from loader.sink import BatchOutcome, UpsertSink, merge_duplicates
from loader.sqlfiles import sql
from loader.storage_client import ClientStats

MatchMode = Literal["auto", "none"]


@dataclass(slots=True, frozen=True)
class MigrateOptions:
    """A run's options. Immutable once the run starts: a resume or join works with the run's
    own (`_adopted`), and the cdn_url base the run settles on is a new value (`replace`).
    The fields marked RECORDED (and the source's) are stored with the run and its reports."""

    source: SourceOptions
    database_url: str
    # the sweep's best (README, docs/performance.md)
    batch_size: int = field(default=10_000, metadata=RECORDED)
    db_concurrency: int = field(default=2, metadata=RECORDED)
    upload_source: str = field(default="customer-migration", metadata=RECORDED)
    cdn_url: Literal["fill", "overwrite", "keep"] = field(default="fill", metadata=RECORDED)
    cdn_base: str | None = field(default=None, metadata=RECORDED)
    # Where this run's cdn_urls point; stored with the run so a resume or join writes the same.
    public_url_base: str | None = field(default=None, metadata=RECORDED)
    match: MatchMode = field(default="auto", metadata=RECORDED)
    dry_run: bool = field(default=False, metadata=RECORDED)
    resume: int | None = None
    prepare_only: bool = False
    create_unique_index: bool = False
    backup: bool = True
    # verify --repair: only these folders, with these customers (no matching)
    folders: list[tuple[str, int | None]] | None = None
    log_file: Path | None = None
    # Every folder's row in the result (`MigrateResult.folders`, the --report JSON's); False:
    # only the folders not done (failed, or left by a run that stopped). The command reads
    # them all only for --report: at 100,000 folders they took ~45 MB at the end of the run.
    folder_rows: bool = True
    flush_interval_s: float = 0.5
    takeover_poll_s: float = 0.5

    def recorded(self) -> dict[str, Any]:
        """The options stored with the run and in reports: no secrets."""
        return recorded_options(self.source, self)


@dataclass(slots=True)
class MigrateResult:
    run_id: int | None
    status: str  # succeeded | incomplete | running (no live worker: resume) | prepared | planned
    totals: dict[str, int]
    folders: list[dict[str, Any]]
    failed_rows: list[dict[str, Any]]
    settings: dict[str, Any]
    match_summary: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    loose_files: list[str] = field(default_factory=list)  # media outside customer folders
    backup_id: int | None = None  # the backup this run took (None: it changed nothing)
    requests: ClientStats | None = None  # this process's Storage requests, when known

    @property
    def exit_code(self) -> ExitCode:
        """0 only for a run that is done (or a plan); a run left open is never a success."""
        if self.status == "incomplete":
            return ExitCode.INCOMPLETE
        if self.status == "running":
            return ExitCode.ABORTED
        return ExitCode.OK

    def as_report(self) -> dict[str, Any]:
        """The `--report` JSON: counts per action and per folder, failures, timings, settings."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "inserted": self.totals.get("inserted", 0),
            "updated": self.totals.get("updated", 0),
            "unchanged": self.totals.get("unchanged", 0),
            "failed": self.totals.get("failed", 0),
            "totals": self.totals,
            "match": self.match_summary,
            "folders": self.folders,
            "failed_folders": [
                {"folder": f["folder"], "reason": f.get("error")}
                for f in self.folders
                if f.get("state") == "failed"
            ],
            "failed_rows": self.failed_rows,
            "loose_files": self.loose_files,
            "elapsed_s": round(self.elapsed_s, 3),
            "settings": self.settings,
            "warnings": self.warnings,
            "backup_id": self.backup_id,
            "storage_requests": asdict(self.requests) if self.requests is not None else None,
        }


async def migrate(
    opts: MigrateOptions, *, stats: LiveStats | None = None, log: EventLog | None = None
) -> MigrateResult:
    """Run (or resume, join, plan) a migration and return what it did.

    Raises `LoaderError` subclasses for preflight problems (nothing written) and
    `LoaderError(ABORTED)` when the run stops midway; the run is then resumable.
    """
    stats = stats or LiveStats()
    log = log or EventLog(None)
    started = time.monotonic()
    # A dry run writes nothing at all: no loader schema, no index, read-only connections.
    pool = await create_pool(opts.database_url, opts.db_concurrency + 1, read_only=opts.dry_run)
    try:
        async with pool.acquire() as conn:
            if not opts.dry_run:
                await init_schema(conn)
                await runs.mark_interrupted(conn)
            plan_notes = await check_target(
                conn, create_unique_index=opts.create_unique_index, dry_run=opts.dry_run
            )
        run_id = None
        # A resumed run whose folders a crash left half registered: it decides them again.
        unregistered = False
        if opts.resume is not None:
            run_id, opts, unregistered = await _adopted(pool, opts)
            stats.run_id = run_id
        backup: RunBackup | None = None
        stats.step("listing the top level")
        async with open_source(opts.source) as opened, contextlib.AsyncExitStack() as stack:
            log.emit("top_level_listed", folders=len(opened.top.folders))
            loose_files = loose_media(opened.top)
            if (loose_warning := loose_media_warning(loose_files)) is not None:
                opened.warnings.append(loose_warning)
            cdn = _cdn_urls(opts, opened)
            if cdn.base:
                opts = replace(opts, public_url_base=cdn.base)
            match_summary: dict[str, int] = {}
            folders: list[tuple[str, int | None]] = []
            later: list[tuple[str, int | None]] = []  # registered while the worker starts
            chunk = 1  # folders per chunk of the folders this process registers
            if run_id is None or unregistered:
                if opts.folders is not None:
                    folders, match_summary = opts.folders, {"repair": len(opts.folders)}
                else:
                    stats.step("matching folders to customers")
                    folders, match_summary = await _decide_customers(
                        pool, opened, opts.match, dry_run=opts.dry_run
                    )
                    log.emit("folders_matched", **match_summary)
                chunk = runs.chunk_size(len(folders))
                if run_id is not None:
                    await runs.register_folders(pool, run_id, folders, chunk=chunk, last=True)
                    log.emit("run_registered", run_id=run_id, folders=len(folders))
                elif not opts.dry_run:
                    first = folders
                    if opts.folders is None and not opts.prepare_only:
                        first, later = folders[:REGISTER_FIRST], folders[REGISTER_FIRST:]
                    run_id = await runs.create_run(
                        pool,
                        bucket=opts.source.bucket,
                        prefix=opened.source.prefix,
                        options=opts.recorded(),
                        folders=first,
                        chunk=chunk,
                        registering=bool(later),
                    )
                    stats.run_id = run_id
                    log.emit("run_created", run_id=run_id, folders=len(folders))
                    # The run's backup: a snapshot held from now, copied only if it changes rows.
                    if opts.backup and not opts.prepare_only:
                        backup = await stack.enter_async_context(
                            RunBackup(opts.database_url, run_id)
                        )
            if opts.prepare_only:
                return await _result(pool, opts, run_id, "prepared", match_summary, started)
            overwrite = opts.cdn_url == "overwrite"
            plan = Plan(dict(folders)) if opts.dry_run else None
            checks: UpsertSink | None = None
            if plan is not None:
                sink: _Sink = PlanSink(pool, overwrite)
                record: _Record = plan
            else:
                assert run_id is not None
                sink = UpsertSink(pool, run_id, opts.upload_source, overwrite)
                record = runs.RunRecord(pool, run_id)
                # A check cannot tell whether each cdn_url is the new one: not for overwrite.
                checks = None if overwrite else sink
            worker = _Worker(
                pool, opened, opts, cdn, stats, log, sink=sink, record=record, checks=checks
            )
            worker.on_change = backup.changed if backup is not None else None
            try:
                if plan is not None:
                    await worker.plan(folders)
                    status = "planned"
                else:
                    assert run_id is not None
                    registered = anyio.Event()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_register_later, pool, run_id, later, chunk, registered)
                        status = await worker.run(run_id, registered, len(folders))
            except anyio.get_cancelled_exc_class():
                # Interrupted (SIGINT/SIGTERM): record it if the database lets us, quickly.
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await _aborted(pool, run_id, LoaderError("interrupted"), log)
                raise
            except Exception as exc:
                error = as_loader_error(exc)
                if error is None:
                    raise
                raise await _aborted(pool, run_id, error, log) from exc
            warnings = opened.warnings + plan_notes
            requests = opened.source.request_counts()
        if backup is not None:
            warnings = [*warnings, *_backup_outcome(backup, log)]
        if plan is not None:
            planned = _planned_result(opts, plan, match_summary, warnings, started)
            planned.loose_files = loose_files
            planned.requests = requests
            return planned
        log.emit("worker_finished", run_id=run_id, status=status)
        async with anyio.create_task_group() as tg:
            # Fresh planner statistics after rows changed (a no-op re-run skips it), on
            # another connection while the report is read, unless autovacuum sees to them.
            if worker.rows_changed:
                tg.start_soon(_analyze, pool, log)
            result = await _result(pool, opts, run_id, status, match_summary, started)
        result.elapsed_s = time.monotonic() - started  # the statistics included
        result.warnings = warnings
        result.loose_files = loose_files
        result.backup_id = backup.backup_id if backup is not None else None
        result.requests = requests
        return result
    finally:
        await pool.close()


# A new run's first folders are written with it, the rest by chunks while its worker starts on
# these (writing 10,000 folder rows took 0.25-0.45 s before any row could flow; 100,000, 2.5 s).
REGISTER_FIRST = 1_000
REGISTER_CHUNK = 10_000


async def _register_later(
    pool: asyncpg.Pool,
    run_id: int,
    later: list[tuple[str, int | None]],
    chunk: int,
    done: anyio.Event,
) -> None:
    """Register a new run's folders after its first ones, then say so (`done`)."""
    for start in range(0, len(later), REGISTER_CHUNK):
        last = start + REGISTER_CHUNK >= len(later)
        folders = later[start : start + REGISTER_CHUNK]
        await runs.register_folders(pool, run_id, folders, chunk=chunk, last=last)
    done.set()


def _backup_outcome(backup: RunBackup, log: EventLog) -> list[str]:
    """Log what the run's backup did; a warning when it was needed and failed."""
    if backup.backup_id is not None:
        log.emit("backup_done", run_id=backup.run_id, backup_id=backup.backup_id)
    elif backup.error is not None:
        log.emit("backup_failed", run_id=backup.run_id, reason=backup.error)
        return [
            f"the run's backup failed ({backup.error}); its journal still undoes the run"
            f" exactly (loader rollback {backup.run_id})"
        ]
    else:
        log.emit("backup_skipped", run_id=backup.run_id, changed=backup.taken)
    return []


async def _aborted(
    pool: asyncpg.Pool, run_id: int | None, exc: LoaderError, log: EventLog
) -> LoaderError:
    """The error to raise when a run stops midway: resumable, and saying how."""
    log.emit("run_aborted", run_id=run_id, reason=str(exc))
    if run_id is None:
        return exc
    # The database may be what failed; then the run stays 'running' with no live worker,
    # which the next command records as interrupted: resumable all the same.
    with contextlib.suppress(LoaderError):
        await runs.mark_aborted(pool, run_id)
    # A Storage server found down keeps its own exit code (6); anything else is "stopped" (12).
    code = exc.exit_code if isinstance(exc, StorageUnreachableError) else ExitCode.ABORTED
    return LoaderError(f"run {run_id} stopped: {exc}. Nothing is lost", exit_code=code)


async def _adopted(pool: asyncpg.Pool, opts: MigrateOptions) -> tuple[int, MigrateOptions, bool]:
    """Resume/join: the run's id, the options to work with (the run's own bucket, prefix
    and data options win over the flags), and whether its folders must be registered again:
    their registration was cut short, and no live worker is on it (`mark_interrupted`
    recorded it first) to finish it."""
    assert opts.resume is not None
    info = await runs.adopt_run(pool, opts.resume)
    own = info.options
    adopted = replace(
        opts,
        source=replace(opts.source, bucket=info.bucket, prefix=info.prefix),
        upload_source=own.get("upload_source", opts.upload_source),
        cdn_url=own.get("cdn_url", opts.cdn_url),
        cdn_base=own.get("cdn_base", opts.cdn_base),
        public_url_base=own.get("public_url_base"),
        match=own.get("match", opts.match),
    )
    return info.run_id, adopted, info.registering and info.status != "running"


def _cdn_urls(opts: MigrateOptions, opened: OpenedSource) -> CdnUrls:
    """Where cdn_urls point: a resumed or joined run's own base, else `--cdn-base`, else the
    bucket's public URLs on the Storage API root that answered (the run records it as its
    `public_url_base`).

    A private bucket's public URLs never work (the server answers "Bucket not found"), so
    writing them is refused unless a CDN or proxy is given (`--cdn-base`) or cdn_url is left
    alone (`--cdn-url keep`).
    """
    if opts.cdn_url == "keep":
        return NoCdnUrls()
    source = opened.source
    base = opts.public_url_base or opts.cdn_base
    if base is None:
        if source.bucket_public is False:
            raise PrivateBucketError(
                f"bucket {opts.source.bucket!r} is private: its public URLs would never work."
                " Pass --cdn-base (a CDN or proxy that serves it) or --cdn-url keep"
                " (leave cdn_url alone); nothing was written"
            )
        base = source.public_url_base
    if base is None:
        raise BadInputError("--source db needs --storage-url or --cdn-base to build cdn_url")
    return CdnUrls(base)


async def _decide_customers(
    pool: asyncpg.Pool, opened: OpenedSource, mode: MatchMode, *, dry_run: bool
) -> tuple[list[tuple[str, int | None]], dict[str, int]]:
    """Each folder's customer: the matcher's confident links and a person's decisions
    (a FolderMatch carries a customer id only when it is a link)."""
    folders = opened.top.folders
    if mode == "none":
        return [(f, None) for f in folders], {"untagged": len(folders)}
    from loader.match_db import links_with_database

    async with pool.acquire() as conn:
        return await links_with_database(conn, folders, remember=not dry_run)


async def _analyze(pool: asyncpg.Pool, log: EventLog) -> None:
    """ANALYZE image_assets after a run changed rows, unless autovacuum will: it analyzes a
    table once a tenth of its rows changed, so doing it here too would only repeat its work,
    at ~2 s per million rows (measured), at the end of the run."""

    async def analyze(conn: asyncpg.Connection) -> bool:
        if await conn.fetchval(sql("autovacuum_analyzes_assets")):
            return False
        await conn.execute(sql("analyze_image_assets"))
        return True

    try:
        analyzed = await retrying(pool, analyze, what="analyzing image_assets")
    except (asyncpg.PostgresError, LoaderError) as exc:
        log.emit("analyze_skipped", reason=str(exc))
        return
    log.emit("analyzed" if analyzed else "analyze_left_to_autovacuum")


class _Sink(Protocol):
    async def write(self, rows: Sequence[AssetRow]) -> BatchOutcome: ...


class _Record(Protocol):
    async def done(self, folders: list[tuple[str, Counter[str]]]) -> None: ...
    async def failed(self, folder: str, reason: str, counts: Counter[str]) -> None: ...
    def lost(self, folder: str) -> None: ...


class _Worker:
    """One process's share of a run: the claim loop and the pipeline (listing → batcher →
    writers). Which folder is done is the ledger's to say (loader.ledger); the worker only
    records what the ledger hands out, through `record`, and writes through `sink` (a dry
    run hands it a plan's sink and record: the worker never branches on it)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        opened: OpenedSource,
        opts: MigrateOptions,
        cdn: CdnUrls,
        stats: LiveStats,
        log: EventLog,
        *,
        sink: _Sink,
        record: _Record,
        checks: UpsertSink | None,
    ) -> None:
        self.pool = pool
        self.opened = opened
        self.opts = opts
        self.stats = stats
        self.log = log
        self.sink = sink
        self.record = record
        self.ledger = FolderLedger()
        self.batcher = Batcher(self.ledger, cdn, opened.source.prefix, opts.batch_size)
        self.grouping = opened.grouping()
        self.rows_changed = 0  # inserted or updated, by this worker
        self.claimed = 0  # folders claimed, by this worker
        # A re-run checks each folder listed whole in one query (sql/folders_unchanged.sql)
        # instead of building and probing its rows: from the start when the table has rows
        # under the prefix, while the last batch written found most of its rows unchanged,
        # and until checks mostly fail. So a first run, or one that changes most rows, holds
        # nothing back. `checks` is the sink that answers them (None: no checks, as for a
        # plan or --cdn-url overwrite).
        self.checks = checks
        self.on_change: Callable[[], None] | None = None  # the run's backup: rows changed

    async def plan(self, planned: list[tuple[str, int | None]]) -> None:
        """A dry run: the pipeline over `planned` folders, no claims."""
        self.stats.begin(len(planned))
        for folder, customer_id in planned:
            self.ledger.add(folder, customer_id)
        feed = folder_chunks([f for f, _ in planned], self.grouping, self._list_concurrency)
        await self._pipeline(feed)

    async def run(self, run_id: int, registered: anyio.Event, folders: int) -> str:
        """Work until no folder is left for a live worker, and return the run's status.
        `registered` is set once this process has registered the run's folders (`folders`
        of them, 0 when it did not: a resume or join); until then, it is never idle."""
        prefix = self.opened.source.prefix
        if self.checks is not None and prefix:
            self.batcher.checking = await self.checks.has_rows_under(prefix)
        async with runs.worker_lock(self.opts.database_url, run_id) as lock:
            self._locked(lock)
            # The bar covers the run's folders: a resumed run starts with those done before.
            done, total = await runs.folder_counts(self.pool, run_id)
            self.stats.begin(max(total, folders), done)
            # A worker leaves only when no folder of the run is left for a live worker: while
            # others still hold folders it waits, and takes over those of any that dies.
            idle_rounds = 0
            while True:
                claimed_before = self.claimed
                # Cancelled as soon as the lock's connection is lost: nothing is claimed,
                # listed or written without the lock (see loader.runs).
                async with lock.guard():
                    await self._pipeline(self._claimed(run_id, lock))
                    status = await runs.finalize_run(self.pool, run_id)
                    if status != "running":
                        return status
                    holders, live = await runs.other_holders(self.pool, run_id, lock.worker_id)
                    # Folders of a dead worker keep it trying: the claim that takes them over
                    # can miss them for a moment (another survivor checking that worker holds
                    # its lock for an instant), which must not end this worker as "not done".
                    busy = (live or holders or self.claimed > claimed_before
                            or not registered.is_set())  # fmt: skip
                    idle_rounds = 0 if busy else idle_rounds + 1
                    if idle_rounds >= 2 or (
                        not holders and not await runs.has_open_folders(self.pool, run_id)
                    ):
                        # Closed by another worker meanwhile, or (defensively) folders left
                        # that no one can claim: 'running' then fails the command as resumable.
                        return await runs.finalize_run(self.pool, run_id)
                    self.log.emit("waiting_for_workers", run_id=run_id, live=live)
                    await anyio.sleep(self.opts.takeover_poll_s)
                if lock.lost:
                    await self._relock(lock)
                    idle_rounds = 0

    @property
    def _run_record(self) -> runs.RunRecord:
        assert isinstance(self.record, runs.RunRecord)  # a plan never claims
        return self.record

    def _locked(self, lock: runs.WorkerLock) -> None:
        assert isinstance(self.sink, UpsertSink)
        self._run_record.worker_id = self.sink.worker_id = lock.worker_id
        self.log.emit("worker_started", run_id=lock.run_id, worker=lock.worker_id)

    async def _relock(self, lock: runs.WorkerLock) -> None:
        """The lock's connection was lost and the pipeline stopped: other workers may be
        taking this one's folders over. The folders in flight are forgotten (their committed
        batches stand; the rest is redone by whoever claims them, idempotently), the lock is
        taken again under a new id, and only then does claiming start again."""
        self.log.emit("worker_lock_lost", run_id=lock.run_id, worker=lock.worker_id)
        self.ledger.forget_all()
        self.batcher.forget_all()
        self._run_record.forget_all()
        await lock.retake()
        self._locked(lock)

    async def _claimed(self, run_id: int, lock: runs.WorkerLock) -> AsyncIterator[list[str]]:
        """Claimed folders, one group's worth per list worker at a time (the group size grows
        as folders are listed, so each slice is cut when the walk asks for it). Folders are
        claimed by whole chunks: as many as make up that many folders, at least one. Only
        the chunks in flight are held in memory; the run's others live in loader.chunks."""
        chunk_len = 0  # the most folders a chunk of the run held so far (0: none seen yet)
        while True:
            wanted = self._list_concurrency * self.grouping.size
            chunks = max(1, wanted // chunk_len) if chunk_len else 1
            claimed = await runs.claim_chunks(
                self.pool, run_id, lock.worker_id, chunks, self._run_record.in_flight()
            )
            chunk_len = max([chunk_len, *(len(folders) for _, folders in claimed)])
            # A claim also returns the chunks this worker already holds (see chunks_claim):
            # the ones in flight are known; any other is one whose claim reply was lost.
            fresh = [
                pair
                for chunk_id, folders in claimed
                if self._run_record.claimed(chunk_id, folders)
                for pair in folders
            ]
            if not fresh:
                return
            for folder, customer_id in fresh:
                self.ledger.add(folder, customer_id)
                self.log.emit("folder_claimed", folder=folder, customer_id=customer_id)
            self.claimed += len(fresh)
            slices = folder_chunks([f for f, _ in fresh], self.grouping, self._list_concurrency)
            async for folders in slices:
                yield folders

    @property
    def _list_concurrency(self) -> int:
        return max(1, self.opts.source.list_concurrency)

    async def _pipeline(self, feed: AsyncIterator[list[str]]) -> None:
        concurrency = self.opts.source.list_concurrency
        events_send, events_receive = anyio.create_memory_object_stream[ListingEvent](
            concurrency * 2
        )
        batch_send, batch_receive = anyio.create_memory_object_stream[Batch](
            self.opts.db_concurrency
        )
        async with anyio.create_task_group() as tg:
            source, grouping = self.opened.source, self.grouping
            tg.start_soon(
                lambda: walk(source, feed, events_send, concurrency=concurrency, grouping=grouping)
            )
            tg.start_soon(self._consume, events_receive, batch_send)
            async with batch_receive, anyio.create_task_group() as writers:
                for _ in range(self.opts.db_concurrency):
                    writers.start_soon(self._write_batches, batch_receive.clone())

    # -- rows stage -------------------------------------------------------------------

    async def _consume(
        self, events: ObjectReceiveStream[ListingEvent], batches: ObjectSendStream[Batch]
    ) -> None:
        batcher = self.batcher
        async with events, batches:
            while True:
                event = None
                try:
                    try:
                        # One waiting costs no timer and no yield (most events, in a busy run;
                        # the bounded stream holds few, so the listing still gets its turn).
                        event = events.receive_nowait()
                    except anyio.WouldBlock:
                        # A quiet listing still flushes what it has: small runs end promptly.
                        with anyio.move_on_after(self.opts.flush_interval_s):
                            event = await events.receive()
                except anyio.EndOfStream:
                    break
                if event is None:
                    full = batcher.flush()
                elif isinstance(event, FolderFailure):
                    await self._folder_failed(event)
                    full = []
                else:
                    self.stats.objects += len(event.objects)
                    full = batcher.page(event.folder, event.objects)
                    if event.last:
                        full += batcher.listed(event.folder)
                for batch in full:
                    await batches.send(batch)
                if event is None:
                    # Folders listed whole whose rows were all committed: recorded with the
                    # next batch's commit, or here when the listing is quiet.
                    await self._finish_ready()
                if full or event is None:
                    # Per batch, not per page: a copy of the counts per page cost ~10 µs,
                    # 1-2 s of CPU at 100,000 folders.
                    self._update_stats()
            for batch in batcher.flush():
                await batches.send(batch)
        self._update_stats()
        await self._finish_ready()

    async def _folder_failed(self, event: FolderFailure) -> None:
        self.batcher.failed(event.folder)
        counts = self.ledger.failed(event.folder)
        if counts is None:
            return  # lost: another worker holds it now
        self.stats.errors += 1
        self.stats.failed[event.folder] = event.reason
        self.log.emit("folder_failed", folder=event.folder, reason=event.reason)
        await self.record.failed(event.folder, event.reason, counts)

    # -- sink stage -------------------------------------------------------------------

    async def _write_batches(self, batches: ObjectReceiveStream[Batch]) -> None:
        async with batches:
            async for batch in batches:
                if batch.checks:
                    outcome = await self._check_folders(batch)
                else:
                    outcome = await self.sink.write(batch.rows)
                    if self.checks is not None:
                        unchanged = sum(c["unchanged"] for c in outcome.per_folder.values())
                        self.batcher.checking = unchanged * 2 >= len(batch.rows)
                changed = sum(c["inserted"] + c["updated"] for c in outcome.per_folder.values())
                self.rows_changed += changed
                if changed and self.on_change is not None:
                    self.on_change()
                for folder in outcome.lost:
                    if self.ledger.lost(folder):
                        self.record.lost(folder)
                        self.log.emit("folder_lost", folder=folder)
                for folder in batch.folders:
                    self.ledger.committed(folder, outcome.per_folder.get(folder))
                for row, reason in outcome.failures:
                    self.log.emit("row_failed", file_path=row.file_path, reason=reason)
                self.stats.rows_written += len(batch.rows) + sum(c.media for c in batch.checks)
                self.stats.errors += len(outcome.failures)
                self.log.emit("batch_written", rows=len(batch.rows), retries=outcome.retries,
                              failed=len(outcome.failures))  # fmt: skip
                await self._finish_ready()

    async def _check_folders(self, batch: Batch) -> BatchOutcome:
        """Folders listed whole: those whose rows are all in place count as unchanged, the
        others are written row by row."""
        assert self.checks is not None
        same = await self.checks.unchanged_folders(batch.checks)
        outcome = BatchOutcome()
        rows: list[AssetRow] = []
        for check, unchanged in zip(batch.checks, same, strict=True):
            if unchanged:
                outcome.per_folder[check.folder] = Counter(unchanged=check.media)
            else:
                # kinds were counted with the check
                batch.builders[check.folder].add_page(check.objects, rows, Counter())
        rows = merge_duplicates(rows)
        for start in range(0, len(rows), self.opts.batch_size):
            outcome.add(await self.sink.write(rows[start : start + self.opts.batch_size]))
        # Checks that mostly fail (a first run, or a run changing most rows) cost a query
        # each for nothing: from now on folders go straight to rows.
        if sum(same) * 2 < len(same):
            self.batcher.checking = False
        return outcome

    async def _finish_ready(self) -> None:
        """Record done the folders the ledger says are listed whole and committed whole."""
        ready = self.ledger.take_ready()
        if not ready:
            return
        await self.record.done(ready)
        self.ledger.finished([folder for folder, _ in ready])
        self.stats.done += len(ready)
        for folder, counts in ready:
            self.log.emit("folder_done", folder=folder, **counts)

    def _update_stats(self) -> None:
        counts = self.opened.source.request_counts()
        self.stats.calls, self.stats.retries = counts.calls, counts.retries


# -- results ------------------------------------------------------------------------------


async def _result(
    pool: asyncpg.Pool,
    opts: MigrateOptions,
    run_id: int | None,
    status: str,
    match_summary: dict[str, int],
    started: float,
) -> MigrateResult:
    assert run_id is not None
    stored = await runs.run_report(pool, run_id, every_folder=opts.folder_rows)
    totals = {k: int(v) for k, v in stored["totals"].items()}
    totals["unchanged"] = max(
        0, totals["media"] - totals["inserted"] - totals["updated"] - totals["failed"]
    )
    return MigrateResult(
        run_id=run_id,
        status=status,
        totals=totals,
        folders=stored["folders"],
        failed_rows=stored["failed_rows"],
        settings=opts.recorded(),
        match_summary=match_summary,
        elapsed_s=time.monotonic() - started,
    )


# How long a stopped run's report waits for the database before it says only what this
# process counted (the database may be what stopped the run).
STOPPED_READ_S = 5.0


async def stopped_report(opts: MigrateOptions, run_id: int, stats: LiveStats) -> dict[str, Any]:
    """The `--report` of a run that stopped midway (interrupted, database or Storage lost, a
    bug): the run as stored, all workers and resumes included, when the database answers
    within STOPPED_READ_S; else what this process counted, saying so."""
    with anyio.move_on_after(STOPPED_READ_S):
        try:
            pool = await create_pool(opts.database_url, 1)
            try:
                result = await _result(pool, opts, run_id, "stopped", {}, stats.started)
            finally:
                await pool.close()
            return {**result.as_report(), "totals_from": "database"}
        except (LoaderError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass
    return {
        "run_id": run_id,
        "status": "stopped",
        "totals_from": "this process (the database did not answer)",
        "folders": stats.total,
        "folders_done": stats.done,
        "objects_listed": stats.objects,
        "rows": stats.rows_written,
        "failed_folders": [{"folder": f, "reason": r} for f, r in stats.failed.items()],
        "elapsed_s": round(time.monotonic() - stats.started, 3),
        "settings": opts.recorded(),
    }


def _planned_result(
    opts: MigrateOptions,
    plan: Plan,
    match_summary: dict[str, int],
    warnings: list[str],
    started: float,
) -> MigrateResult:
    totals: Counter[str] = Counter()
    for folder in plan.folders:
        totals.update(folder["counts"])
    totals["folders"] = len(plan.folders)
    totals["folders_failed"] = sum(1 for f in plan.folders if f["state"] == "failed")
    return MigrateResult(
        run_id=None,
        status="planned",
        totals=dict(totals),
        folders=sorted(plan.folders, key=itemgetter("folder")),
        failed_rows=[],
        settings=opts.recorded(),
        match_summary=match_summary,
        warnings=warnings,
        elapsed_s=time.monotonic() - started,
    )
