"""What every `loader` command runs on (the commands themselves are `loader.cli`, the
development ones `loader.devtools.commands`).

- Running a library call: `run` (an async call on its own event loop, uvloop when installed),
  SIGINT/SIGTERM stopping it cleanly, `on_database` (one connection to the target).
- Errors: `failure` turns an exception into the `LoaderError` it stands for, `LoaderFailure`
  shows one as one clean `Error:` line with its exit code (see `loader.errors.ExitCode`), and
  `exit_on` is how `main` ends on whatever left a command: the one place errors are shown.
- Output: `warn` and `info` on stderr (secrets masked), `check_output_file` before any work.
- The shared option groups, as decorators: `storage_options`, `database_options`,
  `progress_options`, `with_source`; `default` reads a flag's default from the library.
- A migrate run that stops: the command that resumes it and the report it leaves.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import io
import os
import shlex
import signal
import stat
import sys
import tempfile
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import asyncpg
import click

from loader import db, embedded
from loader.errors import (
    AbortedError,
    BadInputError,
    DatabaseError,
    ExitCode,
    LoaderError,
    as_loader_error,
    leaves,
)
from loader.listing import SOURCES, SourceOptions
from loader.migrate import MigrateOptions, MigrateResult
from loader.progress import LiveStats, ProgressOptions
from loader.redact import redact, redact_url, remember_secret, remember_secrets_in
from loader.storage_client import HEDGE_SHARE, STALL_FLOOR_S

F = TypeVar("F", bound=Callable[..., Any])


T = TypeVar("T")
Resume = Callable[[int], str]


def default(options: type, name: str) -> Any:
    """The library's default for one option: flags never restate the dataclasses' values."""
    return next(f.default for f in fields(options) if f.name == name)


_HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


class LoaderFailure(click.ClickException):
    """A library error as click shows it: `Error: <one line>` and the error's exit code.
    Under LOADER_DEBUG=1 the traceback of what caused it (`raise ... from`) comes first."""

    def __init__(self, error: LoaderError) -> None:
        super().__init__(redact(str(error)))
        self.exit_code = int(error.exit_code)

    def show(self, file: Any = None) -> None:
        if self.__cause__ is not None and os.environ.get("LOADER_DEBUG"):
            click.echo(traceback_text(self.__cause__), file=file, err=True, nl=False)
        click.echo(f"Error: {self.format_message()}", file=file, err=True)


def traceback_text(exc: BaseException) -> str:
    """The traceback of `exc` and of what caused it (for LOADER_DEBUG=1), secrets masked."""
    return redact("".join(traceback.format_exception(exc)))


@dataclass(slots=True)
class _Interruption:
    signal: str | None = None


async def _until_signal(call: Callable[[], Awaitable[T]], seen: _Interruption) -> T | None:
    """Run `call`; SIGINT or SIGTERM cancels it (its cleanup runs) and is noted in `seen`."""
    result: T | None = None
    if threading.current_thread() is not threading.main_thread():
        # Signals reach the main thread only (a library caller or an in-process test runs
        # commands elsewhere); there, Ctrl-C is the caller's to handle.
        return await call()
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    seen.signal = signal.Signals(signum).name
                    tg.cancel_scope.cancel()
                    return

        async def work() -> None:
            nonlocal result
            result = await call()
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(work)
    return result


def failure(
    exc: BaseException, *, run_id: int | None = None, resume: Resume | None = None
) -> LoaderError | None:
    """The one place an exception becomes what the user sees: a `LoaderError` with its exit
    code. Exception groups are unwrapped; a database lost while a run exists makes that run
    resumable (exit 12); a run that stopped says the exact command that resumes it. Anything
    unknown is None: it is a bug (exit 1)."""
    error = as_loader_error(exc)
    if error is None:
        return None
    if run_id is None:
        return error
    command = resume(run_id) if resume is not None else f"loader migrate --resume {run_id}"
    if isinstance(error, DatabaseError):
        return AbortedError(
            f"run {run_id} interrupted: {error}. Nothing is lost; when the database is back,"
            f" resume with: {command}"
        )
    if error.exit_code in (ExitCode.ABORTED, ExitCode.STORAGE_UNREACHABLE):
        return LoaderError(f"{error}; resume with: {command}", exit_code=error.exit_code)
    return error


def run(
    coro_fn: Callable[[], Awaitable[Any]],
    *,
    stats: LiveStats | None = None,
    resume: Resume | None = None,
) -> Any:
    """Run an async library call; expected failures become one line, never a traceback.

    SIGINT/SIGTERM stop the call cleanly; when it was a migrate run (`stats.run_id` set) the
    message names the run and the command that resumes it.
    """
    seen = _Interruption()

    def run_id() -> int | None:
        return stats.run_id if stats is not None else None

    try:
        # uvloop (the `fast` extra) when installed: less event-loop CPU per listing call.
        result = anyio.run(
            _until_signal, coro_fn, seen, backend_options={"use_uvloop": _HAVE_UVLOOP}
        )
    except KeyboardInterrupt:
        seen.signal = "SIGINT"
    except Exception as exc:
        error = failure(exc, run_id=run_id(), resume=resume)
        if error is None:
            raise  # a bug: exit 1, its traceback under LOADER_DEBUG=1
        raise LoaderFailure(error) from exc
    if seen.signal is None:
        return result
    current = run_id()
    if current is not None:
        command = resume(current) if resume is not None else f"loader migrate --resume {current}"
        raise LoaderFailure(
            AbortedError(
                f"interrupted ({seen.signal}): run {current} stopped and is resumable; resume it"
                f" with: {command}"
            )
        )
    raise LoaderFailure(AbortedError(f"interrupted ({seen.signal}); nothing was left half-done"))


def as_failure(exc: Exception) -> click.ClickException | None:
    """What the user sees of an exception that left a command, or None for a bug: click's
    own exceptions as they are (a bad command line, a `LoaderFailure` from `run`), Ctrl-C that
    reached click (its Abort) as an interruption, and a library error (`failure`) as a
    `LoaderFailure` caused by the exception."""
    if isinstance(exc, click.ClickException):
        return exc
    if isinstance(exc, click.Abort):
        return LoaderFailure(AbortedError("interrupted"))
    error = failure(exc)
    if error is None:
        return None
    shown = LoaderFailure(error)
    shown.__cause__ = exc
    return shown


def _bug_line(exc: Exception) -> str:
    """A bug as one line, naming the first exception inside a task group's ExceptionGroup
    (every command runs in one, `_until_signal`): the group's own text, "unhandled errors in
    a TaskGroup", says nothing of the bug."""
    bug = leaves(exc)[0]
    return f"internal error: {type(bug).__name__}: {bug}"


