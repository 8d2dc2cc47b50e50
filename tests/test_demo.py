"""The demo library generator: deterministic, realistic in the ways that matter, seedable."""

from __future__ import annotations

import ast
import json
import random
from collections import Counter
from pathlib import Path

import asyncpg
import orjson
import pytest
from rapidfuzz.distance import OSA

from loader.classify import MEDIA_TYPES
from loader.devtools import demo_library as demo
from loader.devtools.storage_model import is_valid_key
from loader.devtools.storage_server import Catalogue
from loader.match import normalize_folder, phone_suffix

PREFIX = demo.PREFIX


@pytest.fixture(scope="module")
def library() -> demo.DemoLibrary:
    return demo.generate_library()


@pytest.fixture(scope="module")
def objects(library: demo.DemoLibrary) -> list[dict[str, object]]:
    return list(demo.iter_objects(library))


def test_deterministic_per_seed(library: demo.DemoLibrary) -> None:
    again = demo.generate_library()
    assert again.customers == library.customers
    assert again.folders == library.folders
    assert again.existing_assets == library.existing_assets
    first = [o for _, o in zip(range(500), demo.iter_objects(library), strict=False)]
    assert first == [o for _, o in zip(range(500), demo.iter_objects(again), strict=False)]
    other = demo.generate_library(seed=7)
    assert [f.name for f in other.folders] != [f.name for f in library.folders]


def test_counts_at_scale_1(library: demo.DemoLibrary, objects: list[dict[str, object]]) -> None:
    assert len(library.folders) == demo.FOLDERS_PER_SCALE
    twins = Counter(f.variation for f in library.folders)["ambiguous"]
    by_id = {c.id: c for c in library.customers}
    namesakes = {
        by_id[f.true_customer_id].name
        for f in library.folders
        if f.variation == "namesakes" and f.true_customer_id
    }
    sharing = sum(c.name in namesakes for c in library.customers)
    assert len(library.customers) == demo.CUSTOMERS_PER_SCALE + twins + sharing
    assert [c.id for c in library.customers] == list(range(1, len(library.customers) + 1))
    assert 8_000 <= len(objects) <= 15_000
    names = [o["name"] for o in objects]
    assert len(set(names)) == len(names)


def test_customers_look_real(library: demo.DemoLibrary) -> None:
    customers = library.customers
    assert all("\uac00" <= ch <= "\ud7a3" for c in customers for ch in c.name)
    phones = [c.phone for c in customers if c.phone]
    assert any("-" in p for p in phones) and any(p.isdigit() for p in phones)
    assert 0 < len(customers) - len(phones) < len(customers) * 0.1
    with_folder = sum(c.folder_name is not None for c in customers)
    assert 0.9 * len(customers) < with_folder < len(customers)


def test_every_variation_and_about_40_percent_exact(library: demo.DemoLibrary) -> None:
    variations = Counter(f.variation for f in library.folders)
    assert set(variations) == {*demo.VARIATION_SHARES, "romanization"}
    folder_names = {c.folder_name for c in library.customers if c.folder_name}
    exact = sum(f.name in folder_names for f in library.folders)
    assert 35 <= exact <= 45
    normalized = {normalize_folder(f.name) for f in library.folders}
    assert len(normalized) == len(library.folders)  # no two folders collide when normalized


