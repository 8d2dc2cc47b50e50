"""Helpers shared by the benchmark scripts.

Import this module before anything from `loader`: it puts the project on `sys.path` and, unless
`LOADER_STATE_DIR` is already set, points it at the project's `.loader` folder, so the embedded
PostgreSQL the benchmarks use (`bench-pg`) lives there, apart from the test server. Set
`LOADER_STATE_DIR` to give a benchmark its own server (several people running benchmarks in
one checkout at once: each stops `bench-pg` when done if it started it).

What is here: a synthetic bucket (`StoredObject`s in customer folders with date
sub-folders) and its manifest file, the Storage server run as a separate process
(`loader storage serve`), a fresh database per benchmark on the embedded PostgreSQL, a
description of the machine, timing helpers, and writing results to the untracked
`bench-results/` folder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
# Untracked (.gitignore): running a benchmark never rewrites a tracked file.
RESULTS_DIR = ROOT / "bench-results"
if not os.environ.get("LOADER_STATE_DIR"):
    os.environ["LOADER_STATE_DIR"] = str(ROOT / ".loader")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loader.devtools.storage_server import StoredObject  # noqa: E402

BUCKET = "bench-media"
KEY = "bench-service-role-key"
PREFIX = "originals/customers/"
PG_NAME = "bench-pg"
STAMP = "2024-05-01T09:30:00.000Z"
LOOPBACK = "127.0.0.1"


# -- the synthetic bucket ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class BucketShape:
    """`folders` customer folders under PREFIX, each with `direct` files directly in it and
    `dated` files spread over 2 or 3 `YYYY-MM-DD/` sub-folders."""

    folders: int
    direct: int
    dated: int
    seed: int = 7

    @property
    def objects(self) -> int:
        return self.folders * (self.direct + self.dated)


def folder_name(i: int) -> str:
    """The i-th customer folder's name (ASCII, as Storage requires)."""
    return f"customer-{i:06d}-kim"


def _media(rng: random.Random) -> tuple[str, str]:
    """A file extension and its mimetype: mostly photos, some videos and PNGs."""
    roll = rng.random()
    if roll < 0.8:
        return "jpg", "image/jpeg"
    if roll < 0.95:
        return "png", "image/png"
    return "mp4", "video/mp4"


def bucket_objects(shape: BucketShape) -> Iterator[StoredObject]:
    """Every object of the synthetic bucket, generated lazily (names are unique)."""
    rng = random.Random(shape.seed)
    base = dt.date(2024, 1, 1)
    for i in range(shape.folders):
        folder = f"{PREFIX}{folder_name(i)}/"
        days = [base + dt.timedelta(days=i % 300 + 7 * d) for d in range(rng.choice((2, 3)))]
        places = [folder] * shape.direct
        places += [f"{folder}{days[j % len(days)].isoformat()}/" for j in range(shape.dated)]
        for j, place in enumerate(places):
            ext, mimetype = _media(rng)
            name = f"{place}IMG_{j:04d}.{ext}"
            yield StoredObject(name, 1_000_000 + rng.randrange(4_000_000), mimetype, STAMP, STAMP)


