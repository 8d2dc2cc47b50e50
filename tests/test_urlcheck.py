"""`verify --check-urls`: HEAD first, a one-byte ranged GET where HEAD is refused, and every
URL that does not work is reported with what it answered."""

from __future__ import annotations

from aiohttp import web

from loader.devtools.storage_server import serve_app
from loader.urlcheck import UrlFailure, check_urls
from tests.storage_fixtures import ServeStorageApp


async def test_head_then_ranged_get_and_failures_in_order(
    serve_storage_app: ServeStorageApp,
) -> None:
    seen: list[tuple[str, str, str | None]] = []

    async def no_head(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Range")))
        if request.method == "HEAD":
            return web.Response(status=405)
        return web.Response(status=206, body=b"x")

    async def plain(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, request.headers.get("Range")))
        return web.Response(body=b"image")

    app = web.Application()
    app.router.add_route("*", "/cdn/{name}", no_head)
    app.router.add_get("/ok/{name}", plain)
    base = await serve_storage_app(app)
    async with serve_app(web.Application()) as closed:
        pass
    urls = [f"{base}/cdn/x.jpg", f"{base}/ok/a%20b%3F.jpg", f"{base}/missing.jpg",
            f"{closed}/gone.jpg"]  # fmt: skip
    failures = await check_urls(urls, concurrency=2)
    assert failures[0] == UrlFailure(f"{base}/missing.jpg", "HTTP 404")
    assert failures[1].url == f"{closed}/gone.jpg" and "Connect" in failures[1].answer
    assert len(failures) == 2
    assert sorted(seen) == [
        ("GET", "/cdn/x.jpg", "bytes=0-0"),
        ("HEAD", "/cdn/x.jpg", None),
        ("HEAD", "/ok/a%20b%3F.jpg", None),  # sent as encoded, never re-encoded
    ]
