"""The `loader` command line: a thin layer over the library.

Each command is its options, a docstring with an example, and a few lines calling one library
function. Shared option groups are decorators. Library errors (`LoaderError`) become one
clean line on stderr and the error's exit code (see `loader.errors.ExitCode`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg
import click
import orjson

from loader import __version__, db, embedded
from loader.config import state_dir
from loader.errors import ExitCode, LoaderError
from loader.eventlog import EventLog
from loader.listing import SourceOptions, list_folders
from loader.match import ACCEPT, MARGIN
from loader.progress import LiveStats, live_progress

F = TypeVar("F", bound=Callable[..., Any])


T = TypeVar("T")

DEFAULT_BUCKET = "blog-images"
DEFAULT_PREFIX = "originals/customers/"


_HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


class LoaderFailure(click.ClickException):
    """A library error as click shows it: `Error: <one line>` and the error's exit code."""

    def __init__(self, error: LoaderError) -> None:
        super().__init__(str(error))
        self.exit_code = int(error.exit_code)


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async library call; expected failures become one line, never a traceback."""
    try:
        # uvloop (the `fast` extra) when installed: less event-loop CPU per listing call.
        return anyio.run(coro_fn, backend_options={"use_uvloop": _HAVE_UVLOOP})
    except LoaderError as exc:
        raise LoaderFailure(exc) from None
    except KeyboardInterrupt:
        raise LoaderFailure(LoaderError("interrupted", exit_code=ExitCode.ABORTED)) from None


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def info(message: str) -> None:
    click.echo(message, err=True)


# -- shared option groups ---------------------------------------------------------------


def _output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # Checked before any work starts, so a typo does not cost a whole run's report.
    if value is not None and not value.resolve().parent.is_dir():
        raise click.BadParameter(f"folder {value.parent} does not exist")
    return value


OUTPUT_FILE: dict[str, Any] = {
    "type": click.Path(dir_okay=False, writable=True, path_type=Path),
    "callback": _output_file,
}


def database_options(fn: F) -> F:
    """`--database-url`: the target database (default `$DATABASE_URL`, else embedded)."""
    return click.option(
        "--database-url",
        envvar="DATABASE_URL",
        show_envvar=True,
        help="Target PostgreSQL URL. Without it, a local embedded PostgreSQL is used.",
    )(fn)


def storage_options(fn: F) -> F:
    """Where to list from and how hard to push: shared by scan, match and migrate."""
    options = [
        click.option("--storage-url", envvar="SUPABASE_URL", show_envvar=True,
                     help="Supabase project URL or Storage API root."),
        click.option("--key", envvar="SUPABASE_SERVICE_ROLE_KEY", show_envvar=True,
                     help="Service-role key (never printed)."),
        click.option("--bucket", default=DEFAULT_BUCKET, show_default=True),
        click.option("--prefix", default=DEFAULT_PREFIX, show_default=True,
                     help="Folder holding one sub-folder per customer."),
        click.option("--source", type=click.Choice(["rest", "db"]), default="rest",
                     show_default=True,
                     help="List through the REST API, or read storage.objects directly."),
        click.option("--storage-database-url",
                     help="Database holding storage.objects for --source db "
                     "(default: the target database)."),
        click.option("--list-api", type=click.Choice(["auto", "v1", "v2"]), default="auto",
                     show_default=True, help="auto: v2 when the server has it, else v1."),
        click.option("--list-concurrency", type=click.IntRange(1, 512), default=32,
                     show_default=True, help="Folders listed at once."),
        click.option("--page-size", type=click.IntRange(1, 1500), default=1000,
                     show_default=True, help="Entries per list call (v1 caps at 1500)."),
        click.option("--max-rps", type=click.FloatRange(min=0.1), default=None,
                     help="Cap on Storage requests per second."),
        click.option("--request-timeout", "request_timeout_s", type=click.FloatRange(min=0.1),
                     default=30.0,
                     show_default=True, help="Seconds per Storage request."),
        click.option("--retries", type=click.IntRange(1, 50), default=6, show_default=True,
                     help="Attempts per Storage request before a folder is marked failed."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def source_options(params: dict[str, Any]) -> SourceOptions:
    """Build `SourceOptions` from the storage option group's values (popping them)."""
    return SourceOptions(**{f.name: params.pop(f.name) for f in fields(SourceOptions)})


def target_database(url: str | None) -> str:
    """Resolve the target database and say which one is in use (password hidden)."""
    resolved = db.resolve_database_url(url)
    info(f"database: {db.describe(resolved)}{'' if url else ' (embedded)'}")
    return resolved


