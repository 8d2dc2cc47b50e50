"""Live progress, fed by counters the library updates as it goes.

The library only bumps plain counters in a `LiveStats`; showing them is `show_progress`'s job,
on stderr only (stdout keeps summaries and machine output):

- on a terminal, a rich progress bar over folders or rows (a spinner while the total is not
  known yet) with % done, rates, elapsed time and ETA, redrawn a few times a second;
- elsewhere (a job, `nohup`, CI), one plain line every `every_s` seconds with the same figures;
- with a log file, a `progress` event at the same cadence, whether or not anything is shown.

Both periodic outputs run on a thread of their own, so they keep their cadence while the
event loop is busy with CPU-bound work (matching thousands of folders, say).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from loader.eventlog import EventLog
from loader.redact import redact

Unit = Literal["folders", "rows"]
Rate = Literal["objects", "rows"]


@dataclass(slots=True)
class ProgressOptions:
    """How progress is shown (the CLI's `--progress-every` and `--quiet`)."""

    # A line every 30 s: often enough to see a job move, few enough for a CI log of hours.
    every_s: float = 30.0  # 0: no periodic lines and no `progress` log events
    quiet: bool = False  # nothing on stderr (a log file still gets its events)


@dataclass(slots=True)
class LiveStats:
    """What a command has done so far. `done` and `total` count `unit`s (a bar over them);
    `objects` and `rows_written` are the figures whose rates are shown (`rates`)."""

    unit: Unit = "folders"
    rates: tuple[Rate, ...] = ("objects",)
    total: int | None = None  # None until known (for folders: after the top-level listing)
    done: int = 0
    objects: int = 0
    rows_written: int = 0
    errors: int = 0
    # Folders that failed here, with why: the report of a run whose database is gone says them.
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    retries: int = 0
    phase: str = ""  # a step with no count of its own, e.g. "comparing"
    started: float = field(default_factory=time.monotonic)
    # Since when `done` counts, and from what: the ETA is this process's pace, and a resumed
    # run starts with the folders done before it.
    counting_since: float | None = None
    done_before: int = 0
    run_id: int | None = None  # set once a migrate run exists (interruptions name it)

    def begin(self, total: int, done: int = 0) -> None:
        """The total is known (`done` of it already done): from here on there is a bar."""
        self.total, self.done, self.done_before = total, done, done
        self.counting_since = time.monotonic()
        self.phase = ""

    def step(self, phase: str) -> None:
        """A step with no count of its own starts (comparing, restoring): a spinner naming it,
        with no ETA, until the next `begin`."""
        self.phase = phase
        self.total = None

    def figures(self) -> Figures:
        """The figures every output shows, computed in one place."""
        now = time.monotonic()
        elapsed = now - self.started
        since = now - (self.counting_since if self.counting_since is not None else self.started)
        percent = eta = None
        if self.total:
            percent = 100.0 * min(self.done, self.total) / self.total
            pace = (self.done - self.done_before) / since if since > 0 else 0.0
            left = max(self.total - self.done, 0)
            eta = 0.0 if left == 0 else (left / pace if pace > 0 else None)
        return Figures(
            unit=self.unit,
            done=self.done,
            total=self.total,
            percent=percent,
            objects=self.objects,
            objects_per_s=self.objects / since if since > 0 else 0.0,
            rows_written=self.rows_written,
            rows_per_s=self.rows_written / since if since > 0 else 0.0,
            unit_per_s=(self.done - self.done_before) / since if since > 0 else 0.0,
            errors=self.errors,
            elapsed_s=elapsed,
            eta_s=eta,
            phase=self.phase,
            rates=self.rates,
        )


@dataclass(slots=True)
class Figures:
    unit: Unit
    done: int
    total: int | None
    percent: float | None
    objects: int
    objects_per_s: float
    rows_written: int
    rows_per_s: float
    unit_per_s: float
    errors: int
    elapsed_s: float
    eta_s: float | None  # None: not known yet
    phase: str
    rates: tuple[Rate, ...]

    def parts(self) -> list[str]:
        """Done of total, counts with their rates, elapsed, ETA: what every output shows,
        e.g. `12/100 folders`, `1,234 objects (56/s)`, `1,200 rows (50/s)`, `elapsed 0:01:05`,
        `ETA 0:07:40`."""
        parts = []
        if self.total is not None:
            parts.append(f"{self.done:,}/{self.total:,} {self.unit}")
        elif self.done:
            parts.append(f"{self.done:,} {self.unit}")
        if "objects" in self.rates:
            parts.append(f"{self.objects:,} objects ({self.objects_per_s:,.0f}/s)")
        if "rows" in self.rates:
            parts.append(f"{self.rows_written:,} rows ({self.rows_per_s:,.0f}/s)")
        if self.unit == "rows" and self.total is not None:
            parts.append(f"{self.unit_per_s:,.0f} rows/s")
        if self.errors:
            parts.append(f"{self.errors:,} errors")
        parts.append(f"elapsed {clock(self.elapsed_s)}")
        parts.append(f"ETA {eta_text(self.eta_s)}")
        return parts

    def line(self, label: str) -> str:
        """One plain line, for output that is not a terminal: `migrate: 12.0% done, 12/100
        folders, ...`, or `migrate: matching folders to customers, ...` while uncounted."""
        head = [self.phase] if self.phase else []
        if self.percent is not None:
            head.append(f"{self.percent:.1f}% done")
        return f"{label}: " + ", ".join(head + self.parts())

    def event(self) -> dict[str, Any]:
        """The `progress` log event's fields."""
        return {
            "unit": self.unit,
            "done": self.done,
            "total": self.total,
            "percent": round(self.percent, 2) if self.percent is not None else None,
            "objects": self.objects,
            "objects_per_s": round(self.objects_per_s, 1),
            "rows_written": self.rows_written,
            "rows_per_s": round(self.rows_per_s, 1),
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 1),
            "eta_s": round(self.eta_s, 1) if self.eta_s is not None else None,
            "phase": self.phase or None,
        }


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def eta_text(seconds: float | None) -> str:
    return clock(seconds) if seconds is not None else "unknown"


