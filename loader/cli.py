"""The `loader` command line: a thin layer over the library.

Each command is its options, a docstring with an example, and a few lines calling one library
function. What they run on is `loader.cli_runtime`: the shared option groups (decorators),
running a library call, and library errors (`LoaderError`) shown as one clean line on stderr
with the error's exit code (see `loader.errors.ExitCode`). The development commands
(`storage serve`, `bench`, `demo ...`) live in `loader.devtools.commands` and are registered
on the same group. `main` (the console script, `python -m loader`) is at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import click
import orjson

from loader import __version__, db, embedded
from loader.cli_runtime import (
    OUTPUT_FILE,
    LoaderFailure,
    database_options,
    default,
    embedded_server,
    exit_on,
    finished_report,
    info,
    on_database,
    on_loader_database,
    progress_options,
    resume_command,
    run,
    storage_options,
    target_database,
    warn,
    with_source,
    write_stopped_report,
)
from loader.devtools.commands import DEV_COMMANDS  # the one import of loader.devtools
from loader.errors import BadInputError, ExitCode, LoaderError
from loader.eventlog import EventLog
from loader.listing import SourceOptions, list_folders
from loader.match import ACCEPT, MARGIN
from loader.migrate import MigrateOptions
from loader.progress import LiveStats, ProgressOptions, show_progress
from loader.redact import remember_secret, remember_secrets_in
from loader.sync import SyncSettings

# Run ids are Postgres bigints: a larger number is a bad command line, not a database error.
RUN_ID = click.IntRange(1, 2**63 - 1)


# The development commands (storage serve, bench, demo) are defined in loader.devtools.
@click.group(commands=DEV_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loader")
def cli() -> None:
    """Migrate a Supabase Storage image library into the Postgres table image_assets.

    Typical order: `loader scan` (what is there), `loader match` (which folder is which
    customer; review the uncertain ones), `loader migrate`, `loader verify`.

    Example (try it on the demo first: `loader demo serve` prints what to export):

    \b
        export SUPABASE_URL=https://xyz.supabase.co SUPABASE_SERVICE_ROLE_KEY=...
        export DATABASE_URL=postgresql://...
        loader scan && loader match && loader migrate --dry-run
        loader migrate --report migrate.json && loader verify
    """


@cli.group(name="db")
def db_group() -> None:
    """The database: set up the loader's schema, or manage the embedded PostgreSQL.

    Example:

    \b
        loader db init --demo-schema
        psql "$(loader db url)"
        loader db stop
    """


@db_group.command(name="init")
@database_options
@click.option(
    "--demo-schema",
    is_flag=True,
    help="Also create customers, image_assets and storage.objects (local/demo only).",
)
def db_init(database_url: str | None, demo_schema: bool) -> None:
    """Create the loader's bookkeeping schema `loader` (idempotent).

    Example:

        loader db init --demo-schema
    """
    on_database(database_url, lambda conn: db.init_schema(conn, demo_schema=demo_schema))
    click.echo("schema ready" + (" (with demo tables)" if demo_schema else ""))


@db_group.command(name="url")
def db_url() -> None:
    """Print the embedded PostgreSQL's URL (starting it if needed).

    Example:

        psql "$(loader db url)"
    """
    try:
        click.echo(embedded_server().url())
    except LoaderError as exc:
        raise LoaderFailure(exc) from exc


@db_group.command(name="stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL.

    Example:

        loader db stop
    """
    try:
        stopped = embedded.stop()
    except LoaderError as exc:
        raise LoaderFailure(exc) from exc
    click.echo("stopped" if stopped else "not running")


@cli.command()
@storage_options
@database_options
@click.option("--json", "as_json", is_flag=True, help="Print every object as a JSON line.")
@click.option("--all", "every_folder", is_flag=True,
              help="List every folder in the summary, not only the largest.")  # fmt: skip
