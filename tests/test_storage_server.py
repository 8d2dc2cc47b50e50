"""The Storage-compatible server answers like the real one: recorded calls replay to the same
status and body, and paging, auth, the public route and fault injection behave as documented."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from yarl import URL

from loader.devtools.storage_model import is_valid_key
from loader.devtools.storage_server import (
    FAULT_KINDS,
    STATS,
    Catalogue,
    Faults,
    StoredObject,
    build_app,
    decode_cursor,
    encode_cursor,
    running_server,
)
from loader.errors import BadInputError
from tests.storage_fixtures import (
    STORAGE_ANON_KEY,
    STORAGE_BUCKET,
    STORAGE_KEY,
    ServeStorageApp,
    StartStorage,
    catalogue_of,
)

REPO = Path(__file__).resolve().parent.parent
# Requests and responses recorded against the real Storage server (see docs/storage.md).
RECORDINGS = Path(__file__).parent / "storage-recordings"
AUTH = {"Authorization": f"Bearer {STORAGE_KEY}", "apikey": STORAGE_KEY}
# Server-generated values a replay cannot reproduce: a content hash and a write time.
UNREPRODUCIBLE = {"eTag", "lastModified"}
EMPTY_V2 = {"hasNext": False, "folders": [], "objects": []}
NOT_FOUND = {
    "statusCode": "404",
    "error": "not_found",
    "message": "Object not found",
    "code": "NoSuchKey",
}


def _invalid(message: str) -> dict[str, str]:
    return {"statusCode": "400", "error": "Error", "message": message, "code": "InvalidRequest"}


@cache
def _recording(number: str) -> dict[str, Any]:
    (path,) = RECORDINGS.glob(f"{number}_*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _objects_of(number: str) -> list[StoredObject]:
    """The file entries a recorded listing shows, as catalogue objects."""
    request, body = _recording(number)["request"], _recording(number)["response"]["body"]
    v2 = isinstance(body, dict)
    return [
        StoredObject(
            name=entry["name"] if v2 else request["json"]["prefix"] + entry["name"],
            size=entry["metadata"]["size"],
            mimetype=entry["metadata"]["mimetype"],
            created_at=entry["created_at"],
            updated_at=entry["updated_at"],
            id=entry["id"],
        )
        for entry in (body["objects"] if v2 else body)
    ]


def _jpeg(name: str, stamp: str = "2026-11-26T07:46:00.000Z") -> StoredObject:
    return StoredObject(name, 10, "image/jpeg", stamp, stamp)


def _recorded_catalogue() -> Catalogue:
    """The bucket as it was for recordings 01-32: the four objects recording 29 lists."""
    return Catalogue.from_objects(_objects_of("29"))


def _seeded_catalogue() -> Catalogue:
    """The bucket as it was for recordings 41-55: plus 100 customers x 50 objects, and 2,000
    objects under flat/ of which recording 41 shows the first 100."""
    shown = _objects_of("41")
    customers = (
        _jpeg(f"originals/customers/cust-{c:03d}/img-{i:02d}.jpg")
        for c in range(100)
        for i in range(50)
    )
    flat = (_jpeg(f"flat/file-{i:05d}.jpg") for i in range(len(shown), 2000))
    return Catalogue.from_objects([*_objects_of("29"), *customers, *shown, *flat])


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in UNREPRODUCIBLE}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession,
    url: str | URL,
    method: str = "POST",
    body: Any = None,
    headers: dict[str, str] | None = AUTH,
) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    async with http.request(method, url, data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def _list(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> list[Any]:
    status, entries = await _call(http, f"{base}/object/list/{STORAGE_BUCKET}", body=body)
    assert status == 200, entries
    return entries


async def _list_v2(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> dict[str, Any]:
    status, page = await _call(http, f"{base}/object/list-v2/{STORAGE_BUCKET}", body=body)
    assert status == 200, page
    return page


def _public_url(base: str, name: str, bucket: str = STORAGE_BUCKET) -> URL:
    return URL(f"{base}/object/public/{bucket}/{quote(name, safe='/')}", encoded=True)


# --- replaying the recordings -------------------------------------------------------------

# The buckets of recordings 71-80: a private one holding what recording 71 uploaded, and a
# public one ("heldout").
PRIVATE = {"bucket": "rec-private", "public": False}
HELDOUT = {"bucket": "heldout", "public": True}

# recording number -> (catalogue, token sent in place of the redacted Authorization value,
# server options). Not replayed: 01-05 (bucket administration) and 32 (object info).
REPLAYED: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    **{f"{n:02d}": ("empty", STORAGE_KEY, {}) for n in range(6, 12)},
    "12": ("recorded", STORAGE_KEY, {}),
    "13": ("recorded", STORAGE_KEY, {}),
    "71": ("empty", STORAGE_KEY, PRIVATE),
    "79": ("empty", STORAGE_KEY, PRIVATE),
    **{str(n): ("recorded", STORAGE_KEY, {}) for n in range(14, 32)},
    **{n: ("seeded", STORAGE_KEY, {}) for n in ("41", "47", "49", "55")},
    "61": ("recorded", STORAGE_ANON_KEY, {}),
    "62": ("recorded", "not-the-key", {}),
    "63": ("recorded", None, {}),
    "72": ("private", STORAGE_KEY, PRIVATE),
    "73": ("recorded", STORAGE_KEY, HELDOUT),
    "74": ("recorded", STORAGE_KEY, HELDOUT),
    "75": ("private", None, PRIVATE),
    "76": ("recorded", STORAGE_KEY, HELDOUT),
    "77": ("recorded", STORAGE_KEY, HELDOUT),
    "78": ("recorded", STORAGE_KEY, HELDOUT),
    "80": ("recorded", None, HELDOUT),
}
# A bucket record's timestamps are when the bucket was created.
BUCKET_TIMES = {"created_at", "updated_at"}


@pytest.fixture(scope="module")
def catalogues() -> dict[str, Catalogue]:
    private = catalogue_of([f"originals/customers/kim-1234/{n}.jpg" for n in ("a", "b")])
    return {
        "recorded": _recorded_catalogue(),
        "seeded": _seeded_catalogue(),
        "private": private,
        "empty": Catalogue.from_objects([]),
    }


def test_every_recording_is_replayed_but_bucket_administration() -> None:
    recorded = {p.name[:2] for p in RECORDINGS.glob("[0-9]*_*.json")}
    index = json.loads((RECORDINGS / "index.json").read_text(encoding="utf-8"))
    assert recorded == {f["file"][:2] for f in index["fixtures"]}
    assert recorded - set(REPLAYED) == {"01", "02", "03", "04", "05", "32"}


@pytest.mark.parametrize("number", sorted(REPLAYED))
async def test_replays_recording(
    number: str,
    catalogues: dict[str, Catalogue],
    start_storage: StartStorage,
    http: aiohttp.ClientSession,
) -> None:
    catalogue, token, server = REPLAYED[number]
    request, expected = _recording(number)["request"], _recording(number)["response"]
    headers = {k: v for k, v in request["headers"].items() if k != "Authorization"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    base = await start_storage(catalogues[catalogue], **server)
    if request["raw_body_utf8"] is not None:  # an upload
        url = URL(base + request["path"], encoded=True)
        data = request["raw_body_utf8"].encode()
        async with http.post(url, data=data, headers=headers) as response:
            status, body = response.status, await response.json()
        if catalogue == "empty" and status == 200:
            assert uuid.UUID(body["Id"]).version == 4  # a new object's id is random
            body["Id"] = expected["body"]["Id"]
    else:
        status, body = await _call(
            http, base + request["path"], request["method"], request["json"], headers
        )
    assert status == expected["status"]
    if isinstance(body, dict) and "public" in body:
        body, expected = (
            {k: v for k, v in b.items() if k not in BUCKET_TIMES} for b in (body, expected["body"])
        )
        assert body == expected
    else:
        assert _comparable(body) == _comparable(expected["body"])


async def test_get_bucket_like_recording(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    expected = _recording("04")["response"]["body"]
    base = await start_storage(_recorded_catalogue(), public=False)
    status, body = await _call(http, f"{base}/bucket/{STORAGE_BUCKET}", "GET")
    assert status == 200
    assert body.keys() == expected.keys()
    assert body | {"created_at": None, "updated_at": None} == expected | {
        "created_at": None,
        "updated_at": None,
    }


async def test_unknown_bucket(start_storage: StartStorage, http: aiohttp.ClientSession) -> None:
    base = await start_storage(_recorded_catalogue())
    assert await _call(http, f"{base}/bucket/nope", "GET") == (
        400,
        {
            "statusCode": "404",
            "error": "Bucket not found",
            "message": "Bucket not found",
            "code": "NoSuchBucket",
        },
    )
    v2 = await _call(http, f"{base}/object/list-v2/nope", body={"prefix": ""})
    assert v2 == (200, EMPTY_V2)


# --- v1 listing -------------------------------------------------------------------------------


async def test_v1_limit_is_capped_at_1500(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    names = [f"big/{i:05d}.jpg" for i in range(2000)]
    base = await start_storage(catalogue_of(names))
    first = await _list(http, base, {"prefix": "big/", "limit": 2000})
    rest = await _list(http, base, {"prefix": "big/", "limit": 2000, "offset": 1500})
    assert (len(first), len(rest)) == (1500, 500)
    assert ["big/" + e["name"] for e in first + rest] == names
    assert len(await _list(http, base, {"prefix": "big/"})) == 100  # the default limit


async def test_v1_folders_and_files_interleave_in_name_order(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    names = ["d/c.jpg", "d/b/x.jpg", "d/a.jpg", "d/B.png", "e.jpg"]
    base = await start_storage(catalogue_of(names))
    entries = await _list(http, base, {"prefix": "d"})
    assert [(e["name"], e["id"] is None) for e in entries] == [
        ("B.png", False),
        ("a.jpg", False),
        ("b", True),
        ("c.jpg", False),
    ]
    assert entries[2] == {key: None for key in entries[2]} | {"name": "b"}
    assert entries[0]["metadata"]["mimetype"] == "image/png"
    assert [e["name"] for e in await _list(http, base, {"prefix": ""})] == ["d", "e.jpg"]


async def test_v1_prefix_and_search_are_case_insensitive(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    names = ["Kim/Beach.jpg", "Kim/bag.jpg", "kim/cat.jpg", "Kim/x/y.jpg"]
    base = await start_storage(catalogue_of(names))
    everything = await _list(http, base, {"prefix": "KIM/"})
    assert [e["name"] for e in everything] == ["Beach.jpg", "bag.jpg", "cat.jpg", "x"]
    found = await _list(http, base, {"prefix": "kim", "search": "B"})
    assert [e["name"] for e in found] == ["Beach.jpg", "bag.jpg"]


async def test_v1_sort_orders(start_storage: StartStorage, http: aiohttp.ClientSession) -> None:
    stamps = {"s/a.jpg": "03", "s/b.jpg": "01", "s/c/d.jpg": "02", "s/e.jpg": "02"}
    objects = [_jpeg(name, f"2024-01-{day}T00:00:00.000Z") for name, day in stamps.items()]
    base = await start_storage(Catalogue.from_objects(objects))

    async def names(column: str, order: str) -> list[str]:
        body = {"prefix": "s/", "sortBy": {"column": column, "order": order}}
        return [e["name"] for e in await _list(http, base, body)]

    assert await names("name", "desc") == ["e.jpg", "c", "b.jpg", "a.jpg"]
    # Folders have no timestamps: last ascending, first descending, as Postgres sorts NULLs.
    assert await names("updated_at", "asc") == ["b.jpg", "e.jpg", "a.jpg", "c"]
    assert await names("created_at", "desc") == ["c", "a.jpg", "e.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 100}, "body must have required property 'prefix'"),
        ({"prefix": "", "limit": 0}, "body/limit must be >= 1"),
        ({"prefix": "", "limit": "10"}, "body/limit must be integer"),
        ({"prefix": "", "offset": -1}, "body/offset must be >= 0"),
        ({"prefix": 5}, "body/prefix must be string"),
        ({"prefix": "", "search": ["b"]}, "body/search must be string"),
        ({"prefix": "", "sortBy": {"column": "size"}}, "body/sortBy/column must be one of"),
        ([1, 2], "body must be object"),
    ],
)
async def test_v1_rejects_invalid_bodies(
    body: Any, message: str, start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(_recorded_catalogue())
    status, error = await _call(http, f"{base}/object/list/{STORAGE_BUCKET}", body=body)
    assert status == 400
    assert error | {"message": error["message"][: len(message)]} == _invalid(message)


async def test_malformed_json_is_an_invalid_request(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(_recorded_catalogue())
    for route in ("list", "list-v2"):
        url = f"{base}/object/{route}/{STORAGE_BUCKET}"
        async with http.post(url, data=b'{"prefix": ', headers=AUTH) as response:
            body = await response.json()
        assert (response.status, body["statusCode"], body["code"]) == (400, "400", "InvalidRequest")


# --- v2 listing ----------------------------------------------------------------------------


async def test_v2_cursor_walks_a_tree_exactly_once(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    catalogue = _seeded_catalogue()
    base = await start_storage(catalogue)
    walked: list[str] = []
    body: dict[str, Any] = {"prefix": "originals/customers/", "limit": 7}
    while True:
        page = await _list_v2(http, base, body)
        assert page["folders"] == []
        walked += [o["name"] for o in page["objects"]]
        if not page["hasNext"]:
            assert "nextCursor" not in page
            break
        assert decode_cursor(page["nextCursor"]) == page["nextCursorKey"] == walked[-1]
        body["cursor"] = page["nextCursor"]
    expected = [o.name for o in catalogue if o.name.startswith("originals/customers/")]
    assert len(expected) == 5004
    assert walked == expected


async def test_v2_without_delimiter_is_a_case_sensitive_plain_prefix(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(catalogue_of(["Ab/1.jpg", "ab/2.jpg", "abc/3.jpg"]))
    assert await _list_v2(http, base, {"prefix": "AB/"}) == EMPTY_V2
    page = await _list_v2(http, base, {"prefix": "ab"})
    assert [o["name"] for o in page["objects"]] == ["ab/2.jpg", "abc/3.jpg"]
    bad_cursor = await _call(http, f"{base}/object/list-v2/{STORAGE_BUCKET}", body={"cursor": "?"})
    assert bad_cursor == (400, _invalid("body/cursor is not a valid cursor"))


async def test_v2_delimiter_pages_follow_the_v1_order(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    names = ["p/a.jpg", "p/a/1.jpg", "p/b/2.jpg", "p/c.jpg", "p/d/e/3.jpg", "p/z.png"]
    base = await start_storage(catalogue_of(names))
    v1 = [(e["name"], e["id"] is None) for e in await _list(http, base, {"prefix": "p/"})]
    assert [name for name, _ in v1] == ["a", "a.jpg", "b", "c.jpg", "d", "z.png"]
    walked: list[tuple[str, bool]] = []
    body: dict[str, Any] = {"prefix": "p/", "with_delimiter": True, "limit": 1}
    while True:
        page = await _list_v2(http, base, body)
        assert len(page["folders"]) + len(page["objects"]) == 1
        walked += [(f["key"], True) for f in page["folders"]]
        walked += [(o["key"], False) for o in page["objects"]]
        if not page["hasNext"]:
            break
        body["cursor"] = page["nextCursor"]
    assert walked == v1
    whole = await _list_v2(http, base, {"prefix": "p", "with_delimiter": True})
    assert [f["name"] for f in whole["folders"]] == ["p/a/", "p/b/", "p/d/"]
    assert [o["name"] for o in whole["objects"]] == ["p/a.jpg", "p/c.jpg", "p/z.png"]


def test_cursor_encoding_matches_the_recording() -> None:
    page = _recording("30")["response"]["body"]
    assert encode_cursor(page["nextCursorKey"]) == page["nextCursor"]
    assert decode_cursor(page["nextCursor"]) == page["nextCursorKey"]
    assert decode_cursor("bm9wZQ==") is None  # base64 of "nope": no "l:" tag


# --- auth and routes ---------------------------------------------------------------------------


async def test_auth_failures(start_storage: StartStorage, http: aiohttp.ClientSession) -> None:
    base = await start_storage(_recorded_catalogue())
    list_url = f"{base}/object/list/{STORAGE_BUCKET}"
    body = {"prefix": "originals/customers/"}
    missing = (400, _recording("63")["response"]["body"])
    wrong = (400, _recording("62")["response"]["body"])
    assert await _call(http, list_url, body=body, headers={"apikey": STORAGE_KEY}) == missing
    assert await _call(http, f"{base}/bucket/{STORAGE_BUCKET}", "GET", headers=None) == missing
    for header in (f"Bearer {STORAGE_KEY}x", f"Basic {STORAGE_KEY}", STORAGE_KEY):
        assert await _call(http, list_url, body=body, headers={"Authorization": header}) == wrong
    assert STORAGE_KEY not in json.dumps([missing, wrong])


async def test_anon_key_sees_an_empty_bucket(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    anon = {"Authorization": f"Bearer {STORAGE_ANON_KEY}", "apikey": STORAGE_ANON_KEY}
    body = {"prefix": "originals/customers/"}
    base = await start_storage(_recorded_catalogue())
    v1 = await _call(http, f"{base}/object/list/{STORAGE_BUCKET}", body=body, headers=anon)
    v2 = await _call(http, f"{base}/object/list-v2/{STORAGE_BUCKET}", body=body, headers=anon)
    status, bucket = await _call(http, f"{base}/bucket/{STORAGE_BUCKET}", "GET", headers=anon)
    assert (v1, v2, status, bucket["code"]) == ((200, []), (200, EMPTY_V2), 400, "NoSuchBucket")
    # Without an anon key configured, the same token is just a wrong key.
    base = await start_storage(_recorded_catalogue(), anon_key=None)
    status, error = await _call(
        http, f"{base}/object/list/{STORAGE_BUCKET}", body=body, headers=anon
    )
    assert (status, error["code"]) == (400, "AccessDenied")


def _without_times(answer: tuple[int, Any]) -> tuple[int, Any]:
    """Two servers' bucket records differ only in when the bucket was created."""
    status, body = answer
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in BUCKET_TIMES}
    return status, body


