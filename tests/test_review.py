"""`loader review`: the page behind its token, escaping, server-side thumbnails (private buckets
too), decisions recorded as `match apply` records them, the static export, and the whole flow
in a real headless Chromium on the demo library."""

from __future__ import annotations

import io
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import asyncpg
import orjson
import pytest
from PIL import Image

from loader import review
from loader.devtools import demo_library as demo
from loader.devtools.pictures import png
from loader.devtools.storage_server import Catalogue
from loader.errors import ExitCode
from loader.listing import SourceOptions
from loader.match_db import match_with_database, revert_folder_names
from tests.cli_helpers import child_env, loader_argv, run_loader
from tests.storage_fixtures import (
    STORAGE_ANON_KEY,
    STORAGE_BUCKET,
    STORAGE_KEY,
    StartStorage,
    catalogue_of,
)

PREFIX = "originals/customers/"
# A folder name a browser would run if it were pasted into the page, with a right-to-left
# override and quotes (no "/": that would be a sub-folder): two customers share it as
# folder_name, so it is a conflict.
EVIL = "<script>document.title='owned'\u202e\"x'-1234"
EVIL_FILE = f"{PREFIX}{EVIL}/<img src=x onerror=alert(1)>.jpg"
KIM = "kimminsu"  # no digits: the name fits 김민수, nothing confirms it (review)
OTHER = "parkjisoo-9999"  # nobody: unmatched, not in the queue


async def _customers(db: asyncpg.Connection) -> None:
    await db.executemany(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES ($1, $2, $3, $4)",
        [
            (1, "김민수", "010-2222-5678", None),
            (2, "이영희", "010-3333-1234", EVIL),
            (3, "최유진", "010-4444-1234", EVIL),
        ],
    )


def _catalogue() -> Catalogue:
    pictures = catalogue_of(
        [
            EVIL_FILE,
            f"{PREFIX}{EVIL}/clip.mp4",
            f"{PREFIX}{KIM}/2024-05-01/a.jpg",
            f"{PREFIX}{KIM}/b.png",
            f"{PREFIX}{OTHER}/a.jpg",
        ],
        size=4096,
    )
    # too small to hold a picture: our server sends zeros, which no decoder takes
    broken = catalogue_of([f"{PREFIX}{KIM}/broken.jpg"], size=100)
    return Catalogue.from_objects([*pictures, *broken])


@pytest.fixture
async def page(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, review.Session]]:
    """The review page on a small library; `@pytest.mark.parametrize('page', [{...}])` passes
    Storage server options (e.g. a private bucket)."""
    await _customers(db)
    storage_url = await start_storage(_catalogue(), **getattr(request, "param", {}))
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    async with review.serving(opts, db_url) as served:
        yield served


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with http.get(url) as response:
        return response.status, await response.read(), response.content_type


def _thumb_url(page_url: str, path: str) -> str:
    return f"{page_url}thumb?path={quote(path, safe='')}"


async def test_queue_is_worst_first_with_candidates_and_media(
    page: tuple[str, review.Session],
) -> None:
    _, session = page
    items = session.queue.items
    assert [(i.match.folder, i.match.status) for i in items] == [
        (EVIL, "conflict"),
        (KIM, "review"),
    ]
    assert [f.kind for f in items[0].files] == ["image", "video"]
    assert {f.path for f in items[1].files} == {
        f"{PREFIX}{KIM}/2024-05-01/a.jpg", f"{PREFIX}{KIM}/b.png", f"{PREFIX}{KIM}/broken.jpg"
    }  # fmt: skip
    assert items[1].match.candidates[0].customer_id == 1


