"""The development commands, apart from the product: `loader storage serve` (the project's
Storage-compatible server), `loader bench` (from a checkout) and `loader demo run|seed|serve`.

`loader.cli` registers `DEV_COMMANDS` on the `loader` group, so they are called and shown
like every other command; they run on `loader.cli_runtime` as the product commands do, and
import the heavy modules (the server, the demo generator) only when they run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from loader import db
from loader.cli_runtime import LoaderFailure, default, embedded_server, info, remember_url, run
from loader.devtools import DEMO_PORT
from loader.errors import ExitCode, LoaderError
from loader.listing import SourceOptions
from loader.redact import redact_url
from loader.state_folder import state_dir


@click.group(name="storage")
def storage_group() -> None:
    """The project's Supabase-Storage-compatible server (tests, demo, benchmarks).

    Example:

    \b
        loader storage serve --root ./photos --bucket blog-images --key dev-key --port 5000
    """


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
@click.option("--bucket", default=default(SourceOptions, "bucket"), show_default=True)
@click.option(
    "--key",
    envvar="SUPABASE_SERVICE_ROLE_KEY",
    required=True,
    help="The service-role key clients must send.",
)
@click.option("--anon-key", help="A key that is accepted but sees nothing (row-level security).")
@click.option(
    "--private",
    "private",
    is_flag=True,
    help="A private bucket: its public URLs answer 'Bucket not found'.",
)
@click.option(
    "--layout",
    type=click.Choice(["bare", "gateway"]),
    default="bare",
    show_default=True,
    help="bare: routes at the root (self-hosted); gateway: under /storage/v1.",
)
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
@click.option("--fault-kind", "fault_kinds", multiple=True,
              help="Fail only this way: 429, 500, 503, 544, stall, reset or truncated"
              " (repeatable; default: every kind).")  # fmt: skip
@click.option("--seed", type=int, help="Make the fault sequence reproducible.")
@click.option("--database-url", "objects_url", callback=remember_url,
              help="Also write each accepted upload into this database's storage.objects, as"
              " Supabase Storage does (for `loader sync`).")  # fmt: skip
@click.option("--db-writes", type=click.Choice(["upsert", "insert-update"]), default="upsert",
              show_default=True, help="upsert: one INSERT ... ON CONFLICT with the metadata"
              " (Storage since v0.35); insert-update: INSERT, then the metadata by UPDATE"
              " (older servers).")  # fmt: skip
def storage_serve(
    root: Path | None,
    manifest: Path | None,
    latency_ms: float,
    jitter_ms: float,
    fail_rate: float,
    fault_kinds: tuple[str, ...],
    seed: int | None,
    private: bool,
    objects_url: str | None,
    db_writes: str,
    **server: Any,
) -> None:
    """Serve a catalogue with the Storage REST API's routes and semantics.

    Example:

    \b
        loader storage serve --manifest .loader/demo/manifest.jsonl --key demo-key --port 5000
    """
    from loader.devtools.storage_server import FAULT_KINDS, Catalogue, Faults, serve_forever

    if (root is None) == (manifest is None):
        raise click.UsageError("give exactly one of --root and --manifest")
    try:
        catalogue = (
            Catalogue.from_directory(root, bucket=server["bucket"]) if root is not None
            else Catalogue.from_manifest(manifest, bucket=server["bucket"])  # type: ignore[arg-type]
        )  # fmt: skip
    except LoaderError as exc:
        raise LoaderFailure(exc) from exc
    try:
        faults = Faults(latency_ms=latency_ms, jitter_ms=jitter_ms, fail_rate=fail_rate,
                        kinds=fault_kinds or FAULT_KINDS, seed=seed)  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault-kind") from exc
    if objects_url is not None:
        from loader.devtools.objects_table import ObjectsTable

        server["objects"] = ObjectsTable(
            db.resolve_database_url(objects_url), server["bucket"], not private, db_writes
        )  # type: ignore[arg-type]
    serve_forever(catalogue, faults=faults, public=not private, **server)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Measure the loader end to end against the naive algorithm and raw COPY (development
    checkout only: runs benchmarks/bench_e2e.py, see docs/performance.md).

    Examples:

    \b
        loader bench --quick
        loader bench --folders 10000 --files 100 --latency-ms 20
        loader bench --quick --sweep "list-concurrency=16,32,64;db-concurrency=1,2"
    """
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_e2e.py"
    if not script.is_file():
        raise LoaderFailure(
            LoaderError("`loader bench` runs from a development checkout (benchmarks/ not found)",
                        exit_code=ExitCode.BAD_INPUT)
        )  # fmt: skip
    raise SystemExit(subprocess.call([sys.executable, str(script), *args]))


