"""`loader demo serve`: the export lines it prints point every command at the demo."""

from __future__ import annotations

import shlex
from pathlib import Path

import anyio

from loader.devtools.demo_run import DEMO_KEY, DemoPaths, export_lines, serve_demo
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


async def test_printed_exports_run_scan_and_a_dry_run(pg_server_url: str, tmp_path: Path) -> None:
    printed: list[str] = []
    ready = anyio.Event()

    def on_ready(environment: dict[str, str]) -> None:
        printed.append(export_lines(environment))
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve_demo(pg_server_url, DemoPaths.under(tmp_path), port=0, on_ready=on_ready)
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
