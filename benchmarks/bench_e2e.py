"""The loader end to end, side by side with the naive algorithm and the database's limit.

One process seeds a synthetic bucket (`--folders` × `--files` objects, half of each folder in
2–3 `YYYY-MM-DD/` sub-folders) into our Storage server (a separate process, `--latency-ms`
per call) and a fresh database on the embedded PostgreSQL (90% of folders linked to a
customer), then measures these steps (`--steps`, a comma list; default all, in this order):

- `first`, `rerun`, `tag`: the first run, the no-change re-run, the +1-tag run (every linked
  folder gets a second customer): `loader.migrate.migrate()` in a child process (its peak RSS
  and CPU from wait4), with the CPU of PostgreSQL and of the Storage server over the same
  interval; the re-run also counts the rows written to every table (pg_stat_user_tables)
  outside the run's own bookkeeping. Per run: `floor_s`, the two-core floor = (CPU-seconds
  of the loader child + PostgreSQL + the Storage server) / os.cpu_count(), and
  `wall_vs_floor` = wall / floor (1.0: every core busy with our work all along; more: time
  waiting, or cores lent to others); `cpu_others_s`, the CPU-seconds the rest of the machine
  used meanwhile (/proc/stat minus ours: other users, the kernel); the 1-minute load average
  read before the run (`load_before`) and after it (`load`). The load average lags (a
  minute's time constant): `load_before` of a run still holds part of the previous one;
  `cpu_others_s` does not;
- `rollback`: rollback of the +1-tag run, then of the first run (wall time);
- `naive`: the naive algorithm (the user's plan: per folder a sequential recursive listing,
  then per file SELECT by file_path and INSERT or UPDATE) on a sample of `--naive-folders`
  folders, extrapolated per object to the whole bucket (said so in the output);
  `loader_vs_naive` only when the first run ran too;
- `copy`: the sink alone vs raw binary COPY of the same rows into an empty indexed copy of
  image_assets, both at equal connections: UpsertSink with `--db-concurrency` writers
  (batches of 5,000), COPY with the rows cut into `--db-concurrency` consecutive parts, each
  COPYed on its own connection at the same time (`copy_connections`); `upsert_vs_copy` =
  COPY's time / the sink's;
- `listing`: listing alone (`scan()` at the default concurrency) vs its ideal, calls ×
  latency / concurrency: `listing_vs_ideal`;
- with `--stall-rate R` (with the first run): the first run again, in a fresh database,
  against a second Storage server on which a share R of list and bucket responses stall (the
  devtools server's stall, `Faults.stall_s`; no other fault): `stall_vs_clean` = its wall
  time / the clean first run's, with the Storage request counts (early retries, hedges) of
  both.

Steps depend on each other: `rerun` and `tag` need the first run in the same database,
`rollback` needs the +1-tag run (it rolls back both). A step brings the steps it needs:
`--steps rollback` runs first, tag and rollback, and says so in one line; an unknown name or
an empty list is refused. `--steps first` alone is the first run and nothing else (what
bench_scaling.py runs). The JSON has the keys of the steps that ran and no others: `wall_s`,
`first_run` (first); `rerun_wall_s`, `rerun`, `rerun_rows_written`, `rerun_bookkeeping_rows`
(the loader's own rows), `rerun_wal_mb` (the WAL the re-run wrote; image_assets is vacuumed
before the step, so that autovacuum's first pass over the first run's rows falls outside it)
(rerun); `tag_run_wall_s`, `tag_run` (tag); `rollback_tag_run_s`, `rollback_first_run_s`
(rollback); `naive_sample`, `naive_extrapolated_s`, `loader_vs_naive` (naive);
`sink_vs_copy`, `upsert_vs_copy`, `copy_connections` (copy); `listing`, `listing_vs_ideal`
(listing); `peak_rss_mb` (the most of the migrate runs), `steps`, `objects`, `cores`,
`settings`, `versions` always.

Backups are off in these runs (`backup=False`): they are measured by their own benchmark.
Prints a table and writes `bench-results/bench_e2e[.quick].json` (untracked;
`bench_e2e.<steps>[.quick].json` when not all steps ran, `--output PATH` to choose).
`--sweep list-concurrency=16,32,64` (or batch-size=…, db-concurrency=…, group-pages=…,
hedge-after=off,2,3, stall-factor=off,4,8, or the constant stall-floor-s=0.25,0.5,1) times
first runs over the grid instead and writes a CSV, and a PNG when matplotlib is installed;
with `--stall-rate` each point is timed against both servers.

`--match none` runs the migrations without matching folders to customers (the pipeline's own
cost per folder). With the environment variable `BENCH_PROFILE=PATH`, each migrate child runs
under cProfile and writes its statistics to `PATH.<pid>` (read with `python -m pstats`); with
`BENCH_EVENTS=PATH`, each writes its event log (as `--log-file`) to `PATH.<pid>`, with the
process's start first (`process_started`) and its RSS every 0.1 s (`rss_mb`): the serial
start, the tail and the memory, event by event. Both cost CPU (an event per folder, cProfile's
hooks): read the times they give as where time goes, not as timings.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import common  # first: sets up sys.path and LOADER_STATE_DIR
import psutil
from bench_listing import run_scan
from bench_upsert import sink_pass
from common import BUCKET, KEY, PREFIX, BucketShape, bucket_objects, folder_name

from loader import db, runs
from loader.cli_runtime import default
from loader.devtools.storage_server import StoredObject
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions
from loader.rows import CdnUrls, FolderRows
from loader.sink import merge_duplicates
from loader.storage_client import public_url_base

LINKED_SHARE = 0.9  # folders with a customer
TAG_RUN_ID_OFFSET = 10_000_000  # customers of the +1-tag run
# The steps of a comparison, in the order they run; a step runs with the steps it requires.
STEPS = ("first", "rerun", "tag", "rollback", "naive", "copy", "listing")
REQUIRES = {"rerun": ("first",), "tag": ("first",), "rollback": ("tag",)}
MIGRATE_STEPS = {"first run": "first_run", "no-change re-run": "rerun", "+1-tag run": "tag_run"}
# The loader's own bookkeeping, which a no-change re-run still writes.
BOOKKEEPING_TABLES = ("loader.runs", "loader.chunks", "loader.match_memo")
WRITE_TABLES = ("public.image_assets", "public.customers", "loader.journal_inserts",
                "loader.journal_updates", "loader.backups", "loader.rollbacks")  # fmt: skip


def resolve_steps(text: str, *, stall: bool = False) -> tuple[list[str], list[str]]:
    """The steps of `--steps` (a comma list of STEPS) with those they require (the first run
    too with `stall`: `stall_vs_clean` compares with it), in running order, and the required
    ones that were added. Raises ValueError for an unknown name or an empty list."""
    chosen = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(chosen - set(STEPS))
    if unknown or not chosen:
        raise ValueError(f"--steps: unknown {', '.join(unknown) or '(none given)'}; "
                         f"choose from {','.join(STEPS)}")  # fmt: skip
    wanted = chosen | ({"first"} if stall else set())
    pending = list(wanted)
    while pending:
        for needed in REQUIRES.get(pending.pop(), ()):
            if needed not in wanted:
                wanted.add(needed)
                pending.append(needed)
    return [s for s in STEPS if s in wanted], [s for s in STEPS if s in wanted - chosen]


# -- the child: one migrate() run, measured from outside --------------------------------------


def child_migrate(spec: str) -> None:
    """Run one migrate with the options in `spec` (JSON) and print its result as JSON."""
    from loader import storage_client
    from loader.listing import SourceOptions
    from loader.migrate import MigrateOptions, migrate

    args = json.loads(spec)
    if "stall_floor_s" in args:  # a sweep measuring the constant (not a flag)
        storage_client.STALL_FLOOR_S = args["stall_floor_s"]
    source = SourceOptions(
        bucket=BUCKET, prefix=PREFIX, storage_url=f"{args['url']}/storage/v1", key=KEY,
        list_concurrency=args["list_concurrency"], group_pages=args["group_pages"],
        hedge_after=args["hedge_after"], stall_factor=args["stall_factor"],
    )  # fmt: skip
    opts = MigrateOptions(
        source=source, database_url=args["database_url"], batch_size=args["batch_size"],
        db_concurrency=args["db_concurrency"], match=args["match"], backup=False,
        folder_rows=False,  # as `loader migrate` without --report
    )  # fmt: skip
    from loader.cli_runtime import run
    from loader.eventlog import EventLog

    events = os.environ.get("BENCH_EVENTS")
    log = EventLog(Path(f"{events}.{os.getpid()}") if events else None)
    if events:  # the events' clock starts with the process, imports included
        started = common.dt.datetime.fromtimestamp(psutil.Process().create_time(), common.dt.UTC)
        log.emit("process_started", at=started.isoformat())
        threading.Thread(target=sample_rss, args=(log,), daemon=True).start()
    if profile := os.environ.get("BENCH_PROFILE"):
        # Where a run's time goes: cProfile's statistics, for `python -m pstats`.
        import cProfile

        with cProfile.Profile() as profiler:
            result = run(lambda: migrate(opts, log=log))
        profiler.dump_stats(f"{profile}.{os.getpid()}")
    else:  # as the command runs it (uvloop when installed)
        result = run(lambda: migrate(opts, log=log))
    print(json.dumps({"run_id": result.run_id, "totals": result.totals, "status": result.status,
                      "requests": result.as_report()["storage_requests"]}))  # fmt: skip


def sample_rss(log: Any) -> None:
    """Log this process's RSS every 0.1 s (`rss_mb` events), for as long as it runs."""
    me = psutil.Process()
    while True:
        log.emit("rss_mb", mb=round(me.memory_info().rss / 2**20, 1))
        time.sleep(0.1)