def test_truth_is_consistent_with_the_variations(library: demo.DemoLibrary) -> None:
    by_id = {c.id: c for c in library.customers}
    names = {f.name for f in library.folders}
    for folder in library.folders:
        truth = by_id.get(folder.true_customer_id) if folder.true_customer_id else None
        if folder.variation == "no_customer":
            assert truth is None
            continue
        assert truth is not None
        if folder.variation == "exact":
            assert truth.folder_name == folder.name
        if folder.variation == "null_folder_name":
            assert truth.folder_name is None
        if folder.variation == "conflict":
            holders = [c for c in library.customers if c.folder_name == folder.name]
            assert holders and holders[0].id != truth.id
        if folder.variation == "ambiguous":
            twins = [
                c
                for c in library.customers
                if c.name == truth.name and phone_suffix(c.phone) == phone_suffix(truth.phone)
            ]
            assert len(twins) >= 2
        if folder.variation == "phone_changed":
            assert not folder.name.endswith(phone_suffix(truth.phone) or "")
        if folder.variation == "folder_name_slip":
            assert truth.folder_name and truth.folder_name != folder.name
            letters, digits = folder.name.rsplit("-", 1)
            assert digits == phone_suffix(truth.phone)
            assert OSA.distance(letters, truth.folder_name.rsplit("-", 1)[0]) == 1
        if folder.variation == "namesakes":
            # The newest of 4-5 customers with the name, the only one without a folder_name;
            # each of the others has its folder in the bucket.
            same = [c for c in library.customers if c.name == truth.name]
            assert 4 <= len(same) <= 5 and truth.id == max(c.id for c in same)
            assert truth.folder_name is None and not any(ch.isdigit() for ch in folder.name)
            assert all(c.folder_name in names for c in same if c is not truth)
    seconds = [f for f in library.folders if f.variation == "same_customer"]
    owners = Counter(f.true_customer_id for f in library.folders)
    assert all(owners[f.true_customer_id] >= 2 for f in seconds)


def test_keys_are_valid_storage_keys(objects: list[dict[str, object]]) -> None:
    bad = [o["name"] for o in objects if not is_valid_key(str(o["name"]))]
    assert bad == []
    assert not is_valid_key(f"{PREFIX}김종철/a.jpg")
    assert not is_valid_key(f"{PREFIX}a%20b/a.jpg")


def test_big_folders_placeholders_and_odd_files(
    library: demo.DemoLibrary, objects: list[dict[str, object]]
) -> None:
    names = [str(o["name"]) for o in objects]
    direct = Counter(
        n[len(PREFIX) :].split("/")[0] for n in names if n[len(PREFIX) :].count("/") == 1
    )
    big = [folder for folder, count in direct.items() if count > demo.PAGE_LIMIT]
    assert 2 <= len(big) <= 3
    assert {f.name for f in library.folders if f.big} == set(big)
    assert f"{PREFIX}.keep.png" in names
    assert any(n.endswith("/.keep.png") and n != f"{PREFIX}.keep.png" for n in names)
    placeholders = [n for n in names if n.endswith("/.emptyFolderPlaceholder")]
    assert placeholders
    empty = [f for f in library.folders if f.empty]
    assert len(empty) == 1
    assert [n for n in names if n.startswith(f"{PREFIX}{empty[0].name}/")] == [
        f"{PREFIX}{empty[0].name}/.emptyFolderPlaceholder"
    ]
    leaves = [n.rsplit("/", 1)[1] for n in names]
    assert any(leaf.endswith(".JPG") for leaf in leaves)
    assert any(" (" in leaf and ")" in leaf for leaf in leaves)
    assert {".DS_Store", "notes.txt"} <= set(leaves)
    dated = [n for n in names if n[len(PREFIX) :].count("/") == 2]
    assert dated and all(len(n.split("/")[3]) == len("2024-05-01") for n in dated)
    extensions = Counter(n.rsplit(".", 1)[-1].lower() for n in names if demo.is_media(n))
    assert set(extensions) == set(MEDIA_TYPES)
    mimetypes = Counter(str(o["mimetype"]) for o in objects if demo.is_media(str(o["name"])))
    assert mimetypes[""] > 0 and mimetypes["application/octet-stream"] > 0
    assert all(int(str(o["size"])) >= 0 for o in objects)