async def test_gateway_layout_serves_the_same_routes_under_storage_v1(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(_recorded_catalogue())
    gateway = await start_storage(_recorded_catalogue(), layout="gateway")
    for path, method, body in [
        (f"/bucket/{STORAGE_BUCKET}", "GET", None),
        (f"/object/list/{STORAGE_BUCKET}", "POST", {"prefix": "originals/customers/kim-minsu"}),
        (f"/object/list-v2/{STORAGE_BUCKET}", "POST", {"prefix": "originals/", "limit": 2}),
        (f"/object/list/{STORAGE_BUCKET}", "POST", {"limit": 0}),
    ]:
        at_root = _without_times(await _call(http, base + path, method, body))
        assert at_root[0] in (200, 400)
        hosted = await _call(http, f"{gateway}/storage/v1{path}", method, body)
        assert _without_times(hosted) == at_root
    hosted = f"{gateway}/storage/v1"
    async with http.get(_public_url(hosted, "originals/customers/lee/.keep.png")) as response:
        assert (response.status, len(await response.read())) == (200, 21)


async def test_unknown_routes_in_each_layout(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    bare = await start_storage(_recorded_catalogue())
    gateway = await start_storage(_recorded_catalogue(), layout="gateway")
    no_route = {"message": "no Route matched with those values"}
    # The gateway has no route outside /storage/v1 ...
    for path in (f"/bucket/{STORAGE_BUCKET}", "/", "/rest/v1/x"):
        assert await _call(http, gateway + path, "GET") == (404, no_route)
    # ... and hands /storage/v1/... to Storage with the prefix stripped (recording 76's shape).
    assert await _call(http, f"{gateway}/storage/v1/storage/v1/bucket/x", "GET") == (
        404,
        {"message": "Route GET:/storage/v1/bucket/x not found", "error": "Not Found",
         "statusCode": 404},
    )  # fmt: skip
    assert await _call(http, f"{bare}/storage/v1/bucket/x", "GET") == (
        404,
        {"message": "Route GET:/storage/v1/bucket/x not found", "error": "Not Found",
         "statusCode": 404},
    )  # fmt: skip
    # Inside its route groups Storage answers with its own error shape (string statusCode).
    status, body = await _call(http, f"{bare}/bucket/{STORAGE_BUCKET}/x", "GET")
    message = f"Route GET:/bucket/{STORAGE_BUCKET}/x not found"
    assert (status, body) == (404, {"statusCode": "404", "error": "Not Found",
                                     "message": message, "code": "InvalidRequest"})  # fmt: skip
    with pytest.raises(ValueError, match="layout"):
        build_app(_recorded_catalogue(), bucket=STORAGE_BUCKET, key=STORAGE_KEY, layout="x")


async def test_running_server_picks_a_free_port(http: aiohttp.ClientSession) -> None:
    catalogue = _recorded_catalogue()
    async with (
        running_server(catalogue, bucket=STORAGE_BUCKET, key=STORAGE_KEY) as one,
        running_server(catalogue, bucket=STORAGE_BUCKET, key=STORAGE_KEY) as two,
    ):
        assert one != two and one.startswith("http://127.0.0.1:")
        for base in (one, two):
            assert (await _call(http, f"{base}/bucket/{STORAGE_BUCKET}", "GET"))[0] == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await _call(http, f"{one}/bucket/{STORAGE_BUCKET}", "GET")


def test_serve_forever_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    script = (
        "import sys; from pathlib import Path;"
        "from loader.devtools.storage_server import Catalogue, serve_forever;"
        "serve_forever(Catalogue.from_directory(Path(sys.argv[1])), bucket='media', key='k',"
        " host='127.0.0.1', port=0)"
    )
    command = [sys.executable, "-c", script, str(tmp_path)]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert line.startswith("storage server listening on http://127.0.0.1:")
            assert line.endswith(" (bucket media, 1 objects)\n")
            url = line.split()[4]
            with urllib.request.urlopen(f"{url}/object/public/media/a.jpg", timeout=5) as reply:
                assert reply.read() == b"jpeg"
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=10) == 0
        finally:
            server.kill()


# --- the public object route -------------------------------------------------------------


async def test_public_route_serves_directory_bytes(
    tmp_path: Path, start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    files = {
        "originals/customers/kim-6654/2024-05-01/IMG 1.jpg": (b"\xff\xd8jpeg", "image/jpeg"),
        "odd/what?#100%.png": (b"\x89PNG odd", "image/png"),
        "odd/notes": (b"", "application/octet-stream"),
    }
    for name, (content, _) in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    base = await start_storage(Catalogue.from_directory(tmp_path))
    for name, (content, mimetype) in files.items():
        async with http.get(_public_url(base, name)) as response:
            got = (response.status, response.content_type, await response.read())
            assert got == (200, mimetype, content)
        async with http.head(_public_url(base, name)) as response:
            got = (response.status, response.content_length, await response.read())
            assert got == (200, len(content), b"")


async def test_public_route_fills_catalogue_objects(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(catalogue_of(["a b/c.webp"], size=3000))
    async with http.get(_public_url(base, "a b/c.webp")) as response:
        got = (response.status, response.content_type, len(await response.read()))
        assert got == (200, "image/webp", 3000)
    bucket_not_found = _recording("75")["response"]["body"]
    for url, expected in [
        (_public_url(base, "a b/C.webp"), NOT_FOUND),
        (_public_url(base, "a b/c.webp", "other"), bucket_not_found),
    ]:
        assert await _call(http, url, "GET", headers=None) == (400, expected)
        async with http.head(url) as response:
            assert (response.status, await response.read()) == (400, b"")
    # A private bucket's public route: "Bucket not found" (recording 75), even for a real file.
    private = await start_storage(catalogue_of(["a b/c.webp"]), public=False)
    got = await _call(http, _public_url(private, "a b/c.webp"), "GET")
    assert got == (400, bucket_not_found)


# --- fault injection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("429", "SlowDown"),
        ("500", "InternalError"),
        ("503", "DatabaseConnectionLimit"),
        ("544", "DatabaseTimeout"),
    ],
)
async def test_error_faults(
    kind: str, code: str, start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    faults = Faults(fail_rate=1, kinds=(kind,))
    base = await start_storage(_recorded_catalogue(), faults=faults)
    for method, url in [
        ("POST", f"{base}/object/list/{STORAGE_BUCKET}"),
        ("POST", f"{base}/object/list-v2/{STORAGE_BUCKET}"),
        ("GET", f"{base}/bucket/{STORAGE_BUCKET}"),
    ]:
        async with http.request(method, url, json={"prefix": ""}, headers=AUTH) as response:
            error = await response.json()
            assert (response.status, error["statusCode"], error["code"]) == (int(kind), kind, code)
            assert response.headers.get("Retry-After") == ("1" if kind == "429" else None)


async def test_stall_fault_delays_then_answers(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    faults = Faults(fail_rate=1, kinds=("stall",), stall_s=0.2)
    base = await start_storage(_recorded_catalogue(), faults=faults)
    started = time.monotonic()
    entries = await _list(http, base, {"prefix": "originals/customers/"})
    assert time.monotonic() - started >= 0.2
    assert [e["name"] for e in entries] == ["kim-minsu", "lee"]


async def test_stall_fault_trips_client_timeouts(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    faults = Faults(fail_rate=1, kinds=("stall",), stall_s=30)
    base = await start_storage(_recorded_catalogue(), faults=faults)
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            f"{base}/object/list/{STORAGE_BUCKET}",
            json={"prefix": ""},
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )


async def test_reset_fault_drops_the_connection(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(_recorded_catalogue(), faults=Faults(fail_rate=1, kinds=("reset",)))
    with pytest.raises(aiohttp.ClientConnectionError):
        await _list(http, base, {"prefix": ""})


async def test_truncated_fault_cuts_the_json(
    start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    catalogue = _recorded_catalogue()
    body = {"prefix": "originals/customers/kim-minsu/"}
    whole = orjson.dumps(await _list(http, await start_storage(catalogue), body))
    base = await start_storage(catalogue, faults=Faults(fail_rate=1, kinds=("truncated",)))
    url = f"{base}/object/list/{STORAGE_BUCKET}"
    async with http.post(url, json=body, headers=AUTH) as response:
        raw = await response.read()
        assert (response.status, response.content_type) == (200, "application/json")
    assert len(raw) == len(whole) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_faults_are_counted_reproducible_and_spare_the_public_route(
    serve_storage_app: ServeStorageApp, http: aiohttp.ClientSession
) -> None:
    async def statuses(seed: int) -> tuple[list[int], Any]:
        faults = Faults(fail_rate=0.5, kinds=("500", "503", "429"), seed=seed)
        app = build_app(
            _recorded_catalogue(), bucket=STORAGE_BUCKET, key=STORAGE_KEY, faults=faults
        )
        base = await serve_storage_app(app)
        url = f"{base}/object/list/{STORAGE_BUCKET}"
        seen = [(await _call(http, url, body={"prefix": ""}))[0] for _ in range(40)]
        for _ in range(5):
            async with http.get(_public_url(base, "originals/customers/lee/.keep.png")) as r:
                assert r.status == 200
        return seen, app[STATS]

    first, stats = await statuses(seed=7)
    again, _ = await statuses(seed=7)
    other, _ = await statuses(seed=8)
    assert first == again != other
    assert set(first) == {200, 429, 500, 503}
    assert (stats.requests, stats.by_route) == (45, {"list": 40, "public": 5})
    assert stats.faults == {str(s): first.count(s) for s in (429, 500, 503)}


async def test_latency_is_added(start_storage: StartStorage, http: aiohttp.ClientSession) -> None:
    faults = Faults(latency_ms=60, jitter_ms=20, seed=1)
    base = await start_storage(_recorded_catalogue(), faults=faults)
    started = time.monotonic()
    await _list(http, base, {"prefix": ""})
    assert time.monotonic() - started >= 0.04


def test_faults_reject_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="fault kinds"):
        Faults(kinds=("418",))
    with pytest.raises(ValueError, match="fail_rate"):
        Faults(fail_rate=1.5)
    assert Faults().kinds == FAULT_KINDS


# --- keys and catalogues -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("originals/customers/kim-6654/2024-05-01/IMG 1.jpg", True),
        (".keep.png", True),
        ("a(1)&b$=@;:+,?!*'_-.jpg", True),
        ("originals/customers/김민수/사진.jpg", False),
        ("originals/customers/kim-minsu/\u1111\u1173.png", False),  # NFD Hangul jamo
        ("café.jpg", False),
        ("100%.jpg", False),
        ("a#b.jpg", False),
        ("tab\there.jpg", False),
        ("line\n", False),
        ("", False),
    ],
)
def test_validate_key(name: str, valid: bool) -> None:
    assert is_valid_key(name) is valid


def test_catalogue_accepts_any_name() -> None:
    names = ["x/a b#c%d?.jpg", "x/\u1100\u1161.jpg", "x/" + "l" * 1000 + ".png", "x/y/z"]
    catalogue = catalogue_of(names)
    assert len(catalogue) == 4
    assert [o.name for o in catalogue] == sorted(names)
    found = catalogue.get("x/a b#c%d?.jpg")
    assert found is not None and found.mimetype == "image/jpeg"
    assert found.id == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{STORAGE_BUCKET}/x/a b#c%d?.jpg"))
    assert catalogue.get("x/missing") is None
    page = orjson.loads(catalogue.list_folder("x", limit=10))
    assert [e["name"] for e in page] == sorted([*(n[2:] for n in names[:3]), "y"])


def test_from_manifest(tmp_path: Path) -> None:
    stamp = "2024-01-01T00:00:00.000Z"
    given_id = "8c686583-f037-440c-a20e-418c995e24d3"
    rows = [
        {"name": "m/b.jpg", "size": 5, "mimetype": "image/jpeg", "created_at": stamp},
        {
            "name": "m/a.png",
            "size": 7,
            "mimetype": "image/png",
            "created_at": stamp,
            "id": given_id,
        },
    ]
    rows = [row | {"updated_at": stamp} for row in rows]
    manifest = tmp_path / "objects.jsonl"
    manifest.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n\n")
    derived_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "media/m/b.jpg"))
    assert list(Catalogue.from_manifest(manifest)) == [
        StoredObject(**rows[1]),
        StoredObject(**rows[0], id=derived_id),
    ]
    manifest.write_bytes(orjson.dumps(rows[0]) + b'\n{"name": "m/c.jpg"}\n')
    with pytest.raises(BadInputError, match=r"objects\.jsonl:2: "):
        Catalogue.from_manifest(manifest)


