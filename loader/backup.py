"""Backups of what the loader can change: image_assets, and customers' folder_name.

In the database a backup is a plain copy (`CREATE TABLE … AS`) of each table in the `loader`
schema, catalogued in loader.backups with its row count and checksum (see
loader.rows_checksum). Outside it, a backup file is a zip of the tables' COPY text and a
manifest (columns, counts, checksums, sha256 of each part). Restoring either makes
image_assets hold exactly the backed-up rows, touching only the rows that differ, and checks
the result against the checksum before it commits.

A migrate run backs up only when it changes rows, without knowing in advance whether it
will: `RunBackup` opens a REPEATABLE READ transaction when the run starts (the snapshot is
the table before the run; holding it costs nothing) and copies from that snapshot once the
first batch reports a change, while the run goes on. A run that changes nothing copies
nothing, and a copy identical to the latest backup is not kept.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import asyncpg
import orjson
from anyio.abc import TaskGroup

from loader.db import connect, connection, is_transient, retrying_attempts, until_lost
from loader.errors import BadInputError, DatabaseError, SchemaError, first_line
from loader.progress import LiveStats
from loader.retry import RetryPolicy
from loader.sqlfiles import sql

FILE_FORMAT = "loader-backup"
FILE_VERSION = 1
ASSETS_MEMBER = "image_assets.copy"
CUSTOMERS_MEMBER = "customers.copy"
MANIFEST_MEMBER = "manifest.json"
CHUNK = 1 << 20


@dataclass(slots=True)
class BackupInfo:
    backup_id: int
    rows: int
    checksum: str
    customers: int | None


@dataclass(slots=True)
class FileBackup:
    path: Path
    rows: int
    checksum: str
    customers: int | None
    bytes: int


@dataclass(slots=True)
class RestoreResult:
    source: str
    rows: int
    deleted: int
    updated: int
    inserted: int
    folder_names: int


# -- in the database ----------------------------------------------------------------------


async def take_backup(
    conn: asyncpg.Connection, *, reason: str = "manual", run_id: int | None = None
) -> BackupInfo:
    """Copy image_assets and customers' folder_name into a new backup, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read"):
        backup_id = await conn.fetchval(sql("backup_take"), run_id, reason, False)
        row = await conn.fetchrow(sql("backup_get"), backup_id)
    return BackupInfo(backup_id, row["rows"], row["checksum"], row["customers"])


