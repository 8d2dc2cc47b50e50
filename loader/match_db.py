"""The matcher's database side: customers and a person's stored decisions in, decisions and
customers' folder_name out (and back), the memo of the last matching, and `loader sync`'s
copy of the links. The matching itself is `loader.match`."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson

from loader import match, romanize
from loader.errors import BadInputError, SchemaError
from loader.match import ACCEPT, MARGIN, Customer, FolderMatch, match_folders
from loader.sqlfiles import sql

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplySummary:
    decisions_written: int
    folder_names_written: int
    skipped: list[str]  # folder_name writes left out, each with its reason


# Every customer the matcher may link a folder to (it never creates any).
LOAD_CUSTOMERS_SQL = "SELECT id, name, phone, folder_name FROM public.customers ORDER BY id"


async def load_customers(conn: asyncpg.Connection) -> list[Customer]:
    """Every customer, in one query."""
    rows = await conn.fetch(LOAD_CUSTOMERS_SQL)
    return [Customer(r["id"], r["name"], r["phone"], r["folder_name"]) for r in rows]


# customer_id NULL: the person decided "no customer".
LOAD_DECISIONS_SQL = "SELECT folder, customer_id FROM loader.match_decisions ORDER BY folder"


async def load_decisions(conn: asyncpg.Connection) -> dict[str, int | None]:
    """A person's stored decisions: folder -> customer id, or None for "no customer".

    A database the loader never wrote to (a first dry run) has no loader schema, hence none.
    """
    try:
        records = await conn.fetch(LOAD_DECISIONS_SQL)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return {}
    return {r["folder"]: r["customer_id"] for r in records}


# The customer ids named in decisions ($1) that exist.
EXISTING_CUSTOMERS_SQL = "SELECT id FROM public.customers WHERE id = ANY ($1::bigint[])"


async def apply_decisions(
    conn: asyncpg.Connection,
    decisions: Mapping[str, int | None],
    *,
    write_folder_name: bool,
    decided_by: str = "review",
) -> ApplySummary:
    """Store decisions in `loader.match_decisions` (upsert), in one transaction.

    Every customer id must exist, else BadInputError and nothing is written. With
    `write_folder_name`, each decided customer's `customers.folder_name` is set to its folder
    and the change recorded in `loader.customer_changes` (undo with `revert_folder_names`);
    a customer decided for several folders, or a folder that is already another customer's
    `folder_name`, is left alone and listed in `skipped`.
    """
    folders = list(decisions)
    ids = [decisions[f] for f in folders]
    wanted = sorted({i for i in ids if i is not None})
    async with conn.transaction():
        found = {r["id"] for r in await conn.fetch(EXISTING_CUSTOMERS_SQL, wanted)}
        unknown = [i for i in wanted if i not in found]
        if unknown:
            listed = ", ".join(map(str, unknown[:10]))
            raise BadInputError(f"unknown customer id(s) in decisions: {listed}")
        await conn.execute(sql("match_upsert_decisions"), folders, ids, decided_by)
        written, skipped = (
            await _write_folder_names(conn, decisions) if write_folder_name else (0, [])
        )
    return ApplySummary(len(folders), written, skipped)


# The customers already holding the folder names ($1) about to be written.
FOLDER_NAME_HOLDERS_SQL = """
SELECT id, folder_name FROM public.customers WHERE folder_name = ANY ($1::text[])
"""


async def _write_folder_names(
    conn: asyncpg.Connection, decisions: Mapping[str, int | None]
) -> tuple[int, list[str]]:
    by_customer: dict[int, list[str]] = defaultdict(list)
    for folder, customer_id in decisions.items():
        if customer_id is not None:
            by_customer[customer_id].append(folder)
    skipped = [
        f"customer {cid}: decided for several folders ({', '.join(sorted(fs))})"
        for cid, fs in sorted(by_customer.items())
        if len(fs) > 1
    ]
    targets = {cid: fs[0] for cid, fs in by_customer.items() if len(fs) == 1}
    holders: dict[str, list[int]] = defaultdict(list)
    for row in await conn.fetch(FOLDER_NAME_HOLDERS_SQL, list(targets.values())):
        holders[row["folder_name"]].append(row["id"])
    for cid, folder in list(targets.items()):
        others = [h for h in holders.get(folder, ()) if h != cid]
        if others:
            skipped.append(f"customer {cid}: {folder!r} is customer {others[0]}'s folder_name")
            del targets[cid]
    changed = await conn.fetch(
        sql("match_write_folder_names"), list(targets), list(targets.values())
    )
    return len(changed), skipped


async def revert_folder_names(conn: asyncpg.Connection) -> int:
    """Undo `apply_decisions(write_folder_name=True)`: restore every customer's folder_name
    from before its first un-reverted change, and mark those changes reverted. A customer
    whose folder_name was edited since (by someone else) is left alone and stays pending.
    Returns how many customers were restored."""
    async with conn.transaction():
        row = await conn.fetchrow(sql("match_revert_folder_names"))
    if row["pending"] > row["restored"]:
        log.warning(
            "%d customer folder_name change(s) not reverted: edited since",
            row["pending"] - row["restored"],
        )
    return row["restored"]


async def match_with_database(
    conn: asyncpg.Connection,
    folders: Sequence[str],
    *,
    accept: float = ACCEPT,
    margin: float = MARGIN,
    record: bool = False,
) -> list[FolderMatch]:
    """Match `folders` against every customer, with a person's stored decisions winning.

    `record`: `folders` are all of the bucket's, so the links are the bucket's latest ones:
    kept for `loader sync` (`record_links`) when the thresholds are migrate's own."""
    customers, decisions = await _inputs(conn)
    matches = match_folders(folders, customers, decisions=decisions, accept=accept, margin=margin)
    if record and (accept, margin) == (ACCEPT, MARGIN):
        await record_links(conn, [(m.folder, m.customer_id) for m in matches])
    return matches


