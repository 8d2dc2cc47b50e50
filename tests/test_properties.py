"""Property tests (hypothesis) of the pure rules the loader's guarantees rest on: the tag
merge in SQL against its Python twin and the dry run's question about it, prefix and
folder-name normalisation, and the public URL's percent-encoding."""

from __future__ import annotations

import asyncio
import re
import string
import unicodedata
from collections import Counter
from hashlib import sha256
from urllib.parse import quote, unquote, urlsplit

import anyio
import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.classify import classify, classify_path
from loader.db import connect
from loader.listing import normalize_prefix
from loader.match import normalize_folder
from loader.rows import (
    AssetRow,
    CdnUrls,
    FolderCheck,
    FolderRows,
    NoCdnUrls,
    build_row,
    folder_check,
)
from loader.sink import merge_duplicates
from loader.sqlfiles import sql
from loader.storage_objects import listed_object

# Postgres text holds any character but NUL; lone surrogates cannot be encoded at all.
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
TAG = st.one_of(st.sampled_from(["customer-1", "customer-2", "portrait", "a", "A"]),
                st.text(TEXT, max_size=4))  # fmt: skip
TAGS = st.lists(TAG, max_size=6)
OLD = st.one_of(st.none(), st.lists(st.one_of(st.none(), TAG), max_size=6))
NEW = st.lists(st.one_of(st.none(), TAG), max_size=4)


def reference_merge(old: list[str | None] | None, new: list[str | None]) -> list[str | None]:
    """The documented rule: old tags kept in order, then each new non-NULL tag not already
    there, once, in first-seen order."""
    merged = list(old or [])
    for tag in new:
        if tag is not None and tag not in merged:
            merged.append(tag)
    return merged


def asset_row(tags: list[str]) -> AssetRow:
    """A row of one image at path `p`, carrying `tags`."""
    obj = listed_object(path="f/p.jpg", size=1, mimetype=None, created_at=None, updated_at=None)
    _, row = build_row(obj, "f", None, CdnUrls("http://cdn"))
    assert row is not None
    row.tags = list(tags)
    return row


def run_with_connection(db_url: str, check: object) -> None:
    """Run hypothesis test `check(call)` where `call(coro)` runs on one connection's loop."""
    with asyncio.Runner() as runner:
        conn: asyncpg.Connection = runner.run(connect(db_url))
        try:
            check(lambda query, *args: runner.run(conn.fetchval(query, *args)))  # type: ignore[operator]
        finally:
            runner.run(conn.close())


async def test_sql_tag_merge_follows_the_rule_and_the_dry_run_asks_it_right(db_url: str) -> None:
    def check(fetch: object) -> None:
        @settings(max_examples=120, deadline=None)
        @given(old=OLD, new=NEW)
        def merge(old: list[str | None] | None, new: list[str | None]) -> None:
            merged = fetch("SELECT loader.merge_tags($1::text[], $2::text[])", old, new)  # type: ignore[operator]
            assert merged == reference_merge(old, new)
            general = fetch("SELECT loader.merge_tags_general($1::text[], $2::text[])", old, new)  # type: ignore[operator]
            assert general == merged  # the fast path changes nothing
            # plan_batch.sql cannot call merge_tags (a dry run may find no loader schema):
            # its own test for "the merge changes the row" must agree with the merge.
            planned = fetch(  # type: ignore[operator]
                "SELECT $1::text[] IS NULL OR NOT (array_remove($2::text[], NULL) <@ $1::text[])",
                old, new,
            )  # fmt: skip
            changed = fetch(  # type: ignore[operator]
                "SELECT loader.merge_tags($1::text[], $2::text[]) IS DISTINCT FROM $1::text[]",
                old, new,
            )  # fmt: skip
            assert planned == changed

        merge()

    await anyio.to_thread.run_sync(run_with_connection, db_url, check)


_URL_PATH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)")


