"""Storage client unit tests (aioresponses, no server): URL resolution, error mapping from
the JSON body, what is retried and what is not, and the JWT role check."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aioresponses import aioresponses

from loader.errors import (
    BucketNotFoundError,
    ExitCode,
    StorageAuthError,
    StorageUnreachableError,
)
from loader.retry import RetryPolicy
from loader.storage_client import (
    ResolvedBase,
    StorageClient,
    StorageRequestError,
    TransientStorageError,
    jwt_role,
    key_kind,
    public_url_base,
    resolve_base_url,
    url_forms,
)
from loader.storage_objects import MalformedPageError
from tests.storage_fixtures import fake_jwt

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002)
BUCKET = {"id": "media", "name": "media", "public": True}


async def test_project_url_gets_storage_v1_appended() -> None:
    with aioresponses() as mocked:
        mocked.get("https://x.supabase.co/storage/v1/bucket/media", payload=BUCKET)
        assert await resolve_base_url("https://x.supabase.co", "k", "media", retry=FAST) == (
            ResolvedBase("https://x.supabase.co/storage/v1", BUCKET)
        )


async def test_bare_storage_root_is_found_after_a_gateway_404() -> None:
    with aioresponses() as mocked:
        mocked.get("http://127.0.0.1:5000/storage/v1/bucket/media", status=404,
                   payload={"message": "no Route matched with those values"})  # fmt: skip
        mocked.get("http://127.0.0.1:5000/bucket/media", payload=BUCKET)
        assert await resolve_base_url("http://127.0.0.1:5000", "k", "media", retry=FAST) == (
            ResolvedBase("http://127.0.0.1:5000", BUCKET)
        )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"statusCode": "403", "error": "Unauthorized", "code": "AccessDenied",
          "message": "signature verification failed"}, StorageAuthError),
        ({"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"},
         BucketNotFoundError),
    ],
)  # fmt: skip
async def test_errors_are_read_from_the_json_body_of_an_http_400(
    body: dict[str, str], error: type[Exception]
) -> None:
    with aioresponses() as mocked:
        mocked.get("http://s/bucket/media", status=400, payload=body)
        async with StorageClient("http://s", "k", retry=FAST) as client:
            with pytest.raises(error):
                await client.get_bucket("media")
        assert len(mocked.requests) == 1  # a 4xx in the body is never retried


# How a Storage server that verifies every key as a JWT refuses a key that is not one: the
# server since 2025 (jose), before that (jsonwebtoken), and its signed-URL routes.
NOT_A_JWT = [
    {"statusCode": "403", "error": "Unauthorized", "code": "AccessDenied",
     "message": "Invalid Compact JWS"},
    {"statusCode": "403", "error": "Unauthorized", "code": "AccessDenied",
     "message": "jwt malformed"},
    {"statusCode": "400", "error": "InvalidJWT", "code": "InvalidJWT", "message": "invalid JWT"},
]  # fmt: skip


@pytest.mark.parametrize("body", NOT_A_JWT)
@pytest.mark.parametrize("key", ["sb_secret_abc", "sb_publishable_abc"])
async def test_an_sb_key_refused_as_no_jwt_is_told_which_key_the_server_takes(
    body: dict[str, str], key: str
) -> None:
    with aioresponses() as mocked:
        mocked.get("http://s/bucket/media", status=400, payload=body)
        async with StorageClient("http://s", key, retry=FAST) as client:
            with pytest.raises(StorageAuthError) as info:
                await client.get_bucket("media")
    message = str(info.value)
    assert f"({body['code']}: {body['message']}): this server accepts only JWTs" in message
    assert "the eyJ... service_role key from the project's API settings" in message
    assert "SERVICE_ROLE_KEY in a self-hosted setup" in message and key not in message
    assert info.value.exit_code == ExitCode.STORAGE_AUTH


@pytest.mark.parametrize(
    ("key", "status", "body"),
    [
        ("opaque-key", 400, NOT_A_JWT[0]),  # not an sb_ key: nothing known about it
        ("sb_secret_abc", 401, {"message": "Invalid API key"}),  # a refusal not about JWTs
    ],
)
async def test_other_refusals_keep_the_plain_message(
    key: str, status: int, body: dict[str, str]
) -> None:
    with aioresponses() as mocked:
        mocked.get("http://s/bucket/media", status=status, payload=body)
        async with StorageClient("http://s", key, retry=FAST) as client:
            with pytest.raises(StorageAuthError) as info:
                await client.get_bucket("media")
    assert "accepts only JWTs" not in str(info.value)
    assert str(info.value).endswith(
        "; pass the project's service-role key with --key or SUPABASE_SERVICE_ROLE_KEY"
    )


async def test_transient_failures_are_retried_then_reported() -> None:
    url = re.compile(r"http://s/object/list/media")
    with aioresponses() as mocked:
        mocked.post(url, status=429, headers={"Retry-After": "0"})
        mocked.post(url, status=200, body=b'[{"name": "a.jpg", "id": "1", "meta')  # truncated
        mocked.post(url, payload=[{"name": "a.jpg", "id": "1", "metadata": {"size": 1}}])
        async with StorageClient("http://s", "k", retry=FAST) as client:
            page = await client.list_v1("media", "p/", limit=10, offset=0)
            assert page[0]["name"] == "a.jpg"
            assert client.stats.retries == 2
        mocked.post(url, status=503)
        mocked.post(url, status=500)
        mocked.post(url, status=544, payload={"statusCode": "544", "code": "DatabaseTimeout"})
        async with StorageClient("http://s", "k", retry=FAST) as client:
            with pytest.raises(StorageUnreachableError, match="failed after 3 attempts"):
                await client.list_v1("media", "p/", limit=10, offset=0)


async def test_v2_pages_off_the_typed_model_are_read_retried_or_reported() -> None:
    """The typed decoder's fallbacks: a page it cannot type is read field by field; a cut-off
    body and an entry without a name are retried, then the server is reported unreachable
    (exit 6), never a crash."""
    url = re.compile(r"http://s/object/list-v2/media")
    odd = {"objects": [{"name": "p/a.jpg", "metadata": {"size": 1.5, "mimetype": ""}}]}
    with aioresponses() as mocked:
        mocked.post(url, status=200, body=b'{"objects": [{"name": "p/a.j')  # cut off
        mocked.post(url, payload=odd)
        async with StorageClient("http://s", "k", retry=FAST) as client:
            page = await client.list_v2("media", "p/", cursor=None, limit=10, delimiter=False)
            assert client.stats.retries == 1
        assert [(o.path, o.size, o.mimetype) for o in page.objects] == [("p/a.jpg", None, None)]
        assert not page.hasNext
        for _ in range(3):
            mocked.post(url, payload={"objects": [{"id": "1", "metadata": None}]})
        async with StorageClient("http://s", "k", retry=FAST) as client:
            with pytest.raises(StorageUnreachableError, match="without a name"):
                await client.list_v2("media", "p/", cursor=None, limit=10, delimiter=False)
        assert StorageUnreachableError.exit_code == ExitCode.STORAGE_UNREACHABLE


async def test_v1_entries_that_are_not_named_objects_are_retried_then_reported() -> None:
    """Each v1 entry is an object with a name as text, or the page is not one Storage sends:
    retried as a v2 page off its shape is, then reported saying what was wrong."""
    url = re.compile(r"http://s/object/list/media")
    cases = [
        ([{"id": "1", "metadata": None}],
         "v1 list answered an entry without a name: {'id': '1', 'metadata': None}"),
        ([{"name": 7, "id": "1"}], "v1 list answered an entry whose name is not text: 7"),
        (["a.jpg"], "v1 list answered an entry that is not an object: 'a.jpg'"),
        ({"name": "a.jpg"}, "v1 list answered with something other than a list"),
    ]  # fmt: skip
    with aioresponses() as mocked:
        for answer, message in cases:
            for _ in range(FAST.attempts):
                mocked.post(url, payload=answer)
            async with StorageClient("http://s", "k", retry=FAST) as client:
                with pytest.raises(StorageUnreachableError) as info:
                    await client.list_v1("media", "p/", limit=10, offset=0)
            assert str(info.value) == f"POST /object/list/media failed after 3 attempts: {message}"
            assert isinstance(info.value.__cause__.__cause__, MalformedPageError)


async def test_translated_errors_keep_their_cause() -> None:
    """The one line the user reads is the loader's; the library's error stays attached as the
    cause (`raise ... from`), for a traceback under LOADER_DEBUG=1."""
    url = re.compile(r"http://s/object/list/media")
    disconnected = aiohttp.ServerDisconnectedError()
    with aioresponses() as mocked:
        for _ in range(FAST.attempts):
            mocked.post(url, exception=disconnected)
        missing_bucket = {"statusCode": "404", "error": "not_found", "message": "nope"}
        mocked.get("http://s/bucket/nope", status=400, payload=missing_bucket)
        async with StorageClient("http://s", "k", retry=FAST) as client:
            with pytest.raises(StorageUnreachableError) as unreachable:
                await client.list_v1("media", "p/", limit=10, offset=0)
            with pytest.raises(BucketNotFoundError) as missing:
                await client.get_bucket("nope")
    last = unreachable.value.__cause__
    assert isinstance(last, TransientStorageError)
    assert last.__cause__ is disconnected
    assert str(unreachable.value).endswith(f"failed after 3 attempts: {last}")
    assert isinstance(missing.value.__cause__, StorageRequestError)
    assert str(missing.value) == "bucket 'nope' does not exist at http://s"


async def test_other_4xx_is_a_request_error() -> None:
    with aioresponses() as mocked:
        body = {"statusCode": "400", "error": "Error", "message": "bad prefix"}
        mocked.post("http://s/object/list/media", status=400, payload=body)
        async with StorageClient("http://s", "k", retry=FAST) as client:
            with pytest.raises(StorageRequestError, match="bad prefix"):
                await client.list_v1("media", "", limit=10, offset=0)


def test_jwt_role() -> None:
    assert jwt_role(fake_jwt("service_role")) == "service_role"
    assert jwt_role(fake_jwt("anon")) == "anon"
    assert jwt_role("sb_secret_abcdef") is None
    assert jwt_role("a.b.c") is None


def test_key_kinds() -> None:
    kinds = {
        fake_jwt("service_role"): True,
        "sb_secret_abc": True,
        fake_jwt("anon"): False,
        fake_jwt("authenticated"): False,
        "sb_publishable_abc": False,
        "opaque-key": None,
        "a.b.c": None,
    }
    for key, service in kinds.items():
        kind = key_kind(key)
        assert kind.service is service, key
        assert key not in str(kind)


def test_url_forms_hold_the_storage_v1_rule() -> None:
    assert url_forms("https://x.supabase.co/") == [
        "https://x.supabase.co/storage/v1",
        "https://x.supabase.co",
    ]
    assert url_forms("http://h:5000/storage/v1/") == ["http://h:5000/storage/v1", "http://h:5000"]
    assert public_url_base("http://u:pw@h/storage/v1", "blog images") == (
        "http://h/storage/v1/object/public/blog%20images"
    )


# What answers a probe of the wrong URL form (recordings 76, 77 and the gateway's own 404).
ROUTE_NOT_FOUND = [
    {"message": "Route GET:/storage/v1/bucket/media not found", "error": "Not Found",
     "statusCode": 404},
    {"message": "no Route matched with those values"},
    {"statusCode": "404", "error": "Not Found", "code": "InvalidRequest",
     "message": "Route GET:/storage/v1/bucket/media not found"},
]  # fmt: skip


@pytest.mark.parametrize("body", ROUTE_NOT_FOUND)
async def test_a_route_not_found_404_means_try_the_other_form(body: dict[str, object]) -> None:
    with aioresponses() as mocked:
        mocked.get("http://h/storage/v1/bucket/media", status=404, payload=body)
        mocked.get("http://h/bucket/media", payload=BUCKET)
        resolved = await resolve_base_url("http://h/storage/v1", "k", "media", retry=FAST)
    assert resolved == ResolvedBase("http://h", BUCKET)


async def test_a_storage_not_found_settles_the_form() -> None:
    body = {"statusCode": "404", "error": "Bucket not found", "code": "NoSuchBucket",
            "message": "Bucket not found"}  # fmt: skip
    with aioresponses() as mocked:
        mocked.get("http://h/storage/v1/bucket/media", status=400, payload=body)
        with pytest.raises(BucketNotFoundError, match="at http://h/storage/v1"):
            await resolve_base_url("http://h", "k", "media", retry=FAST)
        assert len(mocked.requests) == 1


async def test_without_a_key_a_refusal_still_proves_the_form() -> None:
    body = {"statusCode": "400", "error": "Error", "code": "InvalidRequest",
            "message": "headers must have required property 'authorization'"}  # fmt: skip
    with aioresponses() as mocked:
        mocked.get("http://h/storage/v1/bucket/media", status=404, body=b"Not Found")
        mocked.get("http://h/bucket/media", status=400, payload=body)
        assert await resolve_base_url("http://h", None, "media", retry=FAST) == (
            ResolvedBase("http://h", None)
        )


async def test_when_no_form_answers_every_url_tried_is_named() -> None:
    with aioresponses() as mocked:
        mocked.get("http://h/storage/v1/bucket/media", status=404, body=b"Not Found")
        mocked.get("http://h/bucket/media", status=404, payload=ROUTE_NOT_FOUND[1])
        with pytest.raises(StorageUnreachableError) as info:
            await resolve_base_url("http://h", "k", "media", retry=FAST)
    assert str(info.value) == (
        "no Storage API answers at http://h; tried: http://h/storage/v1/bucket/media"
        " (HTTP 404 not found); http://h/bucket/media (HTTP 404 no Route matched with those"
        " values)"
    )