def on_database(database_url: str | None, call: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `call(conn)` on one connection to the target database, through `run`."""
    url = target_database(database_url)

    async def go() -> T:
        async with db.connection(url) as conn:
            return await call(conn)

    return run(go)


def with_source(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the storage option group into one `opts: SourceOptions` argument.

    For --source db without --storage-database-url, storage.objects is read from the target
    database.
    """

    @functools.wraps(fn)
    def wrapper(**params: Any) -> Any:
        opts = source_options(params)
        if opts.source == "db" and not opts.storage_database_url:
            opts.storage_database_url = target_database(params.get("database_url"))
        return fn(opts=opts, **params)

    return wrapper


# -- commands ---------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loader")
def cli() -> None:
    """Migrate a Supabase Storage image library into the Postgres table image_assets.

    Typical order: `loader scan` (what is there), `loader match` (which folder is which
    customer; review the uncertain ones), `loader migrate`, `loader verify`.
    """


@cli.group(name="db")
def db_group() -> None:
    """The database: set up the loader's schema, or manage the embedded PostgreSQL."""


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
        click.echo(embedded.ensure_running().url())
    except LoaderError as exc:
        raise LoaderFailure(exc) from None


@db_group.command(name="stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL.

    Example:

        loader db stop
    """
    try:
        stopped = embedded.stop()
    except LoaderError as exc:
        raise LoaderFailure(exc) from None
    click.echo("stopped" if stopped else "not running")


@cli.command()
@storage_options
@database_options
@click.option("--json", "as_json", is_flag=True, help="Print every object as a JSON line.")
@with_source
def scan(opts: SourceOptions, database_url: str | None, as_json: bool) -> None:
    """List the bucket and count objects per customer folder and per kind.

    Exit code 9 when there is nothing under the prefix, 10 when the key is not a
    service-role key and nothing is visible, 11 when some folders could not be listed.

    Example:

        loader scan --storage-url https://xyz.supabase.co --json > objects.jsonl
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
    with live_progress(stats):
        report = run(lambda: scan_library(opts, on_object=on_object, stats=stats))
    out.flush()
    for message in report.warnings:
        warn(message)
    from loader.report import print_scan_summary

    print_scan_summary(report, to_stderr=as_json)
    if report.failures:
        raise LoaderFailure(
            LoaderError(
                f"{len(report.failures)} folder(s) could not be listed (see above)",
                exit_code=ExitCode.INCOMPLETE,
            )
        )


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="loader")
    except LoaderError as exc:  # raised outside `run`, e.g. while resolving options
        click.echo(f"Error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        if os.environ.get("LOADER_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (LOADER_DEBUG=1 for details)",
                   err=True)  # fmt: skip
        sys.exit(int(ExitCode.INTERNAL))


@cli.command()
@storage_options
@database_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Rows per upsert statement.",
)
@click.option(
    "--db-concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Database connections writing batches at once (2 is best on 2 cores).",
)
@click.option(
    "--upload-source",
    default="customer-migration",
    show_default=True,
    help="upload_source of rows the run creates (rollback marker).",
)
@click.option(
    "--cdn-url",
    "cdn_url",
    type=click.Choice(["fill", "overwrite"]),
    default="fill",
    show_default=True,
    help="fill: only where cdn_url is NULL; overwrite: always.",
)
@click.option("--cdn-base", help="CDN URL in front of the bucket; cdn_url = BASE/PATH.")
@click.option(
    "--match",
    type=click.Choice(["auto", "none"]),
    default="auto",
    show_default=True,
    help="auto: tag folders the matcher ties to a customer with confidence, and "
    "folders a person decided (loader match apply); none: tag nothing.",
)
@click.option("--dry-run", is_flag=True, help="Plan only: counts of inserts/updates, no writes.")
@click.option(
    "--resume",
    "--join",
    "resume",
    type=int,
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
    "--report",
    "report_path",
    **OUTPUT_FILE,
    help="Write a JSON report here.",
)
@click.option(
    "--log-file",
    **OUTPUT_FILE,
    help="Append structured JSON-lines events here.",
)
@with_source
def migrate(
    opts: SourceOptions,
    database_url: str | None,
    report_path: Path | None,
    log_file: Path | None,
    **flags: Any,
) -> None:
    """Register every image and video of the bucket in image_assets.

    Inserts what is missing, tags matched folders' files customer-{id} (merged in Postgres,
    existing tags kept), fills cdn_url, and journals every change so `loader rollback`
    can undo it. Safe to re-run (a second run writes nothing). Exit code 11 when some
    folders or rows failed (see the report), 12 when the run stopped midway (resume it).

    Example:

        loader migrate --storage-url "$SUPABASE_URL" --report migrate.json
    """
    from loader.migrate import MigrateOptions
    from loader.migrate import migrate as migrate_library
    from loader.report import print_migrate_summary, write_json

    options = MigrateOptions(
        source=opts, database_url=target_database(database_url), log_file=log_file, **flags
    )
    stats = LiveStats()
    with EventLog(log_file) as log, live_progress(stats):
        result = run(lambda: migrate_library(options, stats=stats, log=log))
    for message in result.warnings:
        warn(message)
    if report_path is not None:
        write_json(report_path, result.as_report())
    if result.status == "prepared":
        click.echo(result.run_id)
        return
    print_migrate_summary(result)
    if result.exit_code != ExitCode.OK:
        sys.exit(int(result.exit_code))