async def list_backups(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every backup, newest first: id, when, run, reason, rows, customers, checksum, bytes."""
    return [dict(r) for r in await conn.fetch(sql("backup_list"))]


# Drop every backup but the newest $1; how many were dropped.
PRUNE_SQL = """
SELECT count(*) FILTER (WHERE loader.backup_drop(backup_id)) FROM loader.backups
WHERE backup_id NOT IN (SELECT backup_id FROM loader.backups ORDER BY backup_id DESC LIMIT $1)
"""


async def prune_backups(conn: asyncpg.Connection, keep: int) -> int:
    """Drop all but the newest `keep` backups; returns how many were dropped."""
    async with conn.transaction():
        return await conn.fetchval(PRUNE_SQL, keep)


# What a run's backup says when its connection was lost after the run had changed rows.
LOST_AFTER_CHANGES = (
    "its database connection was lost after the run had changed rows, so it can no longer"
    " hold the table as it was before the run"
)


class RunBackup:
    """The backup a migrate run takes: the table as it was when the run started, copied only
    once the run reports its first change (`changed()`), while the run goes on, and committed
    as soon as it is copied.

    Use as an async context manager around the run's work; on exit the copy (if started) is
    awaited. A failed copy does not fail the run (its journal still undoes it exactly):
    `error` says why, in words for the run's warning.

    Its connection is retried like every database call (`retrying_attempts`). When the
    connection holding the snapshot is lost, the snapshot is taken again on a new one; that
    is still a backup of the table before the run exactly when the new snapshot sees none of
    the run's journal (each batch journals in the transaction that writes its rows, so such a
    snapshot holds none of the run's changes; sql/backup_hold_snapshot.sql). Once the run has
    changed rows, a snapshot taken again would hold them: the backup is then given up, and
    `error` says so (the journal still undoes the run).
    """

    def __init__(
        self,
        database_url: str,
        run_id: int,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen: one shared default is safe)
    ) -> None:
        self.database_url = database_url
        self.run_id = run_id
        self.retry = retry
        self.backup_id: int | None = None
        self.taken = False  # a copy was started (the run changed rows)
        self.error: str | None = None
        self._go = anyio.Event()
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> RunBackup:
        await self._hold_snapshot()  # the run has not written yet: this is the "before"
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._copy_when_changed)
        return self

    def changed(self) -> None:
        """The run changed rows: start the copy (idempotent)."""
        self.taken = True
        self._go.set()

    async def _hold_snapshot(self) -> bool:
        """Open the backup's REPEATABLE READ transaction on a new connection; whether its
        snapshot precedes every change of the run."""

        async def attempt() -> bool:
            conn = await connect(self.database_url)
            try:
                tx = conn.transaction(isolation="repeatable_read")
                await tx.start()
                before: bool = await conn.fetchval(sql("backup_hold_snapshot"), self.run_id)
            except BaseException:
                conn.terminate()
                raise
            self._conn, self._tx = conn, tx
            return before

        return await retrying_attempts(
            attempt, retry=self.retry, what="holding the run's backup snapshot"
        )

    async def _copy_when_changed(self) -> None:
        # Until the run's first change, the snapshot's connection is watched and, if lost,
        # taken again (see the class docstring).
        while not await self._changed_or_lost():
            assert self._conn is not None
            self._conn.terminate()
            try:
                before = await self._hold_snapshot()
            except DatabaseError:
                self.error = "its database connection was lost and could not be opened again"
                return
            if not before:
                self.error = LOST_AFTER_CHANGES
                return
        if self.taken:
            await self._copy()

    async def _changed_or_lost(self) -> bool:
        """Wait until the run reports a change or ends (True), or the snapshot's connection is
        lost (False)."""
        assert self._conn is not None
        conn = self._conn
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await until_lost(conn)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await self._go.wait()
            tg.cancel_scope.cancel()
        return self._go.is_set()

    async def _copy(self) -> None:
        """Copy from the snapshot and commit at once (a later loss cannot undo it)."""
        assert self._conn is not None
        backup_id: int | None = None
        try:
            backup_id = await self._conn.fetchval(sql("backup_take"), self.run_id, "run", True)
            if backup_id is None:
                return  # the latest backup already holds this table: nothing to keep
            await self._tx.commit()
            self.backup_id = backup_id
        except Exception as exc:
            if not is_transient(exc):
                if not isinstance(exc, asyncpg.PostgresError):
                    raise
                self.error = f"the database refused the copy: {first_line(exc)}"
            elif backup_id is not None and await self._committed(backup_id):
                self.backup_id = backup_id  # the reply to the commit was lost, not the commit
            else:
                self.error = LOST_AFTER_CHANGES

    async def _committed(self, backup_id: int) -> bool:
        """Whether backup `backup_id` exists (its commit's reply was lost), on a new
        connection; False when none can be opened."""

        async def attempt() -> bool:
            async with connection(self.database_url) as conn:
                return await conn.fetchval(sql("backup_get"), backup_id) is not None

        try:
            return await retrying_attempts(attempt, retry=self.retry, what="checking the backup")
        except DatabaseError:
            return False

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self._go.set()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            if self._conn is not None:
                await self._conn.close()  # an uncommitted snapshot (no copy) ends with it


# -- in a file ----------------------------------------------------------------------------


# Whether the customers table is there (its folder_name is backed up with image_assets).
HAS_CUSTOMERS_SQL = "SELECT to_regclass('customers') IS NOT NULL"
# What a backup file holds: every row and column of image_assets, customers' folder_name.
DUMP_ASSETS_SQL = "SELECT * FROM image_assets"
DUMP_CUSTOMERS_SQL = "SELECT id, folder_name FROM customers"


async def backup_to_file(
    conn: asyncpg.Connection, path: Path, stats: LiveStats | None = None
) -> FileBackup:
    """Write image_assets and customers (id, folder_name) to a compressed file, in one
    snapshot, with their columns, row counts and checksums. `stats` counts image_assets'
    rows as they are written (COPY's text format: one line per row)."""
    stats = stats or LiveStats(unit="rows", rates=())
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(sql("backup_session"))
            stats.step("counting rows")
            manifest: dict[str, Any] = {
                "format": FILE_FORMAT,
                "version": FILE_VERSION,
                "taken_at": datetime.now(UTC).isoformat(),
                "columns": await conn.fetchval(sql("backup_columns"), "image_assets"),
                "checksum": await conn.fetchval(sql("backup_checksum"), "image_assets", "*"),
                "sha256": {},
            }
            has_customers = await conn.fetchval(HAS_CUSTOMERS_SQL)
            stats.begin(_rows(manifest["checksum"]))
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                manifest["sha256"][ASSETS_MEMBER] = await _dump(
                    conn, zf, ASSETS_MEMBER, DUMP_ASSETS_SQL, stats
                )
                if has_customers:
                    manifest["customers_checksum"] = await conn.fetchval(
                        sql("backup_checksum"), "customers", "id, folder_name"
                    )
                    manifest["sha256"][CUSTOMERS_MEMBER] = await _dump(
                        conn, zf, CUSTOMERS_MEMBER, DUMP_CUSTOMERS_SQL
                    )
                manifest["rows"] = _rows(manifest["checksum"])
                if has_customers:
                    manifest["customers"] = _rows(manifest["customers_checksum"])
                zf.writestr(MANIFEST_MEMBER, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"cannot write backup {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return FileBackup(path, manifest["rows"], manifest["checksum"], manifest.get("customers"),
                      path.stat().st_size)  # fmt: skip


def _rows(checksum: str) -> int:
    """The row count a checksum starts with (`rows:digest`, see loader.rows_checksum)."""
    return int(checksum.split(":")[0])


async def _dump(
    conn: asyncpg.Connection,
    zf: zipfile.ZipFile,
    member: str,
    query: str,
    stats: LiveStats | None = None,
) -> str:
    digest = hashlib.sha256()
    with zf.open(member, "w", force_zip64=True) as out:

        async def write(chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)
            if stats is not None:
                stats.done += chunk.count(b"\n")

        await conn.copy_from_query(query, output=write)
    return digest.hexdigest()


# What reading a zip member can raise on a damaged file: a bad or truncated archive, a
# missing member, compressed data that does not decompress or fails its CRC.
_DAMAGED_ZIP = (OSError, EOFError, ValueError, KeyError, NotImplementedError, zipfile.BadZipFile,
                zlib.error)  # fmt: skip


def _damage(exc: BaseException) -> str:
    """What zipfile said, in one short line (some of its messages quote raw header bytes)."""
    why = first_line(exc)
    return why if len(why) <= 100 else why[:100] + "…"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a backup file, with every part restore reads; `BadInputError` when it
    is not one (not a zip, empty, truncated, no or another manifest)."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = orjson.loads(zf.read(MANIFEST_MEMBER))
    except _DAMAGED_ZIP as exc:
        raise BadInputError(f"{path} is not a loader backup file: {_damage(exc)}") from exc
    if (not isinstance(manifest, dict) or manifest.get("format") != FILE_FORMAT
            or manifest.get("version") != FILE_VERSION):  # fmt: skip
        raise BadInputError(f"{path} is not a loader backup file (format {FILE_FORMAT} v1)")
    sha = manifest.get("sha256")
    parts = [isinstance(manifest.get("columns"), list), isinstance(manifest.get("checksum"), str),
             isinstance(sha, dict) and isinstance(sha.get(ASSETS_MEMBER), str)]  # fmt: skip
    if isinstance(sha, dict) and CUSTOMERS_MEMBER in sha:
        parts.append(isinstance(manifest.get("customers_checksum"), str))
    if not all(parts):
        raise BadInputError(f"{path}: the backup file's manifest is incomplete (damaged file)")
    return manifest


async def _member_chunks(
    zf: zipfile.ZipFile, member: str, expected: str, stats: LiveStats | None = None
) -> AsyncIterator[bytes]:
    digest = hashlib.sha256()
    try:
        with zf.open(member) as data:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
                if stats is not None:
                    stats.done += chunk.count(b"\n")
                yield chunk
    except _DAMAGED_ZIP as exc:
        raise BadInputError(f"backup file damaged: {member}: {_damage(exc)}") from exc
    if digest.hexdigest() != expected:
        raise BadInputError(f"backup file damaged: {member} does not match its sha256")


# -- restore ------------------------------------------------------------------------------


# Runs not finished: running, or stopped midway (a restore under them would make their
# journal lie).
OPEN_RUNS_SQL = """
SELECT coalesce(array_agg(run_id ORDER BY run_id), '{}') FROM loader.runs
WHERE status IN ('running', 'aborted', 'interrupted')
"""
# Make image_assets (and customers.folder_name) equal to the tables $1 and $2 (regclass names;
# $2 may be NULL); jsonb counts (see loader.backup_restore).
RESTORE_SQL = "SELECT loader.backup_restore($1::regclass, $2::regclass)"


async def restore(
    conn: asyncpg.Connection, target: str, stats: LiveStats | None = None
) -> RestoreResult:
    """Make image_assets (and customers' folder_name) what backup `target` holds: a backup
    id, or the path of a backup file. One transaction: all or nothing. `stats` counts a
    file's image_assets rows as they are loaded, then names the step under way.

    Refused while a run is not finished (running, or stopped midway), when the table's
    columns changed since the backup, and when the result would not match the backup's
    checksum.
    """
    path = Path(target)
    from_file = path.is_file()
    if not from_file and not target.isdigit():
        raise BadInputError(f"{target!r} is neither a backup id nor a backup file")
    manifest = read_manifest(path) if from_file else None  # a damaged file: before any work
    stats = stats or LiveStats(unit="rows", rates=())
    async with conn.transaction():
        await conn.execute(sql("backup_session"))
        running = await conn.fetchval(OPEN_RUNS_SQL)
        if running:
            raise BadInputError(
                f"run(s) {', '.join(map(str, running))} still marked running or stopped"
                " midway: let them finish (or resume them to the end, or roll them back)"
                " before restoring"
            )
        if manifest is not None:
            stats.begin(manifest["rows"])
            with zipfile.ZipFile(path) as zf:
                assets, customers, expected = await _load_file(conn, zf, manifest, stats)
        else:
            row = await conn.fetchrow(sql("backup_get"), int(target))
            if row is None:
                raise BadInputError(f"backup {target} does not exist (see `loader backup list`)")
            assets = f"loader.{_quote(row['assets_table'])}"
            customers = row["customers_table"] and f"loader.{_quote(row['customers_table'])}"
            expected = row["checksum"]
        await _same_columns(conn, assets, target)
        stats.step("restoring image_assets")
        counts = await conn.fetchval(RESTORE_SQL, assets, customers)
        if await conn.fetchval(sql("backup_checksum"), "image_assets", "*") != expected:
            raise SchemaError(
                "the restored image_assets does not match the backup's checksum (a trigger on "
                "image_assets may rewrite rows); nothing was changed"
            )
    return RestoreResult(target, int(expected.split(":")[0]), counts["deleted"],
                         counts["updated"], counts["inserted"], counts["folder_names"])  # fmt: skip


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _same_columns(conn: asyncpg.Connection, backup_table: str, what: str) -> None:
    have = await conn.fetchval(sql("backup_columns"), "image_assets")
    held = await conn.fetchval(sql("backup_columns"), backup_table)
    if have != held:
        raise SchemaError(
            f"image_assets columns changed since backup {what} was taken: now {have}, "
            f"backup {held}; restore by hand"
        )


# The session tables a backup file is loaded into before it is checked and restored.
FILE_ASSETS_TABLE_SQL = """
DROP TABLE IF EXISTS pg_temp.restore_image_assets;
CREATE TEMP TABLE restore_image_assets ON COMMIT DROP AS TABLE image_assets WITH NO DATA;
"""
FILE_CUSTOMERS_TABLE_SQL = """
DROP TABLE IF EXISTS pg_temp.restore_customers;
CREATE TEMP TABLE restore_customers ON COMMIT DROP AS
    SELECT id, folder_name FROM customers WITH NO DATA;
"""


async def _load_file(
    conn: asyncpg.Connection, zf: zipfile.ZipFile, manifest: dict[str, Any], stats: LiveStats
) -> tuple[str, str | None, str]:
    """Load a backup file into session tables, checked against its manifest."""
    have = await conn.fetchval(sql("backup_columns"), "image_assets")
    if have != manifest["columns"]:
        raise SchemaError(
            f"image_assets columns differ from the backup file's: now {have}, "
            f"file {manifest['columns']}; restore by hand"
        )
    await conn.execute(FILE_ASSETS_TABLE_SQL)
    sha = manifest["sha256"]
    rows = _member_chunks(zf, ASSETS_MEMBER, sha[ASSETS_MEMBER], stats)
    await conn.copy_to_table("restore_image_assets", source=rows)
    checksum = await conn.fetchval(sql("backup_checksum"), "restore_image_assets", "*")
    if checksum != manifest["checksum"]:
        raise BadInputError("backup file damaged: its rows do not match its checksum")
    customers = None
    if CUSTOMERS_MEMBER in sha:
        await conn.execute(FILE_CUSTOMERS_TABLE_SQL)
        rows = _member_chunks(zf, CUSTOMERS_MEMBER, sha[CUSTOMERS_MEMBER])
        await conn.copy_to_table("restore_customers", source=rows)
        checksum = await conn.fetchval(sql("backup_checksum"), "restore_customers", "*")
        if checksum != manifest["customers_checksum"]:
            raise BadInputError("backup file damaged: its customers do not match their checksum")
        customers = "pg_temp.restore_customers"
    return "pg_temp.restore_image_assets", customers, manifest["checksum"]