@progress_options
@with_source
def scan(opts: SourceOptions, database_url: str | None, as_json: bool, every_folder: bool,
         progress: ProgressOptions) -> None:  # fmt: skip
    """List the bucket and count objects per customer folder and per kind.

    Exit code 9 when there is nothing under the prefix, 10 when the key is not a
    service-role key and nothing is visible, 11 when some folders could not be listed.

    Examples:

    \b
        loader scan --storage-url https://xyz.supabase.co --json > objects.jsonl
        loader scan --all | grep -- -7889
    """
    from loader.scan import scan as scan_library

    out = sys.stdout.buffer
    on_object = None
    if as_json:

        def on_object(obj: Any, kind: str, mime: str | None) -> None:
            out.write(
                orjson.dumps(
                    {
                        "path": obj.path,
                        "size": obj.size,
                        "mimetype": mime or obj.mimetype,
                        "kind": kind,
                        "created_at": obj.created_at,
                        "updated_at": obj.updated_at,
                    }
                )
            )
            out.write(b"\n")

    stats = LiveStats()
    with show_progress(stats, "scan", progress):
        report = run(lambda: scan_library(opts, on_object=on_object, stats=stats))
    out.flush()
    for message in report.warnings:
        warn(message)
    from loader.report import print_scan_summary

    print_scan_summary(report, to_stderr=as_json, every_folder=every_folder)
    if report.failures:
        raise LoaderFailure(
            LoaderError(
                f"{len(report.failures)} folder(s) could not be listed (see above)",
                exit_code=ExitCode.INCOMPLETE,
            )
        )


@cli.command()
@storage_options
@database_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=default(MigrateOptions, "batch_size"),
    show_default=True,
    help="Rows per upsert statement.",
)
@click.option(
    "--db-concurrency",
    type=click.IntRange(1, 64),
    default=default(MigrateOptions, "db_concurrency"),
    show_default=True,
    help="Database connections writing batches at once (2 is best on 2 cores).",
)
@click.option(
    "--upload-source",
    default=default(MigrateOptions, "upload_source"),
    show_default=True,
    help="upload_source of rows the run creates (rollback marker).",
)
@click.option(
    "--cdn-url",
    "cdn_url",
    type=click.Choice(["fill", "overwrite", "keep"]),
    default=default(MigrateOptions, "cdn_url"),
    show_default=True,
    help="fill: write the file's URL where cdn_url is NULL or points at another object, and"
    " keep one pointing at the same object on another host (its path after the host is the"
    " loader's URL's, or ends with /PATH, raw or percent-encoded, with no `object` segment"
    " before it: a CDN in front); overwrite: always; keep: never write cdn_url (e.g. a"
    " private bucket).",
)
@click.option("--cdn-base", help="CDN URL in front of the bucket; cdn_url = BASE/PATH.")
@click.option(
    "--match",
    type=click.Choice(["auto", "none"]),
    default=default(MigrateOptions, "match"),
    show_default=True,
    help="auto: tag folders the matcher ties to a customer with confidence, and "
    "folders a person decided (loader match apply); none: tag nothing.",
)
@click.option("--dry-run", is_flag=True, help="Plan only: counts of inserts/updates, no writes.")
@click.option(
    "--resume",
    "--join",
    "resume",
    type=RUN_ID,
    metavar="RUN_ID",
    help="Work on an existing run: finish a killed one, or add a worker to one.",
)
@click.option(
    "--prepare",
    "prepare_only",
    is_flag=True,
    help="Create the run and its folder list, print RUN_ID, and stop.",
)
@click.option(
    "--create-unique-index",
    is_flag=True,
    help="Create the unique index on image_assets.file_path if it is missing.",
)
@click.option(
    "--backup/--no-backup",
    default=True,
    show_default=True,
    help="Back up image_assets first when the run changes rows (copied from the snapshot "
    "the run started with, while it works).",
)
@click.option(
    "--report",
    "report_path",
    **OUTPUT_FILE,
    help="Write a JSON report here, on every exit: a run that stops early (exit 12, 6, ...)"
    " reports its status, totals so far, failed folders and the command that resumes it.",
)
@click.option(
    "--log-file",
    **OUTPUT_FILE,
    help="Append structured JSON-lines events here.",
)
@progress_options
@with_source
def migrate(
    opts: SourceOptions,
    database_url: str | None,
    report_path: Path | None,
    log_file: Path | None,
    progress: ProgressOptions,
    **flags: Any,
) -> None:
    """Register every image and video of the bucket in image_assets.

    Inserts what is missing, tags matched folders' files customer-{id} (merged in Postgres,
    existing tags kept), fills cdn_url, and journals every change so `loader rollback`
    can undo it. Safe to re-run (a second run writes nothing). Exit code 11 when some
    folders or rows failed (see the report), 12 when the run stopped midway (resume it).

    Example:

    \b
        loader migrate --storage-url "$SUPABASE_URL" --report migrate.json
    """
    from loader.migrate import migrate as migrate_library
    from loader.report import print_migrate_summary, write_json

    stats = LiveStats(rates=("objects", "rows"))
    resume = resume_command(database_url, opts)
    options: MigrateOptions | None = None  # the report of a run that stops needs them
    try:
        options = run_options = MigrateOptions(
            source=opts,
            database_url=target_database(database_url),
            log_file=log_file,
            folder_rows=report_path is not None,  # only the report lists every folder
            **flags,
        )
        with EventLog(log_file) as log, show_progress(stats, "migrate", progress, log=log):
            result = run(
                lambda: migrate_library(run_options, stats=stats, log=log),
                stats=stats,
                resume=resume,
            )
    except Exception as exc:
        # Whatever ends the command early (Ctrl-C, a lost database or Storage, a bug), the
        # report is the file a person keeps of the run: written, then the error goes on.
        if report_path is not None:
            write_stopped_report(report_path, exc, stats, options, resume)
        raise
    for message in result.warnings:
        warn(message)
    if result.status == "prepared":
        if report_path is not None:
            write_json(report_path, finished_report(result, resume))
        click.echo(result.run_id)
        return
    # The summary first: a report that cannot be written must not hide what the run did.
    print_migrate_summary(result)
    if result.backup_id is not None:
        info(f"backup {result.backup_id} holds image_assets as it was before the run "
             f"(loader restore {result.backup_id})")  # fmt: skip
    if report_path is not None:
        write_json(report_path, finished_report(result, resume))
    if result.exit_code != ExitCode.OK:
        sys.exit(int(result.exit_code))