async def test_nothing_answers_without_the_token(
    page: tuple[str, review.Session], db: asyncpg.Connection
) -> None:
    page_url, session = page
    root = page_url.split("/r/", 1)[0]
    wrong = session.token[:-1] + ("A" if session.token[-1] != "A" else "B")
    async with aiohttp.ClientSession() as http:
        for url in (
            f"{root}/",
            f"{root}/r/",
            f"{root}/r/{wrong}/",
            f"{root}/r/{wrong}/review.js",
            _thumb_url(f"{root}/r/{wrong}/", EVIL_FILE),
            f"{root}/r/{wrong}/search?q=kim",
            f"{root}/review.css",
            f"{root}/r/{quote('토큰')}/",
        ):
            status, body, _ = await _get(http, url)
            assert status == 403, url
            assert session.token.encode() not in body
        async with http.post(
            f"{root}/r/{wrong}/decide", json={"folder": KIM, "customer_id": 1}
        ) as response:
            assert response.status == 403
        # The right path but no token header, or another site's origin: refused too (CSRF).
        for headers in (
            {},
            {"X-Review-Token": wrong},
            {"X-Review-Token": "토큰".encode().decode("latin-1")},
            {"X-Review-Token": session.token, "Origin": "http://evil.example"},
        ):
            async with http.post(
                f"{page_url}decide", json={"folder": KIM, "customer_id": 1}, headers=headers
            ) as response:
                assert response.status == 403, headers
        status, _, _ = await _get(http, page_url)
        assert status == 200
    assert await db.fetchval("SELECT count(*) FROM loader.match_decisions") == 0


async def test_names_render_as_text_and_no_secret_reaches_the_page(
    page: tuple[str, review.Session],
) -> None:
    page_url, _ = page
    async with aiohttp.ClientSession() as http:
        status, body, kind = await _get(http, page_url)
        script = (await _get(http, f"{page_url}review.js"))[1]
        found = (await _get(http, f"{page_url}search?q=1234"))[1]
    text = body.decode()
    assert (status, kind) == (200, "text/html")
    assert "<script>document" not in text and "<img src=x" not in text
    assert (
        "<bdi>&lt;script&gt;document.title=&#x27;owned&#x27;\u202e&quot;x&#x27;-1234</bdi>" in text
    )
    assert "<bdi>&lt;img src=x onerror=alert(1)&gt;.jpg</bdi>" in text
    # The page's only scripts are its own file; the folder attribute is escaped too.
    assert text.count("<script") == 1 and '<script src="review.js"></script>' in text
    assert f'data-folder="{EVIL.replace("<", "&lt;")[:8]}' in text
    for served in (body, script, found):
        assert STORAGE_KEY.encode() not in served
    assert "0 of 2" in text.replace('<span id="decided">', "").replace(
        '</span> of <span id="total">', " of "
    )
    # The search shows the phone's last digits only.
    assert b"3333" not in found and b'"phone4":"1234"' in found


@pytest.mark.parametrize("page", [{}, {"public": False}], ids=["public", "private"], indirect=True)
async def test_thumbnails_come_from_storage_through_the_page(
    page: tuple[str, review.Session],
) -> None:
    page_url, session = page
    async with aiohttp.ClientSession() as http:
        status, body, kind = await _get(http, _thumb_url(page_url, f"{PREFIX}{KIM}/b.png"))
        assert (status, kind) == (200, "image/jpeg")
        with Image.open(io.BytesIO(body)) as image:
            assert image.size == (64, 48)  # our server's picture, at most 160 px
            # the customer's colours: the corner pixel is the folder's background or stripe
            assert image.convert("RGB").getpixel((0, 0)) != (0, 0, 0)
        again = await _get(http, _thumb_url(page_url, f"{PREFIX}{KIM}/b.png"))
        assert again[1] == body
        assert session.thumbs.fetched == 1  # the second answer came from the cache
        # A file of no queued folder, and one that is no picture: not found.
        for path in (f"{PREFIX}{OTHER}/a.jpg", f"{PREFIX}{KIM}/broken.jpg", "../etc/passwd"):
            assert (await _get(http, _thumb_url(page_url, path)))[0] == 404, path


