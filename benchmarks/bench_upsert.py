"""Upsert throughput into image_assets: the loader's sink against a per-row baseline and COPY.

On the embedded PostgreSQL (`bench-pg`), in one fresh database, with rows shaped like the
loader's (`loader.rows.AssetRow`, 100 per customer folder), in one run:

- naive: the user's original algorithm, one row at a time: SELECT by file_path, then INSERT
  or UPDATE (capped at `--naive-rows`, it runs at a few thousand rows/s);
- loader: `loader.sink.UpsertSink`, batches of `--batch-size` rows written from 1 and from 2
  connections (an anyio task group, as `loader migrate` does), journal included;
- copy: raw `copy_records_to_table` into the indexed, empty table: the ceiling for inserts.

Cases, in order on the same rows: `new` (empty table), `tag` (every row exists and gets one
more tag), `same` (nothing changes: the loader must update 0 rows). Approaches run in a
shuffled order in each of `--repeat` rounds; medians are reported. Before each timed case the
table is vacuumed and analyzed and a checkpoint is taken, outside the timing.

Finally `loader.migrate.migrate()` end to end, on a catalogue served in-process by
`running_server` with no latency, with 1 and 2 database connections, with the CPU time of
this process (listing client, server, rows) and of PostgreSQL, to show where time goes.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import pstats
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import asyncpg
import common  # first: sets up sys.path and LOADER_STATE_DIR
from common import BUCKET, KEY, PREFIX, STAMP, BucketShape, bucket_objects, folder_name, median

from loader import db, runs
from loader.devtools.storage_server import Catalogue, running_server
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from loader.rows import AssetRow, CdnUrls, customer_tag
from loader.sink import UpsertSink, merge_duplicates

ROWS_PER_FOLDER = 100
EXTRA_TAG = "reviewed-2024"
CASES = ("new", "tag", "same")
CDN = CdnUrls(f"https://cdn.example.invalid/storage/v1/object/public/{BUCKET}")
COPY_COLUMNS = (
    "file_path",
    "filename",
    "original_filename",
    "format",
    "mime_type",
    "file_size",
    "ai_tags",
    "cdn_url",
    "upload_source",
    "status",
    "created_at",
    "updated_at",
)
NAIVE_SELECT = "SELECT id, ai_tags FROM image_assets WHERE file_path = $1"
NAIVE_INSERT = """
    INSERT INTO image_assets (file_path, filename, original_filename, format, mime_type,
        file_size, ai_tags, cdn_url, upload_source, status, created_at, updated_at)
    VALUES ($1, $2, $2, $3, $4, $5, $6, $7, 'naive', 'active', $8::text::timestamptz, now())
