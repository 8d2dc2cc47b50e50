"""Running the real `loader` command in a subprocess from async tests (the Storage server
runs in the test's event loop, so the child must be awaited, not waited on)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
import anyio.abc
import asyncpg
from click.testing import CliRunner

from loader.cli import cli
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY

COMPARED_COLUMNS = (
    "file_path, filename, original_filename, file_size, mime_type, format, cdn_url, ai_tags,"
    " upload_source, status, alt_text, title, description, created_at"
)


@dataclass(slots=True)
class Completed:
    code: int
    out: str
    err: str


def loader_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "loader", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        env.pop(name, None)
    return env


async def invoke(*args: str, env: Mapping[str, str] | None = None) -> Completed:
    """Run `loader ARGS` in-process (click's CliRunner) on a worker thread, so the command's
    own event loop runs beside the test's, which serves Storage. The environment is the
    test's minus the loader's variables, plus `env`."""
    cleared: dict[str, str | None] = {
        name: None for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    runner = CliRunner()
    call = functools.partial(runner.invoke, cli, list(args), env={**cleared, **(env or {})})
    result = await anyio.to_thread.run_sync(call)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Completed(result.exit_code, result.stdout, result.stderr)


async def run_loader(*args: str, timeout: float = 120) -> Completed:
    with anyio.fail_after(timeout):
        done = await anyio.run_process(loader_argv(*args), check=False, env=child_env(),
                                       stdin=subprocess.DEVNULL)  # fmt: skip
    return Completed(done.returncode, done.stdout.decode(), done.stderr.decode())


def migrate_args(storage_url: str, db_url: str, *extra: str) -> list[str]:
    return [
        "migrate", "--storage-url", storage_url, "--key", STORAGE_KEY, "--bucket",
        STORAGE_BUCKET, "--database-url", db_url, *extra,
    ]  # fmt: skip


async def joined_workers(argv: list[str], count: int) -> list[anyio.abc.Process]:
    """`count` worker processes running `argv` (a `migrate --join RUN_ID` command)."""
    return [
        await anyio.open_process(argv, env=child_env(), stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


async def kill_a_holder(
    db: asyncpg.Connection,
    workers: list[anyio.abc.Process],
    ready: Callable[[], Awaitable[bool]],
) -> anyio.abc.Process:
    """SIGKILL the worker holding the run's first claimed chunk, as soon as `ready()` says
    the run is far enough and that holder is one of `workers` (none may have ended yet);
    returns it."""
    by_pid = {str(w.pid): w for w in workers}
    with anyio.fail_after(60):
        while True:
            holder = await db.fetchval(
                "SELECT split_part(claimed_by, ':', 2) FROM loader.chunks"
                " WHERE state = 'claimed' ORDER BY chunk_id LIMIT 1"
            )
            if holder in by_pid and await ready():
                break
            assert all(w.returncode is None for w in workers), "the run ended too soon"
            await anyio.sleep(0.01)
    victim = by_pid[holder]
    victim.send_signal(signal.SIGKILL)
    return victim