def exit_on(exc: Exception) -> NoReturn:
    """Show an exception that left a command and exit with its code (`main` calls this for
    whatever `cli` raises). A bug is one `internal error` line and exit 1, or its traceback
    under LOADER_DEBUG=1."""
    shown = as_failure(exc)
    if shown is None:
        if os.environ.get("LOADER_DEBUG"):
            sys.stderr.write(traceback_text(exc))
        else:
            click.echo(redact(f"{_bug_line(exc)} (LOADER_DEBUG=1 for details)"), err=True)
        sys.exit(int(ExitCode.INTERNAL))
    # click's own messages may quote a value given on the command line: masked too.
    text = io.StringIO()
    shown.show(file=text)
    sys.stderr.write(redact(text.getvalue()))
    sys.exit(shown.exit_code)


def exit_of(exc: Exception) -> tuple[int, str]:
    """The exit code and the message of an exception leaving a command, as `main` shows
    them."""
    shown = as_failure(exc)
    if shown is None:
        return int(ExitCode.INTERNAL), _bug_line(exc)
    return shown.exit_code, shown.format_message()


def warn(message: str) -> None:
    click.secho(f"warning: {redact(message)}", fg="yellow", err=True)


def info(message: str) -> None:
    click.echo(redact(message), err=True)


# -- shared option groups ---------------------------------------------------------------


