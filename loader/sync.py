"""`loader sync`: keep image_assets in step with Storage after the migration.

Supabase Storage writes a row into `storage.objects` for every upload, in the same
PostgreSQL as image_assets. `install` puts a trigger on that table whose function (written by
`loader.sync_define`, sql/sync_schema.sql) registers each new object of the bucket and prefix
as `loader migrate` would: the same classification and row (`loader.sync_row`, held equal to
`loader.classify` and `loader.rows` by tests/test_sync.py), the tag of the folder's customer
(`loader.sync_customer`: a person's decisions, else the latest links that `loader match` and
`loader migrate` keep in loader.sync_links), and the cdn_url on the latest run's base.
Settings not fixed by a flag come from the latest migrate run at every upload, so a new run,
link or decision applies to the next upload without reinstalling.

The function runs with its owner's rights on a fixed search_path (uploads write as anon,
authenticated, service_role or Storage's admin role), waits at most `lock_timeout_ms` for a
lock, and never fails an upload: errors go to loader.sync_errors. Details: docs/sync.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from loader.classify import MEDIA_TYPES, PLACEHOLDER_NAMES
from loader.db import init_schema
from loader.errors import BadInputError, SchemaError
from loader.listing import _prefix_range, normalize_prefix
from loader.match_db import links_with_database, record_links
from loader.preflight import check_target
from loader.sqlfiles import sql

# Long enough for the row locks of a normal write to pass, short enough that an upload never
# hangs behind a table someone locked (an ALTER TABLE, a restore): it is then recorded.
LOCK_TIMEOUT_MS = 200
RECENT_ERRORS = 10
SETTINGS = ("bucket", "prefix", "cdn_base", "cdn_url", "upload_source", "match")


@dataclass(slots=True)
class SyncSettings:
    """What `loader sync install` fixes by its flags; None: the latest migrate run's, read
    again at every upload."""

    bucket: str | None = None
    prefix: str | None = None
    cdn_base: str | None = None
    cdn_url: Literal["fill", "overwrite", "keep"] | None = None
    upload_source: str | None = None
    match: Literal["auto", "none"] | None = None
    lock_timeout_ms: int = LOCK_TIMEOUT_MS


@dataclass(slots=True)
class SyncStatus:
    installed: bool
    missing: list[str] = field(default_factory=list)  # parts gone from a partial install
    settings: dict[str, Any] = field(default_factory=dict)  # what an upload gets now
    fixed: dict[str, Any] = field(default_factory=dict)  # the flags install was given
    run_id: int | None = None  # the run the other settings come from
    target: str | None = None
    lock_timeout: str | None = None
    installed_at: datetime | None = None
    links: int = 0
    inserted: int = 0
    updated: int = 0
    last_registered_at: datetime | None = None
    errors: int = 0
    recent_errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for `loader verify`."""
        if not self.installed:
            return ("sync: not installed (uploads reach image_assets only through `loader "
                    "migrate`; see `loader sync install`)")  # fmt: skip
        if self.missing:
            return f"sync: broken ({', '.join(self.missing)} missing): run `loader sync install`"
        errors = f", {_count(self.errors, 'error')} (loader sync status)" if self.errors else ""
        return (f"sync: installed ({self.settings.get('bucket')}/{self.settings.get('prefix')}"
                f", {_count(self.inserted, 'row')} registered{errors})")  # fmt: skip


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# image_assets as the search path resolves it, schema-qualified and quoted for SQL text.
TARGET_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS target
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('image_assets')
"""
# The settings an upload is registered with right now (see loader.sync_config).
CONFIG_SQL = """
SELECT bucket, prefix, cdn_base, cdn_url, upload_source, match, run_id FROM loader.sync_config()
"""
# Write the trigger function for $1 (image_assets, schema-qualified) waiting at most $2 for a
# lock, and put its triggers on storage.objects (see loader.sync_define).
DEFINE_SQL = "SELECT loader.sync_define($1, $2)"


async def install(conn: asyncpg.Connection, settings: SyncSettings) -> SyncStatus:
    """Install (or update) sync: check the privileges it needs first, then the table it
    writes, then in one transaction its tables, functions, settings, the bucket's links and
    the triggers. Idempotent: installing twice equals installing once."""
    granted = await _check_privileges(conn)
    if not granted["has_schema"]:
        # Only when missing: every loader command keeps an existing schema current, and its
        # objects belong to whoever made them (an installing role need not own them).
        await init_schema(conn)
    await _check_target(conn)
    target = await conn.fetchval(TARGET_SQL)
    prefix = normalize_prefix(settings.prefix) if settings.prefix is not None else None
    async with conn.transaction():
        await conn.execute(sql("advisory_lock_init"))  # one install (or init) at a time
        await conn.execute(sql("sync_schema"))
        await conn.execute(sql("sync_classify_put"), list(MEDIA_TYPES),
                           list(MEDIA_TYPES.values()), sorted(PLACEHOLDER_NAMES))  # fmt: skip
        timeout = f"{settings.lock_timeout_ms}ms"
        await conn.execute(sql("sync_settings_put"), settings.bucket, prefix, settings.cdn_base,
                           settings.cdn_url, settings.upload_source, settings.match, target,
                           timeout)  # fmt: skip
        config = await conn.fetchrow(CONFIG_SQL)
        _check_config(config)
        await _links(conn, config)
        await conn.execute(DEFINE_SQL, target, timeout)
    installed = await status(conn)
    if not granted["can_drop"]:
        installed.warnings.append(_removal_needs_owner(granted))
    return installed


def _removal_needs_owner(granted: asyncpg.Record) -> str:
    return (f"only the owner of storage.objects ({granted['owner']}) may drop its triggers: "
            f"run `loader sync remove` as {granted['owner']}, or first GRANT "
            f"{granted['owner']} TO {granted['role']}")  # fmt: skip


async def _check_target(conn: asyncpg.Connection) -> None:
    """image_assets as migrate's preflight wants it; the unique index on file_path, which the
    trigger's ON CONFLICT needs, is not created here (migrate's flag does that)."""
    try:
        await check_target(conn)
    except SchemaError as exc:
        if await conn.fetchval(sql("preflight_unique_index")):
            raise
        raise SchemaError(
            "image_assets has no unique index on file_path, which sync's ON CONFLICT needs:"
            " create it with `loader migrate --create-unique-index`, or run CREATE UNIQUE"
            " INDEX CONCURRENTLY ON image_assets (file_path)"
        ) from exc


def _check_config(config: asyncpg.Record) -> None:
    """Refuse settings an upload could not be registered with (nothing is installed)."""
    missing = [
        flag
        for flag, name in (("--bucket", "bucket"), ("--prefix", "prefix"),
                           ("--upload-source", "upload_source"))
        if config[name] is None
    ]  # fmt: skip
    if config["cdn_url"] != "keep" and config["cdn_base"] is None:
        missing.append("--cdn-base (or --cdn-url keep)")
    if missing:
        raise BadInputError(
            "no migrate run to take sync's settings from: run `loader migrate` first, or pass "
            + ", ".join(missing)
        )


async def _links(conn: asyncpg.Connection, config: asyncpg.Record) -> None:
    """The bucket's links as migrate would make them now, from the folders in storage.objects
    (this is Storage's own database); `loader match` and `loader migrate` keep them current."""
    if config["match"] != "auto":
        await record_links(conn, [])
        return
    low, high = _prefix_range(config["prefix"])
    rows = await conn.fetch(sql("storage_db_top_folders"), config["bucket"], low, high)
    await links_with_database(conn, [r["folder"] for r in rows])


async def _check_privileges(conn: asyncpg.Connection) -> asyncpg.Record:
    """`SchemaError` naming the grant that is missing, before anything is created; else what
    the role may do."""
    found = await conn.fetchrow(sql("sync_privileges"))
    role = found["role"]
    if not found["has_objects"]:
        raise SchemaError(
            f"database {found['database']} has no table storage.objects: sync runs in the "
            "database Supabase Storage writes to; to fill image_assets in another database, "
            "schedule `loader migrate` (docs/sync.md)"
        )
    if not found["can_trigger"]:
        raise SchemaError(
            f"role {role} may not create triggers on storage.objects: as its owner, run "
            f"GRANT TRIGGER ON storage.objects TO {role}"
        )
    if not found["can_create"]:
        grant = (
            f"GRANT CREATE ON SCHEMA loader TO {role}"
            if found["has_schema"]
            else f"GRANT CREATE ON DATABASE {found['database']} TO {role}"
        )
        raise SchemaError(f"role {role} may not create sync's functions and tables: run {grant}")
    return found


# The $1 latest errors the trigger caught, for `loader sync status`.
ERRORS_RECENT_SQL = """
SELECT at, bucket_id, name, operation, sqlstate, message
FROM loader.sync_errors ORDER BY at DESC LIMIT $1
"""


async def status(conn: asyncpg.Connection) -> SyncStatus:
    """Installed or not, the settings an upload gets now, what was registered, recent errors."""
    state = await conn.fetchrow(sql("sync_state"))
    parts = {"tables": state["tables"], "trigger function": state["function"],
             "triggers": state["triggers"] == 2}  # fmt: skip
    if not any((state["tables"], state["function"], state["triggers"])):
        return SyncStatus(installed=False)
    missing = [name for name, there in parts.items() if not there]
    if not state["tables"]:
        return SyncStatus(installed=True, missing=missing)
    row = await conn.fetchrow(sql("sync_status"))
    recent = await conn.fetch(ERRORS_RECENT_SQL, RECENT_ERRORS)
    return SyncStatus(
        installed=True,
        missing=missing,
        settings={name: row[name] for name in SETTINGS},
        fixed={name: row[f"fixed_{name}"] for name in SETTINGS},
        run_id=row["run_id"],
        target=row["target"],
        lock_timeout=row["lock_timeout"],
        installed_at=row["installed_at"],
        links=row["links"],
        inserted=row["inserted"],
        updated=row["updated"],
        last_registered_at=row["last_registered_at"],
        errors=row["errors"],
        recent_errors=[dict(r) for r in recent],
    )


async def remove(conn: asyncpg.Connection) -> bool:
    """Drop the triggers, functions and tables of sync (the rows it registered stay in
    image_assets); False when nothing of it was there."""
    state = await conn.fetchrow(sql("sync_state"))
    if state["triggers"]:
        granted = await conn.fetchrow(sql("sync_privileges"))
        if not granted["can_drop"]:
            raise SchemaError(f"cannot remove sync: {_removal_needs_owner(granted)}")
    async with conn.transaction():
        await conn.execute(sql("sync_remove"))
    return bool(state["tables"] or state["function"] or state["triggers"])


def status_lines(found: SyncStatus) -> list[str]:
    """`loader sync status` as lines of text."""
    lines = [found.line()]
    if found.settings:
        for name in SETTINGS:
            if found.fixed.get(name) is not None:
                origin = "flag"
            else:
                origin = f"run {found.run_id}" if found.run_id is not None else "default"
            lines.append(f"  {name}: {found.settings[name]} ({origin})")
        lines.append(f"  target: {found.target}, lock timeout {found.lock_timeout}, installed "
                     f"{found.installed_at:%Y-%m-%d %H:%M:%S%z}")  # fmt: skip
        lines.append(f"  linked folders: {found.links:,}")
        last = found.last_registered_at
        when = f", the last at {last:%Y-%m-%d %H:%M:%S%z}" if last is not None else ""
        lines.append(f"  rows inserted: {found.inserted:,}, updated: {found.updated:,}{when}")
    for error in found.recent_errors:
        lines.append(f"  error {error['at']:%Y-%m-%d %H:%M:%S%z} {error['operation']} "
                     f"{error['name']}: {error['sqlstate']} {error['message']}")  # fmt: skip
    return lines
