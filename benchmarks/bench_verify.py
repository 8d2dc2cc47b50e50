"""`loader verify` over a million objects: wall time and peak RSS (target: < 300 MB).

Serves 10,000 customer folders x 100 files (60 in date sub-folders) with `loader storage
serve --manifest` in its own process, fills a fresh database on the embedded PostgreSQL by
running `loader migrate` (9 of 10 folders have a customer whose folder_name matches), and
times the run's backup policy on the way: the first run (which changes rows, so it backs up
from its starting snapshot while it works) and a no-change re-run (which takes none). Then
it damages a known number of rows (rows deleted, stale customer tags added) and runs

    python -m loader verify ... --report verify.json

under the wrapper of bench_scan_rss.py (peak RSS of that process alone: `ru_maxrss` of the
wrapper's children, cross-checked by psutil), and checks the reported counts are exact.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import common  # first: sets up sys.path and LOADER_STATE_DIR
from bench_scan_rss import ChildUsage
from common import BUCKET, KEY, PREFIX, ROOT, BucketShape, bucket_objects, folder_name

TARGET_MB = 300.0
DELETED = 100
STALE = 1000


def loader(*args: str) -> list[str]:
    return [sys.executable, "-m", "loader", *args]


def source_args(url: str, db_url: str) -> list[str]:
    return ["--storage-url", url, "--key", KEY, "--bucket", BUCKET, "--database-url", db_url]


def timed_migrate(url: str, db_url: str, report: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        loader("migrate", *source_args(url, db_url), "--report", str(report)),
        cwd=ROOT, env=common.loader_env(), capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"migrate failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(report.read_text())


async def seed_customers(db_url: str, folders: int) -> None:
    from loader.db import connection

    async with connection(db_url) as conn:
        await conn.copy_records_to_table(
            "customers",
            records=[(i + 1, f"kim {i}", folder_name(i)) for i in range(folders) if i % 10],
            columns=("id", "name", "folder_name"),
        )


async def damage(db_url: str) -> None:
    """Delete DELETED rows and add a stale customer tag beside the right one to STALE others."""
    from loader.db import connection

    async with connection(db_url) as conn:
        await conn.execute(
            "DELETE FROM image_assets WHERE file_path IN (SELECT file_path FROM image_assets"
            " WHERE ai_tags <> '{}' ORDER BY file_path LIMIT $1)",
            DELETED,
        )
        await conn.execute(
            "UPDATE image_assets SET ai_tags = ai_tags || '{customer-99999999}'::text[]"
            " WHERE file_path IN (SELECT file_path FROM image_assets WHERE ai_tags <> '{}'"
            " ORDER BY file_path DESC LIMIT $1)",
            STALE,
        )


async def backups_count(db_url: str) -> int:
    from loader.db import connection

    async with connection(db_url) as conn:
        return await conn.fetchval("SELECT count(*) FROM loader.backups")


async def backup_costs(db_url: str, path: Path) -> dict[str, float]:
    """Wall time of a backup in the database, of one to a file (and its size), and of a
    restore from the database copy when nothing differs (a check of every row)."""
    from loader.backup import backup_to_file, restore, take_backup
    from loader.db import connection

    async with connection(db_url) as conn:
        with common.Timer() as in_db:
            taken = await take_backup(conn)
        with common.Timer() as to_file:
            written = await backup_to_file(conn, path)
        with common.Timer() as restored:
            await restore(conn, str(taken.backup_id))
    return {
        "backup_in_db_s": in_db.elapsed,
        "backup_to_file_s": to_file.elapsed,
        "backup_file_mb": written.bytes / 1e6,
        "restore_unchanged_s": restored.elapsed,
    }


def measure_verify(url: str, db_url: str, report: Path) -> ChildUsage:
    command = loader("verify", *source_args(url, db_url), "--report", str(report))
    wrapper = [sys.executable, str(ROOT / "benchmarks" / "bench_scan_rss.py"), "--wrap", "--",
               *command]  # fmt: skip
    done = subprocess.run(
        wrapper, cwd=ROOT, env=common.loader_env(), capture_output=True, text=True, check=True
    )
    return ChildUsage(**json.loads(done.stdout))


async def run(args: Any) -> dict[str, Any]:
    shape = BucketShape(folders=args.folders, direct=40, dated=60)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        objects = common.write_manifest(bucket_objects(shape), manifest)
        with common.storage_server(manifest) as (url, _pid), common.bench_postgres() as server:
            async with common.fresh_database(server, "verify") as db_url:
                await seed_customers(db_url, args.folders)
                first_s, first = timed_migrate(url, db_url, Path(tmp) / "first.json")
                rerun_s, rerun = timed_migrate(url, db_url, Path(tmp) / "rerun.json")
                backups = await backups_count(db_url)
                costs = await backup_costs(db_url, Path(tmp) / "backup.zip")
                await damage(db_url)
                load_before = common.machine()["loadavg"]
                usage = measure_verify(url, db_url, Path(tmp) / "verify.json")
                report = json.loads((Path(tmp) / "verify.json").read_text())
    counts = {name: f["count"] for name, f in report["findings"].items()}
    exact = counts["missing"] == DELETED and counts["stale_beside_valid"] == STALE
    exact = exact and report["errors"] == DELETED and report["warnings"] == STALE
    return {
        "objects": objects,
        "media_files": report["media_files"],
        "verify": asdict(usage),
        "verify_wall_s": usage.wall_s,
        "verify_peak_rss_mb": usage.ru_maxrss_mb,
        "verify_counts": counts,
        "verify_listing_s": report["listing_s"],
        "verify_compare_s": report["compare_s"],
        "counts_exact": exact,
        "load_before_verify": load_before,
        "migrate_first_s": first_s,
        "migrate_first_backup_id": first["backup_id"],
        "migrate_rerun_s": rerun_s,
        "migrate_rerun_backup_id": rerun["backup_id"],
        "backups_after_two_runs": backups,
        "inserted": first["inserted"],
        **costs,
    }


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=None, help="default 10000 (quick: 300)")
    args = parser.parse_args()
    args.folders = args.folders or (300 if args.quick else 10_000)
    data = asyncio.run(run(args))
    usage = data["verify"]
    verdict = "within target" if data["verify_peak_rss_mb"] < TARGET_MB else "OVER TARGET"
    print(f"bucket: {args.folders:,} folders, {data['objects']:,} objects under {PREFIX}")
    print(f"  migrate, first run : {data['migrate_first_s']:6.1f} s, "
          f"{data['inserted']:,} inserted, backup {data['migrate_first_backup_id']}")  # fmt: skip
    rerun_backup, backups = data["migrate_rerun_backup_id"], data["backups_after_two_runs"]
    print(f"  migrate, re-run    : {data['migrate_rerun_s']:6.1f} s, backup {rerun_backup}"
          f" ({backups} in all)")  # fmt: skip
    print(f"  loader backup      : {data['backup_in_db_s']:6.1f} s in the database, "
          f"{data['backup_to_file_s']:.1f} s to a file of {data['backup_file_mb']:.0f} MB; "
          f"restore (nothing to change) {data['restore_unchanged_s']:.1f} s")  # fmt: skip
    print(f"  loader verify      : {data['verify_wall_s']:6.1f} s, peak RSS "
          f"{data['verify_peak_rss_mb']:.1f} MB (psutil {usage['polled_peak_mb']:.1f}; target "
          f"< {TARGET_MB:.0f}: {verdict}), exit {usage['returncode']}; listing + COPY "
          f"{data['verify_listing_s']:.1f} s, SQL {data['verify_compare_s']:.1f} s")  # fmt: skip
    print(f"  findings           : {data['verify_counts']} "
          f"({'exact' if data['counts_exact'] else 'NOT EXACT'})")  # fmt: skip
    print(f"  load average before verify: {data['load_before_verify']}")
    print(common.describe_machine(common.machine()))
    path = common.write_result("bench_verify", args, data)
    print(f"result: {path}")
    if not data["counts_exact"] or usage["returncode"] != 11:
        sys.exit("verify did not report the damage exactly: see above")


if __name__ == "__main__":
    main()
