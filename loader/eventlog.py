"""Structured JSON-lines log of what a run did (`--log-file`): one line per event, never a
secret (options are redacted before they get here)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from loader.redact import redact_value


class EventLog:
    """Appends `{"ts", "event", ...}` lines to `path`; does nothing when `path` is None."""

    def __init__(self, path: Path | None) -> None:
        self._file = path.open("ab") if path is not None else None
        # `progress` events come from the progress thread, the others from the event loop.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def emit(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"ts": dt.datetime.now(dt.UTC).isoformat(), "event": event,
                  **{k: redact_value(v) for k, v in fields.items()}}  # fmt: skip
        line = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        # One write per line and a flush, so a killed process leaves whole lines behind.
        with self._lock:
            if self._file is not None:  # not closed meanwhile
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            with self._lock:
                self._file.close()
                self._file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