def check_output_file(path: Path) -> None:
    """Refuse, before any work, an output path the command could not write at the end: one
    that exists and is not a regular file (a directory, a device such as /dev/full, a symlink
    to one), or whose folder is missing or not writable (proven by creating a file in it)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise BadInputError(f"cannot use {path}: {exc.strerror}") from exc
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{path} exists and is not a regular file: choose a file path")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise BadInputError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".loader-write-test-"):
            pass
        if st is not None:
            with path.open("ab"):
                pass
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # Checked before any work starts, so a typo does not cost a whole run's report.
    if value is not None:
        try:
            check_output_file(value)
        except BadInputError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


OUTPUT_FILE: dict[str, Any] = {
    "type": click.Path(path_type=Path),
    "callback": _output_file,
}


def remember_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Passwords inside URLs and DSNs are masked wherever they turn up later (errors, logs).
    remember_secrets_in(value)
    return value


def _remember_key(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    remember_secret(value)
    return value


def database_options(fn: F) -> F:
    """`--database-url`: the target database (default `$DATABASE_URL`, else embedded)."""
    return click.option(
        "--database-url",
        envvar="DATABASE_URL",
        show_envvar=True,
        callback=remember_url,
        help="Target PostgreSQL URL. Without it, a local embedded PostgreSQL is used.",
    )(fn)


class OffOrNumber(click.ParamType):
    """A number of at least `minimum`, or `off` (None)."""

    name = "number|off"

    def __init__(self, minimum: float) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, float):
            return value
        if str(value).strip().lower() == "off":
            return None
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'off'", param, ctx)
        if not number >= self.minimum:
            self.fail(f"{value!r} is below {self.minimum:g}", param, ctx)
        return number


def storage_options(fn: F) -> F:
    """Where to list from and how hard to push: shared by scan, match and migrate."""
    options = [
        click.option("--storage-url", envvar="SUPABASE_URL", show_envvar=True,
                     callback=remember_url, help="Supabase project URL or Storage API root."),
        click.option("--key", envvar="SUPABASE_SERVICE_ROLE_KEY", show_envvar=True,
                     callback=_remember_key, help="Service-role key (never printed)."),
        click.option("--bucket", default=default(SourceOptions, "bucket"), show_default=True),
        click.option("--prefix", default=default(SourceOptions, "prefix"), show_default=True,
                     help="Folder holding one sub-folder per customer."),
        click.option("--source", type=click.Choice(list(SOURCES)),
                     default=default(SourceOptions, "source"),
                     show_default=True,
                     help="List through the REST API, or read storage.objects directly."),
        click.option("--storage-database-url", callback=remember_url,
                     help="Database holding storage.objects for --source db "
                     "(default: the target database)."),
        click.option("--list-api", type=click.Choice(["auto", "v1", "v2"]),
                     default=default(SourceOptions, "list_api"),
                     show_default=True, help="auto: v2 when the server has it, else v1."),
        click.option("--list-concurrency", type=click.IntRange(1, 512),
                     default=default(SourceOptions, "list_concurrency"),
                     show_default=True, help="Folders listed at once."),
        click.option("--group-pages", type=click.IntRange(0, 100),
                     default=default(SourceOptions, "group_pages"), show_default=True,
                     help="Small folders are listed several per call (v2, --source db), about"
                     " this many pages of objects per group; 0 lists each folder alone."),
        click.option("--page-size", type=click.IntRange(1, 1500),
                     default=default(SourceOptions, "page_size"),
                     show_default=True, help="Entries per list call (v1 caps at 1500)."),
        click.option("--max-rps", type=click.FloatRange(min=0.1),
                     help="Cap on Storage requests per second."),
        click.option("--request-timeout", "request_timeout_s", type=click.FloatRange(min=0.1),
                     default=default(SourceOptions, "request_timeout_s"),
                     show_default=True,
                     help="Seconds per Storage request: the most a stalled one waits."),
        click.option("--stall-factor", type=OffOrNumber(1.0),
                     default=default(SourceOptions, "stall_factor"), show_default=True,
                     help="A request still running at this multiple of the recent p99 latency"
                     f" (at least {STALL_FLOOR_S:g} s) is cut and sent again at once;"
                     " off: only --request-timeout cuts."),
        click.option("--hedge-after", type=OffOrNumber(1.0),
                     default=default(SourceOptions, "hedge_after"), show_default=True,
                     help="A list call still running at this multiple of the recent p95"
                     " latency is raced by one identical call, the first answer wins (at most"
                     f" one hedge per {round(1 / HEDGE_SHARE)} calls); off: never."),
        click.option("--retries", type=click.IntRange(1, 50),
                     default=default(SourceOptions, "retries"), show_default=True,
                     help="Attempts per Storage request before a folder is marked failed."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def progress_options(fn: F) -> F:
    """`--progress-every` and `--quiet`, handed to the command as one `progress:
    ProgressOptions`: shared by every command that can take long."""

    @functools.wraps(fn)
    def wrapper(*args: Any, progress_every: float, quiet: bool, **params: Any) -> Any:
        return fn(*args, progress=ProgressOptions(progress_every, quiet), **params)

    options = [
        click.option("--progress-every", type=click.FloatRange(min=0), metavar="SECONDS",
                     default=default(ProgressOptions, "every_s"), show_default=True,
                     help="On a terminal, progress is a live bar on stderr; elsewhere (a job,"
                     " nohup, CI) one line every SECONDS on stderr, and a `progress` event in"
                     " --log-file (where the command has one) at the same cadence; 0: neither."),
        click.option("--quiet", "-q", is_flag=True,
                     help="No progress on stderr (no bar, no lines); --log-file still gets"
                     " its `progress` events."),
    ]  # fmt: skip
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def source_options(params: dict[str, Any]) -> SourceOptions:
    """Build `SourceOptions` from the storage option group's values (popping them)."""
    return SourceOptions(**{f.name: params.pop(f.name) for f in fields(SourceOptions)})


