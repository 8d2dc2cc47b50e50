"""Folder -> customer matching: quality across many generated libraries, and speed.

Quality: every link (exact, normalized, auto) is checked against the demo library's truth
(`loader/devtools/demo_library.py`, whose spelling model is its own, not the matcher's) with
the default thresholds, on 30 seeds at scale 1 (100 folders, ~1,000 customers), 2 seeds at
scale 10 and 2 seeds at scale 100 (10,000 folders, ~100,000 customers). Per scale: wrong
links, recall (correct links / folders whose customer exists), how many unlinked folders
miss their customer in the top 3 shown to a person, and the same per variation. Recall
cannot reach 1: ambiguous folders, changed phone digits, second folders, conflicts and
namesakes without digits go to a person by design.

Speed: `match_folders` end to end (index build included) on the first scale-100 library,
`--repeat` times, median wall and CPU time reported (CPU time is what compares on a shared
machine). `--quick` stops at scale 10 (speed timed there).

`--sweep` prints recall and wrong links for a grid of accept/margin values on the scale 1
and 10 libraries: how the defaults were chosen.

`--links` measures instead what a migration's matching costs (`match_folders(...,
links_only=True)`, as `match_db.links_with_database` calls it) on the benchmark shape (the
folders and customers of `bench_e2e.py`: 10,000 and 100,000 folders, 90% with a customer
whose folder_name is the folder) and on the demo library at scale 100: CPU seconds
(`time.process_time`, comparable on a shared machine), wall seconds, and the growth of peak
memory: the process's peak RSS (`ru_maxrss`) after matching less its RSS just before (the
inputs already built). Each case runs in a fresh process, so that one case's peak is not
another's. `--quick` leaves out the 100,000 folders.

Results go to `bench-results/` (untracked), never over tracked files.
"""

from __future__ import annotations

import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from common import (  # first: sys.path
    base_parser,
    describe_machine,
    folder_name,
    machine,
    write_result,
)

from loader import match
from loader.devtools import demo_library as demo

SEEDS = {1: range(1, 31), 10: range(1, 3), 100: range(1, 3)}
SWEEP_ACCEPT = (0.78, 0.80, 0.82, 0.84, 0.85, 0.86, 0.88, 0.90)
SWEEP_MARGIN = (0.02, 0.05, 0.10, 0.15)


def evaluate(library: demo.DemoLibrary, accept: float, margin: float) -> dict[str, Any]:
    """Counts for one library: links, wrong links, misses of the top 3, per variation."""
    matches = match.match_folders(
        [f.name for f in library.folders], library.customers, accept=accept, margin=margin
    )
    found = demo.evaluate(matches, library)
    truth = {f.name: f for f in library.folders}
    variations: dict[str, Counter[str]] = defaultdict(Counter)
    for m in matches:
        folder = truth[m.folder]
        cell = variations[folder.variation]
        cell["folders"] += 1
        if m.customer_id is not None:
            cell["correct" if m.customer_id == folder.true_customer_id else "wrong"] += 1
        elif folder.true_customer_id in {c.customer_id for c in m.candidates}:
            cell["in_top3"] += 1
        cell[m.status] += 1
    return {
        "with_truth": found.with_truth,
        "links": found.links,
        "auto": found.auto,
        "wrong_links": found.wrong_links,
        "not_in_top3": len(found.not_in_top3),
        "variations": variations,
    }


def summed(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One scale's results added up, with recall."""
    total: Counter[str] = Counter()
    variations: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        total.update({k: v for k, v in result.items() if k != "variations"})
        for name, cell in result["variations"].items():
            variations[name].update(cell)
    correct = total["links"] - total["wrong_links"]
    return {
        "libraries": len(results),
        **total,
        "recall": round(correct / total["with_truth"], 4) if total["with_truth"] else 1.0,
        "variations": {name: dict(sorted(c.items())) for name, c in sorted(variations.items())},
    }


LINKS_CASES = ("bench:10000", "bench:100000", "demo:100")


def links_inputs(case: str) -> tuple[list[str], list[match.Customer]]:
    """The folders and customers of a `--links` case (`bench:<folders>` or `demo:<scale>`)."""
    kind, size = case.split(":")
    if kind == "demo":
        library = demo.generate_library(int(size), 1)
        return [f.name for f in library.folders], library.customers
    count = int(size)
    customers = [
        match.Customer(i + 1, f"고객{i}", f"010-{i:08d}", folder_name(i))
        for i in range(count)
        if i % 10 < 9
    ]
    return [folder_name(i) for i in range(count)], customers


def rss_mb() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure_links(case: str) -> dict[str, Any]:
    """One `--links` case, in this process (a fresh one: see `links_costs`)."""
    folders, customers = links_inputs(case)
    gc.collect()
    before = rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    links, summary = match.match_folders(folders, customers, links_only=True)
    cpu = time.process_time() - cpu_started
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "folders": len(folders),
        "customers": len(customers),
        "cpu_seconds": round(cpu, 2),
        "wall_seconds": round(wall, 2),
        "rss_before_mb": round(before, 1),
        "peak_growth_mb": round(peak - before, 1),
        "linked": sum(customer_id is not None for _, customer_id in links),
        "summary": summary,
    }