def reference_same_object(url: str | None, own: str, file_path: str) -> bool:
    """The rule as loader.same_object's comment states it: the stored URL's path (after
    scheme and host, without query or fragment) is own's path, or ends with '/' and the file
    path (as stored or percent-encoded) with no `object` segment before it."""
    if url is None:
        return False
    if url == own:
        return True
    found, mine = _URL_PATH.match(url), _URL_PATH.match(own)
    if found is None or mine is None:
        return False
    if found[1] == mine[1]:
        return True
    parts, n = found[1].split("/"), file_path.count("/") + 1
    tail, head = parts[-n:], parts[:-n]
    forms = (file_path.split("/"), quote(file_path, safe="/").split("/"))
    return len(parts) > n and tail in forms and "object" not in head


SEGMENT = st.sampled_from(["a", "IMG 1 (2).jpg", "한글", "object", "b", "x?y", "50%", "c.PNG"])
BASES = st.sampled_from([
    "https://p.supabase.co/storage/v1/object/public/b", "http://127.0.0.1:5000/object/public/b",
    "https://cdn.example.com/media",
])  # fmt: skip


@st.composite
def cdn_cases(draw: st.DrawFn) -> tuple[str | None, str, str]:
    """(stored cdn_url, own URL, file path): stored values of every kind the rule tells
    apart, mostly near the own URL."""
    path = "/".join(draw(st.lists(SEGMENT, min_size=1, max_size=3)))
    own = f"{draw(BASES)}/{quote(path, safe='/')}"
    host = draw(st.sampled_from(["https://cdn.example.com", "http://old.cdn:8080", "https://h"]))
    before = "/".join(draw(st.lists(st.sampled_from(["b", "object", "sign", "public", "x"]),
                                    max_size=3)))  # fmt: skip
    tail = draw(st.sampled_from([path, quote(path, safe="/"), path.rsplit("/", 1)[-1], "x"]))
    extra = draw(st.sampled_from(["", "?w=300", "#top", "?token=t&download"]))
    stored = draw(st.one_of(
        st.none(), st.just(own), st.just(host + urlsplit(own).path + extra),
        st.just(f"{host}/{before}/{tail}{extra}".replace("//", "/").replace(":/", "://", 1)),
        st.text(TEXT, max_size=12),
    ))  # fmt: skip
    return stored, own, path


@pytest.mark.slow  # ~1.5 s: 300 examples, each through SQL
async def test_the_cdn_url_rule_in_sql_and_in_the_dry_run_is_the_stated_rule(db_url: str) -> None:
    """loader.same_object and loader.cdn_url_after follow the rule as stated, and
    plan_batch.sql (which cannot call them) decides "the cdn_url changes" exactly as they do."""
    plan = f"SELECT updated FROM ({sql('plan_batch').strip().rstrip(';')}) AS plan"

    def check(fetch: object) -> None:
        @settings(max_examples=300, deadline=None)
        @given(case=cdn_cases(), overwrite=st.booleans(), keep=st.booleans())
        def rule(case: tuple[str | None, str, str], overwrite: bool, keep: bool) -> None:
            stored, own, path = case
            same = fetch("SELECT loader.same_object($1, $2, $3)", stored, own, path)  # type: ignore[operator]
            assert same == reference_same_object(stored, own, path)
            written = None if keep else own  # `--cdn-url keep`: rows carry no URL
            after = fetch(  # type: ignore[operator]
                "SELECT loader.cdn_url_after($1, $2, $3, $4)", stored, written, path, overwrite
            )
            expected = stored if keep or stored == own or (same and not overwrite) else own
            assert after == expected
            fetch("DELETE FROM image_assets")  # type: ignore[operator]
            fetch("INSERT INTO image_assets (file_path, ai_tags, cdn_url) VALUES ($1, '{}', $2)",  # type: ignore[operator]
                  path, stored)  # fmt: skip
            rows = [{"file_path": path, "folder": "f", "tags": [], "cdn_url": written}]
            updated = fetch(plan, rows, overwrite)  # type: ignore[operator]
            assert updated == (after != stored)

        rule()

    await anyio.to_thread.run_sync(run_with_connection, db_url, check)