@cli.group(name="storage")
def storage_group() -> None:
    """The project's Supabase-Storage-compatible server (tests, demo, benchmarks)."""


@storage_group.command(name="serve")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Serve every file below this folder as an object.",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve the objects listed in this JSON-lines file.",
)
@click.option("--bucket", default=DEFAULT_BUCKET, show_default=True)
@click.option(
    "--key",
    envvar="SUPABASE_SERVICE_ROLE_KEY",
    required=True,
    help="The service-role key clients must send.",
)
@click.option("--anon-key", help="A key that is accepted but sees nothing (row-level security).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0)
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Fraction of list/bucket responses that fail (429, 5xx, 544, stalls, resets,"
    " truncated JSON).",
)
@click.option("--seed", type=int, help="Make the fault sequence reproducible.")
def storage_serve(
    root: Path | None,
    manifest: Path | None,
    latency_ms: float,
    jitter_ms: float,
    fail_rate: float,
    seed: int | None,
    **server: Any,
) -> None:
    """Serve a catalogue with the Storage REST API's routes and semantics.

    Example:

        loader storage serve --manifest .loader/demo/manifest.jsonl --key demo-key --port 5000
    """
    from loader.devtools.storage_server import Catalogue, Faults, serve_forever

    if (root is None) == (manifest is None):
        raise click.UsageError("give exactly one of --root and --manifest")
    try:
        catalogue = (
            Catalogue.from_directory(root, bucket=server["bucket"]) if root is not None
            else Catalogue.from_manifest(manifest, bucket=server["bucket"])  # type: ignore[arg-type]
        )  # fmt: skip
    except LoaderError as exc:
        raise LoaderFailure(exc) from None
    faults = Faults(latency_ms=latency_ms, jitter_ms=jitter_ms, fail_rate=fail_rate, seed=seed)
    serve_forever(catalogue, faults=faults, **server)


@cli.command()
@database_options
@click.argument("run_id", type=int)
@click.option(
    "--force", is_flag=True, help="Also undo rows changed since, or a run a later run built on."
)
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
def rollback(database_url: str | None, run_id: int, force: bool, dry_run: bool) -> None:
    """Undo one migrate run exactly, from its journal.

    Deletes the rows the run inserted and gives the rows it changed their exact previous
    ai_tags, cdn_url and updated_at. Rows someone changed since are reported: inserted ones
    are kept and changed ones only lose the tags the run added (--force undoes them fully).

    Examples:

        loader rollback 3 --dry-run
        loader rollback 3
    """
    from loader.rollback import rollback as rollback_library

    result = on_database(
        database_url,
        lambda conn: rollback_library(conn, run_id, force=force, dry_run=dry_run),
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


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Measure the loader end to end against the naive algorithm and raw COPY (development
    checkout only: runs benchmarks/bench_e2e.py, see docs/performance.md).

    Examples:

        loader bench --quick
        loader bench --folders 10000 --files 100 --latency-ms 20
        loader bench --quick --sweep "list-concurrency=16,32,64;db-concurrency=1,2"
    """
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_e2e.py"
    if not script.is_file():
        raise LoaderFailure(
            LoaderError("`loader bench` runs from a development checkout (benchmarks/ not found)",
                        exit_code=ExitCode.BAD_INPUT)
        )  # fmt: skip
    raise SystemExit(subprocess.call([sys.executable, str(script), *args]))


@cli.command()
@storage_options
@database_options
@click.option(
    "--repair", is_flag=True, help="Fix what is missing with a migrate run, then verify again."
)
@click.option(
    "--report",
    "report_path",
    **OUTPUT_FILE,
    help="Write the findings as JSON here.",
)
@with_source
def verify(opts: SourceOptions, database_url: str | None, repair: bool,
           report_path: Path | None) -> None:  # fmt: skip
    """Check every Storage media file has its row, its customer tag and a cdn_url.

    Exit code 11 when something is missing (or a folder could not be listed).

    Example:

        loader verify --storage-url "$SUPABASE_URL" --repair
    """
    from loader.migrate import MigrateOptions
    from loader.migrate import migrate as migrate_library
    from loader.report import print_verify_result, write_json
    from loader.verify import verify as verify_library

    url = target_database(database_url)
    result = run(lambda: verify_library(opts, url))
    print_verify_result(result)
    if repair and result.repairable:
        info(f"repairing {result.repairable:,} problems with a migrate run ...")
        repaired = run(lambda: migrate_library(MigrateOptions(source=opts, database_url=url)))
        info(f"run {repaired.run_id}: {repaired.totals.get('inserted', 0):,} inserted, "
             f"{repaired.totals.get('updated', 0):,} updated")  # fmt: skip
        result = run(lambda: verify_library(opts, url))
        print_verify_result(result)
    if report_path is not None:
        write_json(report_path, result.as_report())
    if not result.ok:
        sys.exit(int(ExitCode.INCOMPLETE))


@cli.group(name="demo")
def demo_group() -> None:
    """A generated, realistic library to try the loader on (embedded database)."""


@demo_group.command(name="run")
@click.option(
    "--scale",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Multiplies customers, folders and files.",
)
def demo_run(scale: int) -> None:
    """Seed a demo library and run the whole migration on it (what `make demo` runs).

    Example:

        loader demo run
    """
    from loader.devtools.demo_run import run_demo
    from loader.report import print_demo_outcome

    outcome = run(lambda: run_demo(scale, say=info))
    print_demo_outcome(outcome)
    if outcome.first.exit_code != ExitCode.OK or not outcome.verified.ok:
        sys.exit(int(ExitCode.INCOMPLETE))


@demo_group.command(name="seed")
@click.option(
    "--scale",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Multiplies customers, folders and files (100: 10,000 folders).",
)
def demo_seed(scale: int) -> None:
    """Write a demo library: a Storage manifest, and the demo database with customers,
    existing image_assets rows and storage.objects.

    Example:

        loader demo seed --scale 10
    """
    from loader.devtools.demo_run import DEMO_BUCKET, DemoPaths, demo_database, seed

    paths = DemoPaths.under(state_dir() / "demo")
    server = embedded.ensure_running()

    async def go() -> Any:
        database_url = await demo_database(server.url())
        return database_url, (await seed(scale, database_url, paths))[0]

    database_url, counts = run(go)
    click.echo(
        f"database {db.describe(database_url)}: {counts.customers:,} customers, "
        f"{counts.existing_assets:,} image_assets rows, {counts.objects:,} objects"
    )
    click.echo(f"manifest {paths.manifest}; serve it with:\n  loader storage serve --manifest "
               f"{paths.manifest} --bucket {DEMO_BUCKET} --key demo-key")  # fmt: skip


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
    from loader.match import match_with_database, read_folders_file, write_report, write_review_csv
    from loader.report import print_match_summary

    url = target_database(database_url)

    async def go() -> Any:
        folders = read_folders_file(folders_file) if folders_file else await list_folders(opts)
        async with db.connection(url) as conn:
            return await match_with_database(conn, folders, accept=accept, margin=margin)

    matches = run(go)
    json_path, csv_path = write_report(matches, report_path)
    to_review = write_review_csv(matches, review_path)
    print_match_summary(matches)
    info(f"report: {json_path} and {csv_path}; {to_review} folder(s) to review in {review_path}")


@match.command(name="apply")
@database_options
@click.argument("review_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--write-folder-name",
    is_flag=True,
    help="Also set customers.folder_name (journaled; undo with `match revert`).",
)
def match_apply(database_url: str | None, review_csv: Path, write_folder_name: bool) -> None:
    """Record a person's decisions from an edited review CSV; they win in later runs.

    Fill the `decision` column with a customer id, or `none` to keep a folder unmatched.

    Example:

        loader match apply match-review.csv --write-folder-name
    """
    from loader.match import apply_decisions, read_review_csv

    try:
        decisions = read_review_csv(review_csv)
    except LoaderError as exc:
        raise LoaderFailure(exc) from None
    summary = on_database(
        database_url,
        lambda conn: apply_decisions(conn, decisions, write_folder_name=write_folder_name),
    )
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
    from loader.match import revert_folder_names

    click.echo(f"{on_database(database_url, revert_folder_names)} folder_name change(s) reverted")


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
