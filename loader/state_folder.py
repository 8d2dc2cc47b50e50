"""Where the loader keeps local state: the state folder."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The project-local state folder (embedded Postgres, demo library): `$LOADER_STATE_DIR`
    or `./.loader`. Created on first use."""
    path = Path(os.environ.get("LOADER_STATE_DIR") or ".loader").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