async def test_batch_merge_in_python_equals_the_sql_merge(db_url: str) -> None:
    """sink.merge_duplicates unites the tags of one path's rows in a batch before the SQL
    merge sees them: both must give the same tags."""

    def check(fetch: object) -> None:
        @settings(max_examples=80, deadline=None)
        @given(first=TAGS, second=TAGS)
        def twins(first: list[str], second: list[str]) -> None:
            (merged,) = merge_duplicates([asset_row(first), asset_row(second)])
            sql = fetch("SELECT loader.merge_tags($1::text[], $2::text[])", first, second)  # type: ignore[operator]
            assert merged.tags == sql

        twins()

    await anyio.to_thread.run_sync(run_with_connection, db_url, check)


@given(st.text(st.sampled_from("ab/ "), max_size=12))
def test_prefix_normalisation(prefix: str) -> None:
    normal = normalize_prefix(prefix)
    assert normal == "" or (normal.endswith("/") and not normal.endswith("//"))
    assert not normal.startswith("/")
    assert normalize_prefix(normal) == normal  # idempotent
    assert normalize_prefix(f"/{prefix}/") == normal  # slashes around it do not matter
    assert normal.strip("/") == prefix.strip("/")  # nothing but slashes removed


ASCII_PARTS = st.sampled_from(string.ascii_letters + string.digits + "-_. ")
WIDE_PARTS = st.sampled_from("김종철ＡＢｃ１２３ｶ－＿")  # Hangul, full-width, half-width kana
FOLDER = st.text(st.one_of(ASCII_PARTS, WIDE_PARTS, TEXT), max_size=16)


@given(FOLDER)
def test_folder_name_normalisation(name: str) -> None:
    normal = normalize_folder(name)
    assert normalize_folder(normal) == normal  # idempotent
    assert normalize_folder(unicodedata.normalize("NFD", name)) == normal
    assert normalize_folder(f"  {name}\t") == normal
    assert normalize_folder(name.replace("_", "-").replace(".", " ")) == normal
    if name.isascii():
        assert normalize_folder(name.upper()) == normal


UNRESERVED = set(string.ascii_letters + string.digits + "-._~/%")


@given(st.lists(st.text(TEXT, min_size=1, max_size=8).filter(lambda s: "/" not in s),
                min_size=1, max_size=4))  # fmt: skip
def test_public_url_encodes_every_path_and_decodes_back(segments: list[str]) -> None:
    path = "/".join(segments)
    base = "http://127.0.0.1:5000/storage/v1/object/public/blog-images"
    url = CdnUrls(base).url(path)
    assert url.startswith(base + "/")
    encoded = url[len(base) + 1 :]
    assert set(encoded) <= UNRESERVED  # no raw `?`, `#`, space or non-ASCII
    assert unquote(encoded) == path  # round trip
    assert encoded.count("/") == path.count("/")  # segments stay segments
    parts = urlsplit(url)
    assert (parts.query, parts.fragment) == ("", "")


PLAIN_OR_NOT = st.sampled_from(["a", "B9", "x_y.z~", "-", "한글", "sp ace", "q?#", "100%", "é"])


@given(st.lists(st.lists(PLAIN_OR_NOT, min_size=1, max_size=3), min_size=1, max_size=6),
       st.sampled_from(["jpg", "PNG", "mp4"]))  # fmt: skip