@cli.command()
@database_options
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--force", is_flag=True, help="Also undo rows changed since, or a run a later run built on."
)
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
@progress_options
def rollback(
    database_url: str | None, run_id: int, force: bool, dry_run: bool, progress: ProgressOptions
) -> None:
    """Undo one migrate run exactly, from its journal.

    Deletes the rows the run inserted and gives the rows it changed their exact previous
    ai_tags, cdn_url and updated_at. Rows someone changed since are reported: inserted ones
    are kept and changed ones only lose the tags the run added (--force undoes them fully).

    Examples:

    \b
        loader rollback 3 --dry-run
        loader rollback 3
    """
    from loader.rollback import rollback as rollback_library

    stats = LiveStats(unit="rows", rates=())
    with show_progress(stats, "rollback", progress):
        result = on_database(
            database_url,
            lambda conn: rollback_library(conn, run_id, force=force, dry_run=dry_run, stats=stats),
        )
    verb = "would be" if dry_run else "was"
    click.echo(f"run {run_id} {'would be rolled back' if dry_run else 'rolled back'}: "
               f"{result.deleted:,} rows deleted, {result.restored:,} rows restored")  # fmt: skip
    if result.partly_restored:
        warn(f"{result.partly_restored:,} changed rows were written by someone since the run:"
             f" only the run's own change {verb} undone (--force restores them fully)")  # fmt: skip
    if result.kept_changed:
        warn(f"{result.kept_changed:,} inserted rows were changed since the run and {verb}"
             " kept (--force deletes them too)")  # fmt: skip
    if result.gone:
        warn(f"{result.gone:,} rows of the run no longer exist")
    for action, paths in sorted(result.examples.items()):
        if action in ("kept", "undo_tags") or dry_run:
            click.echo(f"  {action}: " + ", ".join(paths))


