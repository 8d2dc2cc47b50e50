"""Where the loader keeps local state, and how secrets are kept out of everything it prints."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def state_dir() -> Path:
    """The project-local state folder (embedded Postgres, demo library): `$LOADER_STATE_DIR`
    or `./.loader`. Created on first use."""
    path = Path(os.environ.get("LOADER_STATE_DIR") or ".loader").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def redact_url(url: str) -> str:
    """A connection URL with its password replaced by `***` (safe to print or store)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


_SECRET_OPTION = re.compile(r"(key|password|secret|token)", re.IGNORECASE)


def redact_options(options: dict[str, object]) -> dict[str, object]:
    """Options as recorded in a run or a report: secrets dropped, URLs without passwords."""
    clean: dict[str, object] = {}
    for name, value in options.items():
        if _SECRET_OPTION.search(name):
            clean[name] = "***" if value else None
        elif isinstance(value, str) and "://" in value:
            clean[name] = redact_url(value)
        else:
            clean[name] = value
    return clean