"""
NAIVE_UPDATE = "UPDATE image_assets SET ai_tags = $2, updated_at = now() WHERE id = $1"

CaseTimes = dict[str, float]


# -- rows ----------------------------------------------------------------------------------


def build_rows(count: int, *, extra_tag: bool) -> list[AssetRow]:
    """`count` rows in file_path order, each carrying one tag: its folder's customer tag, or
    EXTRA_TAG when `extra_tag` (the second and third passes: one more tag per row)."""
    rows = []
    for i in range(count):
        folder_index, j = divmod(i, ROWS_PER_FOLDER)
        folder = folder_name(folder_index)
        filename = f"IMG_{j:04d}.jpg"
        path = f"{PREFIX}{folder}/{filename}"
        tags = [EXTRA_TAG if extra_tag else customer_tag(folder_index)]
        rows.append(
            AssetRow(
                path,
                folder,
                filename,
                "jpg",
                "image/jpeg",
                2_000_000 + i,
                STAMP,
                tags,
                CDN.url(path),
            )
        )
    return rows


def copy_records(rows: Sequence[AssetRow]) -> list[tuple[Any, ...]]:
    """The rows as COPY tuples (built outside the timing: COPY is the server's ceiling)."""
    stamp = dt.datetime.fromisoformat(STAMP)
    return [
        (
            r.file_path,
            r.filename,
            r.filename,
            r.format,
            r.mime_type,
            r.file_size,
            r.tags,
            r.cdn_url,
            "copy",
            "active",
            stamp,
            stamp,
        )
        for r in rows
    ]


# -- the approaches --------------------------------------------------------------------------


async def naive_upsert(conn: asyncpg.Connection, rows: Sequence[AssetRow]) -> Counter[str]:
    """The user's algorithm: per row, look it up, then insert it or merge its tags."""
    counts: Counter[str] = Counter()
    for row in rows:
        found = await conn.fetchrow(NAIVE_SELECT, row.file_path)
        if found is None:
            await conn.execute(
                NAIVE_INSERT,
                row.file_path,
                row.filename,
                row.format,
                row.mime_type,
                row.file_size,
                row.tags,
                row.cdn_url,
                row.created_at,
            )
            counts["inserted"] += 1
            continue
        old = list(found["ai_tags"])
        merged = old + [t for t in dict.fromkeys(row.tags) if t not in old]
        if merged == old:
            counts["unchanged"] += 1
        else:
            await conn.execute(NAIVE_UPDATE, found["id"], merged)
            counts["updated"] += 1
    return counts


async def sink_pass(
    pool: asyncpg.Pool, run_id: int, rows: Sequence[AssetRow], *, batch_size: int, writers: int
) -> Counter[str]:
    """Write `rows` with UpsertSink in batches, from `writers` concurrent tasks."""
    sink = UpsertSink(pool, run_id=run_id, upload_source="bench", overwrite_cdn=False)
    send, receive = anyio.create_memory_object_stream[list[AssetRow]](writers)
    totals: Counter[str] = Counter()

    async def feed() -> None:
        async with send:
            for start in range(0, len(rows), batch_size):
                await send.send(merge_duplicates(rows[start : start + batch_size]))

    async def write(batches: Any) -> None:
        async with batches:
            async for batch in batches:
                outcome = await sink.write(batch)
                if outcome.failures:
                    raise RuntimeError(f"rows failed: {outcome.failures[:3]}")
                for counts in outcome.per_folder.values():
                    totals.update(counts)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        async with receive:
            for _ in range(writers):
                tg.start_soon(write, receive.clone())
    return totals


# -- one approach through its cases ------------------------------------------------------------


async def settle(conn: asyncpg.Connection) -> None:
    """Same starting conditions for every timed case: vacuumed, analyzed, checkpointed."""
    await conn.execute("VACUUM (ANALYZE) image_assets")
    await conn.execute("CHECKPOINT")


async def reset(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE image_assets, loader.journal_inserts, loader.journal_updates")


async def timed(
    conn: asyncpg.Connection, step: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
) -> tuple[float, Any]:
    """Settle the database (through `conn`), then time `step(*args, **kw)`."""
    await settle(conn)
    started = time.perf_counter()
    result = await step(*args, **kw)
    return time.perf_counter() - started, result


def check(approach: str, case: str, counts: Counter[str], n: int) -> None:
    """Fail loudly when an approach did not do what the case asks."""
    want = {"new": "inserted", "tag": "updated", "same": "unchanged"}[case]
    if counts.get(want, 0) != n or sum(counts.values()) != n:
        raise RuntimeError(f"{approach}/{case}: expected {n} {want}, got {dict(counts)}")


async def run_naive(url: str, passes: dict[str, list[AssetRow]]) -> CaseTimes:
    times: CaseTimes = {}
    async with db.connection(url) as conn:
        await reset(conn)
        for case in ("new", "tag"):
            # A fresh connection per case, planning for the actual parameters as the loader's
            # pool does: a generic plan made on the empty table would stay a sequential scan
            # (postgres-upsert-notes.md, trap 5) and measure that trap, not the algorithm.
            async with db.connection(url) as worker:
                await worker.execute("SET plan_cache_mode = force_custom_plan")
                rows = passes[case]
                times[case], counts = await timed(conn, naive_upsert, worker, rows)
            check("naive", case, counts, len(rows))
    return times


async def run_loader(
    url: str, passes: dict[str, list[AssetRow]], *, writers: int, batch_size: int
) -> CaseTimes:
    times: CaseTimes = {}
    pool = await db.create_pool(url, writers)
    try:
        async with pool.acquire() as conn:
            await reset(conn)
        for case in CASES:
            run_id = await runs.create_run(
                pool, bucket=BUCKET, prefix=PREFIX, options={}, folders=[]
            )
            rows = passes[case]
            async with db.connection(url) as conn:
                times[case], counts = await timed(
                    conn, sink_pass, pool, run_id, rows, batch_size=batch_size, writers=writers
                )
            check(f"loader x{writers}", case, counts, len(rows))
    finally:
        await pool.close()
    return times


async def run_copy(url: str, records: list[tuple[Any, ...]]) -> CaseTimes:
    async with db.connection(url) as conn:
        await reset(conn)
        elapsed, _ = await timed(
            conn, conn.copy_records_to_table, "image_assets", records=records, columns=COPY_COLUMNS
        )
        if await conn.fetchval("SELECT count(*) FROM image_assets") != len(records):
            raise RuntimeError("copy: row count mismatch")
    return {"new": elapsed}


# -- end to end ------------------------------------------------------------------------------


async def migrate_once(
    server: Any, catalogue: Catalogue, connections: int, profile: cProfile.Profile | None
) -> dict[str, float]:
    """One `migrate()` into a fresh database; wall time, and CPU of this process and of
    PostgreSQL during it."""
    async with (
        common.fresh_database(server, "migrate") as url,
        running_server(catalogue, bucket=BUCKET, key=KEY) as storage_url,
    ):
        options = MigrateOptions(
            source=SourceOptions(bucket=BUCKET, prefix=PREFIX, storage_url=storage_url, key=KEY),
            database_url=url,
            db_concurrency=connections,
            match="none",
        )
        pg_before, cpu_before = common.postgres_cpu_s(server), time.process_time()
        if profile is not None:
            profile.enable()
        result = await migrate(options)
        if profile is not None:
            profile.disable()
        process_cpu = time.process_time() - cpu_before
        pg_cpu = common.postgres_cpu_s(server) - pg_before
    if result.status != "succeeded" or result.totals.get("inserted") != result.totals["media"]:
        raise RuntimeError(f"migrate: {result.status} {result.totals}")
    return {
        "rows": result.totals["inserted"],
        "wall_s": result.elapsed_s,
        "process_cpu_s": process_cpu,
        "postgres_cpu_s": pg_cpu,
    }


def run_migrations(
    server: Any, objects: int, repeat: int, profile: bool
) -> tuple[dict[int, list[dict[str, float]]], str]:
    """migrate() with 1 and 2 connections, `repeat` times each in shuffled order."""
    folders = max(1, objects // 100)
    catalogue = Catalogue.from_objects(
        bucket_objects(BucketShape(folders=folders, direct=40, dated=60)), bucket=BUCKET
    )
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    order = [c for c in results for _ in range(repeat)]
    random.shuffle(order)
    for connections in order:
        results[connections].append(anyio.run(migrate_once, server, catalogue, connections, None))
    hot = ""
    if profile:
        prof = cProfile.Profile()
        anyio.run(migrate_once, server, catalogue, 2, prof)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        hot = out.getvalue()
    return results, hot


# -- reporting -------------------------------------------------------------------------------


def rates(times: dict[str, dict[str, list[float]]], sizes: dict[str, int]) -> dict[str, Any]:
    """Median seconds and rows/s per approach and case."""
    return {
        approach: {
            case: {
                "median_s": median(samples),
                "rows_per_s": sizes[approach] / median(samples),
                "samples_s": samples,
            }
            for case, samples in cases.items()
        }
        for approach, cases in times.items()
    }


def print_rates(table: dict[str, Any]) -> None:
    print("  approach     " + "".join(f"{case:>12}" for case in CASES))
    for approach, cases in table.items():
        cells = [
            f"{cases[c]['rows_per_s']:>10,.0f}/s" if c in cases else f"{'-':>12}" for c in CASES
        ]
        print(f"  {approach:<12} " + "".join(cells))


def ratios(table: dict[str, Any]) -> dict[str, float]:
    """Loader rows/s over naive and over COPY, per case where both exist."""
    out = {}
    for writers in ("loader x1", "loader x2"):
        for case in CASES:
            ours = table[writers][case]["rows_per_s"]
            for other in ("naive", "copy"):
                if case in table[other]:
                    out[f"{writers}/{other} {case}"] = ours / table[other][case]["rows_per_s"]
    return out


def print_migrations(results: dict[int, list[dict[str, float]]]) -> dict[str, Any]:
    summary = {}
    for connections, samples in results.items():
        wall = median(s["wall_s"] for s in samples)
        rows = samples[0]["rows"]
        cpu = median(s["process_cpu_s"] for s in samples)
        pg = median(s["postgres_cpu_s"] for s in samples)
        summary[str(connections)] = {
            "rows": rows,
            "median_wall_s": wall,
            "rows_per_s": rows / wall,
            "process_cpu_s": cpu,
            "postgres_cpu_s": pg,
            "samples": samples,
        }
        print(
            f"  --db-concurrency {connections}: {rows:,} rows in {wall:.2f} s ="
            f" {rows / wall:,.0f} rows/s; CPU: loader process {cpu:.2f} s"
            f" ({cpu / wall:.0%} of wall: listing client + in-process server + rows),"
            f" PostgreSQL {pg:.2f} s ({pg / wall:.0%})"
        )
    return summary


# -- main ----------------------------------------------------------------------------------


async def measure_upserts(
    url: str, n: int, naive_rows: int, repeat: int, batch_size: int
) -> dict[str, dict[str, list[float]]]:
    """Every approach through its cases, `repeat` rounds in shuffled order."""
    first, second = build_rows(n, extra_tag=False), build_rows(n, extra_tag=True)
    passes = {"new": first, "tag": second, "same": second}
    naive = {"new": first[:naive_rows], "tag": second[:naive_rows]}
    records = copy_records(first)
    approaches: dict[str, Callable[[], Awaitable[CaseTimes]]] = {
        "naive": lambda: run_naive(url, naive),
        "loader x1": lambda: run_loader(url, passes, writers=1, batch_size=batch_size),
        "loader x2": lambda: run_loader(url, passes, writers=2, batch_size=batch_size),
        "copy": lambda: run_copy(url, records),
    }
    times: dict[str, dict[str, list[float]]] = {name: {} for name in approaches}
    for round_ in range(repeat):
        order = list(approaches)
        random.shuffle(order)
        print(f"  round {round_ + 1}/{repeat}: {', '.join(order)}", flush=True)
        for name in order:
            for case, seconds in (await approaches[name]()).items():
                times[name].setdefault(case, []).append(seconds)
    return times


async def upserts_in_fresh_db(server: Any, args: Any) -> dict[str, dict[str, list[float]]]:
    async with common.fresh_database(server, "upsert") as url:
        return await measure_upserts(url, args.rows, args.naive_rows, args.repeat, args.batch_size)


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="default 200000 (quick: 20000)")
    parser.add_argument("--naive-rows", type=int, default=None, help="default 20000 (quick: 2000)")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument(
        "--migrate-objects", type=int, default=None, help="default 100000 (quick: 10000)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one migrate() and print its hottest functions",
    )
    args = parser.parse_args()
    args.rows = args.rows or (20_000 if args.quick else 200_000)
    args.naive_rows = min(args.rows, args.naive_rows or (2_000 if args.quick else 20_000))
    args.repeat = args.repeat or (2 if args.quick else 3)
    args.migrate_objects = args.migrate_objects or (10_000 if args.quick else 100_000)

    with common.bench_postgres() as server:
        version = anyio.run(_server_version, server)
        print(
            f"PostgreSQL {version}; {args.rows:,} rows (naive: {args.naive_rows:,}),"
            f" batches of {args.batch_size:,}, {args.repeat} rounds"
        )
        times = anyio.run(upserts_in_fresh_db, server, args)
        sizes = {
            "naive": args.naive_rows,
            "loader x1": args.rows,
            "loader x2": args.rows,
            "copy": args.rows,
        }
        table = rates(times, sizes)
        print("rows/s (median; new = empty table, tag = all exist +1 tag, same = no change):")
        print_rates(table)
        ratio = ratios(table)
        print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
        print(f"migrate() end to end, {args.migrate_objects:,} objects, in-process server:")
        migrations, hot = run_migrations(server, args.migrate_objects, args.repeat, args.profile)
        migrate_summary = print_migrations(migrations)
    if hot:
        print(hot)
    print(common.describe_machine(common.machine()))
    path = common.write_result(
        "bench_upsert",
        args,
        {"postgres": version, "rates": table, "ratios": ratio, "migrate": migrate_summary},
    )
    print(f"result: {path}")


async def _server_version(server: Any) -> str:
    async with db.connection(server.url()) as conn:
        return str(await conn.fetchval("SHOW server_version"))


if __name__ == "__main__":
    main()