@cli.command()
@storage_options
@database_options
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what is safe (missing rows, tags, cdn_url) with a journaled migrate run over "
    "the affected folders, then verify again. Never removes a tag.",
)
@click.option(
    "--delete-orphans",
    is_flag=True,
    help="With --repair: also delete rows whose object is gone (a run of its own; the "
    "deleted rows are kept and can be put back).",
)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 11).")
@click.option("--cdn-base", help="The CDN base migrate used (default: the latest run's).")
@click.option(
    "--report",
    "report_path",
    **OUTPUT_FILE,
    help="Write the findings (counts and example paths) as JSON here.",
)
@click.option(
    "--check-urls",
    "check_urls_n",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also fetch the cdn_urls of N random media files; any not answering 200 is a problem.",
)
@progress_options
@with_source
def verify(opts: SourceOptions, database_url: str | None, repair: bool, delete_orphans: bool,
           strict: bool, cdn_base: str | None, report_path: Path | None,
           check_urls_n: int, progress: ProgressOptions) -> None:  # fmt: skip
    """Check Storage against image_assets: errors fail, warnings are reported.

    Errors: files with no row, matched files missing their customer tag, rows tagged with
    another existing customer, rows with no cdn_url or another object's, public URLs of a
    private bucket (they never work). Warnings: orphan rows, tags of customers that do not
    exist, duplicated file_paths. Exit code 11 on errors (or a folder that could not be
    listed, or a checked cdn_url that does not answer 200), and on warnings with --strict.

    Example:

    \b
        loader verify --storage-url "$SUPABASE_URL" --report verify.json
    """
    from loader.migrate import migrate as migrate_library
    from loader.report import print_verify_result, write_json
    from loader.verify import VerifyResult
    from loader.verify import verify as verify_library

    if delete_orphans and not repair:
        raise click.UsageError("--delete-orphans needs --repair")
    url = target_database(database_url)

    def checked(label: str, delete_orphans: bool = False) -> VerifyResult:
        stats = LiveStats()
        with show_progress(stats, label, progress):
            return run(lambda: verify_library(opts, url, cdn_base=cdn_base,
                                              delete_orphans=delete_orphans,
                                              check_urls_n=check_urls_n, stats=stats))  # fmt: skip

    result = checked("verify", delete_orphans)
    print_verify_result(result)
    if result.orphan_run_id is not None:
        info(f"run {result.orphan_run_id}: {result.orphans_deleted:,} orphan rows deleted "
             "(kept in loader.deleted_rows)")  # fmt: skip
    if repair and result.repair_folders:
        info(f"repairing {result.repairable:,} problems in {len(result.repair_folders):,} "
             "folders with a migrate run ...")  # fmt: skip
        options = MigrateOptions(source=opts, database_url=url, cdn_base=cdn_base,
                                 folders=result.repair_folders)  # fmt: skip
        stats = LiveStats(rates=("objects", "rows"))
        with show_progress(stats, "repair", progress):
            repaired = run(lambda: migrate_library(options, stats=stats), stats=stats)
        backup = f", backup {repaired.backup_id}" if repaired.backup_id else ""
        info(f"run {repaired.run_id}: {repaired.totals.get('inserted', 0):,} inserted, "
             f"{repaired.totals.get('updated', 0):,} updated{backup}")  # fmt: skip
        result = checked("verify again")
        print_verify_result(result)
    info(result.sync)
    if report_path is not None:
        write_json(report_path, result.as_report())
    if not result.passes(strict=strict):
        sys.exit(int(ExitCode.INCOMPLETE))