@click.group(name="demo")
def demo_group() -> None:
    """A generated, realistic library to try the loader on (embedded database).

    Example:

    \b
        loader demo run        # the whole migration on the demo, with a summary
        loader demo serve      # keep the demo up and try every command on it
    """


# Every demo command takes the same size.
scale_option = click.option(
    "--scale",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Multiplies customers, folders and files (100: 10,000 folders).",
)


@demo_group.command(name="run")
@scale_option
def demo_run(scale: int) -> None:
    """Seed a demo library and run the whole migration on it (what `make demo` runs).

    Example:

        loader demo run
    """
    from loader.devtools.demo_run import NEXT_STEPS, print_demo_outcome, run_demo

    outcome = run(lambda: run_demo(scale, say=info))
    print_demo_outcome(outcome)
    click.echo(NEXT_STEPS)
    if outcome.first.exit_code != ExitCode.OK or not outcome.verified.ok:
        sys.exit(int(ExitCode.INCOMPLETE))


@demo_group.command(name="seed")
@scale_option
def demo_seed(scale: int) -> None:
    """Write a demo library: a Storage manifest, and the demo database with customers,
    existing image_assets rows and storage.objects.

    Example:

        loader demo seed --scale 10
    """
    from loader.devtools.demo_run import DEMO_BUCKET, DemoPaths, demo_database, seed

    paths = DemoPaths.under(state_dir() / "demo")
    server = embedded_server()

    async def go() -> Any:
        database_url = await demo_database(server.url())
        return database_url, (await seed(scale, database_url, paths))[0]

    database_url, counts = run(go)
    click.echo(
        f"database {redact_url(database_url)}: {counts.customers:,} customers, "
        f"{counts.existing_assets:,} image_assets rows, {counts.objects:,} objects"
    )
    click.echo(f"manifest {paths.manifest}; serve it with:\n  loader storage serve --manifest "
               f"{paths.manifest} --bucket {DEMO_BUCKET} --key demo-key")  # fmt: skip


@demo_group.command(name="serve")
@scale_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEMO_PORT,
    show_default=True,
    help="Loopback port of the demo Storage server.",
)
def demo_serve(scale: int, port: int) -> None:
    """Seed a fresh demo library, keep its Storage server up, print what to export.

    Every other command then works on the demo: paste the printed `export` lines into
    another terminal and run `loader scan`, `loader match`, `loader migrate`, ... Stop
    with Ctrl-C; the embedded PostgreSQL keeps running (`loader db stop`).

    The port is taken first: when another program (or another `demo serve`) holds it, the
    command exits 3 and touches nothing.

    Example:

        loader demo serve --scale 10 --port 8380
    """
    from loader.devtools.demo_run import export_lines, serve_demo

    def ready(environment: dict[str, str]) -> None:
        click.echo("demo Storage server and database ready; in another terminal run:\n")
        click.echo(export_lines(environment))
        click.echo("\nthen e.g. `loader scan`. Ctrl-C stops the server.")

    async def go() -> None:
        await serve_demo(lambda: embedded_server().url(), state_dir() / "demo", scale=scale,
                         port=port, on_ready=ready)  # fmt: skip

    try:
        run(go)
    except LoaderFailure as exc:
        if exc.exit_code != ExitCode.ABORTED:  # Ctrl-C is how this command ends
            raise
        info("demo server stopped")


# Registered on the `loader` group by `loader.cli`.
DEV_COMMANDS = (storage_group, bench, demo_group)
