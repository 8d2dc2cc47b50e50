"""Every SQL statement the loader runs lives in `sql/NAME.sql`; this loads them by name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def sql(name: str) -> str:
    """Return the text of `sql/{name}.sql` (cached; the files never change at run time)."""
    path = SQL_DIR / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuntimeError(f"missing SQL file {path}") from None
