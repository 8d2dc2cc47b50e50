"""Listing speed against a Storage server with 50 ms of latency per call.

Builds a bucket of customer folders (files directly in each folder and in 2-3 `YYYY-MM-DD/`
sub-folders), serves it with `loader storage serve --latency-ms 50` in a separate process,
and runs `loader.scan.scan` in this process with the v1 and v2 list APIs. For each run:

    ideal = calls x latency / concurrency        (every connection always busy)
    ratio = wall / ideal                          (target: <= 1.3 at concurrency 32)

Then v1 again at concurrency 8, 16, 32, 64, to back the `--list-concurrency` default (32).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import common  # first: sets up sys.path and LOADER_STATE_DIR
import psutil
from common import BUCKET, KEY, PREFIX, BucketShape, bucket_objects, write_manifest

from loader.listing import SourceOptions
from loader.scan import scan

TARGET_RATIO = 1.3


@dataclass(slots=True)
class ListingRun:
    """One scan: what it listed, how many calls it made, and how long it took."""

    api: str
    concurrency: int
    objects: int
    calls: int
    retries: int
    wall_s: float
    ideal_s: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def ratio(self) -> float:
        return self.wall_s / self.ideal_s if self.ideal_s else float("nan")


def run_scan(
    url: str, api: str, concurrency: int, latency_ms: float, server_pid: int
) -> ListingRun:
    """Scan the whole bucket once and measure it."""
    # The Storage root is given with /storage/v1 so no URL-probing call precedes the scan.
    opts = SourceOptions(
        bucket=BUCKET,
        prefix=PREFIX,
        storage_url=f"{url}/storage/v1",
        key=KEY,
        list_api=api,  # type: ignore[arg-type]
        list_concurrency=concurrency,
    )
    server = psutil.Process(server_pid)
    server_before = sum(server.cpu_times()[:2])
    cpu_before = time.process_time()
    report = anyio.run(lambda: scan(opts))
    client_cpu = time.process_time() - cpu_before
    server_cpu = sum(server.cpu_times()[:2]) - server_before
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} folders failed: {report.failures[0]}")
    return ListingRun(
        api=report.api,
        concurrency=concurrency,
        objects=sum(report.totals().values()),
        calls=report.calls,
        retries=report.retries,
        wall_s=report.elapsed_s,
        ideal_s=report.calls * latency_ms / 1000 / concurrency,
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
    )


def summary_line(run: ListingRun) -> str:
    return (
        f"  {run.api:<3} c={run.concurrency:<3} {run.objects:>7,} objects  {run.calls:>6,} calls"
        f"  wall {run.wall_s:6.2f} s  ideal {run.ideal_s:6.2f} s  ratio {run.ratio:4.2f}x"
        f"  ({run.objects / run.wall_s:,.0f} objects/s, client CPU {run.client_cpu_s:.1f} s,"
        f" server CPU {run.server_cpu_s:.1f} s, retries {run.retries})"
    )


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=None, help="default 2000 (quick: 200)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sweep", default="8,16,32,64", help="v1 concurrencies to compare")
    args = parser.parse_args()
    args.folders = args.folders or (200 if args.quick else 2000)
    shape = BucketShape(folders=args.folders, direct=4, dated=6)
    sweep = [int(c) for c in args.sweep.split(",") if c]

    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        count = write_manifest(bucket_objects(shape), manifest)
        print(f"bucket: {args.folders:,} folders, {count:,} objects; latency {args.latency_ms} ms")
        with common.storage_server(manifest, latency_ms=args.latency_ms) as (url, pid):
            main_runs = {
                api: run_scan(url, api, args.concurrency, args.latency_ms, pid)
                for api in ("v1", "v2")
            }
            sweep_runs = [
                main_runs["v1"]
                if c == args.concurrency
                else run_scan(url, "v1", c, args.latency_ms, pid)
                for c in sweep
            ]

    print(f"list APIs at concurrency {args.concurrency} (target ratio <= {TARGET_RATIO}x):")
    for run in main_runs.values():
        print(summary_line(run))
    print("v1 concurrency sweep:")
    print("  concurrency  wall s  ideal s  ratio  objects/s")
    for run in sweep_runs:
        print(
            f"  {run.concurrency:>11}  {run.wall_s:6.2f}  {run.ideal_s:7.2f}  {run.ratio:5.2f}"
            f"  {run.objects / run.wall_s:9,.0f}"
        )
    print(common.describe_machine(common.machine()))
    path = common.write_result(
        "bench_listing",
        args,
        {
            "objects": count,
            "target_ratio": TARGET_RATIO,
            "runs": [{**asdict(r), "ratio": r.ratio} for r in main_runs.values()],
            "sweep_v1": [{**asdict(r), "ratio": r.ratio} for r in sweep_runs],
            "within_target": all(r.ratio <= TARGET_RATIO for r in main_runs.values()),
        },
    )
    print(f"result: {path}")


if __name__ == "__main__":
    main()
