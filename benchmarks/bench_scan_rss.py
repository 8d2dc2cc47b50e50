"""Peak memory of `loader scan --json` over a million objects (target: < 200 MB).

Serves 10,000 customer folders x 100 files (40 directly in each folder, 60 in date
sub-folders) with `loader storage serve --manifest` in one process, and runs

    python -m loader scan --storage-url URL --key K --bucket B --json [--list-api API]

in another, under a small wrapper process that runs only that child: its peak RSS is the
wrapper's `getrusage(RUSAGE_CHILDREN).ru_maxrss` (the server is not counted), cross-checked
by polling the child's RSS with psutil every 50 ms. The JSON lines go through a pipe into
the wrapper, which counts them: the count must equal the number of objects served.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import common  # first: sets up sys.path and LOADER_STATE_DIR
import psutil
from common import BUCKET, KEY, ROOT, BucketShape, bucket_objects, write_manifest

TARGET_MB = 200.0
POLL_S = 0.05


@dataclass(slots=True)
class ChildUsage:
    """What the wrapper saw of the scan process."""

    returncode: int
    lines: int
    wall_s: float
    ru_maxrss_mb: float
    polled_peak_mb: float
    stderr_tail: str


def _poll_rss(pid: int, peak: list[int], done: threading.Event) -> None:
    """Keep the largest RSS of `pid` seen in `peak[0]`, every POLL_S, until `done`."""
    try:
        process = psutil.Process(pid)
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(POLL_S)
    except psutil.NoSuchProcess:
        return


def _count_lines(stream: IO[bytes] | None) -> int:
    """The number of newlines read from `stream` until it ends."""
    assert stream is not None
    lines = 0
    while chunk := stream.read(1 << 20):
        lines += chunk.count(b"\n")
    return lines


def wrap(command: list[str]) -> ChildUsage:
    """Run `command` as this process's only child, count its stdout lines, measure it."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT)
        peak, done = [0], threading.Event()
        poller = threading.Thread(target=_poll_rss, args=(child.pid, peak, done), daemon=True)
        poller.start()
        lines = _count_lines(child.stdout)
        returncode = child.wait()
        wall = time.perf_counter() - started
        done.set()
        poller.join()
        errors.seek(0)
        tail = errors.read().decode(errors="replace")[-2000:]
    maxrss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return ChildUsage(returncode, lines, wall, maxrss_kb / 1024, peak[0] / 2**20, tail)


def measure_scan(url: str, api: str) -> ChildUsage:
    """Run the wrapper (this script with --wrap) around one `loader scan --json`."""
    scan = [
        sys.executable, "-m", "loader", "scan", "--storage-url", url, "--key", KEY,
        "--bucket", BUCKET, "--json", "--list-api", api,
    ]  # fmt: skip
    wrapper = [sys.executable, __file__, "--wrap", "--", *scan]
    done = subprocess.run(
        wrapper, cwd=ROOT, env=common.loader_env(), capture_output=True, text=True, check=True
    )
    return ChildUsage(**json.loads(done.stdout))


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=None, help="default 10000 (quick: 1000)")
    parser.add_argument("--apis", default="auto,v1", help="--list-api values to measure")
    parser.add_argument("--wrap", action="store_true", help="internal: be the wrapper")
    parser.add_argument("command", nargs="*", help="internal: the command to wrap")
    args = parser.parse_args()
    if args.wrap:
        print(json.dumps(asdict(wrap(args.command))))
        return
    args.folders = args.folders or (1000 if args.quick else 10_000)
    shape = BucketShape(folders=args.folders, direct=40, dated=60)

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-scan-rss-") as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        expected = write_manifest(bucket_objects(shape), manifest)
        started = time.perf_counter()
        with common.storage_server(manifest) as (url, server_pid):
            load_s = time.perf_counter() - started
            server_mb = psutil.Process(server_pid).memory_info().rss / 2**20
            for api in args.apis.split(","):
                results[api] = measure_scan(url, api)

    print(
        f"bucket: {args.folders:,} folders, {expected:,} objects; server ready in"
        f" {load_s:.1f} s, RSS {server_mb:,.0f} MB (not counted)"
    )
    complete = True
    for api, usage in results.items():
        lines_ok = usage.lines == expected and usage.returncode == 0
        complete = complete and lines_ok
        verdict = "within target" if usage.ru_maxrss_mb < TARGET_MB else "OVER TARGET"
        print(
            f"  loader scan --json --list-api {api:<4}: peak RSS {usage.ru_maxrss_mb:6.1f} MB"
            f" (psutil {usage.polled_peak_mb:6.1f} MB; target < {TARGET_MB:.0f}: {verdict})"
            f"  wall {usage.wall_s:6.1f} s  {usage.lines / usage.wall_s:8,.0f} objects/s"
            f"  lines {usage.lines:,} {'OK' if lines_ok else f'!= {expected:,} FAIL'}"
        )
        if usage.returncode != 0:
            print(f"    exit {usage.returncode}: {usage.stderr_tail}")
    print(common.describe_machine(common.machine()))
    path = common.write_result(
        "bench_scan_rss",
        args,
        {
            "objects": expected,
            "target_mb": TARGET_MB,
            "server_ready_s": load_s,
            "server_rss_mb": server_mb,
            "scans": {api: asdict(usage) for api, usage in results.items()},
            "complete": complete,
            "within_target": all(u.ru_maxrss_mb < TARGET_MB for u in results.values()),
        },
    )
    print(f"result: {path}")
    if not complete:
        sys.exit("scan output incomplete: see above")


if __name__ == "__main__":
    main()
