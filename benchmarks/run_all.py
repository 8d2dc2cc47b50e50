"""Run every benchmark script in this folder, one after another (`make bench`).

Each `bench_*.py` runs with `--quick` (a small smoke-check variant) unless `--full` is given;
a script without a `--quick` option runs with its defaults. Each script's own summary is
printed as it runs, then a table of outcomes. Exits non-zero if any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(slots=True)
class Outcome:
    script: str
    returncode: int
    seconds: float
    flags: list[str]


def scripts(only: list[str]) -> list[Path]:
    """The benchmark scripts, in name order, optionally only those whose name contains one
    of `only`."""
    found = sorted(HERE.glob("bench_*.py"))
    return [p for p in found if not only or any(part in p.name for part in only)]


def supports_quick(script: Path) -> bool:
    """Whether `script --help` lists a `--quick` option."""
    shown = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    return shown.returncode == 0 and "--quick" in shown.stdout


def run_one(script: Path, *, full: bool) -> Outcome:
    """Run one script with its output going straight to ours."""
    flags = [] if full or not supports_quick(script) else ["--quick"]
    print(f"\n=== {script.name} {' '.join(flags)}".rstrip(), flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), *flags], cwd=HERE.parent)
    return Outcome(script.name, done.returncode, time.perf_counter() - started, flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes instead of --quick")
    parser.add_argument(
        "--only", action="append", default=[], help="run only scripts whose name contains this"
    )
    args = parser.parse_args()
    outcomes = [run_one(script, full=args.full) for script in scripts(args.only)]
    print("\n=== summary")
    for outcome in outcomes:
        status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        flags = " ".join(outcome.flags) or "(defaults)"
        print(f"  {outcome.script:<28} {flags:<10} {outcome.seconds:7.1f} s  {status}")
    if not outcomes:
        sys.exit("no benchmark scripts found")
    if any(o.returncode != 0 for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