async def test_a_decision_is_recorded_as_match_apply_records_it(
    page: tuple[str, review.Session], db: asyncpg.Connection
) -> None:
    page_url, session = page
    headers = {"X-Review-Token": session.token}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def decide(body: dict[str, Any]) -> tuple[int, Any]:
            async with http.post(f"{page_url}decide", json=body) as response:
                ok = response.status == 200
                return response.status, await (response.json() if ok else response.text())

        assert await decide({"folder": KIM, "customer_id": 1}) == (
            200, {"decided": 1, "total": 2, "skipped": []}
        )  # fmt: skip
        assert (await decide({"folder": EVIL, "customer_id": None}))[1]["decided"] == 2
        # Only queued folders and known customers; malformed bodies are refused.
        for body in (
            {"folder": OTHER, "customer_id": 1},
            {"folder": KIM, "customer_id": 99},
            {"folder": KIM, "customer_id": "1"},
            {"folder": KIM},
        ):
            assert (await decide(body))[0] == 400, body
    rows = await db.fetch("SELECT folder, customer_id, decided_by FROM loader.match_decisions")
    assert sorted(map(tuple, rows)) == [(EVIL, None, "review"), (KIM, 1, "review")]


async def test_export_is_one_self_contained_file(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage, tmp_path: Path
) -> None:
    await _customers(db)
    storage_url = await start_storage(_catalogue(), public=False)
    out = tmp_path / "review.html"
    args = ["review", "--export", str(out), "--storage-url", storage_url, "--key", STORAGE_KEY,
            "--bucket", STORAGE_BUCKET, "--database-url", db_url]  # fmt: skip
    result = await run_loader(*args)
    assert result.code == 0, result.err
    assert "2 folder(s) to decide" in result.out
    text = out.read_text(encoding="utf-8")
    # the three pictures of the two folders; not broken.jpg
    assert text.count('src="data:image/jpeg;base64,') == 3
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")
    assert "&lt;script&gt;" in text and STORAGE_KEY not in text


def test_pictures_are_valid_pngs_that_differ_per_customer() -> None:
    one = png(f"{PREFIX}kim-1234/2024-01-01/a.jpg")
    same_customer = png(f"{PREFIX}kim-1234/b.jpg")
    other = png(f"{PREFIX}lee-5678/a.jpg")

    def colours(data: bytes) -> set[Any]:
        with Image.open(io.BytesIO(data)) as image:
            return {colour for _, colour in image.getcolors()}

    # one customer's pictures share their colours; another customer's differ
    assert colours(one) == colours(same_customer) != colours(other)


# --- the whole flow in a real browser ------------------------------------------------------

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    not (os.path.exists(CHROMEDRIVER) and CHROMIUM),
    reason="no Chromium with its chromedriver at /usr/bin/chromedriver"
    " (apt-get install chromium chromium-driver; .ci/run does this when run as root)",
)
DEMO_BUCKET = "blog-images"