def test_a_page_of_rows_gets_each_path_s_own_public_url(dirs: list[list[str]], ext: str) -> None:
    """The row builder skips percent-encoding for pages whose paths are all plain; whatever
    mix a page holds, every row's cdn_url is the one `CdnUrls.url` gives its path alone."""
    cdn = CdnUrls("http://127.0.0.1:5000/storage/v1/object/public/blog-images")
    paths = [f"f/{'/'.join(d)}/n{i}.{ext}" for i, d in enumerate(dirs)]
    rows: list[AssetRow] = []
    kinds: Counter[str] = Counter()
    FolderRows("f", 7, cdn).add_page([listed_object(p) for p in paths], rows, kinds)
    assert [r.cdn_url for r in rows] == [cdn.url(p) for p in paths]
    assert kinds["media"] == len(paths) == kinds["image"] + kinds["video"]


NAMES = st.sampled_from(["a.jpg", "B.JPEG", ".keep.png", "v.MOV", "notes.txt", "x", "y.", ".z",
                         "c.heic", "d.webp", "e.gif", "f.mp4"])  # fmt: skip
MIMES = st.sampled_from([None, "image/png", "video/mp4", "text/plain", "application/json"])


@given(st.lists(st.tuples(NAMES, MIMES, st.booleans()), max_size=12))
def test_a_folder_check_covers_exactly_the_rows_add_page_builds(
    files: list[tuple[str, str | None, bool]],
) -> None:
    """A re-run passes a folder on its check only if its media are those add_page would
    write: the two must agree on every object, and count kinds alike."""
    cdn = CdnUrls("http://127.0.0.1:5000/storage/v1/object/public/blog-images")
    objects = [listed_object(f"p/f/{'d/' if deep else ''}{i}/{name}", mimetype=mime)
               for i, (name, mime, deep) in enumerate(files)]  # fmt: skip
    rows: list[AssetRow] = []
    built, checked = Counter[str](), Counter[str]()
    FolderRows("f", 7, cdn).add_page(objects, rows, built)
    check = folder_check(FolderRows("f", 7, cdn), "p/f/", objects, checked)
    assert check is not None and check.media == len(rows) and check.tag == "customer-7"
    assert check.digest == sha256("\n".join(sorted(r.file_path for r in rows)).encode()).hexdigest()
    assert checked == built


@given(st.lists(st.tuples(st.lists(PLAIN_OR_NOT, max_size=2), PLAIN_OR_NOT), max_size=8),
       PLAIN_OR_NOT)  # fmt: skip
def test_a_folder_check_builds_each_row_s_own_url(
    files: list[tuple[list[str], str]], folder: str
) -> None:
    """The re-run check builds each row's own cdn_url in SQL as the prefix's URL followed by
    the rest of the path, encoded when `encoded` says so: that is the URL add_page builds."""
    cdn = CdnUrls("http://127.0.0.1:5000/storage/v1/object/public/blog-images")
    prefix = f"p/{folder}/"
    objects = [listed_object(f"{prefix}{'/'.join([*dirs, f'{name}{i}.jpg'])}")
               for i, (dirs, name) in enumerate(files)]  # fmt: skip
    rows: list[AssetRow] = []
    FolderRows(folder, None, cdn).add_page(objects, rows, Counter())
    check = folder_check(FolderRows(folder, None, cdn), prefix, objects, Counter())
    assert check is not None and check.url_prefix is not None
    for row in rows:
        rest = row.file_path[len(prefix) :]
        assert check.url_prefix + (check.encoded or {}).get(rest, rest) == row.cdn_url
    rests = [row.file_path[len(prefix) :] for row in rows]
    encoded = {rest for rest in rests if quote(rest, safe="/") != rest}
    assert (set(check.encoded) if check.encoded is not None else None) == (encoded or None)
    kept = folder_check(FolderRows(folder, None, NoCdnUrls()), prefix, objects, Counter())
    assert kept == FolderCheck(folder, prefix, None, len(rows), check.digest, None, None, objects)


@given(st.text(alphabet="ab/.Jj pgPGmM4", max_size=12), MIMES)
def test_classify_path_is_classify_of_the_last_segment(path: str, mime: str | None) -> None:
    assert classify_path(path, mime) == classify(path.rsplit("/", 1)[-1], mime)
