"""What `loader sync`'s trigger costs an upload: single-row INSERTs into storage.objects, each
its own transaction as Storage commits every upload, with the trigger and without it.

A fresh database on the embedded PostgreSQL gets a migrated library (`--folders` customer
folders with a few files, listed from storage.objects, every folder linked to a customer by
its folder_name), then `loader sync install` with the run's settings. Each round inserts
`--uploads` new objects (photos with metadata, in the library's folders, a third in date
sub-folders) three ways, in an order that changes per round: with the trigger (each becomes an
image_assets row with its customer tag), with the trigger disabled (`ALTER TABLE … DISABLE
TRIGGER`, the table as it is without sync), and with the trigger into another bucket (the
trigger looks at its settings and returns). Each way twice: with `synchronous_commit` on,
as Storage commits (every upload waits for its WAL flush, the disk's noise included), and
off (the CPU work alone, the trigger's own cost without the flush). Reports µs per upload
(medians over rounds), the cost per upload as a ratio, and checks that every upload with the
trigger has its row and its tag, and that no error was recorded. Client and server share the
machine's cores.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import common  # first: sets up sys.path and LOADER_STATE_DIR

BUCKET = common.BUCKET
OTHER_BUCKET = "bench-other"
CDN = "https://cdn.example.com/bench"
INSERT = (
    "INSERT INTO storage.objects (bucket_id, name, metadata, created_at, updated_at)"
    " VALUES ($1, $2, $3, now(), now())"
)
TOGGLE = "ALTER TABLE storage.objects {} TRIGGER loader_sync_insert"
WAYS = ("with trigger", "without trigger", "other bucket")
COMMITS = ("on", "off")  # synchronous_commit


async def seed(url: str, folders: int) -> None:
    """Customers, a library of `folders` folders in storage.objects, its migration (the run
    sync takes its settings from), and sync installed."""
    from loader import sync
    from loader.db import connection
    from loader.listing import SourceOptions
    from loader.migrate import MigrateOptions, migrate

    async with connection(url) as conn:
        await conn.execute(
            "INSERT INTO storage.buckets (id, name, public) VALUES ($1, $1, true), ($2, $2, true)",
            BUCKET,
            OTHER_BUCKET,
        )
        await conn.execute(
            "INSERT INTO customers (id, name, phone, folder_name)"
            " SELECT i, '김민수', format('010-0000-%s', lpad(i::text, 4, '0')), $1 || i"
            " FROM generate_series(1, $2) AS i",
            "customer-",
            folders,
        )
        await conn.execute(
            "INSERT INTO storage.objects (bucket_id, name, metadata)"
            " SELECT $1, format('%scustomer-%s/IMG_%s.jpg', $2::text, f, n),"
            " jsonb_build_object('size', 1000 + n, 'mimetype', 'image/jpeg')"
            " FROM generate_series(1, $3) AS f, generate_series(1, 5) AS n",
            BUCKET,
            common.PREFIX,
            folders,
        )
    source = SourceOptions(bucket=BUCKET, prefix=common.PREFIX, source="db",
                           storage_database_url=url)  # fmt: skip
    result = await migrate(MigrateOptions(source=source, database_url=url, cdn_base=CDN,
                                          backup=False))  # fmt: skip
    assert result.status == "succeeded", result.status
    async with connection(url) as conn:
        installed = await sync.install(conn, sync.SyncSettings())
    assert installed.links == folders, installed.links


def names(round_no: str, way: str, uploads: int, folders: int, rng: random.Random) -> list[str]:
    tag = way.replace(" ", "-")
    out = []
    for i in range(uploads):
        folder = f"customer-{rng.randint(1, folders)}"
        dated = f"2026-{rng.randint(1, 12):02d}-01/" if i % 3 == 0 else ""
        out.append(f"{common.PREFIX}{folder}/{dated}r{round_no}-{tag}-{i:06d}.jpg")
    return out


async def upload_all(conn: Any, bucket: str, paths: list[str]) -> float:
    """Insert every path, one autocommitted statement each; seconds taken."""
    statement = await conn.prepare(INSERT)
    with common.Timer() as timer:
        for n, path in enumerate(paths):
            await statement.fetch(bucket, path, {"size": 2000 + n, "mimetype": "image/jpeg"})
    return timer.elapsed


async def run(uploads: int, rounds: int, folders: int) -> dict[str, Any]:
    from loader.db import connection

    rng = random.Random(7)
    runs: dict[str, dict[str, list[float]]] = {c: {way: [] for way in WAYS} for c in COMMITS}
    with common.bench_postgres() as server:
        async with common.fresh_database(server, "sync") as url:
            await seed(url, folders)
            async with connection(url) as conn:
                await conn.execute("VACUUM ANALYZE")
                registered_before = await conn.fetchval("SELECT count(*) FROM image_assets")
                for round_no in range(rounds):
                    order = [(c, way) for c in COMMITS for way in WAYS]
                    rng.shuffle(order)
                    for commit, way in order:
                        await conn.execute(f"SET synchronous_commit = {commit}")
                        await conn.execute(
                            TOGGLE.format("DISABLE" if way == "without trigger" else "ENABLE")
                        )
                        bucket = OTHER_BUCKET if way == "other bucket" else BUCKET
                        paths = names(f"{round_no}{commit}", way, uploads, folders, rng)
                        seconds = await upload_all(conn, bucket, paths)
                        runs[commit][way].append(seconds / uploads * 1e6)
                await conn.execute(TOGGLE.format("ENABLE"))
                registered = await conn.fetchval("SELECT count(*) FROM image_assets")
                tagged = await conn.fetchval(
                    # the folder customer-N is customer N's: its tag is the folder's name
                    "SELECT count(*) FROM image_assets WHERE file_path LIKE '%with-trigger%'"
                    " AND ai_tags = ARRAY[split_part(file_path, '/', 3)]"
                )
                errors = await conn.fetchval("SELECT count(*) FROM loader.sync_errors")
    by_commit = {}
    for commit, per_way in runs.items():
        medians = {way: common.median(values) for way, values in per_way.items()}
        without = medians["without trigger"]
        by_commit[commit] = {
            "us_per_upload": {way: round(medians[way], 1) for way in WAYS},
            "us_per_upload_runs": {way: [round(v, 1) for v in per_way[way]] for way in WAYS},
            "extra_us_per_upload": round(medians["with trigger"] - without, 1),
            "ratio": round(medians["with trigger"] / without, 2),
            "ratio_other_bucket": round(medians["other bucket"] / without, 2),
        }
    return {
        "uploads_per_round": uploads,
        "rounds": rounds,
        "folders": folders,
        "synchronous_commit": by_commit,
        "rows_registered": registered - registered_before,
        "rows_expected": uploads * rounds * len(COMMITS),
        "rows_tagged": tagged,
        "errors": errors,
    }


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=None, help="per round (default 10000)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--folders", type=int, default=100)
    args = parser.parse_args()
    uploads = args.uploads or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    data = asyncio.run(run(uploads, rounds, args.folders))
    path = common.write_result("bench_sync", args, data)
    print(common.describe_machine(common.machine()))
    print(f"{uploads:,} uploads x {rounds} rounds into storage.objects, one transaction each:")
    for commit, found in data["synchronous_commit"].items():
        print(f" synchronous_commit {commit}:")
        for way in WAYS:
            print(f"  {way:16} {found['us_per_upload'][way]:8.1f} us per upload   (runs: "
                  f"{', '.join(map(str, found['us_per_upload_runs'][way]))})")  # fmt: skip
        print(f"  the trigger costs {found['extra_us_per_upload']} us per upload: "
              f"{found['ratio']}x the upload's own insert (another bucket: "
              f"{found['ratio_other_bucket']}x)")  # fmt: skip
    print(f"  rows registered {data['rows_registered']:,} of {data['rows_expected']:,}, "
          f"tagged {data['rows_tagged']:,}, errors {data['errors']}")  # fmt: skip
    print(f"written to {path}")
    ok = data["rows_registered"] == data["rows_expected"] == data["rows_tagged"]
    return 0 if ok and not data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
