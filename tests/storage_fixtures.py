"""Pytest plugin: run the Storage-compatible server (`loader.storage_server`) in tests.

    async def test_x(start_storage):
        url = await start_storage(catalogue_of(["originals/customers/kim/a.jpg"]))

Servers listen on a free loopback port and stop at teardown. `serve_storage_app` serves an
app built with `build_app`, for tests that read its counters (`app[STATS]`).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web

from loader.devtools.storage_server import Catalogue, StoredObject, build_app, serve_app


def fake_jwt(role: str) -> str:
    """A JWT-shaped key with this role claim (our server compares keys, never signatures)."""

    def part(payload: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'role': role})}.signature"


STORAGE_BUCKET = "media"
# Shaped like Supabase's keys: the loader reads the role claim to explain empty listings.
STORAGE_KEY = fake_jwt("service_role")
STORAGE_ANON_KEY = fake_jwt("anon")
STORAGE_TIMESTAMP = "2024-05-01T09:30:00.000Z"

StartStorage = Callable[..., Awaitable[str]]
ServeStorageApp = Callable[[web.Application], Awaitable[str]]


def catalogue_of(names: Iterable[str], *, size: int = 1024) -> Catalogue:
    """A catalogue of objects with the given names, `size` bytes each, mimetype by extension."""
    return Catalogue.from_objects(
        StoredObject(
            name,
            size,
            mimetypes.guess_type(name)[0] or "application/octet-stream",
            STORAGE_TIMESTAMP,
            STORAGE_TIMESTAMP,
        )
        for name in names
    )


@pytest.fixture
async def serve_storage_app() -> AsyncIterator[ServeStorageApp]:
    """Factory: `await serve_storage_app(app)` serves `app` and returns its base URL."""
    async with AsyncExitStack() as servers:

        async def serve(app: web.Application) -> str:
            return await servers.enter_async_context(serve_app(app))

        yield serve


@pytest.fixture
async def start_storage(serve_storage_app: ServeStorageApp) -> StartStorage:
    """Factory: `await start_storage(catalogue, **build_app_kw)` serves `catalogue` and returns
    the base URL. Bucket, key and anon key default to STORAGE_BUCKET, STORAGE_KEY and
    STORAGE_ANON_KEY."""

    async def start(catalogue: Catalogue, **kw: Any) -> str:
        kw.setdefault("bucket", STORAGE_BUCKET)
        kw.setdefault("key", STORAGE_KEY)
        kw.setdefault("anon_key", STORAGE_ANON_KEY)
        return await serve_storage_app(build_app(catalogue, **kw))

    return start


# A folder of tests.sample whose listing fails for as long as an outage lasts.
BROKEN_FOLDER = "kimminsu03-6603"


@dataclass(slots=True)
class Outage:
    """A Storage server on which listing one folder fails with HTTP 500 while `on`."""

    url: str
    app: web.Application
    on: bool = True


@pytest.fixture
async def outage(serve_storage_app: ServeStorageApp) -> Outage:
    from tests.sample import sample_catalogue  # sample builds on this module

    app = build_app(sample_catalogue(), bucket=STORAGE_BUCKET, key=STORAGE_KEY)
    state = Outage(url="", app=app)

    @web.middleware
    async def fail_one_folder(request: web.Request, handler: Callable[..., Awaitable]) -> object:
        if state.on and "/object/list" in request.path:
            body = await request.json()  # aiohttp keeps the body for the handler
            if str(body.get("prefix", "")).startswith("originals/customers/" + BROKEN_FOLDER):
                error = {"statusCode": "500", "error": "internal", "message": "disk on fire"}
                return web.json_response(error, status=500)
        return await handler(request)

    app.middlewares.append(fail_one_folder)
    state.url = await serve_storage_app(app)
    return state
