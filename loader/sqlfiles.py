"""Where the loader's SQL lives, and the loader of `sql/NAME.sql` by name.

A statement lives in one of two places:

- Inline, when it is short (about four lines or fewer, needing no long comment to be
  understood) and run by one function only: a module-level constant whose name ends in `_SQL`
  (`SEARCH_PATH_SQL = "SHOW search_path"`), just above that function (or its class), with
  the comment that says why it is there beside it. Never a string literal inside the call:
  the drift test finds inline statements by that naming convention, and fails on a literal
  passed straight to a query method, which it could not check.
- In `sql/NAME.sql`, loaded with `sql("NAME")`: the schema scripts, every longer statement,
  and every statement run from more than one place.

Either way values are always `$n` parameters, never formatted into the text, and
tests/test_sql_files.py prepares every statement of both kinds against the real schema.

The top-level `sql/` folder is installed as the package `loader.sql` (pyproject.toml maps
it), so the files travel inside the wheel and are read through importlib.resources,
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
    except FileNotFoundError as exc:
        raise RuntimeError(f"missing SQL file {name}.sql in the loader package") from exc


def names() -> list[str]:
    """The names of every statement shipped with the package."""
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in resources.files("loader.sql").iterdir()
        if entry.name.endswith(".sql")
    )
