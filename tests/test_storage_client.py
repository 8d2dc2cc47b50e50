"""Storage client unit tests (aioresponses, no server): URL resolution, error mapping from
the JSON body, what is retried and what is not, and the JWT role check."""

from __future__ import annotations

import re

import pytest
from aioresponses import aioresponses

from loader.errors import BucketNotFoundError, StorageAuthError, StorageUnreachableError
from loader.retry import RetryPolicy
from loader.storage_client import (
    StorageClient,
    StorageRequestError,
    jwt_role,
    resolve_base_url,
)
from tests.test_listing import fake_jwt

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002)
BUCKET = {"id": "media", "name": "media", "public": True}


async def test_project_url_gets_storage_v1_appended() -> None:
    with aioresponses() as mocked:
        mocked.get("https://x.supabase.co/storage/v1/bucket/media", payload=BUCKET)
        assert await resolve_base_url("https://x.supabase.co", "k", "media", retry=FAST) == (
            "https://x.supabase.co/storage/v1"
        )


async def test_bare_storage_root_is_found_after_a_gateway_404() -> None:
    with aioresponses() as mocked:
        mocked.get("http://127.0.0.1:5000/storage/v1/bucket/media", status=404,
                   payload={"message": "no Route matched with those values"})  # fmt: skip
        mocked.get("http://127.0.0.1:5000/bucket/media", payload=BUCKET)
        assert await resolve_base_url("http://127.0.0.1:5000", "k", "media", retry=FAST) == (
            "http://127.0.0.1:5000"
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
