"""A real PgBouncer (the system package) in front of the test PostgreSQL, for the pooler tests.

Started with PgBouncer's default settings except what a test on loopback needs: where it
listens (a free port, no Unix socket), trust authentication with an auth file, the pool mode,
and a wildcard database entry so every fresh test database is reachable. In particular no
`ignore_startup_parameters`: a client that puts settings into its startup packet is refused,
as Supabase's poolers do.

PgBouncer refuses to run as root, so as root it runs as the `postgres` system user (the
package creates it). Its files live in a temporary folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
RUN_AS = "postgres"


def available() -> str | None:
    """Why PgBouncer cannot run here, or None when it can."""
    if not os.path.exists(BINARY):
        return "pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"pgbouncer must not run as root and there is no {RUN_AS!r} user"
    return None


@dataclass(slots=True, frozen=True)
class Pooler:
    port: int
    mode: str
    log: Path

    def url(self, server_url: str) -> str:
        """`server_url` (a database on the test PostgreSQL) reached through this pooler."""
        parts = urlsplit(server_url)
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start listening within 10 s")


@contextmanager
def running(server_url: str, mode: str) -> Iterator[Pooler]:
    """A PgBouncer in `mode` (session or transaction) in front of `server_url`'s server."""
    target = urlsplit(server_url)
    folder = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{mode}-"))
    port = _free_port()
    log = folder / "pgbouncer.log"
    (folder / "users.txt").write_text(f'"{target.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.hostname} port={target.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = {mode}\nlogfile = {log}\n"
    )
    user: dict[str, object] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        for path in (folder, *folder.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        user = {"user": entry.pw_uid, "group": entry.pw_gid}
    process = subprocess.Popen(
        [BINARY, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
        **user,  # type: ignore[arg-type]
    )
    try:
        _wait_listening(port, process, log)
        yield Pooler(port, mode, log)
    finally:
        process.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
