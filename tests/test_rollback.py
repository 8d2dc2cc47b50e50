"""Rollback undoes exactly one run and gives the table back byte for byte: inserted rows go,
updated rows get their tags (NULL, '{}' and '{NULL}' ai_tags told apart) and cdn_url back,
what others wrote since stays and is reported (--force decides), --dry-run previews, and
each rollback is recorded."""

from __future__ import annotations

import anyio
import asyncpg
import pytest
from click.testing import CliRunner

from loader import rollback as rollback_module
from loader.cli import cli
from loader.errors import BadInputError
from loader.migrate import MigrateResult, migrate
from loader.progress import LiveStats
from loader.rollback import rollback
from loader.sqlfiles import sql
from tests.sample import PREFIX, sample_catalogue
from tests.storage_fixtures import StartStorage
from tests.test_migrate import KEPT, options

CUSTOMER_FOLDER = "kimminsu01-6601"


async def seed(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES"
        " (7, '김민수', '010-1111-6601', $1), (8, '이남구', '010-2222-9999', 'other-0000')",
        CUSTOMER_FOLDER,
    )
    await db.execute(
        "INSERT INTO image_assets (file_path, filename, ai_tags, alt_text)"
        " VALUES ($1, 'IMG_0000.jpg', ARRAY['portrait', NULL], 'keep me')",
        KEPT,
    )


async def test_rollback_restores_the_table_exactly(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    before = [tuple(r) for r in await db.fetch("SELECT * FROM image_assets ORDER BY file_path")]
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    tagged = await db.fetchrow("SELECT ai_tags, cdn_url FROM image_assets WHERE file_path = $1",
                               KEPT)  # fmt: skip
    assert tagged["ai_tags"] == ["portrait", None, "customer-7"]
    assert tagged["cdn_url"].endswith("/IMG_0000.jpg")
    other = f"{PREFIX}{CUSTOMER_FOLDER}/IMG_0001.jpg"
    assert await db.fetchval(
        "SELECT ai_tags FROM image_assets WHERE file_path = $1", other
    ) == ["customer-7"]  # fmt: skip

    undone = await rollback(db, result.run_id)
    assert undone.deleted == result.totals["inserted"]
    assert undone.restored == 1
    after = [tuple(r) for r in await db.fetch("SELECT * FROM image_assets ORDER BY file_path")]
    strip_updated_at = lambda rows: [r[:-1] for r in rows]  # noqa: E731
    assert strip_updated_at(after) == strip_updated_at(before)
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", result.run_id) == (
        "rolled_back"
    )
    with pytest.raises(BadInputError, match="already rolled back"):
        await rollback(db, result.run_id)


async def test_rollback_keeps_what_others_wrote_since(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    await db.execute(
        "UPDATE image_assets SET ai_tags = ai_tags || 'by-app'::text WHERE file_path = $1", KEPT
    )
    await rollback(db, result.run_id)
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", KEPT) == [
        "portrait", None, "by-app",
    ]  # fmt: skip


