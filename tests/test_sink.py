"""The batch upsert and the server-side tag merge, and the known traps of upserting in bulk."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from loader import runs
from loader.classify import classify
from loader.db import create_pool
from loader.rollback import rollback
from loader.rows import AssetRow, CdnUrls, build_row
from loader.sink import UpsertSink, merge_duplicates
from loader.storage_client import public_url_base
from loader.storage_objects import listed_object


@pytest.mark.parametrize(
    ("old", "new", "merged"),
    [
        (["a", "b"], ["b", "c"], ["a", "b", "c"]),
        (["a"], ["c", "c", "d", "c"], ["a", "c", "d"]),  # duplicates inside new: once each
        (["a", None], ["a", "b"], ["a", None, "b"]),  # NULL element in old: still appends
        (None, ["x"], ["x"]),  # NULL array is empty
        (["a"], [None, "b"], ["a", "b"]),  # NULL element in new: skipped
        (["z", "a"], [], ["z", "a"]),  # order of old kept
        (None, None, []),
        # the single-tag fast path gives the same answers
        (["a", None], ["b"], ["a", None, "b"]),
        (["a", None], ["a"], ["a", None]),
        ([], ["a"], ["a"]),
        (["a"], [None], ["a"]),
        ([None], ["a"], [None, "a"]),
    ],
)
async def test_merge_tags(db: asyncpg.Connection, old, new, merged) -> None:
    assert await db.fetchval("SELECT loader.merge_tags($1::text[], $2::text[])", old, new) == (
        merged
    )


def row(path: str, tags: list[str], folder: str = "f") -> AssetRow:
    return AssetRow(path, folder, path, "jpg", "image/jpeg", 1, None, tags, f"http://cdn/{path}")


def test_merge_duplicates_unites_tags_and_sorts() -> None:
    merged = merge_duplicates([row("b", ["x"]), row("a", ["y"]), row("b", ["z", "x"])])
    assert [(r.file_path, r.tags) for r in merged] == [("a", ["y"]), ("b", ["x", "z"])]


@pytest.fixture
async def sink_pool(db_url: str):
    pool = await create_pool(db_url, 2)
    yield pool
    await pool.close()


async def new_run(pool: asyncpg.Pool) -> int:
    return await runs.create_run(pool, bucket="b", prefix="p/", options={}, folders=[])


async def test_bad_row_is_isolated_and_recorded(sink_pool: asyncpg.Pool, db) -> None:
    run_id = await new_run(sink_pool)
    sink = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    rows = [row(f"p/{i:03d}.jpg", []) for i in range(50)]
    rows[17].file_size = 2**63 + 5  # out of bigint range: a data error for this row only
    outcome = await sink.write(rows)
    assert [r.file_path for r, _ in outcome.failures] == ["p/017.jpg"]
    assert outcome.per_folder["f"]["inserted"] == 49
    assert outcome.per_folder["f"]["failed"] == 1
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 49
    reason = await db.fetchval("SELECT reason FROM loader.row_failures WHERE run_id = $1", run_id)
    assert "out of range" in reason


async def test_cdn_url_fill_versus_overwrite(sink_pool: asyncpg.Pool, db) -> None:
    """fill keeps a URL of the same object on another host (a CDN in front) and refreshes one
    of another object (issue 22: fill used to keep any URL); overwrite rewrites both."""
    await db.execute(
        "INSERT INTO image_assets (file_path, cdn_url) VALUES"
        " ('p/a.jpg', 'http://old/p/a.jpg'), ('p/b.jpg', 'http://old/b.jpg')"
    )
    run_id = await new_run(sink_pool)
    fill = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    outcome = await fill.write([row("p/a.jpg", []), row("p/b.jpg", [])])
    assert (outcome.per_folder["f"]["unchanged"], outcome.per_folder["f"]["updated"]) == (1, 1)
    urls = dict(await db.fetch("SELECT file_path, cdn_url FROM image_assets"))
    assert urls == {"p/a.jpg": "http://old/p/a.jpg", "p/b.jpg": "http://cdn/p/b.jpg"}
    overwrite = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=True)
    outcome = await overwrite.write([row("p/a.jpg", []), row("p/b.jpg", [])])
    assert outcome.per_folder["f"]["updated"] == 1
    urls = dict(await db.fetch("SELECT file_path, cdn_url FROM image_assets"))
    assert urls == {"p/a.jpg": "http://cdn/p/a.jpg", "p/b.jpg": "http://cdn/p/b.jpg"}
    # the journal keeps the first "before" of the run
    before = dict(await db.fetch("SELECT file_path, prev_cdn_url FROM loader.journal"))
    assert before == {"p/a.jpg": "http://old/p/a.jpg", "p/b.jpg": "http://old/b.jpg"}


def test_cdn_urls_encode_every_segment() -> None:
    cdn = CdnUrls(public_url_base("https://x.supabase.co/storage/v1", "blog images"))
    url = cdn.url("originals/customers/lee nam/what?#1 (2)&%.jpg")
    assert url == (
        "https://x.supabase.co/storage/v1/object/public/blog%20images/originals/customers/"
        "lee%20nam/what%3F%231%20%282%29%26%25.jpg"
    )


@pytest.mark.parametrize(
    ("name", "mimetype", "kind", "mime"),
    [
        ("IMG_1.JPG", None, "image", "image/jpeg"),
        ("clip.MOV", "application/octet-stream", "video", "video/quicktime"),
        ("x.heic", None, "image", "image/heic"),
        ("x.HEIF", None, "image", "image/heif"),
        ("x.m4v", None, "video", "video/x-m4v"),
        ("scan", "image/png", "image", "image/png"),
        ("notes.txt", "text/plain", "other", "text/plain"),
        (".keep.png", "image/png", "placeholder", None),
        (".emptyFolderPlaceholder", None, "placeholder", None),
        (".DS_Store", None, "placeholder", None),
    ],
)
def test_classify(name: str, mimetype: str | None, kind: str, mime: str | None) -> None:
    assert classify(name, mimetype) == (kind, mime)


def test_build_row_tags_and_skips() -> None:
    cdn = CdnUrls("https://cdn.example.com/media")
    obj = listed_object("originals/customers/kim-1/2024-05-01/A B.PNG", 10, None, "t0", "t1")
    kind, built = build_row(obj, "kim-1", 42, cdn)
    assert kind == "image" and built is not None
    assert (built.filename, built.format, built.mime_type, built.tags) == (
        "A B.PNG", "png", "image/png", ["customer-42"],
    )  # fmt: skip
    assert (
        built.cdn_url
        == "https://cdn.example.com/media/originals/customers/kim-1/2024-05-01/A%20B.PNG"
    )
    assert build_row(listed_object("p/n.txt", 1, None, None, None), "p", 1, cdn) == ("other", None)


async def test_a_concurrent_insert_of_a_new_path_falls_back_to_the_merge(
    sink_pool: asyncpg.Pool, db
) -> None:
    """The COPY fast path found 'p/b.jpg' new, but another writer inserts it before the COPY
    commits: the unique index stops the COPY, and the batch is redone with ON CONFLICT."""
    run_id = await new_run(sink_pool)
    sink = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    other = db.transaction()
    await other.start()
    await db.execute("INSERT INTO image_assets (file_path, ai_tags) VALUES ('p/b.jpg', '{app}')")
    outcomes = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _append(outcomes, sink.write([row("p/a.jpg", ["c-1"]),
                                                            row("p/b.jpg", ["c-1"])])))  # fmt: skip
        with anyio.fail_after(30):  # until the COPY waits for the other writer's row lock
            while not await sink_pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'COPY%'"
            ):
                await anyio.sleep(0.02)
        await other.commit()
    assert sink.copy_fast_path
    assert outcomes[0].per_folder["f"] == {"inserted": 1, "updated": 1, "unchanged": 0}
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = 'p/b.jpg'") == [
        "app", "c-1",
    ]  # fmt: skip
    journal = await db.fetch(
        "SELECT file_path, action, prev_ai_tags FROM loader.journal ORDER BY 1"
    )
    assert [tuple(r) for r in journal] == [
        ("p/a.jpg", "insert", None),
        ("p/b.jpg", "update", ["app"]),
    ]


async def test_batches_after_new_ones_skip_the_probe_and_fall_back_on_an_existing_path(
    sink_pool: asyncpg.Pool, db
) -> None:
    """A batch whose probe found none of its paths makes the next one go straight to COPY;
    a path that exists then fails that COPY and the batch is probed and written as usual.
    Rollback then undoes all of it exactly (rows written in a subtransaction would carry an
    xmin the journal does not know, and be kept as "changed since")."""
    run_id = await new_run(sink_pool)
    sink = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    first = await sink.write([row(f"p/{i}.jpg", ["c-1"]) for i in range(3)])
    assert first.per_folder["f"] == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert sink.expect_new
    second = await sink.write([row("q/0.jpg", ["c-1"]), row("q/1.jpg", ["c-1"])])
    assert second.per_folder["f"] == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert sink.expect_new  # went without a probe: still expecting new rows
    await db.execute("INSERT INTO image_assets (file_path, ai_tags) VALUES ('r/1.jpg', '{app}')")
    third = await sink.write([row("r/0.jpg", ["c-1"]), row("r/1.jpg", ["c-1"])])
    assert third.per_folder["f"] == {"inserted": 1, "updated": 1, "unchanged": 0}
    assert not sink.expect_new  # the probe found r/1.jpg
    assert await db.fetchval("SELECT ai_tags FROM image_assets WHERE file_path = 'r/1.jpg'") == [
        "app", "c-1",
    ]  # fmt: skip
    journal = await db.fetch(
        "SELECT file_path, action, prev_ai_tags FROM loader.journal ORDER BY 1"
    )
    assert [tuple(r) for r in journal] == [
        *((f"p/{i}.jpg", "insert", None) for i in range(3)),
        ("q/0.jpg", "insert", None),
        ("q/1.jpg", "insert", None),
        ("r/0.jpg", "insert", None),
        ("r/1.jpg", "update", ["app"]),
    ]
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 7
    await runs.finalize_run(sink_pool, run_id)
    await rollback(db, run_id)
    assert [tuple(r) for r in await db.fetch("SELECT file_path, ai_tags FROM image_assets")] == [
        ("r/1.jpg", ["app"]),
    ]


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_a_table_of_other_types_is_written_without_copy(sink_pool: asyncpg.Pool, db) -> None:
    await db.execute("ALTER TABLE image_assets ALTER COLUMN file_size TYPE integer")
    run_id = await new_run(sink_pool)
    sink = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    outcome = await sink.write([row("p/a.jpg", ["x"]), row("p/b.jpg", [])])
    assert sink.copy_fast_path is False
    assert outcome.per_folder["f"]["inserted"] == 2
    assert await db.fetchval("SELECT count(*) FROM loader.journal WHERE action = 'insert'") == 2


async def test_the_journal_keeps_odd_names_exactly(sink_pool: asyncpg.Pool, db) -> None:
    """Inserted paths travel to the journal as one JSON array: quotes, backslashes, control
    characters, Hangul and emoji come back as they were, and rollback deletes exactly them."""
    odd = ['a"b.jpg', "c\\d.jpg", "tab\there.jpg", "new\nline.jpg", "한글 사진.jpg", "🙂.png",
           "x\u2028y.jpg", "é́.jpg"]  # fmt: skip
    paths = [*sorted(f"cust/{name}" for name in odd), "other/z.jpg"]
    run_id = await new_run(sink_pool)
    sink = UpsertSink(sink_pool, run_id=run_id, upload_source="t", overwrite_cdn=False)
    await sink.write([row(p, ["c-1"], folder=p.split("/")[0]) for p in paths])
    journal = await db.fetch("SELECT file_path FROM loader.journal ORDER BY 1")
    assert sorted(r["file_path"] for r in journal) == sorted(paths)
    await db.execute("INSERT INTO image_assets (file_path) VALUES ('cust/kept.jpg')")
    await runs.finalize_run(sink_pool, run_id)
    await rollback(db, run_id)
    assert await db.fetchval("SELECT array_agg(file_path) FROM image_assets") == ["cust/kept.jpg"]
