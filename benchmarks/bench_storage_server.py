"""Throughput of the Storage-compatible server on v1 list calls, on one core.

Starts the server in a subprocess pinned to one CPU, serving a folder of `--files` objects,
and drives it from this process (pinned to the other CPUs) with `--concurrency` parallel
`POST /object/list/{bucket}` calls of 100 entries at varying offsets, for `--seconds`.
Prints one result line:

    storage_server v1 list (100 entries): 4120 calls/s ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

# Runs from a checkout without `pip install -e .` too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loader.devtools.storage_server import Catalogue, StoredObject, serve_forever

BUCKET = "media"
KEY = "bench-service-key"
FOLDER = "originals/customers/kim-6654/2024-05-01/"
PAGE = 100


def _serve(files: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    stamp = "2024-05-01T09:30:00.000Z"
    objects = (
        StoredObject(f"{FOLDER}IMG_{i:05d}.jpg", 2_000_000 + i, "image/jpeg", stamp, stamp)
        for i in range(files)
    )
    serve_forever(Catalogue.from_objects(objects), bucket=BUCKET, key=KEY, host="127.0.0.1", port=0)


async def _drive(url: str, *, files: int, concurrency: int, seconds: float) -> tuple[int, int]:
    """Call the list route from `concurrency` workers; return (good, bad) calls in the window."""
    headers = {"Authorization": f"Bearer {KEY}", "apikey": KEY}
    offsets = range(0, max(files - PAGE, 1), PAGE)
    counts = [0, 0]
    warm_until = time.monotonic() + 0.5
    stop_at = warm_until + seconds

    async def worker(session: aiohttp.ClientSession, first: int) -> None:
        i = first
        while (now := time.monotonic()) < stop_at:
            body = {"prefix": FOLDER, "limit": PAGE, "offset": offsets[i % len(offsets)]}
            i += 1
            async with session.post(f"{url}/object/list/{BUCKET}", json=body, headers=headers) as r:
                ok = r.status == 200 and len(await r.read()) > PAGE * 300
            if now >= warm_until:
                counts[not ok] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, n) for n in range(concurrency)))
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--files", type=int, default=1000, help="objects in the listed folder")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.files, args.server_cpu)
        return

    others = os.sched_getaffinity(0) - {args.server_cpu}
    if others:
        os.sched_setaffinity(0, others)
    command = [
        sys.executable,
        __file__,
        "--serve",
        f"--files={args.files}",
        f"--server-cpu={args.server_cpu}",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[4]
            server_process = psutil.Process(server.pid)
            started = sum(server_process.cpu_times()[:2])
            good, bad = asyncio.run(
                _drive(url, files=args.files, concurrency=args.concurrency, seconds=args.seconds)
            )
            used = sum(server_process.cpu_times()[:2]) - started
        finally:
            server.terminate()
    print(
        f"storage_server v1 list ({PAGE} entries): {good / args.seconds:.0f} calls/s"
        f" (concurrency {args.concurrency}, {args.seconds:g} s, {bad} errors,"
        f" server {used / (args.seconds + 0.5):.0%} of its one core,"
        f" client on {len(others) or 'the same'} other core(s))"
    )


if __name__ == "__main__":
    main()