@cli.group(name="backup", invoke_without_command=True)
@database_options
@click.option(
    "--to",
    "to_file",
    **OUTPUT_FILE,
    help="Write a compressed file instead of a copy in the database.",
)
@progress_options
def backup_group(database_url: str | None, to_file: Path | None, progress: ProgressOptions) -> None:
    """Back up image_assets and customers' folder_name (in the database, or to a file).

    Example:

        loader backup --to assets-2026-11-28.zip
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    from loader.backup import backup_to_file, take_backup

    stats = LiveStats(unit="rows", rates=())
    if to_file is not None:
        with show_progress(stats, "backup", progress):
            written = on_loader_database(
                database_url, lambda conn: backup_to_file(conn, to_file, stats)
            )
        click.echo(f"{written.path}: {written.rows:,} rows, {written.customers or 0:,} "
                   f"customers, {written.bytes:,} bytes, checksum {written.checksum}")  # fmt: skip
        return
    stats.step("copying image_assets in the database")
    with show_progress(stats, "backup", progress):
        taken = on_loader_database(database_url, lambda conn: take_backup(conn))
    click.echo(f"backup {taken.backup_id}: {taken.rows:,} rows, {taken.customers or 0:,} "
               f"customers, checksum {taken.checksum}")  # fmt: skip


@backup_group.command(name="list")
@database_options
def backup_list(database_url: str | None) -> None:
    """The backups in the database, newest first (ids for `loader restore`).

    Example:

        loader backup list
    """
    from loader.backup import list_backups
    from loader.report import print_backups

    print_backups(on_loader_database(database_url, list_backups))


@backup_group.command(name="prune")
@database_options
@click.option("--keep", type=click.IntRange(0), required=True, help="How many newest to keep.")
def backup_prune(database_url: str | None, keep: int) -> None:
    """Drop all but the newest KEEP backups.

    Example:

        loader backup prune --keep 2
    """
    from loader.backup import prune_backups

    dropped = on_loader_database(database_url, lambda conn: prune_backups(conn, keep))
    click.echo(f"{dropped} backup(s) dropped, {keep} kept at most")


@cli.command()
@database_options
@click.argument("backup")
@progress_options
def restore(database_url: str | None, backup: str, progress: ProgressOptions) -> None:
    """Make image_assets (and customers' folder_name) exactly what a backup holds.

    BACKUP is a backup id (`loader backup list`) or a file written by `loader backup --to`.
    Only rows that differ are touched, in one transaction, checked against the backup's
    checksum. Refused while a run is running or stopped midway.

    Example:

        loader restore 4
    """
    from loader.backup import restore as restore_library

    stats = LiveStats(unit="rows", rates=())
    with show_progress(stats, "restore", progress):
        done = on_loader_database(database_url, lambda conn: restore_library(conn, backup, stats))
    click.echo(f"restored {done.source}: {done.rows:,} rows ({done.deleted:,} deleted, "
               f"{done.updated:,} updated, {done.inserted:,} inserted), "
               f"{done.folder_names:,} folder_name(s) reset")  # fmt: skip


@cli.group(name="sync")
def sync_group() -> None:
    """Keep image_assets in step with Storage after the migration (docs/sync.md).

    A trigger on storage.objects registers each new upload of the bucket and prefix as
    `loader migrate` would (same rows, the folder's customer tag, cdn_url). It runs in the
    database Storage writes to; for another database, schedule `loader migrate` instead.

    Example:

    \b
        loader sync install      # settings from the latest migrate run
        loader sync status
        loader sync remove       # triggers, functions and tables gone; rows kept
    """


@sync_group.command(name="install")
@database_options
@click.option("--bucket", help="Default: the latest migrate run's.")
@click.option("--prefix", help="Default: the latest migrate run's.")
@click.option("--cdn-base", help="cdn_url = BASE/PATH. Default: the base of the latest run's"
              " cdn_urls.")  # fmt: skip
@click.option("--cdn-url", type=click.Choice(["fill", "overwrite", "keep"]),
              help="Default: the latest run's (fill when it has none).")  # fmt: skip
@click.option("--upload-source", help="Default: the latest run's.")
@click.option(
    "--match",
    type=click.Choice(["auto", "none"]),
    help="Tag the folder's customer (auto) or nothing. Default: the latest run's.",
)
@click.option("--lock-timeout-ms", type=click.IntRange(1, 60_000),
              default=default(SyncSettings, "lock_timeout_ms"), show_default=True,
              help="Longest an upload waits for a lock on image_assets before its row is"
              " skipped and the error recorded.")  # fmt: skip
def sync_install(database_url: str | None, **flags: Any) -> None:
    """Install the trigger (again: idempotent). Settings not given here follow the latest
    migrate run at every upload. Exit code 5 when a privilege is missing (the message names
    the GRANT), 3 when there is no run to take settings from and no flag gives them.

    Example:

        loader sync install --database-url "$DATABASE_URL"
    """
    from loader.sync import install, status_lines

    found = on_database(database_url, lambda conn: install(conn, SyncSettings(**flags)))
    for message in found.warnings:
        warn(message)
    click.echo("\n".join(status_lines(found)))


@sync_group.command(name="status")
@database_options
def sync_status(database_url: str | None) -> None:
    """Installed or not, the settings an upload gets now, rows registered, recent errors.
    Exit code 5 when sync is installed but a part of it is missing (uploads are not
    registered): a scheduled check can alert on it.

    Example:

        loader sync status
    """
    from loader.sync import status, status_lines

    found = on_database(database_url, status)
    click.echo("\n".join(status_lines(found)))
    if found.installed and found.missing:
        sys.exit(int(ExitCode.SCHEMA))


@sync_group.command(name="remove")
@database_options
def sync_remove(database_url: str | None) -> None:
    """Remove the triggers, functions and tables of sync; the rows it registered stay.
    Dropping a trigger needs the owner of storage.objects (exit code 5 otherwise).

    Example:

        loader sync remove
    """
    from loader.sync import remove

    removed = on_database(database_url, remove)
    click.echo("sync removed" if removed else "sync was not installed")


@cli.group(name="match", invoke_without_command=True)
@storage_options
@database_options
@click.option("--folders", "folders_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Read folder names from this file (one per line) instead "
              "of listing Storage.")  # fmt: skip
@click.option(
    "--report",
    "report_path",
    **OUTPUT_FILE,
    default=Path("match-report.json"),
    show_default=True,
    help="JSON report; a CSV with the same name is written beside it.",
)
@click.option(
    "--review",
    "review_path",
    **OUTPUT_FILE,
    default=Path("match-review.csv"),
    show_default=True,
    help="The folders a person must decide, to edit and pass to `match apply`.",
)
@click.option(
    "--accept",
    type=click.FloatRange(0, 1),
    default=ACCEPT,
    show_default=True,
    help="Lowest confidence linked automatically.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 1, min_open=True),
    default=MARGIN,
    show_default=True,
    help="Lead over the runner-up needed to link automatically.",
)
@with_source
def match(
    opts: SourceOptions,
    database_url: str | None,
    folders_file: Path | None,
    report_path: Path,
    review_path: Path,
    accept: float,
    margin: float,
) -> None:
    """Tie each customer folder to a customer, or hand it to a person.

    Links exact folder_name matches, normalized ones, and scored ones (romanized name and
    phone digits) only when strong and unique; everything else goes to the review CSV.
    Never creates customers.

    Example:

        loader match --report match.json
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    from loader.match_db import match_with_database
    from loader.match_files import read_folders_file, write_report, write_review_csv
    from loader.report import print_match_summary

    url = target_database(database_url)

    async def go() -> Any:
        folders = read_folders_file(folders_file) if folders_file else await list_folders(opts)
        async with db.connection(url) as conn:
            # The whole bucket's folders (not --folders): the latest links, for `loader sync`.
            return await match_with_database(
                conn, folders, accept=accept, margin=margin, record=folders_file is None
            )

    matches = run(go)
    # The summary first: a report that cannot be written must not hide the matching.
    print_match_summary(matches)
    json_path, csv_path = write_report(matches, report_path)
    to_review = write_review_csv(matches, review_path)
    info(f"report: {json_path} and {csv_path}; {to_review} folder(s) to review in {review_path}")


@match.command(name="apply")
@storage_options
@database_options
@click.argument("review_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--folders", "folders_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="The bucket's folder names, one per line, instead of "
              "listing Storage.")  # fmt: skip
@click.option(
    "--write-folder-name",
    is_flag=True,
    help="Also set customers.folder_name (journaled; undo with `match revert`).",
)
@with_source
def match_apply(
    opts: SourceOptions,
    database_url: str | None,
    review_csv: Path,
    folders_file: Path | None,
    write_folder_name: bool,
) -> None:
    """Record a person's decisions from an edited review CSV; they win in later runs.

    Fill the `decision` column with a customer id, or `none` to keep a folder unmatched.
    Every decided folder must be in the bucket (listed from Storage, or from --folders):
    otherwise nothing is recorded and the exit code is 3.

    Example:

    \b
        loader match apply match-review.csv --write-folder-name
    """
    from loader.match_db import apply_decisions
    from loader.match_files import read_folders_file, read_review_csv

    url = target_database(database_url)

    async def go() -> Any:
        decisions = read_review_csv(review_csv)
        if folders_file is not None:
            known = set(read_folders_file(folders_file))
        elif opts.source == "rest" and not opts.storage_url:
            raise BadInputError(
                "match apply checks each decision's folder against the bucket: pass"
                " --storage-url and --key (or set SUPABASE_URL), or --folders FILE"
            )
        else:
            known = set(await list_folders(opts))
        unknown = sorted(set(decisions) - known)
        if unknown:
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise BadInputError(
                f"{len(unknown)} decision(s) name folders that are not in the bucket:"
                f" {', '.join(map(repr, unknown[:10]))}{more}; nothing was recorded"
            )
        async with db.connection(url) as conn:
            return await apply_decisions(conn, decisions, write_folder_name=write_folder_name)

    summary = run(go)
    click.echo(f"{summary.decisions_written} decision(s) recorded, "
               f"{summary.folder_names_written} folder_name(s) written")  # fmt: skip
    for skipped in summary.skipped:
        warn(f"folder_name not written: {skipped}")


@match.command(name="revert")
@database_options
def match_revert(database_url: str | None) -> None:
    """Restore the customers.folder_name values `match apply --write-folder-name` changed.

    Example:

        loader match revert
    """
    from loader.match_db import revert_folder_names

    click.echo(f"{on_database(database_url, revert_folder_names)} folder_name change(s) reverted")


@cli.command(name="review")
@storage_options
@database_options
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Print the page's URL without opening it.")
@click.option(
    "--export",
    "export_path",
    **OUTPUT_FILE,
    help="Write the queue as one self-contained HTML file instead of serving the page.",
)
@click.option(
    "--write-folder-name",
    is_flag=True,
    help="Also set customers.folder_name on each decision (as `match apply` does).",
)
@with_source
def review(
    opts: SourceOptions,
    database_url: str | None,
    port: int,
    no_browser: bool,
    export_path: Path | None,
    write_folder_name: bool,
) -> None:
    """Decide the folders in review or conflict in the browser, by their pictures.

    Serves a page on 127.0.0.1 (its URL carries a one-time token; Ctrl-C stops it). Each
    decision is recorded as `loader match apply` records it, in loader.match_decisions.

    Examples:

    \b
        loader review --storage-url $SUPABASE_URL
        loader review --export review.html
    """
    from loader import review as rv

    url = target_database(database_url)
    if export_path is not None:
        page, folders = run(lambda: rv.export_html(opts, url))
        export_path.write_text(page, encoding="utf-8")
        click.echo(f"{folders} folder(s) to decide written to {export_path}")
        return

    async def go() -> None:
        async with rv.serving(opts, url, port=port, write_folder_name=write_folder_name) as (
            page_url,
            session,
        ):
            click.echo(f"{len(session.queue.items)} folder(s) to decide: open {page_url}")
            click.echo("Ctrl-C stops the page; decisions are saved as they are made.", err=True)
            if not no_browser:
                import webbrowser

                webbrowser.open(page_url)
            # Ctrl-C is how a person says "done": a clean stop, not an interruption.
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    return

    run(go)


@cli.command(name="runs")
@database_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def runs_command(database_url: str | None, limit: int) -> None:
    """List recent migrate runs: status, counts, folder progress (ids for --resume/rollback).

    Example:

        loader runs --limit 5
    """
    from loader.report import print_runs
    from loader.runs import recent_runs

    async def read(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        await db.init_schema(conn)
        return await recent_runs(conn, limit)

    print_runs(on_database(database_url, read))


def main() -> None:
    """Console-script entry point."""
    # asyncpg's pool and asyncio log connection trouble with tracebacks; the loader retries on
    # its own and reports the outcome in one line, so their logs would only bury it.
    for name in ("asyncpg", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in ("PGPASSWORD", "SUPABASE_SERVICE_ROLE_KEY"):
        remember_secret(os.environ.get(name))
    for name in ("DATABASE_URL", "SUPABASE_URL"):
        remember_secrets_in(os.environ.get(name))
    try:
        cli.main(prog_name="loader", standalone_mode=False)
    except Exception as exc:  # a bad command line, a library error, a bug: shown in one place
        exit_on(exc)
