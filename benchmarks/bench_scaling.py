"""How the first run scales: wall time, µs per object, peak RSS and wall_vs_floor over a grid.

One `bench_e2e.py --steps first` per point, each a subprocess (its own synthetic bucket and
Storage server, a fresh database, the loader in a child process measured from outside; see
that script), on one embedded PostgreSQL kept running over the whole grid. The grid:

- objects 100,000 and 1,000,000 (`--with-10m` adds 10,000,000: several minutes, and the
  Storage server holds ~0.7 GB per million objects);
- × folders 100, 10,000 and 100,000; files per folder = objects // folders (half directly in
  the folder, half in 2–3 date sub-folders, as bench_e2e seeds them); a point with fewer than
  one file per folder is skipped;
- Storage latency 0 ms by default (`--latency-ms`): what is measured is the loader's and
  PostgreSQL's work, not the network.

`--objects` and `--folders` (comma lists) replace a side of the grid. Options this script does
not know are passed on to bench_e2e.py (`--db-concurrency 4`, say). `--quick` (what `make
bench` runs) is 10,000 objects × 100 and 10,000 folders.

Prints a Markdown table (objects, folders, files per folder, wall, µs per object, peak RSS,
wall_vs_floor: wall / the floor = CPU-seconds of loader + PostgreSQL + Storage server over
the number of cores; and the machine's load: the 1-minute load average before the point, and
the CPU-seconds the rest of the machine used during it) and writes
`bench-results/bench_scaling[.quick].json` (untracked) with every point's first-run figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import common  # first: sets up sys.path and LOADER_STATE_DIR

E2E = Path(__file__).resolve().parent / "bench_e2e.py"
OBJECTS = (100_000, 1_000_000)
TEN_MILLION = 10_000_000
FOLDERS = (100, 10_000, 100_000)
QUICK_OBJECTS, QUICK_FOLDERS = (10_000,), (100, 10_000)


def counts(text: str) -> list[int]:
    """A comma list of counts: `100000,1000000` (`_` allowed as a separator: `100_000`)."""
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def grid(objects: list[int], folders: list[int]) -> list[tuple[int, int, int]]:
    """(objects, folders, files per folder) of every point with at least one file per
    folder."""
    return [(n, f, n // f) for n in objects for f in folders if n // f >= 1]


def run_point(folders: int, files: int, latency_ms: float, extra: list[str]) -> dict[str, Any]:
    """One `bench_e2e.py --steps first` (its output shown as it runs); its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "point.json"
        command = [
            sys.executable, str(E2E), "--steps", "first", "--folders", str(folders),
            "--files", str(files), "--latency-ms", str(latency_ms), "--output", str(out), *extra,
        ]  # fmt: skip
        done = subprocess.run(command, cwd=common.ROOT, env=common.loader_env())
        if done.returncode != 0:
            raise SystemExit(f"bench_e2e.py failed ({done.returncode}): {' '.join(command)}")
        return json.loads(out.read_text(encoding="utf-8"))


def summary(objects: int, folders: int, files: int, result: dict[str, Any]) -> dict[str, Any]:
    first = result["first_run"]
    loaded = first["totals"].get("media", 0)
    if loaded != result["objects"] or first["totals"].get("failed", 0):
        raise SystemExit(f"the first run loaded {loaded} of {result['objects']} objects: "
                         f"{first['totals']}")  # fmt: skip
    return {
        "objects": result["objects"],
        "folders": folders,
        "files_per_folder": files,
        "wall_s": first["wall_s"],
        "us_per_object": round(first["wall_s"] / result["objects"] * 1e6, 2),
        "peak_rss_mb": first["peak_rss_mb"],
        "wall_vs_floor": first["wall_vs_floor"],
        "floor_s": first["floor_s"],
        "cpu_loader_s": first["cpu_loader_s"],
        "cpu_postgres_s": first["cpu_postgres_s"],
        "cpu_storage_server_s": first["cpu_storage_server_s"],
        "cpu_others_s": first["cpu_others_s"],
        "load_before": first["load_before"],
        "load_after": first["load"],
        "first_run": first,
    }


def markdown(points: list[dict[str, Any]]) -> str:
    lines = [
        "| objects | folders | files per folder | wall s | µs per object | peak RSS MB"
        " | wall_vs_floor | load before | CPU others s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        ratio = f"{p['wall_vs_floor']:.2f}" if p["wall_vs_floor"] else "–"
        lines.append(
            f"| {p['objects']:,} | {p['folders']:,} | {p['files_per_folder']:,} | "
            f"{p['wall_s']:.2f} | {p['us_per_object']:.1f} | {p['peak_rss_mb']:.0f} | {ratio} | "
            f"{p['load_before']:.2f} | {p['cpu_others_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--objects", type=counts, help="comma list (default 100000,1000000)")
    parser.add_argument("--folders", type=counts, help="comma list (default 100,10000,100000)")
    parser.add_argument(
        "--with-10m", action="store_true", help="add 10,000,000 objects to the grid (minutes)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Storage latency per call")
    args, extra = parser.parse_known_args()
    objects = args.objects or list(QUICK_OBJECTS if args.quick else OBJECTS)
    if args.with_10m and TEN_MILLION not in objects:
        objects.append(TEN_MILLION)
    folders = args.folders or list(QUICK_FOLDERS if args.quick else FOLDERS)
    points = grid(objects, folders)
    skipped = [(n, f) for n in objects for f in folders if n // f < 1]
    if skipped:
        print(f"skipped (fewer than one file per folder): {skipped}")
    results = []
    with common.bench_postgres():  # one server for every point (the children find it running)
        for n, f, files in points:
            print(f"\n=== {n:,} objects, {f:,} folders × {files:,} files", flush=True)
            results.append(summary(n, f, files, run_point(f, files, args.latency_ms, extra)))
    table = markdown(results)
    print(f"\nfirst run, Storage latency {args.latency_ms:g} ms, "
          f"{common.describe_machine(common.machine())}\n\n{table}")  # fmt: skip
    args.extra = extra
    path = common.write_result(
        "bench_scaling",
        args,
        {"latency_ms": args.latency_ms, "points": results, "table": table, "skipped": skipped},
    )
    print(f"result: {path}")


if __name__ == "__main__":
    main()