def embedded_server() -> embedded.EmbeddedServer:
    """The embedded PostgreSQL, started if needed; warns when it had to change port."""
    server = embedded.ensure_running()
    if server.moved_from is not None:
        warn(f"the embedded PostgreSQL moved from port {server.moved_from} (now taken by another"
             f" program) to port {server.port}: URLs printed before no longer work")  # fmt: skip
    return server


def target_database(url: str | None) -> str:
    """Resolve the target database and say which one is in use (password hidden)."""
    explicit = url or os.environ.get("DATABASE_URL")
    resolved = db.resolve_database_url(url) if explicit else embedded_server().url()
    info(f"database: {redact_url(resolved)}{'' if url else ' (embedded)'}")
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
            database_url = target_database(params.get("database_url"))
            opts = dataclasses.replace(opts, storage_database_url=database_url)
        return fn(opts=opts, **params)

    return wrapper


def on_loader_database(
    database_url: str | None, call: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """`on_database`, with the loader's schema (and its backup functions) set up first."""

    async def go(conn: asyncpg.Connection) -> T:
        await db.init_schema(conn)
        return await call(conn)

    return on_database(database_url, go)


# -- a migrate run that stops: the command that resumes it, the report it leaves -----


def resume_command(database_url: str | None, opts: SourceOptions) -> Callable[[int], str]:
    """The command that resumes a run (bucket, prefix and data options come from the run;
    the connections are given again, secrets masked)."""

    def command(run_id: int) -> str:
        parts = ["loader", "migrate", "--resume", str(run_id)]
        if opts.source == "db":
            parts += ["--source", "db"]
        elif opts.storage_url:
            parts += ["--storage-url", redact(opts.storage_url)]
        if database_url:
            parts += ["--database-url", redact(database_url)]
        line = shlex.join(parts)
        if opts.source == "rest":
            line += " (with the same --key or $SUPABASE_SERVICE_ROLE_KEY"
            line += "; *** is your password)" if "***" in line else ")"
        return line

    return command


def finished_report(result: MigrateResult, resume: Resume) -> dict[str, Any]:
    """The `--report` of a run that came to its end: what it did, its exit code, and the
    command that finishes it when it is not done."""
    open_run = result.run_id if result.exit_code != ExitCode.OK else None
    return {**result.as_report(), "exit_code": int(result.exit_code),
            "resume": resume(open_run) if open_run is not None else None}  # fmt: skip


def write_stopped_report(
    path: Path, exc: Exception, stats: LiveStats, options: MigrateOptions | None, resume: Resume
) -> None:
    """The `--report` of a migrate that ended in an error: the run so far when one exists
    (see `loader.migrate.stopped_report`), the exit code and error, and the resume command
    (the one the error names). A report that cannot be written is a warning: the run's own
    error stays the one the command ends with."""
    from loader.migrate import stopped_report
    from loader.report import write_json

    code, message = exit_of(exc)
    run_id = stats.run_id
    report: dict[str, Any] = {"run_id": run_id, "status": "failed" if run_id is None else "stopped"}
    if run_id is not None and options is not None:
        try:
            report = anyio.run(stopped_report, options, run_id, stats)
        except KeyboardInterrupt:  # a second Ctrl-C while the run is read
            pass
        except Exception as error:  # never instead of the error that ended the run
            warn(f"the report lacks the run's figures: {type(error).__name__}: {error}")
    report |= {"exit_code": code, "error": message,
               "resume": resume(run_id) if run_id is not None else None}  # fmt: skip
    try:
        write_json(path, report)
    except LoaderError as error:
        warn(str(error))