def links_costs(quick: bool) -> dict[str, Any]:
    """Every `--links` case, each in a child process running this script with `--links-case`."""
    results = {}
    for case in LINKS_CASES:
        if quick and case == "bench:100000":
            continue
        child = subprocess.run(
            [sys.executable, __file__, "--links-case", case],
            check=True,
            capture_output=True,
            text=True,
        )
        result = results[case] = json.loads(child.stdout)
        print(
            f"{case}: {result['folders']:,} folders x {result['customers']:,} customers: "
            f"{result['cpu_seconds']:.2f} s CPU, {result['wall_seconds']:.2f} s wall, "
            f"peak RSS +{result['peak_growth_mb']:.0f} MB over {result['rss_before_mb']:.0f} MB"
        )
    return results


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the speed test")
    parser.add_argument("--sweep", action="store_true", help="also print an accept/margin grid")
    parser.add_argument("--links", action="store_true", help="a migration's matching costs")
    parser.add_argument("--links-case", help="(internal) measure one --links case, print JSON")
    parser.add_argument("--label", default="bench_match", help="name of the result file")
    args = parser.parse_args()
    if args.links_case:
        print(json.dumps(measure_links(args.links_case)))
        return
    if args.links:
        print(describe_machine(machine()))
        data = {"links": links_costs(args.quick)}
        print("wrote", write_result(f"{args.label}_links", args, data))
        return
    scales = [1, 10] if args.quick else [1, 10, 100]
    print(describe_machine(machine()))

    data: dict[str, Any] = {"accept": match.ACCEPT, "margin": match.MARGIN, "scales": {}}
    kept: dict[int, list[demo.DemoLibrary]] = {}
    for scale in scales:
        results = []
        for seed in SEEDS[scale]:
            library = demo.generate_library(scale, seed)
            results.append(evaluate(library, match.ACCEPT, match.MARGIN))
            if scale <= 10 or seed == SEEDS[scale][0]:
                kept.setdefault(scale, []).append(library)
        total = summed(results)
        data["scales"][scale] = total
        print(
            f"scale {scale} x {total['libraries']} seeds: {total['links']} links "
            f"({total['auto']} auto), {total['wrong_links']} wrong, recall {total['recall']:.4f}, "
            f"truth missing from the top 3 of {total['not_in_top3']} unlinked folders"
        )
        for name, cell in total["variations"].items():
            print(f"    {name:17} {cell}")

    library = kept[scales[-1]][0]
    folders = [f.name for f in library.folders]
    seconds, cpu_seconds = [], []
    for _ in range(args.repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        match.match_folders(folders, library.customers)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
    data["speed"] = {
        "folders": len(folders),
        "customers": len(library.customers),
        "seconds": seconds,
        "median": statistics.median(seconds),
        # CPU time of this process: comparable across runs on a shared, loaded machine
        "cpu_seconds": cpu_seconds,
        "cpu_median": statistics.median(cpu_seconds),
    }
    print(
        f"{len(folders):,} folders x {len(library.customers):,} customers: match_folders "
        f"{statistics.median(seconds):.2f} s wall, {statistics.median(cpu_seconds):.2f} s CPU "
        f"(medians of {args.repeat})"
    )

    if args.sweep:
        grid: dict[float, dict[float, dict[str, Any]]] = {}
        sweep_libraries = [lib for scale in (1, 10) for lib in kept[scale]]
        for accept in SWEEP_ACCEPT:
            grid[accept] = {}
            for margin in SWEEP_MARGIN:
                cell = summed([evaluate(lib, accept, margin) for lib in sweep_libraries])
                grid[accept][margin] = {k: cell[k] for k in ("links", "wrong_links", "recall")}
            row = "  ".join(
                f"m{m}: recall {q['recall']:.3f} wrong {q['wrong_links']}"
                for m, q in grid[accept].items()
            )
            print(f"accept {accept}: {row}")
        data["sweep"] = grid
    print("wrote", write_result(args.label, args, data))
    if any(total["wrong_links"] for total in data["scales"].values()):
        raise SystemExit("wrong links with the default thresholds")


if __name__ == "__main__":
    main()
