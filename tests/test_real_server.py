"""Working against the real Storage server's behaviour (recordings 71-80): every URL form,
the bucket check in each, URLs named when nothing answers, public URL bases that work, private
buckets, key kinds, and a resume that keeps its run's URL base."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from loader.db import connection
from loader.devtools.storage_server import serve_app
from loader.errors import (
    BucketNotFoundError,
    EmptyListingError,
    ExitCode,
    NotServiceRoleError,
    PrivateBucketError,
    StorageAuthError,
    StorageUnreachableError,
)
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from loader.scan import scan
from loader.verify import verify
from tests.cli_helpers import child_env, invoke, loader_argv, run_loader
from tests.sample import load_storage_objects, media_names, sample_catalogue
from tests.storage_fixtures import (
    STORAGE_BUCKET,
    STORAGE_KEY,
    ServeStorageApp,
    StartStorage,
    catalogue_of,
    fake_jwt,
)

PREFIX = "originals/customers/"
SMALL = [
    f"{PREFIX}{folder}/{name}"
    for folder in ("kim-6601", "lee-8768", "park-1234")
    for name in ("IMG_0001.jpg", "2024-05-01/clip.mov", "a b?(1).png", "notes.txt")
]
SMALL_MEDIA = sorted(n for n in SMALL if not n.endswith(".txt"))

# (server layout, how the URL is given): a project URL through the gateway, the gateway URL
# with /storage/v1, a bare Storage root, and a bare root wrongly given with /storage/v1.
FORMS = {
    "project URL": ("gateway", ""),
    "gateway /storage/v1": ("gateway", "/storage/v1"),
    "bare root": ("bare", ""),
    "bare root given /storage/v1": ("bare", "/storage/v1"),
}


def source(url: str, **kw: Any) -> SourceOptions:
    kw.setdefault("key", STORAGE_KEY)
    kw.setdefault("bucket", STORAGE_BUCKET)
    return SourceOptions(storage_url=url, list_concurrency=4, **kw)


def migrate_options(src: SourceOptions, db_url: str, **kw: Any) -> MigrateOptions:
    return MigrateOptions(source=src, database_url=db_url, match="none", **kw)


async def cdn_urls(db_url: str) -> dict[str, str | None]:
    async with connection(db_url) as conn:
        rows = await conn.fetch("SELECT file_path, cdn_url FROM image_assets")
    return {r["file_path"]: r["cdn_url"] for r in rows}


@pytest.mark.parametrize("form", FORMS)
async def test_scan_migrate_verify_in_every_url_form(
    form: str, start_storage: StartStorage, db_url: str
) -> None:
    layout, suffix = FORMS[form]
    base = await start_storage(catalogue_of(SMALL), layout=layout)
    url = base + suffix
    report = await scan(source(url))
    assert (sorted(report.folders), report.totals()["image"]) == (
        ["kim-6601", "lee-8768", "park-1234"],
        6,
    )
    result = await migrate(migrate_options(source(url), db_url))
    assert (result.status, result.totals["inserted"]) == ("succeeded", len(SMALL_MEDIA))
    api_root = base + ("/storage/v1" if layout == "gateway" else "")
    urls = await cdn_urls(db_url)
    assert sorted(urls) == SMALL_MEDIA
    assert all(u.startswith(f"{api_root}/object/public/{STORAGE_BUCKET}/") for u in urls.values())
    checked = await verify(source(url), db_url, check_urls_n=100)
    assert checked.ok, checked.as_report()
    assert (checked.media_files, checked.urls_checked) == (len(SMALL_MEDIA), len(SMALL_MEDIA))
    # The bucket is checked whatever the form: an unknown one is exit 8, never "no folders".
    for call in (
        lambda: scan(source(url, bucket="nope")),
        lambda: migrate(migrate_options(source(url, bucket="nope"), db_url)),
        lambda: verify(source(url, bucket="nope"), db_url),
    ):
        with pytest.raises(BucketNotFoundError, match="'nope' does not exist") as info:
            await call()
        assert info.value.exit_code == ExitCode.BUCKET_NOT_FOUND


async def test_unknown_bucket_exits_8_from_the_command_line(start_storage: StartStorage) -> None:
    base = await start_storage(catalogue_of(SMALL), layout="gateway")
    done = await run_loader("scan", "--storage-url", base, "--key", STORAGE_KEY, "--bucket", "x")
    assert done.code == ExitCode.BUCKET_NOT_FOUND, done.err
    assert "bucket 'x' does not exist" in done.err and STORAGE_KEY not in done.err


async def test_where_nothing_answers_the_urls_tried_are_named(
    serve_storage_app: ServeStorageApp,
) -> None:
    # A web server that is not Storage: a plain-text 404 for every path.
    base = await serve_storage_app(web.Application())
    with pytest.raises(StorageUnreachableError) as info:
        await scan(source(base))
    message = str(info.value)
    assert f"{base}/storage/v1/bucket/{STORAGE_BUCKET} (HTTP 404" in message
    assert f"{base}/bucket/{STORAGE_BUCKET} (HTTP 404" in message
    assert info.value.exit_code == ExitCode.STORAGE_UNREACHABLE


async def closed_port_url() -> str:
    """A loopback URL where nothing listens (a server started, then stopped)."""
    async with serve_app(web.Application()) as url:
        pass
    return url


async def test_closed_port_exits_6_naming_the_url_tried() -> None:
    url = await closed_port_url()
    done = await run_loader("scan", "--storage-url", f"{url}/storage/v1", "--key",
                            STORAGE_KEY, "--bucket", STORAGE_BUCKET, "--retries", "1")  # fmt: skip
    assert done.code == ExitCode.STORAGE_UNREACHABLE, done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0]
    assert f"tried: {url}/storage/v1/bucket/{STORAGE_BUCKET} (" in lines[0]
    assert f"{url}/bucket/{STORAGE_BUCKET} (not tried: host unreachable)" in lines[0]


async def test_db_and_rest_write_the_same_cdn_urls_and_every_one_answers(
    start_storage: StartStorage, make_database: Any, db_url: str
) -> None:
    # A bare Storage root: --source db used to guess /storage/v1 and write URLs that 404.
    base = await start_storage(sample_catalogue())
    rest_db = await make_database()
    assert (await migrate(migrate_options(source(base), rest_db))).status == "succeeded"
    async with connection(db_url) as conn:
        await load_storage_objects(conn, sample_catalogue(), STORAGE_BUCKET)
    from_db = source(base, source="db", storage_database_url=db_url)
    assert (await migrate(migrate_options(from_db, db_url))).status == "succeeded"
    urls = await cdn_urls(db_url)
    assert urls == await cdn_urls(rest_db)
    assert sorted(urls) == sorted(media_names())
    checked = await verify(source(base), db_url, check_urls_n=len(urls))
    assert checked.ok, checked.as_report()
    assert checked.urls_checked == len(urls) == len(media_names())
    # The command line says the same.
    done = await run_loader("verify", "--storage-url", base, "--key", STORAGE_KEY, "--bucket",
                            STORAGE_BUCKET, "--database-url", db_url, "--check-urls",
                            str(len(urls)))  # fmt: skip
    assert done.code == 0, done.err
    assert f"0  of {len(urls):,} cdn_urls checked do not answer 200" in done.out


async def written(db_url: str) -> tuple[int, int]:
    async with connection(db_url) as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM image_assets"),
            await conn.fetchval("SELECT count(*) FROM loader.runs"),
        )


async def test_private_bucket_refused_unless_a_cdn_base_or_keep(
    start_storage: StartStorage, db_url: str
) -> None:
    base = await start_storage(catalogue_of(SMALL), public=False)
    with pytest.raises(PrivateBucketError, match="private") as info:
        await migrate(migrate_options(source(base), db_url))
    assert info.value.exit_code == ExitCode.PRIVATE_BUCKET == 13
    assert await written(db_url) == (0, 0)
    done = await run_loader("migrate", "--storage-url", base, "--key", STORAGE_KEY, "--bucket",
                            STORAGE_BUCKET, "--database-url", db_url)  # fmt: skip
    assert done.code == 13 and "--cdn-base" in done.err and "--cdn-url keep" in done.err
    assert await written(db_url) == (0, 0)

    cdn = "https://cdn.example.com/media"
    result = await migrate(migrate_options(source(base), db_url, cdn_base=cdn))
    assert result.status == "succeeded"
    urls = await cdn_urls(db_url)
    assert sorted(urls) == SMALL_MEDIA and all(u.startswith(cdn + "/") for u in urls.values())


async def test_private_bucket_with_cdn_url_keep_leaves_cdn_url_alone(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    kept = SMALL_MEDIA[0]
    await db.execute(
        "INSERT INTO image_assets (file_path, filename, cdn_url) VALUES ($1, 'x', 'https://a/x')",
        kept,
    )
    base = await start_storage(catalogue_of(SMALL), public=False)
    result = await migrate(migrate_options(source(base), db_url, cdn_url="keep"))
    assert result.status == "succeeded"
    urls = await cdn_urls(db_url)
    assert urls.pop(kept) == "https://a/x"
    assert sorted(urls) == SMALL_MEDIA[1:] and set(urls.values()) == {None}


async def test_verify_flags_public_urls_of_a_private_bucket(
    start_storage: StartStorage, db_url: str
) -> None:
    # Written while the bucket was public (or by another tool); the bucket is private now.
    public = await start_storage(catalogue_of(SMALL))
    await migrate(migrate_options(source(public), db_url))
    private = await start_storage(catalogue_of(SMALL), public=False)
    result = await verify(source(private), db_url, check_urls_n=3)
    assert not result.ok
    assert result.counts["private_bucket_urls"] == len(SMALL_MEDIA)
    assert result.examples["private_bucket_urls"] == SMALL_MEDIA
    assert result.as_report()["findings"]["private_bucket_urls"]["count"] == len(SMALL_MEDIA)
    # Through the private server's own public route they answer 400 "Bucket not found".
    own_route = f"{private}/object/public/{STORAGE_BUCKET}"
    await migrate(migrate_options(source(private), db_url, cdn_url="overwrite", cdn_base=own_route))
    result = await verify(source(private), db_url, check_urls_n=3)
    assert (result.urls_checked, [f.answer for f in result.url_failures]) == (3, ["HTTP 400"] * 3)
    done = await run_loader("verify", "--storage-url", private, "--key", STORAGE_KEY,
                            "--bucket", STORAGE_BUCKET, "--database-url", db_url)  # fmt: skip
    assert done.code == ExitCode.INCOMPLETE
    assert "public URLs of a private bucket" in done.out


@pytest.mark.parametrize(
    "key", ["sb_publishable_Zm9vYmFyYmF6", fake_jwt("anon")], ids=["publishable", "anon JWT"]
)
async def test_keys_that_see_nothing_exit_10(
    key: str, start_storage: StartStorage, db_url: str
) -> None:
    base = await start_storage(catalogue_of(SMALL), anon_key=key, layout="gateway")
    with pytest.raises(NotServiceRoleError, match="service-role key") as info:
        await scan(source(base, key=key))
    assert info.value.exit_code == ExitCode.NOT_SERVICE_ROLE
    # The key to pass: an sb_secret_ key is offered first only where sb_ keys are known to work.
    offered = (
        "pass the service-role key: the project's sb_secret_ key, or the JWT with role"
        if key.startswith("sb_")
        else "pass the service-role key: the JWT with role service_role (the eyJ..."
    )
    assert offered in str(info.value)
    assert key not in str(info.value)
    done = await run_loader("scan", "--storage-url", base, "--key", key, "--bucket",
                            STORAGE_BUCKET)  # fmt: skip
    assert done.code == ExitCode.NOT_SERVICE_ROLE, done.err
    assert "row-level security" in done.err and key not in done.err


async def test_a_secret_key_is_known_to_be_the_service_role(start_storage: StartStorage) -> None:
    secret = "sb_secret_c2VjcmV0c2VjcmV0"
    base = await start_storage(catalogue_of(SMALL), key=secret)
    assert sorted((await scan(source(base, key=secret))).folders) == [
        "kim-6601",
        "lee-8768",
        "park-1234",
    ]
    with pytest.raises(BucketNotFoundError):
        await scan(source(base, key=secret, bucket="nope"))


async def test_resume_with_another_storage_url_writes_the_runs_url_base(
    start_storage: StartStorage, db_url: str
) -> None:
    first = await start_storage(catalogue_of(SMALL), layout="gateway")
    other = await start_storage(catalogue_of(SMALL))
    prepared = await migrate(migrate_options(source(first), db_url, prepare_only=True))
    assert prepared.status == "prepared"
    run_base = f"{first}/storage/v1/object/public/{STORAGE_BUCKET}"
    assert prepared.settings["public_url_base"] == run_base
    resumed = await migrate(migrate_options(source(other), db_url, resume=prepared.run_id))
    assert resumed.status == "succeeded"
    urls = await cdn_urls(db_url)
    assert sorted(urls) == SMALL_MEDIA
    assert all(u.startswith(run_base + "/") for u in urls.values())


async def test_empty_listing_is_exit_10_only_for_a_key_known_not_to_be_the_service_role(
    start_storage: StartStorage,
) -> None:
    # A JWT with role 'authenticated' that may read the bucket: it lists, but sees nothing
    # under the prefix, and its role claim is the evidence.
    user = fake_jwt("authenticated")
    base = await start_storage(catalogue_of(SMALL), key=user)
    with pytest.raises(NotServiceRoleError) as info:
        await scan(source(base, key=user, prefix="elsewhere"))
    assert str(info.value) == (
        "no folders under 'elsewhere/' with a JWT with role 'authenticated': row-level"
        " security hides buckets and objects from keys that are not the service role; pass the"
        " service-role key: the JWT with role service_role (the eyJ... service_role key from"
        " the project's API settings, SERVICE_ROLE_KEY in a self-hosted setup), or, through"
        " Supabase's hosted API gateway only, an sb_secret_ key"
    )
    base = await start_storage(catalogue_of(SMALL))
    with pytest.raises(EmptyListingError, match="no folders under 'elsewhere/'") as empty:
        await scan(source(base, prefix="elsewhere"))
    assert "Hint" not in str(empty.value)


async def test_a_key_of_unknown_kind_that_lists_gets_exit_8_or_9_with_a_hint(
    start_storage: StartStorage,
) -> None:
    """Like the demo's own key: neither a JWT nor an sb_ key, and the server's service key.
    Nothing says it is not the service role, so a missing bucket is 8 and an empty prefix 9;
    the message only hints that a key that is not the service role would see nothing too."""
    opaque = "an-opaque-service-key"
    base = await start_storage(catalogue_of(SMALL), key=opaque)
    assert len((await scan(source(base, key=opaque))).folders) == 3
    hint = (
        "Hint: a key that is neither a JWT nor an sb_ API key says nothing of its role; a key"
        " that is not the service role would get the same answer (row-level security would"
        " hide {} from it)"
    )
    with pytest.raises(BucketNotFoundError) as missing:
        await scan(source(base, key=opaque, bucket="nope"))
    assert str(missing.value) == (
        f"bucket 'nope' does not exist at {base}. {hint.format('an existing bucket')}"
    )
    with pytest.raises(EmptyListingError) as empty:
        await scan(source(base, key=opaque, prefix="elsewhere"))
    assert str(empty.value) == (
        "no folders under 'elsewhere/': check --bucket and --prefix."
        f" {hint.format('existing objects')}"
    )
    common = ["scan", "--storage-url", base, "--key", opaque]
    for args, code, text in [
        (["--bucket", "nope"], ExitCode.BUCKET_NOT_FOUND, "bucket 'nope' does not exist"),
        (["--bucket", STORAGE_BUCKET, "--prefix", "elsewhere"], ExitCode.EMPTY_LISTING,
         "no folders under 'elsewhere/'"),
    ]:  # fmt: skip
        done = await invoke(*common, *args)
        assert (done.code, text in done.err, "Hint:" in done.err) == (code, True, True), done.err
        assert opaque not in done.err


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("sb_secret_c2VjcmV0c2VjcmV0", "an sb_secret_ key"),
        ("sb_publishable_Zm9vYmFyYmF6", "a publishable (sb_publishable_) key"),
    ],
    ids=["secret", "publishable"],
)
async def test_an_sb_key_refused_by_a_jwt_only_server_is_told_to_pass_the_jwt_key(
    key: str, label: str, start_storage: StartStorage
) -> None:
    """A self-hosted server with no API gateway verifies every key as a JWT: an sb_ key gets
    the real server's "Invalid Compact JWS" refusal (exit 7), and the message names the key
    that server takes."""
    base = await start_storage(catalogue_of(SMALL), jwt_only=True)
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {key}"}
        async with session.get(f"{base}/bucket/{STORAGE_BUCKET}", headers=headers) as answer:
            assert (answer.status, await answer.json()) == (400, {
                "statusCode": "403", "error": "Unauthorized", "message": "Invalid Compact JWS",
                "code": "AccessDenied"})  # fmt: skip
    with pytest.raises(StorageAuthError) as info:
        await scan(source(base, key=key))
    assert str(info.value) == (
        "Storage rejected the key (AccessDenied: Invalid Compact JWS): this server accepts only"
        f" JWTs, and {label} is not one (only Supabase's hosted API gateway translates sb_ API"
        " keys into JWTs); pass the JWT service-role key instead, the eyJ... service_role key"
        " from the project's API settings (SERVICE_ROLE_KEY in a self-hosted setup), with"
        " --key or SUPABASE_SERVICE_ROLE_KEY"
    )
    assert info.value.exit_code == ExitCode.STORAGE_AUTH
    done = await invoke("scan", "--storage-url", base, "--key", key, "--bucket", STORAGE_BUCKET)
    assert done.code == ExitCode.STORAGE_AUTH, done.err
    assert "accepts only JWTs" in done.err and key not in done.err
    # The JWT service-role key works there.
    assert len((await scan(source(base))).folders) == 3


def test_storage_serve_offers_the_gateway_layout_and_private_buckets(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    flags = ["--bucket", "media", "--key", "k", "--port", "0", "--layout", "gateway", "--private"]
    command = loader_argv("storage", "serve", "--root", str(tmp_path), *flags)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env()) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[4]
            for path, status, body in [
                ("/storage/v1/object/public/media/a.jpg", 400, {"error": "Bucket not found"}),
                ("/object/public/media/a.jpg", 404,
                 {"message": "no Route matched with those values"}),
            ]:  # fmt: skip
                with pytest.raises(urllib.error.HTTPError) as info:
                    urllib.request.urlopen(url + path, timeout=5)
                answer = json.loads(info.value.read())
                assert info.value.code == status and body.items() <= answer.items()
        finally:
            server.terminate()
            server.wait(timeout=10)
