"""Live progress on a terminal (rich), fed by counters the library updates as it goes.

The library only bumps plain counters in a `LiveStats`; drawing happens here, a few times a
second, and only when stderr is a TTY, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.text import Text


@dataclass(slots=True)
class LiveStats:
    folders_total: int = 0
    folders_done: int = 0
    objects: int = 0
    rows_written: int = 0
    errors: int = 0
    calls: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    run_id: int | None = None  # set once a migrate run exists (interruptions name it)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        parts = [
            f"folders {self.folders_done}/{self.folders_total}",
            f"objects {self.objects:,}",
        ]
        if self.rows_written:
            parts.append(f"rows {self.rows_written:,} ({self.rows_written / elapsed:,.0f}/s)")
        if self.calls:
            parts.append(f"calls {self.calls:,} ({self.calls / elapsed:,.0f}/s)")
        parts.append(f"retries {self.retries}")
        parts.append(f"errors {self.errors}")
        return "  ".join(parts) + f"  [{elapsed:,.1f}s]"


@contextmanager
def live_progress(stats: LiveStats, *, enabled: bool | None = None) -> Iterator[None]:
    """Show `stats` as one refreshing line on stderr while the block runs (TTY only)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return

    class _Line:
        def __rich__(self) -> Text:
            return Text(stats.line())

    with Live(_Line(), console=Console(stderr=True), refresh_per_second=4, transient=True):
        yield