def _drive(page_url: str, screenshot: Path, unlinked: str, warned: tuple[int, int]) -> list[str]:
    """Open the page, wait for pictures, decide three folders (a click, then keys); return the
    folders decided, in order, after the page confirmed each one. The first folder's first
    candidate is linked to folder `unlinked`: the page says so and asks before recording.
    Then the page at 600 px wide: no sideways overflow, and its screenshot with the warning
    of folder `warned[0]`'s candidate `warned[1]` open; no console error all along."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page_url)
        wait = WebDriverWait(driver, 30)
        loaded = (
            "return Array.from(document.querySelectorAll('main img'))"
            ".filter(i => i.complete && i.naturalWidth > 0).length"
        )
        wait.until(lambda d: d.execute_script(loaded) >= 4)
        sections = driver.find_elements(By.CSS_SELECTOR, "section.folder")
        decided: list[str] = []

        def confirmed(section: Any, count: int) -> None:
            wait.until(lambda d: section.get_attribute("data-decided"))
            wait.until(lambda d: d.find_element(By.ID, "decided").text == str(count))
            decided.append(section.get_attribute("data-folder"))

        # 1: a click on the first folder's first candidate, a customer another folder is
        # linked to: the page names that folder and what happens to it, and records nothing
        # until told to (cancel first, then record anyway)
        box = sections[0].find_element(By.CSS_SELECTOR, ".confirm")
        for choice in ("button.confirm-cancel", "button.confirm-record"):
            sections[0].find_element(By.CSS_SELECTOR, "button.pick").click()
            wait.until(lambda d: box.is_displayed())
            assert f"linked to folder {unlinked}" in box.text, box.text
            assert f"makes {unlinked} a conflict" in box.text, box.text
            assert sections[0].get_attribute("data-decided") is None
            assert driver.find_element(By.ID, "decided").text == "0"
            box.find_element(By.CSS_SELECTOR, choice).click()
            wait.until(lambda d: not box.is_displayed())
        confirmed(sections[0], 1)
        # 2: the page moved on to the second folder; key "1"
        body = driver.find_element(By.TAG_NAME, "body")
        assert "current" in sections[1].get_attribute("class")
        body.send_keys("1")
        confirmed(sections[1], 2)
        # skip the third folder with "s", decide the fourth with "1"
        assert "current" in sections[2].get_attribute("class")
        body.send_keys("s")
        wait.until(lambda d: "current" in sections[3].get_attribute("class"))
        body.send_keys("1")
        confirmed(sections[3], 3)
        assert sections[2].get_attribute("data-decided") is None
        # the screenshot: the top of the page, once the first folders' pictures are in
        driver.execute_script("window.scrollTo(0, 0)")
        first_folders = (
            "return Array.from(document.querySelectorAll('#f0 img, #f1 img, #f2 img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        wait.until(lambda d: d.execute_script(first_folders))
        driver.save_screenshot(str(screenshot))
        # 600 px wide: every card fits, nothing scrolls sideways
        driver.set_window_size(600, 1100)
        wait.until(lambda d: d.execute_script("return window.innerWidth") <= 600)
        overflow = (
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert driver.execute_script(overflow) == 0
        section = sections[warned[0]]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", section)
        section.find_elements(By.CSS_SELECTOR, "button.pick")[warned[1]].click()
        box = section.find_element(By.CSS_SELECTOR, ".confirm")
        wait.until(lambda d: box.is_displayed())
        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", box)
        pictures = "return Array.from(arguments[0].querySelectorAll('img'))" + (
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        wait.until(lambda d: d.execute_script(pictures, section))
        assert driver.execute_script(overflow) == 0
        driver.save_screenshot(str(screenshot.with_name(f"{screenshot.stem}-600.png")))
        box.find_element(By.CSS_SELECTOR, "button.confirm-cancel").click()
        assert section.get_attribute("data-decided") is None
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        return decided
    finally:
        driver.quit()


@needs_browser
@pytest.mark.browser
async def test_review_in_a_real_browser_then_migrate_tags_exactly_those_folders(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage, tmp_path: Path,
    demo_library: demo.DemoLibrary, demo_catalogue: Catalogue,
) -> None:  # fmt: skip
    library = demo_library  # generated, and its manifest read, once a session (conftest)
    assert demo_catalogue.bucket == DEMO_BUCKET
    await demo.seed_database(db, library, bucket=DEMO_BUCKET)
    storage_url = await start_storage(demo_catalogue, bucket=DEMO_BUCKET, public=False)
    opts = SourceOptions(bucket=DEMO_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    screenshot = Path(os.environ.get("LOADER_REVIEW_SCREENSHOT") or tmp_path / "review.png")
    async with review.serving(opts, db_url) as (page_url, session):
        queue = [
            (i.match.folder, [c.customer_id for c in i.match.candidates])
            for i in session.queue.items
        ]
        assert len(queue) >= 4
        # the demo library's worst folder: its best candidate is linked to another folder
        unlinked = sorted(session.queue.links.get(queue[0][1][0], {}))
        assert len(unlinked) == 1, unlinked
        # another folder not decided below with such a candidate: the 600 px screenshot's
        warned = next((i, n) for i, (_, ids) in enumerate(queue) if i > 3
                      for n, c in enumerate(ids[:3]) if c in session.queue.links)  # fmt: skip
        decided = await anyio.to_thread.run_sync(_drive, page_url, screenshot, unlinked[0], warned)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert screenshot.with_name(f"{screenshot.stem}-600.png").read_bytes().startswith(b"\x89PNG")
    expected = {
        queue[0][0]: queue[0][1][0],
        queue[1][0]: queue[1][1][0],
        queue[3][0]: queue[3][1][0],
    }
    assert decided == [queue[0][0], queue[1][0], queue[3][0]]
    rows = await db.fetch("SELECT folder, customer_id, decided_by FROM loader.match_decisions")
    assert {r["folder"]: r["customer_id"] for r in rows} == expected
    assert {r["decided_by"] for r in rows} == {"review"}

    done = await run_loader("migrate", "--storage-url", storage_url, "--key", STORAGE_KEY,
                            "--bucket", DEMO_BUCKET, "--database-url", db_url,
                            "--cdn-url", "keep")  # fmt: skip
    assert done.code == 0, done.err
    linked = dict(await db.fetch("SELECT folder, customer_id FROM loader.folders"))
    queued = {folder for folder, _ in queue}
    assert {f: c for f, c in linked.items() if f in queued and c is not None} == expected
    assert linked[unlinked[0]] is None  # what the page said: that folder became a conflict
    for folder, customer in expected.items():
        tags = await db.fetch(
            "SELECT ai_tags FROM image_assets WHERE starts_with(file_path, $1)",
            f"{demo.PREFIX}{folder}/",
        )
        assert tags and all(f"customer-{customer}" in r["ai_tags"] for r in tags), folder


async def test_the_command_serves_the_page_until_ctrl_c(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage
) -> None:
    await _customers(db)
    storage_url = await start_storage(_catalogue())
    argv = loader_argv("review", "--no-browser", "--storage-url", storage_url, "--key",
                       STORAGE_KEY, "--bucket", STORAGE_BUCKET,
                       "--database-url", db_url)  # fmt: skip
    with anyio.fail_after(60):
        async with await anyio.open_process(argv, env=child_env()) as process:
            assert process.stdout is not None and process.stderr is not None
            line = b""
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
            said = line.decode().strip()
            assert said.startswith("2 folder(s) to decide: open http://127.0.0.1:"), said
            page_url = said.rsplit(" ", 1)[1]
            async with aiohttp.ClientSession() as http:
                status, body, _ = await _get(http, page_url)
                assert status == 200 and b"kimminsu" in body
                assert (await _get(http, page_url.split("/r/")[0] + "/"))[0] == 403
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            err = (await process.stderr.receive()).decode()
    assert code == 0, err
    assert "Traceback" not in err and STORAGE_KEY not in said + err


async def test_our_server_download_routes_need_the_service_key(
    start_storage: StartStorage,
) -> None:
    base = await start_storage(_catalogue(), public=False)
    path = quote(f"{PREFIX}{KIM}/b.png", safe="/")
    async with aiohttp.ClientSession() as http:
        for route in ("object/authenticated", "object"):
            url = f"{base}/{route}/{STORAGE_BUCKET}/{path}"
            async with http.get(url, headers={"Authorization": f"Bearer {STORAGE_KEY}"}) as r:
                body = await r.read()
                assert (r.status, r.content_type, len(body)) == (200, "image/png", 4096)
                assert body.startswith(b"\x89PNG")
            async with http.get(url, headers={"Authorization": f"Bearer {STORAGE_ANON_KEY}"}) as r:
                assert (r.status, (await r.json())["error"]) == (400, "not_found")
            async with http.get(url, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 400 and (await r.json())["statusCode"] == "403"


async def test_search_finds_customers_by_name_folder_name_or_phone(
    page: tuple[str, review.Session],
) -> None:
    page_url, _ = page
    async with aiohttp.ClientSession() as http:

        async def ids(query: str) -> list[int]:
            status, body, _ = await _get(http, f"{page_url}search?q={quote(query)}")
            assert status == 200
            return sorted(c["id"] for c in orjson.loads(body))

        assert await ids("김민") == [1]
        assert await ids("OWNED") == [2, 3]  # in their folder_name, any case
        assert await ids("3333-12") == [2]  # phone digits, any punctuation
        assert await ids("56") == []  # too few digits to mean a phone (5678 is 1's)
        assert await ids("5678") == [1]
        assert await ids("") == []


async def test_the_command_fails_in_one_clean_line(
    db_url: str, start_storage: StartStorage, tmp_path: Path
) -> None:
    storage_url = await start_storage(_catalogue())
    where = ["--bucket", STORAGE_BUCKET, "--database-url", db_url]
    for args, code in [
        (["--no-browser", *where], ExitCode.BAD_INPUT),  # no Storage URL
        (["--no-browser", "--storage-url", storage_url, "--key", "wrong", *where],
         ExitCode.STORAGE_AUTH),
        (["--export", str(tmp_path), "--storage-url", storage_url, "--key", STORAGE_KEY, *where],
         ExitCode.USAGE),  # the export path is a folder
    ]:  # fmt: skip
        done = await run_loader("review", *args)
        assert done.code == code, (args, done.err)
        assert "Traceback" not in done.err and STORAGE_KEY not in done.err
        assert len([line for line in done.err.splitlines() if line.startswith("Error")]) == 1


async def test_write_folder_name_is_journaled_and_reverted_like_match_apply(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage
) -> None:
    await _customers(db)
    storage_url = await start_storage(_catalogue())
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    async with (
        review.serving(opts, db_url, write_folder_name=True) as (page_url, session),
        aiohttp.ClientSession(headers={"X-Review-Token": session.token}) as http,
        http.post(f"{page_url}decide", json={"folder": KIM, "customer_id": 1}) as response,
    ):
        assert response.status == 200
    assert await db.fetchval("SELECT folder_name FROM customers WHERE id = 1") == KIM
    assert await db.fetchval("SELECT count(*) FROM loader.customer_changes") == 1
    assert await revert_folder_names(db) == 1
    assert await db.fetchval("SELECT folder_name FROM customers WHERE id = 1") is None


async def test_taking_a_customer_another_folder_is_linked_to_asks_first(
    db: asyncpg.Connection, db_url: str, start_storage: StartStorage
) -> None:
    """Deciding KIM for the customer whose exact folder_name is OTHER unlinks OTHER (a
    person's decision beats the automatic link): the answer says so and records nothing until
    confirmed; then OTHER is a conflict, as said, and nothing asks again."""
    await _customers(db)
    await db.execute(
        "INSERT INTO customers (id, name, folder_name) VALUES (4, '박지수', $1)", OTHER
    )
    storage_url = await start_storage(_catalogue())
    opts = SourceOptions(bucket=STORAGE_BUCKET, storage_url=storage_url, key=STORAGE_KEY)
    async with (
        review.serving(opts, db_url) as (page_url, session),
        aiohttp.ClientSession(headers={"X-Review-Token": session.token}) as http,
    ):

        async def decide(body: dict[str, Any]) -> Any:
            async with http.post(f"{page_url}decide", json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        asked = await decide({"folder": KIM, "customer_id": 4})
        assert set(asked) == {"confirm"}
        assert f"linked to folder {OTHER} by its folder_name" in asked["confirm"]
        assert f"makes {OTHER} a conflict" in asked["confirm"]
        assert await db.fetchval("SELECT count(*) FROM loader.match_decisions") == 0
        assert (await decide({"folder": KIM, "customer_id": 1}))["decided"] == 1  # no link
        done = await decide({"folder": KIM, "customer_id": 4, "confirmed": True})
        assert done["decided"] == 1
        assert "confirm" not in await decide({"folder": EVIL, "customer_id": 4})
    by_folder = {m.folder: m for m in await match_with_database(db, [KIM, OTHER, EVIL])}
    assert (by_folder[KIM].status, by_folder[KIM].customer_id) == ("decided", 4)
    assert (by_folder[OTHER].status, by_folder[OTHER].customer_id) == ("conflict", None)
