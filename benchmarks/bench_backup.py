"""What a backup of a million-row image_assets costs, side by side with the jsonb copy the
loader used to take before every run.

Fills image_assets in a fresh database on the embedded PostgreSQL with N rows shaped like a
migrated library (path, names, size, mime, cdn_url, one customer tag), then times, one after
the other on the same table: the old form (`INSERT … SELECT to_jsonb(row)` into a jsonb
table), `loader.backup` in the database (CREATE TABLE AS of image_assets and customers plus
the checksum scan), the checksum scan alone (what a deduplicated run pays), a backup to a
compressed file, a restore when nothing differs, and a restore after 1% of the rows changed.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import common  # first: sets up sys.path and LOADER_STATE_DIR

FILL = """
INSERT INTO image_assets (file_path, filename, original_filename, file_size, mime_type, format,
                          cdn_url, ai_tags, upload_source, status)
SELECT p, f, f, 1000000 + i, 'image/jpeg', 'jpg',
       'http://127.0.0.1:5000/storage/v1/object/public/bench-media/' || p,
       ARRAY['customer-' || (i / 100)], 'customer-migration', 'active'
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT format('IMG_%s.jpg', i) AS f) AS n,
     LATERAL (SELECT format('originals/customers/customer-%s-kim/%s', i / 100, n.f) AS p) AS q
"""
OLD_FORM = """
CREATE TABLE old_backups (run_id bigint NOT NULL, row jsonb NOT NULL);
INSERT INTO old_backups (run_id, row) SELECT 1, to_jsonb(ia) FROM image_assets AS ia;
"""


async def run(rows: int, tmp: Path) -> dict[str, Any]:
    from loader.backup import backup_to_file, list_backups, restore, take_backup
    from loader.db import connection

    with common.bench_postgres() as server:
        async with (
            common.fresh_database(server, "backup") as db_url,
            connection(db_url) as conn,
        ):
            await conn.execute(FILL, rows)
            await conn.execute(
                "INSERT INTO customers (id, name, folder_name) SELECT i, 'kim', "
                "format('customer-%s-kim', i) FROM generate_series(1, $1 / 100) AS i",
                rows,
            )
            await conn.execute("VACUUM ANALYZE image_assets")
            table_mb = await conn.fetchval("SELECT pg_total_relation_size('image_assets') / 1e6")
            with common.Timer() as old:
                await conn.execute(OLD_FORM)
            old_mb = await conn.fetchval("SELECT pg_total_relation_size('old_backups') / 1e6")
            await conn.execute("DROP TABLE old_backups")
            with common.Timer() as in_db:
                taken = await take_backup(conn)
            new_mb = (await list_backups(conn))[0]["bytes"] / 1e6
            with common.Timer() as checksum:
                await conn.fetchval("SELECT loader.rows_checksum('image_assets', '*')")
            with common.Timer() as to_file:
                written = await backup_to_file(conn, tmp / "backup.zip")
            with common.Timer() as unchanged:
                await restore(conn, str(taken.backup_id))
            await conn.execute(
                "UPDATE image_assets SET ai_tags = '{}' WHERE file_path IN (SELECT file_path"
                " FROM image_assets ORDER BY file_path LIMIT $1)",
                rows // 100,
            )
            with common.Timer() as damaged:
                done = await restore(conn, str(taken.backup_id))
            assert done.updated == rows // 100, done
            with common.Timer() as from_file:
                await restore(conn, str(tmp / "backup.zip"))
    return {
        "rows": rows,
        "table_mb": float(table_mb),
        "old_jsonb_s": old.elapsed,
        "old_jsonb_mb": float(old_mb),
        "backup_in_db_s": in_db.elapsed,
        "backup_in_db_mb": new_mb,
        "checksum_s": checksum.elapsed,
        "backup_to_file_s": to_file.elapsed,
        "backup_file_mb": written.bytes / 1e6,
        "restore_unchanged_s": unchanged.elapsed,
        "restore_1pct_changed_s": damaged.elapsed,
        "restore_from_file_s": from_file.elapsed,
    }


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="default 1000000 (quick: 50000)")
    args = parser.parse_args()
    args.rows = args.rows or (50_000 if args.quick else 1_000_000)
    load = common.machine()["loadavg"]
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        data = asyncio.run(run(args.rows, Path(tmp)))
    data["load_before"] = load
    print(f"image_assets: {data['rows']:,} rows, {data['table_mb']:.0f} MB")
    print(f"  old jsonb copy        : {data['old_jsonb_s']:6.1f} s, {data['old_jsonb_mb']:.0f} MB")
    print(f"  loader backup (in db) : {data['backup_in_db_s']:6.1f} s, "
          f"{data['backup_in_db_mb']:.0f} MB (checksum {data['checksum_s']:.1f} s)")  # fmt: skip
    print(f"  loader backup --to    : {data['backup_to_file_s']:6.1f} s, "
          f"{data['backup_file_mb']:.0f} MB file")  # fmt: skip
    print(f"  restore, unchanged    : {data['restore_unchanged_s']:6.1f} s; 1% changed "
          f"{data['restore_1pct_changed_s']:.1f} s; from the file "
          f"{data['restore_from_file_s']:.1f} s")  # fmt: skip
    print(f"  load average before: {load}")
    print(common.describe_machine(common.machine()))
    print(f"result: {common.write_result('bench_backup', args, data)}")
    if data["backup_in_db_s"] <= 0:
        sys.exit("no measurement")


if __name__ == "__main__":
    main()
