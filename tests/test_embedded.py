"""The embedded PostgreSQL keeps its port across restarts, so printed URLs and resume commands
stay valid; it moves only when another program holds the port, and then says so."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loader import embedded
from loader.cli import cli

NAME = "port-test"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LOADER_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    embedded.stop(NAME)


@pytest.mark.e2e  # starts, stops and moves a PostgreSQL server of its own
def test_restart_reuses_the_port_and_moves_only_when_it_is_taken(state: Path) -> None:
    first = embedded.ensure_running(NAME, fast_unsafe=True)
    assert first.moved_from is None
    assert (state / NAME / "port").read_text().strip() == str(first.port)

    assert embedded.stop(NAME)
    again = embedded.ensure_running(NAME, fast_unsafe=True)
    assert (again.port, again.moved_from) == (first.port, None)

    assert embedded.stop(NAME)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        moved = embedded.ensure_running(NAME, fast_unsafe=True)
    assert moved.port != first.port
    assert moved.moved_from == first.port
    assert (state / NAME / "port").read_text().strip() == str(moved.port)
    # Found running afterwards: no move to report again.
    assert embedded.ensure_running(NAME) == embedded.EmbeddedServer(moved.data_dir, moved.port)


def test_cli_warns_once_when_the_embedded_server_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    server = embedded.EmbeddedServer(Path("/nowhere"), 54321, moved_from=51234)
    monkeypatch.setattr(embedded, "ensure_running", lambda: server)
    done = CliRunner().invoke(cli, ["db", "url"])
    assert done.exit_code == 0, done.output
    assert done.stdout == "postgresql://postgres@127.0.0.1:54321/postgres\n"
    assert done.stderr == (
        "warning: the embedded PostgreSQL moved from port 51234 (now taken by another program)"
        " to port 54321: URLs printed before no longer work\n"
    )
