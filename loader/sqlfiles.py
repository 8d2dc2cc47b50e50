"""Every SQL statement the loader runs lives in `sql/NAME.sql`; this loads them by name.

The top-level `sql/` folder is installed as the package `loader.sql` (pyproject.toml maps
it), so the statements travel inside the wheel and are read through importlib.resources,
whether the loader runs from a checkout, an editable install or a plain wheel install.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def sql(name: str) -> str:
    """Return the text of `sql/{name}.sql` (cached; the files never change at run time)."""
    try:
        return (resources.files("loader.sql") / f"{name}.sql").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuntimeError(f"missing SQL file {name}.sql in the loader package") from None


def names() -> list[str]:
    """The names of every statement shipped with the package."""
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in resources.files("loader.sql").iterdir()
        if entry.name.endswith(".sql")
    )