def test_from_directory(tmp_path: Path) -> None:
    (tmp_path / "kim" / "2024").mkdir(parents=True)
    (tmp_path / "kim" / "2024" / "a.JPG").write_bytes(b"12345")
    (tmp_path / ".keep").write_bytes(b"")
    os.utime(tmp_path / ".keep", (0, 86400.5))
    catalogue = Catalogue.from_directory(tmp_path)
    assert [(o.name, o.size, o.mimetype) for o in catalogue] == [
        (".keep", 0, "application/octet-stream"),
        ("kim/2024/a.JPG", 5, "image/jpeg"),
    ]
    keep = catalogue.get(".keep")
    assert keep is not None and keep.created_at == keep.updated_at == "1970-01-02T00:00:00.500Z"


async def test_uploads_are_listed_and_served(
    tmp_path: Path, start_storage: StartStorage, http: aiohttp.ClientSession
) -> None:
    base = await start_storage(Catalogue.from_directory(tmp_path))
    url = f"{base}/object/{STORAGE_BUCKET}/kim/a%20b.jpg"
    headers = {**AUTH, "Content-Type": "image/jpeg"}
    async with http.post(URL(url, encoded=True), data=b"one", headers=headers) as response:
        first = await response.json()
    assert first["Key"] == f"{STORAGE_BUCKET}/kim/a b.jpg"
    upsert = {**headers, "x-upsert": "true"}
    async with http.post(URL(url, encoded=True), data=b"second", headers=upsert) as response:
        assert (await response.json())["Id"] == first["Id"]
    entries = await _list(http, base, {"prefix": "kim/"})
    assert [(e["name"], e["id"], e["metadata"]["size"]) for e in entries] == [
        ("a b.jpg", first["Id"], 6)
    ]
    async with http.get(_public_url(base, "kim/a b.jpg")) as response:
        assert (response.status, await response.read()) == (200, b"second")
    assert (tmp_path / "kim" / "a b.jpg").read_bytes() == b"second"