def measured_migrate(
    url: str, database_url: str, server: Any, storage_pid: int, **settings: float | None
) -> dict[str, Any]:
    """One migrate in a child process: wall, its peak RSS and CPU, PostgreSQL and server CPU,
    the two-core floor and what else the machine did meanwhile."""
    spec = json.dumps({"url": url, "database_url": database_url, **settings})
    storage, harness = psutil.Process(storage_pid), psutil.Process()
    load_before = os.getloadavg()[0]
    machine_before, harness_before = busy_cpu_s(), sum(harness.cpu_times()[:2])
    pg_before, st_before = common.postgres_cpu_s(server), sum(storage.cpu_times()[:2])
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child-migrate", spec],
        env=common.loader_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = child.communicate()  # reaps the child: its rusage is read below
    wall = time.perf_counter() - started
    cpu_postgres = common.postgres_cpu_s(server) - pg_before
    cpu_storage = sum(storage.cpu_times()[:2]) - st_before
    machine = busy_cpu_s() - machine_before
    cpu_harness = sum(harness.cpu_times()[:2]) - harness_before
    usage = child_rusage(child.pid)
    if child.returncode != 0:
        raise RuntimeError(f"migrate failed ({child.returncode}): {err.decode()[-2000:]}")
    ours = usage["cpu_s"] + cpu_postgres + cpu_storage
    floor = ours / (os.cpu_count() or 1)
    return {
        **json.loads(out.decode().strip().splitlines()[-1]),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage["maxrss_mb"], 1),
        "cpu_loader_s": round(usage["cpu_s"], 2),
        "cpu_postgres_s": round(cpu_postgres, 2),
        "cpu_storage_server_s": round(cpu_storage, 2),
        "floor_s": round(floor, 2),
        "wall_vs_floor": round(wall / floor, 2) if floor else None,
        "cpu_others_s": round(machine - ours - cpu_harness, 1),
        "load_before": round(load_before, 2),
        "load": round(os.getloadavg()[0], 2),
    }