class _FiguresColumn(ProgressColumn):
    """Counts, rates, elapsed and ETA from `LiveStats.figures` (the plain lines' figures)."""

    def render(self, task: Task) -> Text:
        figures: Figures | None = task.fields.get("figures")
        return Text("  ".join(figures.parts()) if figures is not None else "")


class _LiveProgress(Progress):
    """A rich Progress whose one task follows a `LiveStats` at each redraw."""

    def __init__(self, stats: LiveStats, label: str, console: Console) -> None:
        self.stats, self.label = stats, label  # first: rich may draw while it sets up
        self.task_id: TaskID | None = None
        super().__init__(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),  # pulses while the total is unknown
            TaskProgressColumn(),  # "42%"; nothing while the total is unknown
            _FiguresColumn(),
            console=console,
            transient=True,  # the summary takes its place
            redirect_stdout=False,  # stdout is for summaries and machine output
        )
        self.task_id = self.add_task(label, total=None)

    def get_renderables(self) -> Iterator[Any]:
        if self.task_id is not None:
            figures = self.stats.figures()
            description = f"{self.label}: {figures.phase}" if figures.phase else self.label
            self.update(self.task_id, completed=figures.done, total=figures.total,
                        description=description, figures=figures)  # fmt: skip
        yield from super().get_renderables()


@contextmanager
def show_progress(
    stats: LiveStats,
    label: str,
    options: ProgressOptions | None = None,
    *,
    log: EventLog | None = None,
    console: Console | None = None,
) -> Iterator[None]:
    """Show `stats` while the block runs: a bar on a terminal, else a line every
    `options.every_s` seconds; `progress` events into `log` at that cadence."""
    options = options or ProgressOptions()
    console = console or Console(stderr=True, highlight=False)
    bar = not options.quiet and console.is_interactive
    lines = not options.quiet and not bar and options.every_s > 0
    events = log is not None and log.enabled and options.every_s > 0
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(options.every_s):
            figures = stats.figures()
            if lines:
                console.file.write(redact(figures.line(label)) + "\n")
                console.file.flush()
            if events:
                assert log is not None
                log.emit("progress", command=label, run_id=stats.run_id, **figures.event())

    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    if lines or events:
        ticker.start()
    try:
        if bar:
            with _LiveProgress(stats, label, console):
                yield
        else:
            yield
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
