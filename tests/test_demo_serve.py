"""`loader demo serve`: the export lines it prints point every command at the demo."""

from __future__ import annotations

import errno
import shlex
import socket
from pathlib import Path

import anyio
import pytest

from loader.db import connection
from loader.devtools import DEMO_PORT
from loader.devtools.demo_run import DEMO_KEY, DemoPaths, demo_database, export_lines, serve_demo
from loader.errors import ExitCode
from tests.cli_helpers import invoke


def parse_exports(text: str) -> dict[str, str]:
    """What a POSIX shell would set from pasted `export NAME=value` lines."""
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


@pytest.mark.slow  # ~1.4 s: the demo library seeded, scanned and planned
async def test_printed_exports_run_scan_and_a_dry_run(pg_server_url: str, tmp_path: Path) -> None:
    printed: list[str] = []
    ready = anyio.Event()

    def on_ready(environment: dict[str, str]) -> None:
        printed.append(export_lines(environment))
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve_demo(lambda: pg_server_url, tmp_path, port=0, on_ready=on_ready)
        )
        with anyio.fail_after(60):
            await ready.wait()
        env = parse_exports(printed[0])
        assert set(env) == {"SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "DATABASE_URL"}
        assert env["SUPABASE_SERVICE_ROLE_KEY"] == DEMO_KEY
        assert env["SUPABASE_URL"].startswith("http://127.0.0.1:")
        assert env["DATABASE_URL"].endswith("/loader_demo")

        scan = await invoke("scan", env=env)  # nothing but the exports and the defaults
        assert scan.code == 0, scan.err
        assert "100 folders" in scan.out + scan.err
        plan = await invoke("migrate", "--dry-run", env=env)
        assert plan.code == 0, plan.err
        assert "inserted" in plan.out + plan.err
        tg.cancel_scope.cancel()


async def test_a_busy_port_is_refused_before_the_demo_is_touched(
    pg_server_url: str, tmp_path: Path
) -> None:
    """A second `demo serve` (or any program) holding the port: exit 3, and the demo
    database and manifest the first one serves are left as they are."""
    database_url = await demo_database(pg_server_url)
    paths = DemoPaths.under(tmp_path)
    paths.manifest.parent.mkdir(parents=True, exist_ok=True)
    paths.manifest.write_text("the library being served\n")
    oid = "SELECT oid FROM pg_database WHERE datname = current_database()"
    async with connection(database_url) as conn:
        before = await conn.fetchval(oid)
    state = tmp_path / "state"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(OSError) as raised:
            await serve_demo(lambda: pg_server_url, paths.folder, port=port, on_ready=print)
        done = await invoke("demo", "serve", "--port", str(port),
                            env={"LOADER_STATE_DIR": str(state)})  # fmt: skip
    assert raised.value.errno == errno.EADDRINUSE
    assert paths.manifest.read_text() == "the library being served\n"
    async with connection(database_url) as conn:
        assert await conn.fetchval(oid) == before  # not dropped and created again
    assert done.code == ExitCode.BAD_INPUT, done.err
    errors = [line for line in done.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--port" in errors[0], done.err
    assert list(state.iterdir()) == []  # no embedded PostgreSQL started, no demo written


def test_the_default_port_is_below_the_ephemeral_range() -> None:
    assert 1024 < DEMO_PORT < 32768