def write_manifest(objects: Iterable[StoredObject], path: Path) -> int:
    """Write `objects` as the JSON-lines manifest `loader storage serve --manifest` reads;
    return how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for obj in objects:
            row = {
                "name": obj.name,
                "size": obj.size,
                "mimetype": obj.mimetype,
                "created_at": obj.created_at,
                "updated_at": obj.updated_at,
            }
            out.write(json.dumps(row, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


# -- the Storage server as a separate process -------------------------------------------


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def loader_env() -> dict[str, str]:
    """Environment for `python -m loader` children: the project importable, our state dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _bucket_answers(url: str) -> bool:
    request = urllib.request.Request(
        f"{url}/bucket/{BUCKET}", headers={"Authorization": f"Bearer {KEY}", "apikey": KEY}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def storage_server(
    manifest: Path, *, latency_ms: float = 0.0, timeout_s: float = 300.0, faults: Iterable[str] = ()
) -> Iterator[tuple[str, int]]:
    """Run `loader storage serve --manifest` on a free loopback port in its own process.

    `faults` are more of its options (`--fail-rate 0.2 --fault-kind stall`, say). Yields
    (base URL, server pid) once the bucket route answers; stops the server (SIGTERM) on exit.
    The server's stderr goes to a temporary file (a pipe nobody reads would fill up and block
    it on a long run); its tail is shown if the server fails to start or exits on its own.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "loader", "storage", "serve", "--manifest", str(manifest),
        "--bucket", BUCKET, "--key", KEY, "--host", LOOPBACK, "--port", str(port),
        "--latency-ms", str(latency_ms), *faults,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=loader_env(), stdout=subprocess.DEVNULL, stderr=log
        )
        url = f"http://{LOOPBACK}:{port}"
        answered = False
        try:
            deadline = time.monotonic() + timeout_s
            while not _bucket_answers(url):
                if server.poll() is not None:
                    raise RuntimeError(
                        f"storage server exited ({server.returncode}): {_log_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"storage server did not answer within {timeout_s:.0f} s: {_log_tail(log)}"
                    )
                time.sleep(0.1)
            answered = True
            yield url, server.pid
        finally:
            if answered and server.poll() is not None:
                print(f"storage server exited on its own ({server.returncode}): "
                      f"{_log_tail(log)}", file=sys.stderr)  # fmt: skip
            stop_process(server)


def _log_tail(log: Any, limit: int = 4000) -> str:
    """The last `limit` characters written to the open file `log`."""
    log.flush()
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - limit))
    return log.read().decode(errors="replace").strip() or "(no output)"


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM `process` (this one only), then SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the embedded PostgreSQL -------------------------------------------------------------


@contextlib.contextmanager
def bench_postgres() -> Iterator[Any]:
    """The embedded server `bench-pg` (an `EmbeddedServer`); stopped on exit only if this
    call started it."""
    from loader import embedded

    was_running = embedded.is_running(PG_NAME)
    server = embedded.ensure_running(PG_NAME)
    try:
        yield server
    finally:
        if not was_running:
            embedded.stop(PG_NAME)


@contextlib.asynccontextmanager
async def fresh_database(server: Any, label: str) -> AsyncIterator[str]:
    """A new database on `server` with the demo and loader schemas; dropped on exit.

    Yields its URL.
    """
    import asyncpg

    from loader import db

    name = f"bench_{label}_{os.getpid()}_{int(time.time() * 1000) % 1_000_000}"
    admin = await asyncpg.connect(server.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = server.url(name)
        async with db.connection(url) as conn:
            await db.init_schema(conn, demo_schema=True)
        try:
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def postgres_cpu_s(server: Any) -> float:
    """User + system CPU seconds used so far by the PostgreSQL server: the postmaster, its
    live processes, and (through the postmaster's children times) the backends that exited."""
    import psutil

    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    main = psutil.Process(pid)
    times = main.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for process in main.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child = process.cpu_times()
            total += child.user + child.system
    return total


# -- measuring and reporting --------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the machine is shared: load average included)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gb": mem_gb,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the human summary."""
    return (
        f"machine: {info['nproc']} CPU(s), {info['cpu_model']}, {info['mem_gb']} GB,"
        f" load {info['loadavg'][0]}, Python {info['python']}"
    )


def write_result(
    name: str, args: argparse.Namespace, data: dict[str, Any], path: Path | None = None
) -> Path:
    """Write `bench-results/<name>.json` (or `<name>.quick.json` for --quick runs), or `path`
    when given, with the arguments, the machine and the time; return its path."""
    quick = bool(getattr(args, "quick", False))
    if path is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"{name}{'.quick' if quick else ''}.json"
    document = {
        "benchmark": name,
        "quick": quick,
        "args": vars(args),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return path


class Timer:
    """Wall time of a `with` block, in `elapsed` seconds."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.started


def median(values: Iterable[float]) -> float:
    """The median of `values` (0.0 when empty)."""
    values = list(values)
    return statistics.median(values) if values else 0.0


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--quick` flag every benchmark has."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast variant (smoke check)")
    return parser