async def test_rollback_refuses_to_break_a_later_run(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    await seed(db)
    url = await start_storage(sample_catalogue())
    first = await migrate(options(url, db_url, match="none"))
    await migrate(options(url, db_url, match="auto"))  # adds customer tags to run 1's rows
    with pytest.raises(BadInputError, match="later run"):
        await rollback(db, first.run_id)


# -- byte for byte, with ai_tags NULL, empty and holding NULL --------------------------------

FOLDER = f"{PREFIX}{CUSTOMER_FOLDER}"
# ai_tags the journal must tell apart: NULL, empty, one NULL element, and ordinary tags.
PREVIOUS = {
    f"{FOLDER}/IMG_0000.jpg": None,
    f"{FOLDER}/IMG_0001.jpg": [],
    f"{FOLDER}/IMG_0002.jpg": [None],
    f"{FOLDER}/IMG_0003.jpg": ["portrait", None],
}


async def seeded_run(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> tuple[bytes, MigrateResult]:
    """The odd tags seeded, the table as it then is, and a run over the sample bucket."""
    await seed_odd_tags(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    return before, await migrate(options(url, db_url, match="auto"))


async def seed_odd_tags(db: asyncpg.Connection) -> None:
    # The user's table may allow a NULL ai_tags (the demo schema does not).
    await db.execute("ALTER TABLE image_assets ALTER COLUMN ai_tags DROP NOT NULL")
    await db.execute(
        "INSERT INTO customers (id, name, phone, folder_name)"
        " VALUES (7, '김민수', '010-1111-6601', 'kimminsu01-6601')"
    )
    for path, tags in PREVIOUS.items():
        await db.execute(
            "INSERT INTO image_assets (file_path, filename, ai_tags, alt_text, created_at,"
            " updated_at) VALUES ($1, 'x', $2, 'keep', '2020-01-01Z', '2021-02-03 04:05:06.789Z')",
            path, tags,
        )  # fmt: skip
    await db.execute(
        "INSERT INTO image_assets (file_path, ai_tags) VALUES ('elsewhere/a.jpg', '{NULL,x}')"
    )


async def dump(db: asyncpg.Connection) -> bytes:
    """Every column of every row, in file_path order, as COPY writes it."""
    chunks: list[bytes] = []

    async def collect(data: bytes) -> None:
        chunks.append(bytes(data))

    await db.copy_from_query(
        'SELECT * FROM image_assets ORDER BY file_path COLLATE "C"', output=collect
    )
    return b"".join(chunks)


async def test_rollback_gives_back_the_table_byte_for_byte(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    before, result = await seeded_run(start_storage, db, db_url)
    assert result.totals["updated"] == len(PREVIOUS)
    tags = await db.fetch(
        "SELECT file_path, ai_tags FROM image_assets WHERE file_path = ANY($1) ORDER BY 1",
        list(PREVIOUS),
    )
    assert [r["ai_tags"] for r in tags] == [
        ["customer-7"], ["customer-7"], [None, "customer-7"], ["portrait", None, "customer-7"],
    ]  # fmt: skip

    undone = await rollback(db, result.run_id)
    assert (undone.deleted, undone.restored, undone.kept_changed) == (
        result.totals["inserted"], len(PREVIOUS), 0,
    )  # fmt: skip
    assert await dump(db) == before
    recorded = await db.fetchrow("SELECT forced, counts FROM loader.rollbacks")
    assert recorded["forced"] is False
    assert recorded["counts"] == {"delete": result.totals["inserted"], "restore": len(PREVIOUS)}
    with pytest.raises(BadInputError, match="already rolled back"):
        await rollback(db, result.run_id)
    assert await dump(db) == before


async def test_dry_run_reports_and_changes_nothing(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    _, result = await seeded_run(start_storage, db, db_url)
    after_migrate = await dump(db)
    planned = await rollback(db, result.run_id, dry_run=True)
    assert planned.dry_run
    assert (planned.deleted, planned.restored) == (result.totals["inserted"], len(PREVIOUS))
    assert planned.examples["restore"] == sorted(PREVIOUS)
    assert await dump(db) == after_migrate
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", result.run_id) == (
        "succeeded"
    )
    assert await db.fetchval("SELECT count(*) FROM loader.rollbacks") == 0

    args = ["rollback", str(result.run_id), "--dry-run", "--database-url", db_url]
    # The command runs its own event loop: give it a thread.
    out = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args))
    assert out.exit_code == 0, out.output
    assert f"run {result.run_id} would be rolled back" in out.output
    assert f"{FOLDER}/IMG_0002.jpg" in out.output
    assert await dump(db) == after_migrate


async def test_rows_changed_since_are_reported_and_force_decides(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    _, result = await seeded_run(start_storage, db, db_url)
    inserted = f"{FOLDER}/IMG_0004.jpg"
    changed = f"{FOLDER}/IMG_0001.jpg"
    # another writer changes one inserted and one updated row after the run
    await db.execute("UPDATE image_assets SET alt_text = 'edited' WHERE file_path = $1", inserted)
    await db.execute(
        "UPDATE image_assets SET ai_tags = ai_tags || 'by-app'::text WHERE file_path = $1", changed
    )
    planned = await rollback(db, result.run_id, dry_run=True)
    assert (planned.kept_changed, planned.partly_restored) == (1, 1)
    assert planned.examples["kept"] == [inserted]
    assert planned.examples["undo_tags"] == [changed]

    undone = await rollback(db, result.run_id)
    assert undone.deleted == result.totals["inserted"] - 1
    assert await db.fetchval(
        "SELECT alt_text FROM image_assets WHERE file_path = $1", inserted
    ) == ("edited")
    # only the run's own tag is gone; what the app added stays
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = $1", changed) == [
        "by-app"
    ]


async def test_force_restores_the_exact_before_image_over_later_changes(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    before, result = await seeded_run(start_storage, db, db_url)
    await db.execute(
        "UPDATE image_assets SET ai_tags = ai_tags || 'by-app'::text WHERE file_path LIKE $1",
        f"{FOLDER}/%",
    )
    undone = await rollback(db, result.run_id, force=True)
    assert undone.kept_changed == 0
    assert await dump(db) == before


async def test_rolling_back_two_runs_latest_first_gives_back_the_table(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """The later run's rollback rewrites the rows it restores (a new xmin): the earlier run
    must still see them as it left them, not as changed by someone else."""
    await seed_odd_tags(db)
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    first = await migrate(options(url, db_url, match="none"))
    second = await migrate(options(url, db_url, match="auto"))  # tags run 1's rows
    assert second.totals["updated"] > 0
    await rollback(db, second.run_id)
    undone = await rollback(db, first.run_id)
    assert (undone.deleted, undone.kept_changed, undone.partly_restored) == (
        first.totals["inserted"], 0, 0,
    )  # fmt: skip
    assert await dump(db) == before


# -- the plan and its application in chunks ----------------------------------------------------


async def test_every_action_applied_in_small_chunks(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each action's range of the plan goes in chunks of its own statement: deleted, kept,
    restored, partly restored and gone rows side by side, each counted once."""
    monkeypatch.setattr(rollback_module, "APPLY_CHUNK", 2)
    await seed_odd_tags(db)
    before = {r["file_path"]: tuple(r) for r in await db.fetch("SELECT * FROM image_assets")}
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    kept, changed = f"{FOLDER}/IMG_0004.jpg", f"{FOLDER}/IMG_0001.jpg"
    gone_inserted, gone_updated = f"{FOLDER}/2024-05-01/clip.MOV", f"{FOLDER}/IMG_0002.jpg"
    await db.execute("UPDATE image_assets SET alt_text = 'edited' WHERE file_path = $1", kept)
    await db.execute(
        "UPDATE image_assets SET ai_tags = ai_tags || 'by-app'::text WHERE file_path = $1", changed
    )
    await db.execute(
        "DELETE FROM image_assets WHERE file_path = ANY($1)", [gone_inserted, gone_updated]
    )

    stats = LiveStats(unit="rows", rates=())
    undone = await rollback(db, result.run_id, stats=stats)
    inserted = result.totals["inserted"]
    counts = await db.fetchval("SELECT counts FROM loader.rollbacks")
    assert counts == {"delete": inserted - 2, "kept": 1, "gone": 2, "restore": 2, "undo_tags": 1}
    assert (undone.deleted, undone.restored, undone.partly_restored) == (inserted - 2, 3, 1)
    assert (undone.kept_changed, undone.gone) == (1, 2)
    assert stats.done == stats.total == sum(counts.values())
    after = {r["file_path"]: r for r in await db.fetch("SELECT * FROM image_assets")}
    assert set(after) == {"elsewhere/a.jpg", f"{FOLDER}/IMG_0000.jpg", changed,
                          f"{FOLDER}/IMG_0003.jpg", kept}  # fmt: skip
    for path in ("elsewhere/a.jpg", f"{FOLDER}/IMG_0000.jpg", f"{FOLDER}/IMG_0003.jpg"):
        assert tuple(after[path]) == before[path]
    assert (after[changed]["ai_tags"], after[changed]["cdn_url"]) == (["by-app"], None)
    assert after[kept]["alt_text"] == "edited"
    # The join settings of the application end with its transaction.
    assert await db.fetchval("SHOW enable_hashjoin") == "on"


async def test_a_row_the_run_changed_twice_gets_its_first_before_image_back(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    before, result = await seeded_run(start_storage, db, db_url)
    twice = f"{FOLDER}/IMG_0000.jpg"  # ai_tags NULL before the run
    async with db.transaction():  # a second change by the run, journaled as the sink does
        await db.execute(
            "INSERT INTO loader.journal_updates (run_id, xid, asset_id, file_path, folder,"
            " prev_ai_tags, prev_cdn_url, prev_updated_at, prev_xmin, new_ai_tags, new_cdn_url)"
            " SELECT $1, pg_current_xact_id()::xid, id, file_path, 'kimminsu01-6601', ai_tags,"
            " cdn_url, updated_at, xmin, ai_tags || 'again'::text, cdn_url"
            " FROM image_assets WHERE file_path = $2",
            result.run_id, twice,
        )  # fmt: skip
        await db.execute(
            "UPDATE image_assets SET ai_tags = ai_tags || 'again'::text, updated_at = now()"
            " WHERE file_path = $1",
            twice,
        )
    undone = await rollback(db, result.run_id)
    assert (undone.restored, undone.partly_restored) == (len(PREVIOUS), 0)
    assert await dump(db) == before


async def test_the_plan_takes_each_action_as_one_range_in_table_order(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    """What applying by ranges relies on: each action's rows are one range of seq, in the
    order the rows lie in image_assets."""
    _, result = await seeded_run(start_storage, db, db_url)
    # Rows in another physical order than their paths and ids: rewritten, last path first.
    await db.execute(
        "UPDATE image_assets SET alt_text = alt_text WHERE file_path IN"
        " (SELECT file_path FROM image_assets ORDER BY file_path DESC LIMIT 6)"
    )
    async with db.transaction():
        await db.execute(sql("rollback_plan_create"))
        await db.execute(sql("rollback_plan"), result.run_id, True)
        plan = await db.fetch(
            "SELECT p.action, p.seq, ia.ctid FROM pg_temp.loader_rollback_plan AS p"
            " JOIN image_assets AS ia ON ia.id = p.asset_id ORDER BY p.seq"
        )
    actions = [r["action"] for r in plan]
    assert sorted(set(actions)) == ["delete", "restore"]
    assert actions == sorted(actions)  # one range per action
    assert [r["seq"] for r in plan] == list(range(1, len(plan) + 1))
    for action in ("delete", "restore"):
        ctids = [r["ctid"] for r in plan if r["action"] == action]
        assert ctids == sorted(ctids)


async def test_a_table_without_an_index_on_id_rolls_back_all_the_same(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The nested loop over id is chosen only where an index makes it one lookup a row."""
    monkeypatch.setattr(rollback_module, "APPLY_CHUNK", 3)
    await seed_odd_tags(db)

    async def nested_loop_forced() -> bool:
        async with db.transaction():
            await db.execute(sql("rollback_apply_join"))
            return await db.fetchval("SHOW enable_hashjoin") == "off"

    assert await nested_loop_forced()
    await db.execute("ALTER TABLE image_assets DROP CONSTRAINT image_assets_pkey")
    assert not await nested_loop_forced()
    before = await dump(db)
    url = await start_storage(sample_catalogue())
    result = await migrate(options(url, db_url, match="auto"))
    undone = await rollback(db, result.run_id)
    assert (undone.deleted, undone.restored) == (result.totals["inserted"], len(PREVIOUS))
    assert await dump(db) == before


async def test_a_journal_changed_past_autovacuums_threshold_is_analyzed_before_planning(
    db: asyncpg.Connection,
) -> None:
    """Right after a run, before autovacuum's next round, the plan's statistics are fresh."""
    stats_of = "SELECT count(*) FROM pg_stats WHERE schemaname = 'loader' AND tablename = $1"
    await db.execute(sql("rollback_analyze_journal"))  # nothing changed: nothing analyzed
    assert await db.fetchval(stats_of, "journal_updates") == 0
    await db.execute(
        "INSERT INTO loader.journal_updates (run_id, xid, asset_id, file_path, folder)"
        " SELECT 1, '1'::xid, gen_random_uuid(), 'p' || g, 'f' FROM generate_series(1, 200) AS g"
    )
    await db.execute("SELECT pg_stat_force_next_flush()")  # the activity counters, now
    await db.execute(sql("rollback_analyze_journal"))
    # The columns the plan filters and joins on; journal_inserts did not change.
    assert await db.fetchval(stats_of, "journal_updates") == 5
    assert await db.fetchval(stats_of, "journal_inserts") == 0
