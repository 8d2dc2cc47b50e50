"""Folder -> customer matching: speed at 10,000 folders x 100,000 customers, and quality.

Speed: the demo library at `--scale` 100 (10,000 folders in every variation the demo makes,
about 100,400 customers with Hangul names), `loader.match.match_folders` timed end to end
(index build included), `--repeat` times, median reported. `--quick` uses scale 10.

Quality: precision and recall of the links (exact, normalized, auto) against the demo's
truth, with the default thresholds, on several seeds at scales 1, 3 and 10 and on the speed
run's library, so the defaults are checked beyond the draw they were chosen on. Recall
counts folders whose true customer exists; about 17% of those cannot be linked safely by
design (ambiguous, changed phone digits, second folders, conflicts).

`--sweep` prints recall and wrong links for a grid of accept/margin values: how the
defaults were chosen (the highest recall with no wrong link anywhere, with headroom).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

from common import base_parser, describe_machine, machine, write_result  # first: sys.path

from loader import match
from loader.devtools import demo_library as demo

QUALITY_LIBRARIES = [(1, seed) for seed in range(1, 11)] + [(3, 101), (3, 102), (10, 7)]
SWEEP_ACCEPT = (0.78, 0.80, 0.82, 0.84, 0.85, 0.86, 0.88, 0.90)
SWEEP_MARGIN = (0.02, 0.05, 0.10, 0.15)


def quality(
    libraries: list[demo.DemoLibrary], accept: float, margin: float
) -> dict[str, float | int]:
    """Links, wrong links, precision and recall summed over `libraries`."""
    links = wrong = with_truth = auto = 0
    for library in libraries:
        found = demo.evaluate(
            match.match_folders(
                [f.name for f in library.folders], library.customers, accept=accept, margin=margin
            ),
            library,
        )
        links += found.links
        wrong += found.wrong_links
        with_truth += found.with_truth
        auto += found.auto
    return {
        "links": links,
        "auto": auto,
        "wrong_links": wrong,
        "precision": round((links - wrong) / links, 4) if links else 1.0,
        "recall": round((links - wrong) / with_truth, 4) if with_truth else 1.0,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100, help="demo scale of the speed run")
    parser.add_argument("--seed", type=int, default=demo.DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also print an accept/margin grid")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.repeat = 10, 1

    started = time.perf_counter()
    library = demo.generate_library(args.scale, args.seed)
    generated_s = time.perf_counter() - started
    folders = [f.name for f in library.folders]
    seconds = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        matches = match.match_folders(folders, library.customers)
        seconds.append(time.perf_counter() - started)
    statuses = Counter(m.status for m in matches)
    speed_quality = quality([library], match.ACCEPT, match.MARGIN)
    print(describe_machine(machine()))
    print(
        f"{len(folders):,} folders x {len(library.customers):,} customers: "
        f"match_folders {statistics.median(seconds):.2f} s (median of {args.repeat}; "
        f"library generated in {generated_s:.1f} s)"
    )
    print("statuses:", dict(sorted(statuses.items())))
    print(f"quality at scale {args.scale}:", speed_quality)

    libraries = [demo.generate_library(scale, seed) for scale, seed in QUALITY_LIBRARIES]
    defaults = quality(libraries, match.ACCEPT, match.MARGIN)
    print(
        f"defaults accept={match.ACCEPT} margin={match.MARGIN} on "
        f"{len(libraries)} libraries {QUALITY_LIBRARIES}: {defaults}"
    )
    data: dict[str, Any] = {
        "folders": len(folders),
        "customers": len(library.customers),
        "match_seconds": seconds,
        "match_seconds_median": statistics.median(seconds),
        "statuses": dict(statuses),
        "quality_speed_run": speed_quality,
        "quality_defaults": defaults,
    }
    if args.sweep:
        grid = {}
        for accept in SWEEP_ACCEPT:
            cells = {margin: quality(libraries, accept, margin) for margin in SWEEP_MARGIN}
            grid[accept] = cells
            row = "  ".join(
                f"m{m}: recall {q['recall']:.3f} wrong {q['wrong_links']}" for m, q in cells.items()
            )
            print(f"accept {accept}: {row}")
        data["sweep"] = grid
    print("wrote", write_result("bench_match", args, data))
    if defaults["wrong_links"] or speed_quality["wrong_links"]:
        raise SystemExit("wrong links with the default thresholds")


if __name__ == "__main__":
    main()