# The remembered links for the inputs digested as $1 (none: match again).
MEMO_GET_SQL = "SELECT folders, customer_ids, summary FROM loader.match_memo WHERE key = $1"


async def links_with_database(
    conn: asyncpg.Connection, folders: Sequence[str], *, remember: bool = True
) -> tuple[list[tuple[str, int | None]], dict[str, int]]:
    """Each folder's linked customer (None: none) and the count of folders per status, as
    `match_with_database` decides them.

    Matching is a pure function of its inputs, and a re-run's inputs rarely change: the last
    result is kept in loader.match_memo under a digest of all of them (folders, customers,
    decisions, the matcher's code and thresholds) and taken from there when they are the same.
    `remember=False` (a dry run) only reads it.
    """
    customers, decisions = await _inputs(conn)
    key = _memo_key(folders, customers, decisions)
    try:
        memo = await conn.fetchrow(MEMO_GET_SQL, key) if key else None
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        memo = None  # a database the loader never wrote to (a first dry run)
    if memo is not None:
        links = list(zip(memo["folders"], memo["customer_ids"], strict=True))
        summary = memo["summary"]
    else:
        links, summary = match_folders(folders, customers, decisions=decisions, links_only=True)
        del customers  # ~35 MB at 90,000 customers (measured), not needed for the writes
        if remember and key:
            await conn.execute(sql("match_memo_put"), key, [f for f, _ in links],
                               [c for _, c in links], summary)  # fmt: skip
    if remember:
        await record_links(conn, links)
    return links, summary


async def record_links(conn: asyncpg.Connection, links: Sequence[tuple[str, int | None]]) -> None:
    """Keep `loader sync`'s copy of the bucket's latest links (loader.sync_links, read by its
    trigger at every upload) equal to `links`, when sync is installed; only changed links
    are written."""
    if not (await conn.fetchrow(sql("sync_state")))["tables"]:
        return
    await conn.execute(sql("sync_links_put"), [f for f, _ in links], [c for _, c in links])


async def _inputs(
    conn: asyncpg.Connection,
) -> tuple[list[Customer], dict[str, int | None]]:
    try:
        customers = await load_customers(conn)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        raise SchemaError(
            f"cannot read customers (id, name, phone, folder_name): {exc}; "
            "migrate with --match none to register files without customer tags"
        ) from exc
    return customers, await load_decisions(conn)


def _memo_key(
    folders: Sequence[str], customers: Sequence[Customer], decisions: Mapping[str, int | None]
) -> str | None:
    """A digest of everything matching depends on (None when the matcher's own source cannot
    be read, so that a changed matcher never reuses an old result)."""
    try:
        # The matcher, its spellings, and this module (which turns matches into links).
        files = (romanize.__file__, match.__file__, __file__)
        code = b"".join(Path(f).read_bytes() for f in files)
    except OSError:
        return None
    digest = hashlib.sha256(code)
    # Streamed a slice at a time: one JSON blob of everything took ~20 MB at 100,000
    # customers. The counts first, so that the slices of one list cannot pass for another's.
    digest.update(orjson.dumps([ACCEPT, MARGIN, len(folders), len(customers), len(decisions)]))
    for start in range(0, len(folders), _MEMO_SLICE):
        digest.update(orjson.dumps(folders[start : start + _MEMO_SLICE]))
    for start in range(0, len(customers), _MEMO_SLICE):
        digest.update(orjson.dumps([(c.id, c.name, c.phone, c.folder_name)
                                    for c in customers[start : start + _MEMO_SLICE]]))  # fmt: skip
    digest.update(orjson.dumps(sorted(decisions.items())))
    return digest.hexdigest()


_MEMO_SLICE = 10_000