def test_existing_assets_cover_every_shape(
    library: demo.DemoLibrary, objects: list[dict[str, object]]
) -> None:
    rows = library.existing_assets
    names = {o["name"] for o in objects}
    paths = [r["file_path"] for r in rows]
    assert len(paths) == len(set(paths)) and set(paths) <= names
    assert all(demo.is_media(p) for p in paths)
    assert any(r["ai_tags"] == ["portrait"] for r in rows)
    assert any(t.startswith("customer-") for r in rows for t in r["ai_tags"])
    assert any(r["ai_tags"] == [] for r in rows)
    assert any(r["cdn_url"] is None for r in rows)
    assert any(r["alt_text"] and r["title"] for r in rows)


def test_manifest_and_truth_files(library: demo.DemoLibrary, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.jsonl"
    count = demo.write_manifest(manifest, library)
    lines = manifest.read_bytes().splitlines()
    assert count == len(lines)
    assert set(orjson.loads(lines[1])) == {"name", "size", "mimetype", "created_at", "updated_at"}
    assert len(Catalogue.from_manifest(manifest)) == count  # the Storage server reads it
    truth_path = tmp_path / "truth.json"
    demo.write_truth(truth_path, library)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    assert truth["truth"] == {f.name: f.true_customer_id for f in library.folders}
    assert truth["variations"][library.folders[0].name] == library.folders[0].variation


@pytest.mark.slow  # ~1.3 s: the demo library seeded twice
async def test_seed_database_is_complete_and_idempotent(
    db: asyncpg.Connection, library: demo.DemoLibrary, objects: list[dict[str, object]]
) -> None:
    for _ in range(2):
        counts = await demo.seed_database(db, library, bucket="blog-images")
    assert counts == demo.SeedCounts(
        len(library.customers), len(library.existing_assets), len(objects)
    )
    assert await db.fetchval("SELECT count(*) FROM public.customers") == len(library.customers)
    assert await db.fetchval("SELECT count(*) FROM public.image_assets") == counts.existing_assets
    stored = await db.fetchval(
        "SELECT count(*) FROM storage.objects WHERE bucket_id = 'blog-images'"
    )
    assert stored == len(objects)
    row = await db.fetchrow(
        "SELECT o.name, o.metadata, o.path_tokens FROM storage.objects o WHERE o.name = $1",
        library.existing_assets[0]["file_path"],
    )
    metadata = json.loads(row["metadata"])
    assert {
        "eTag",
        "size",
        "cacheControl",
        "lastModified",
        "contentLength",
        "httpStatusCode",
    } <= set(metadata)
    assert row["path_tokens"][:2] == ["originals", "customers"]
    kept = await db.fetchrow(
        "SELECT ai_tags, alt_text FROM public.image_assets WHERE file_path = $1",
        library.existing_assets[0]["file_path"],
    )
    assert list(kept["ai_tags"]) == library.existing_assets[0]["ai_tags"]
    assert await db.fetchval("SELECT public FROM storage.buckets WHERE id = 'blog-images'")


def test_spelling_model_is_its_own() -> None:
    """The generator does not take its spellings from the matcher (whose figures it grades)."""
    tree = ast.parse(Path(demo.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("romanize" in (m or "") for m in modules)
    assert {name for module, name in imported if module == "loader.match"} <= {
        "Customer", "FolderMatch", "normalize_folder", "phone_suffix",
    }  # fmt: skip
    assert demo._official("김종철") == "gimjongcheol"
    assert demo._official("남궁민수") == "namgungminsu"


@pytest.mark.parametrize(
    ("syllable", "habit"),
    [
        ("gyu", "kyu"),  # k/g
        ("bin", "pin"),  # p/b
        ("dong", "tong"),  # t/d
        ("jong", "jonk"),  # the g of a final ng
        ("jun", "joon"),  # oo for u
        ("jin", "jeen"),  # ee for i
        ("min", "minn"),  # a doubled letter
    ],
)
def test_letter_habits(syllable: str, habit: str) -> None:
    rng = random.Random(1)
    drawn = {demo._letter_habit(rng, syllable) for _ in range(200)}
    assert habit in drawn and syllable not in drawn