def busy_cpu_s() -> float:
    """CPU-seconds the whole machine has been busy (all cores, every process and the kernel;
    /proc/stat, in ticks of 10 ms)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


_RUSAGE: dict[int, dict[str, float]] = {}


def child_rusage(pid: int) -> dict[str, float]:
    return _RUSAGE.pop(pid)


def _install_reaper() -> None:
    """Popen reaps its child with waitpid, which loses the child's rusage: use wait4."""

    def wait4_status(self: subprocess.Popen[Any], wait_flags: int) -> tuple[int, int]:
        pid, status, usage = os.wait4(self.pid, wait_flags)
        if pid:
            _RUSAGE[pid] = {
                "maxrss_mb": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        return pid, status

    subprocess.Popen._try_wait = wait4_status  # type: ignore[attr-defined]


# -- the database ------------------------------------------------------------------------------


async def seed_customers(url: str, folders: int, id_offset: int = 0) -> None:
    """Link LINKED_SHARE of the folders to a customer (ids from `id_offset` + 1): the first
    seeding, or with an offset the +1-tag run's new customers taking the folder names over."""
    linked = [i for i in range(folders) if (i % 10) < LINKED_SHARE * 10]
    async with db.connection(url) as conn, conn.transaction():
        await conn.execute("UPDATE customers SET folder_name = NULL")
        await conn.copy_records_to_table(
            "customers", columns=["id", "name", "phone", "folder_name"],
            records=[(id_offset + i + 1, f"고객{i}", f"010-{i:08d}", folder_name(i))
                     for i in linked],
        )  # fmt: skip


async def table_writes(url: str) -> tuple[dict[str, int], int]:
    """Rows inserted + updated + deleted so far per table (cumulative statistics), and the
    WAL position in bytes (the whole cluster's: the benchmark is its only writer)."""
    await anyio.sleep(1.2)  # backends flush their statistics at most once a second
    async with db.connection(url) as conn:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || relname AS t, n_tup_ins + n_tup_upd + n_tup_del AS n"
            " FROM pg_stat_user_tables"
        )
        wal = await conn.fetchval("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
    return {r["t"]: r["n"] for r in rows}, wal


async def vacuum_assets(url: str) -> None:
    """VACUUM image_assets: the work autovacuum owes the rows just written, done now."""
    async with db.connection(url) as conn:
        await conn.execute("VACUUM image_assets")


async def timed_rollback(url: str, run_id: int) -> float:
    from loader.rollback import rollback

    async with db.connection(url) as conn:
        started = time.perf_counter()
        await rollback(conn, run_id)
        return round(time.perf_counter() - started, 2)


# -- the naive algorithm -------------------------------------------------------------------


async def naive(url: str, database_url: str, folders: list[int]) -> dict[str, float]:
    """The user's plan, file by file: list each folder level by level (one call at a time,
    pages of 100 as the JS client's default), then per file look the row up by file_path and
    insert it or update its ai_tags and cdn_url."""
    from loader.storage_client import StorageClient

    cdn = CdnUrls(public_url_base(url, BUCKET))
    objects = 0
    started = time.perf_counter()
    async with (
        StorageClient(url, KEY, connections=1) as client,
        db.connection(database_url) as conn,
    ):
        for i in folders:
            tag = f"customer-{i + 1}"
            pending = [f"{PREFIX}{folder_name(i)}"]
            while pending:
                prefix = pending.pop()
                offset = 0
                while True:
                    page = await client.list_v1(BUCKET, prefix, limit=100, offset=offset)
                    for entry in page:
                        path = f"{prefix}/{entry['name']}"
                        if entry.get("id") is None:
                            pending.append(path)
                            continue
                        objects += 1
                        row = await conn.fetchrow(
                            "SELECT id, ai_tags FROM image_assets WHERE file_path = $1", path
                        )
                        if row is None:
                            await conn.execute(
                                "INSERT INTO image_assets (file_path, filename, ai_tags,"
                                " cdn_url, upload_source) VALUES ($1, $2, $3, $4, 'naive')",
                                path, entry["name"], [tag], cdn.url(path),
                            )  # fmt: skip
                        elif tag not in row["ai_tags"]:
                            await conn.execute(
                                "UPDATE image_assets SET ai_tags = ai_tags || $2::text,"
                                " cdn_url = $3, updated_at = now() WHERE id = $1",
                                row["id"], tag, cdn.url(path),
                            )  # fmt: skip
                    if len(page) < 100:
                        break
                    offset += 100
    wall = time.perf_counter() - started
    return {"objects": objects, "wall_s": round(wall, 2), "per_object_ms": wall / objects * 1e3}


# -- the database's limit --------------------------------------------------------------------


async def sink_vs_copy(server: Any, shape: BucketShape, connections: int) -> dict[str, Any]:
    """The same rows through UpsertSink (`connections` writers, batches of 5,000) and by raw
    binary COPY over as many connections (the rows cut into `connections` consecutive parts,
    each COPYed on its own connection at the same time), each into an empty indexed
    image_assets. `upsert_vs_copy` = COPY's time / the sink's."""
    cdn = CdnUrls(public_url_base("http://127.0.0.1", BUCKET))
    builders: dict[str, FolderRows] = {}
    rows = []
    for obj in bucket_objects(shape):
        folder = obj.name[len(PREFIX) :].split("/", 1)[0]
        builder = builders.get(folder) or builders.setdefault(folder, FolderRows(folder, 1, cdn))
        _, row = builder.build(_listed(obj))
        if row is not None:
            rows.append(row)
    rows = merge_duplicates(rows)
    stamp = common.dt.datetime.fromisoformat(common.STAMP)
    records = [r.record(stamp, "copy", stamp) for r in rows]
    async with common.fresh_database(server, "sink") as url:
        pool = await db.create_pool(url, connections)
        try:
            run_id = await runs.create_run(pool, bucket=BUCKET, prefix=PREFIX, options={},
                                           folders=[])  # fmt: skip
            async with pool.acquire() as conn:
                await conn.execute("CHECKPOINT")
            started = time.perf_counter()
            await sink_pass(pool, run_id, rows, batch_size=5000, writers=connections)
            sink_s = time.perf_counter() - started
            async with pool.acquire() as conn:
                await conn.execute("CREATE TABLE copy_target (LIKE image_assets INCLUDING ALL)")
                await conn.execute("CHECKPOINT")
            copy_s = await parallel_copy(pool, "copy_target", records, connections)
        finally:
            await pool.close()
    return {"rows": len(rows), "sink_s": round(sink_s, 2), "copy_s": round(copy_s, 2),
            "sink_connections": connections, "copy_connections": connections,
            "upsert_vs_copy": round(copy_s / sink_s, 3)}  # fmt: skip


async def parallel_copy(
    pool: asyncpg.Pool, table: str, records: list[tuple[Any, ...]], connections: int
) -> float:
    """Seconds to COPY `records` into `table` as `connections` consecutive parts at once, each
    on its own connection of `pool` (taken before the clock starts)."""
    from loader.rows import WRITTEN_COLUMNS

    size = max(1, -(-len(records) // connections))  # ceiling: all parts but the last full
    parts = [records[i : i + size] for i in range(0, len(records), size)]
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(pool.acquire()) for _ in parts]

        async def copy(conn: asyncpg.Connection, part: list[tuple[Any, ...]]) -> None:
            await conn.copy_records_to_table(table, records=part, columns=WRITTEN_COLUMNS)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for conn, part in zip(conns, parts, strict=True):
                tg.start_soon(copy, conn, part)
        return time.perf_counter() - started


def _listed(obj: StoredObject) -> Any:
    from loader.storage_objects import listed_object

    return listed_object(obj.name, obj.size, obj.mimetype, obj.created_at, obj.updated_at)


# -- the whole comparison ----------------------------------------------------------------


def versions(server: Any) -> dict[str, str]:
    import aiohttp

    from loader import __version__

    async def pg() -> str:
        async with db.connection(server.url()) as conn:
            return str(await conn.fetchval("SHOW server_version"))

    return {"loader": __version__, "python": sys.version.split()[0], "postgres": anyio.run(pg),
            "asyncpg": asyncpg.__version__, "aiohttp": aiohttp.__version__}  # fmt: skip


def run_settings(args: Any) -> dict[str, Any]:
    """The loader settings of every measured run (a sweep varies some of them)."""
    return {"list_concurrency": args.list_concurrency, "batch_size": args.batch_size,
            "db_concurrency": args.db_concurrency, "group_pages": args.group_pages,
            "hedge_after": args.hedge_after, "stall_factor": args.stall_factor,
            "match": args.match}  # fmt: skip


@contextlib.contextmanager
def stalling_server(args: Any, manifest: Path) -> Iterator[tuple[str, int]]:
    """A second Storage server whose list and bucket responses stall at `--stall-rate`."""
    faults = ["--fail-rate", str(args.stall_rate), "--fault-kind", "stall",
              "--seed", str(args.stall_seed)]  # fmt: skip
    with common.storage_server(manifest, latency_ms=args.latency_ms, faults=faults) as server:
        yield server


async def first_run(
    url: str, pid: int, server: Any, shape: BucketShape, settings: dict[str, Any], label: str
) -> dict[str, Any]:
    """A first run in a fresh database (customers seeded) against the Storage server `url`."""
    async with common.fresh_database(server, label) as database_url:
        await seed_customers(database_url, shape.folders)
        return await anyio.to_thread.run_sync(
            lambda: measured_migrate(url, database_url, server, pid, **settings)
        )


def compare(args: Any, manifest: Path, shape: BucketShape, server: Any) -> dict[str, Any]:
    steps = args.steps
    settings = run_settings(args)
    out: dict[str, Any] = {"objects": shape.objects, "cores": os.cpu_count(),
                           "latency_ms": args.latency_ms, "settings": settings,
                           "steps": steps}  # fmt: skip
    migrating = "first" in steps  # every other migrate step needs it (resolve_steps)
    with contextlib.ExitStack() as stack:
        if migrating or {"naive", "listing"} & set(steps):
            url, pid = stack.enter_context(
                common.storage_server(manifest, latency_ms=args.latency_ms)
            )

        async def runs_in_db() -> None:
            if migrating:
                async with common.fresh_database(server, "e2e") as database_url:
                    await seed_customers(database_url, shape.folders)
                    await migrate_steps(args, manifest, shape, server, url, pid, database_url, out)
            if "naive" in steps:
                async with common.fresh_database(server, "naive") as database_url:
                    print("  naive sample …", flush=True)
                    every = max(1, shape.folders // args.naive_folders)
                    sample = list(range(0, shape.folders, every))[: args.naive_folders]
                    out["naive_sample"] = await naive(url, database_url, sample)

        anyio.run(runs_in_db)
        if "listing" in steps:
            print("  listing alone …", flush=True)
            listing = run_scan(url, "auto", args.list_concurrency, args.latency_ms, pid)
            out["listing"] = {"api": listing.api, "calls": listing.calls,
                              "wall_s": listing.wall_s, "ideal_s": listing.ideal_s}  # fmt: skip
            out["listing_vs_ideal"] = round(listing.ratio, 3)
    if "copy" in steps:
        print(f"  sink alone vs COPY, each on {args.db_concurrency} connection(s) …", flush=True)
        out["sink_vs_copy"] = anyio.run(sink_vs_copy, server, shape, args.db_concurrency)
        out["upsert_vs_copy"] = out["sink_vs_copy"]["upsert_vs_copy"]
        out["copy_connections"] = args.db_concurrency
    if "first_run" in out:
        out["wall_s"] = out["first_run"]["wall_s"]
    if "rerun" in out:
        out["rerun_wall_s"] = out["rerun"]["wall_s"]
    if "tag_run" in out:
        out["tag_run_wall_s"] = out["tag_run"]["wall_s"]
    if "naive_sample" in out:
        naive_total = out["naive_sample"]["per_object_ms"] / 1e3 * shape.objects
        out["naive_extrapolated_s"] = round(naive_total, 1)
        if "first_run" in out:
            out["loader_vs_naive"] = round(naive_total / out["first_run"]["wall_s"], 1)
    measured = [out[k] for k in MIGRATE_STEPS.values() if k in out]
    if measured:
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in measured)
    return out


async def migrate_steps(
    args: Any, manifest: Path, shape: BucketShape, server: Any, url: str, pid: int,
    database_url: str, out: dict[str, Any],
) -> None:  # fmt: skip
    """The chosen migrate steps in one database (customers seeded): first run, then
    (chosen) the no-change re-run, the +1-tag run, the rollbacks."""
    steps, settings = args.steps, run_settings(args)

    def step(label: str) -> dict[str, Any]:
        print(f"  {label} …", flush=True)
        measured = measured_migrate(url, database_url, server, pid, **settings)
        print(f"    {measured}", flush=True)
        return measured

    first = out["first_run"] = await anyio.to_thread.run_sync(step, "first run")
    if args.stall_rate:
        print(f"  first run, {args.stall_rate:.0%} of responses stalling …")
        with stalling_server(args, manifest) as (stalled_url, stalled_pid):
            stalled = await first_run(stalled_url, stalled_pid, server, shape, settings,
                                      "stalled")  # fmt: skip
        print(f"    {stalled}", flush=True)
        ratio = round(stalled["wall_s"] / first["wall_s"], 2)
        out.update(stall_rate=args.stall_rate, stalled_first_run=stalled,
                   stall_vs_clean=ratio)  # fmt: skip
    if "rerun" in steps:
        await vacuum_assets(database_url)
        before, wal_before = await table_writes(database_url)
        out["rerun"] = await anyio.to_thread.run_sync(step, "no-change re-run")
        after, wal_after = await table_writes(database_url)
        out["rerun_rows_written"] = {t: after.get(t, 0) - before.get(t, 0) for t in WRITE_TABLES}
        out["rerun_bookkeeping_rows"] = {
            t: after.get(t, 0) - before.get(t, 0) for t in BOOKKEEPING_TABLES
        }
        out["rerun_wal_mb"] = round((wal_after - wal_before) / 2**20, 1)
    if "tag" in steps:
        await seed_customers(database_url, shape.folders, TAG_RUN_ID_OFFSET)
        out["tag_run"] = await anyio.to_thread.run_sync(step, "+1-tag run")
    if "rollback" in steps:
        print("  rollbacks …", flush=True)
        out["rollback_tag_run_s"] = await timed_rollback(database_url, out["tag_run"]["run_id"])
        out["rollback_first_run_s"] = await timed_rollback(database_url, first["run_id"])


def print_table(out: dict[str, Any]) -> None:
    print(f"\n{out['objects']:,} objects, Storage latency {out['latency_ms']} ms, "
          f"{out['cores']} cores, settings {out['settings']}, "
          f"steps {','.join(out['steps'])}")  # fmt: skip
    measured = [(label, out[k]) for label, k in MIGRATE_STEPS.items() if k in out]
    if measured:
        print(f"{'':18}{'wall':>8}{'RSS MB':>8}{'CPU loader':>11}{'CPU pg':>8}"
              f"{'CPU server':>11}{'floor':>8}{'wall/floor':>11}{'CPU others':>11}"
              f"{'load before/after':>18}")  # fmt: skip
    for label, r in measured:
        ratio = f"{r['wall_vs_floor']:.2f}" if r["wall_vs_floor"] else "–"
        print(
            f"{label:18}{r['wall_s']:>7.1f}s{r['peak_rss_mb']:>8.0f}{r['cpu_loader_s']:>10.1f}s"
            f"{r['cpu_postgres_s']:>7.1f}s{r['cpu_storage_server_s']:>10.1f}s"
            f"{r['floor_s']:>7.1f}s{ratio:>11}{r['cpu_others_s']:>10.1f}s"
            f"{r['load_before']:>12.2f} / {r['load']:.2f}"
        )
    if measured:
        print(f"floor = CPU-seconds of loader + PostgreSQL + Storage server / {out['cores']} "
              "cores; CPU others = the rest of the machine over the step")  # fmt: skip
    if "rerun_rows_written" in out:
        print(f"re-run rows written outside the run's bookkeeping: {out['rerun_rows_written']}")
        print(f"re-run bookkeeping rows written: {out['rerun_bookkeeping_rows']}, WAL "
              f"{out['rerun_wal_mb']} MB")  # fmt: skip
    if "rollback_tag_run_s" in out:
        print(f"rollback: +1-tag run {out['rollback_tag_run_s']} s, first run "
              f"{out['rollback_first_run_s']} s")  # fmt: skip
    if "naive_sample" in out:
        naive = out["naive_sample"]
        versus = (f" → loader_vs_naive {out['loader_vs_naive']}x"
                  if "loader_vs_naive" in out else "")  # fmt: skip
        print(
            f"naive (extrapolated from {naive['objects']:,} objects in {naive['wall_s']} s): "
            f"{out['naive_extrapolated_s']:,.0f} s{versus}"
        )
    if "sink_vs_copy" in out:
        svc = out["sink_vs_copy"]
        print(f"sink alone {svc['sink_s']} s vs raw COPY {svc['copy_s']} s ({svc['rows']:,} rows, "
              f"each on {svc['copy_connections']} connection(s)) → upsert_vs_copy "
              f"{out['upsert_vs_copy']}x")  # fmt: skip
    if "stall_vs_clean" in out:
        first, stalled = out["first_run"], out["stalled_first_run"]
        print(f"first run with {out['stall_rate']:.0%} of responses stalling: "
              f"{stalled['wall_s']} s vs {first['wall_s']} s clean → stall_vs_clean "
              f"{out['stall_vs_clean']}x; requests stalled {stalled['requests']}, "
              f"clean {first['requests']}")  # fmt: skip
    if "listing" in out:
        lst = out["listing"]
        print(f"listing alone ({lst['api']}, {lst['calls']:,} calls) {lst['wall_s']:.2f} s vs "
              f"ideal {lst['ideal_s']:.2f} s → listing_vs_ideal "
              f"{out['listing_vs_ideal']}x")  # fmt: skip


def sweep(args: Any, manifest: Path, shape: BucketShape, server: Any) -> dict[str, Any]:
    """First-run wall time over the grid of `--sweep`; CSV (and PNG with matplotlib). With
    `--stall-rate`, each run is followed by one with the same settings against the stalling
    server."""
    grid: dict[str, list[float | None]] = {}
    for part in args.sweep.split(";"):
        name, values = part.split("=")
        grid[name.strip().replace("-", "_")] = [sweep_value(v) for v in values.split(",")]
    points = []
    with contextlib.ExitStack() as servers:
        url, pid = servers.enter_context(
            common.storage_server(manifest, latency_ms=args.latency_ms)
        )
        stalled = (
            servers.enter_context(stalling_server(args, manifest)) if args.stall_rate else None
        )
        for combo in itertools.product(*grid.values()):
            settings = {**run_settings(args), **dict(zip(grid, combo, strict=True))}
            # Each point `--repeat` times, medians kept: single runs on a shared 2-core machine
            # vary by ±10%, more than most settings differ.
            runs, stalled_runs = [], []
            for _ in range(args.repeat):
                runs.append(anyio.run(first_run, url, pid, server, shape, settings, "sweep"))
                if stalled is not None:
                    stalled_runs.append(
                        anyio.run(first_run, *stalled, server, shape, settings, "sweep_stalled")
                    )
            point: dict[str, Any] = dict(settings)
            for key in ("wall_s", "peak_rss_mb", "cpu_loader_s", "cpu_postgres_s", "floor_s",
                        "wall_vs_floor", "cpu_others_s", "load_before", "load"):  # fmt: skip
                point[key] = round(common.median(r[key] for r in runs), 2)
            point["walls_s"] = " ".join(str(r["wall_s"]) for r in runs)
            for key in ("early_retries", "hedges"):  # what the guards cost a clean run
                point[key] = common.median(r["requests"][key] for r in runs)
            if stalled_runs:
                point["stalled_wall_s"] = round(common.median(r["wall_s"] for r in stalled_runs), 2)
                point["stalled_walls_s"] = " ".join(str(r["wall_s"]) for r in stalled_runs)
                point["stall_vs_clean"] = round(point["stalled_wall_s"] / point["wall_s"], 2)
                for key in ("calls", "early_retries", "hedges", "hedges_won"):
                    point[f"stalled_{key}"] = common.median(
                        r["requests"][key] for r in stalled_runs
                    )
            points.append(point)
            print(f"  {point}", flush=True)
    best = min(points, key=lambda p: p.get("stalled_wall_s", p["wall_s"]))
    common.RESULTS_DIR.mkdir(exist_ok=True)
    csv_path = common.RESULTS_DIR / f"{sweep_name(args)}.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)
    print(f"best: {best}\nCSV: {csv_path}")
    plot_sweep(points, list(grid), common.RESULTS_DIR / f"{sweep_name(args)}.png")
    return {"objects": shape.objects, "sweep": points, "best": best}


def sweep_value(text: str) -> float | None:
    """A sweep grid value: `off` (None), an integer, or a number."""
    text = text.strip()
    if text == "off":
        return None
    return int(text) if text.isdigit() else float(text)


def off_or_number(text: str) -> float | None:
    return None if text == "off" else float(text)


def sweep_name(args: Any) -> str:
    return "bench_e2e_stall_sweep" if args.stall_rate else "bench_e2e_sweep"


def plot_sweep(points: list[dict[str, Any]], axes: list[str], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (extra 'bench'): no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [", ".join(f"{a}={p[a]}" for a in axes) for p in points]
    ax.barh(labels, [p["wall_s"] for p in points])
    ax.set_xlabel("first run wall time, median (s)")
    fig.tight_layout()
    fig.savefig(path)
    print(f"plot: {path}")


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=None, help="default 10000 (quick: 200)")
    parser.add_argument("--files", type=int, default=100, help="files per folder")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    # The loader's own defaults, read from its option dataclasses (one place for each).
    parser.add_argument(
        "--list-concurrency", type=int, default=default(SourceOptions, "list_concurrency")
    )
    parser.add_argument("--batch-size", type=int, default=default(MigrateOptions, "batch_size"))
    parser.add_argument(
        "--db-concurrency", type=int, default=default(MigrateOptions, "db_concurrency")
    )
    parser.add_argument("--group-pages", type=int, default=default(SourceOptions, "group_pages"))
    parser.add_argument(
        "--hedge-after",
        type=off_or_number,
        default=default(SourceOptions, "hedge_after"),
        help="a number or off",
    )
    parser.add_argument(
        "--stall-factor",
        type=off_or_number,
        default=default(SourceOptions, "stall_factor"),
        help="a number or off",
    )
    parser.add_argument(
        "--stall-rate",
        type=float,
        default=None,
        help="also time the first run against a server stalling this share of"
        " list/bucket responses (stall_vs_clean)",
    )
    parser.add_argument("--stall-seed", type=int, default=1, help="the stalling server's seed")
    parser.add_argument("--naive-folders", type=int, default=None, help="default 50 (quick: 5)")
    parser.add_argument("--sweep", help="e.g. list-concurrency=16,32,64;db-concurrency=1,2")
    parser.add_argument("--repeat", type=int, default=3, help="runs per sweep point (median)")
    parser.add_argument(
        "--steps",
        help=f"comma list of {','.join(STEPS)} (default all); a step brings the steps it needs"
        " (rerun, tag: first; rollback: tag)",
    )
    parser.add_argument(
        "--match",
        choices=("auto", "none"),
        default="auto",
        help="none: the pipeline without matching (where folders cost)",
    )
    parser.add_argument("--output", type=Path, help="write the JSON here instead of bench-results/")
    args = parser.parse_args()
    if args.sweep and args.steps:
        parser.error("--sweep times first runs only: no --steps with it")
    try:
        args.steps, added = resolve_steps(
            args.steps or ",".join(STEPS), stall=bool(args.stall_rate)
        )
    except ValueError as exc:
        parser.error(str(exc))
    if added and not args.sweep:
        print(f"steps: {','.join(args.steps)} ({','.join(added)} added: required)")
    args.folders = args.folders or (200 if args.quick else 10_000)
    args.naive_folders = args.naive_folders or (5 if args.quick else 50)
    shape = BucketShape(folders=args.folders, direct=args.files // 2,
                        dated=args.files - args.files // 2)  # fmt: skip
    _install_reaper()
    with tempfile.TemporaryDirectory() as tmp, common.bench_postgres() as server:
        manifest = Path(tmp) / "bucket.jsonl"
        common.write_manifest(bucket_objects(shape), manifest)
        if args.sweep:
            out = sweep(args, manifest, shape, server)
            name = sweep_name(args)
        else:
            out = compare(args, manifest, shape, server)
            print_table(out)
            name = "bench_e2e" if args.steps == list(STEPS) else f"bench_e2e.{'+'.join(args.steps)}"
        out["versions"] = versions(server)
    path = common.write_result(name, args, out, args.output)
    print(f"result: {path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-migrate":
        child_migrate(sys.argv[2])
    else:
        main()
