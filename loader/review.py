"""`loader review`: a person decides the folders the matcher could not, by looking at them.

The queue is every folder in review or conflict, worst first (conflicts, then the lowest
confidence), each with the first few of its media files and its top candidates. `serve`
runs a local page (aiohttp, 127.0.0.1 only) under `/r/{token}/`: without the random token
nothing answers but 403. Thumbnails are fetched server-side from Storage with the key (the
authenticated object route, so private buckets work) and downscaled; the key never reaches
the browser. A decision goes through `match_db.apply_decisions`, exactly as `loader match apply`
records it (`loader.match_decisions`, `decided_by` 'review'). A decision that gives a folder
a customer another folder is linked to automatically unlinks that folder (the matcher's rule:
a person's decision beats every automatic claim on a customer, the weaker claim becomes a
conflict), so the page asks first, naming that folder (`Queue.unlinks`). `export_html` writes
the same queue as one static file with the thumbnails embedded.

Every text shown is escaped server-side (`html.escape`) and wrapped in `<bdi>` so a
right-to-left mark in an object name cannot reorder the page around it; the page's script
only ever sets `textContent`.
"""

from __future__ import annotations

import base64
import html
import io
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import orjson
from aiohttp import web

from loader import db
from loader.classify import classify
from loader.errors import BadInputError
from loader.listing import RestSource, SourceOptions, open_source
from loader.match import Customer, FolderMatch, phone_suffix
from loader.match_db import apply_decisions, load_customers, match_with_database
from loader.storage_client import resolve_base_url

THUMBS_PER_FOLDER = 6
THUMB_PIXELS = 160  # longest side of a thumbnail
FETCH_CONCURRENCY = 6  # Storage downloads at once, whatever the page asks for
CACHE_BYTES = 32 * 1024 * 1024  # thumbnails kept in memory
SEARCH_LIMIT = 20
QUEUED = ("conflict", "review")  # the order is the "worst first" order
AUTOMATIC = {"exact": "by its folder_name", "normalized": "by its folder_name (normalized)",
             "auto": "by name and phone"}  # fmt: skip
_STATUS_RANK = {status: rank for rank, status in enumerate(QUEUED)}
_ASSETS = ("review.css", "review.js")


@dataclass(slots=True)
class MediaFile:
    path: str  # full object key
    kind: str  # 'image' | 'video'


@dataclass(slots=True)
class QueueItem:
    match: FolderMatch
    files: list[MediaFile] = field(default_factory=list)
    decided: str | None = None  # what this session recorded: a customer id, or 'none'


@dataclass(slots=True)
class Queue:
    """The folders to decide (with their files gathered), every customer (for the search),
    and the other folders' automatic links (customer id -> {folder: how it is linked})."""

    items: list[QueueItem]
    customers: dict[int, Customer]
    links: dict[int, dict[str, str]] = field(default_factory=dict)
    by_folder: dict[str, QueueItem] = field(init=False)
    files: frozenset[str] = field(init=False)  # the only objects the page shows

    def __post_init__(self) -> None:
        self.by_folder = {item.match.folder: item for item in self.items}
        self.files = frozenset(f.path for item in self.items for f in item.files)

    def item(self, folder: str) -> QueueItem:
        if folder not in self.by_folder:
            raise BadInputError(f"folder {folder!r} is not in the review queue")
        return self.by_folder[folder]

    def unlinks(self, folder: str, customer_id: int | None) -> str | None:
        """What deciding `folder` for `customer_id` would do to other folders, in one
        sentence, or None when nothing: the folders linked to that customer automatically
        lose their link and become conflicts (a person decides them too)."""
        if customer_id is None:
            return None
        others = {f: how for f, how in self.links.get(customer_id, {}).items() if f != folder}
        if not others:
            return None
        c = self.customers[customer_id]
        linked = "; ".join(f"folder {f} {how}" for f, how in sorted(others.items()))
        names = ", ".join(sorted(others))
        return (f"customer {c.name or '(no name)'} (#{c.id}) is linked to {linked}. Recording"
                f" this makes {names} a conflict: no customer tag on later runs until someone"
                " decides it too.")  # fmt: skip

    def recorded(self, folder: str, customer_id: int | None) -> None:
        """A decision is stored: the automatic links it ends are gone."""
        self.item(folder).decided = "none" if customer_id is None else str(customer_id)
        if customer_id is not None:
            self.links.pop(customer_id, None)

    def search(self, query: str) -> list[dict[str, Any]]:
        """Customers whose name or folder_name contains `query`, or whose phone contains its
        digits (3 or more)."""
        text = query.strip().casefold()
        digits = "".join(ch for ch in text if ch.isdigit())
        found = []
        for c in self.customers.values():
            name_hit = bool(text) and any(
                value is not None and text in value.casefold() for value in (c.name, c.folder_name)
            )
            phone_hit = len(digits) >= 3 and digits in "".join(
                ch for ch in (c.phone or "") if ch.isdigit()
            )
            if name_hit or phone_hit:
                found.append(customer_json(c))
                if len(found) >= SEARCH_LIMIT:
                    break
        return found


def customer_json(c: Customer) -> dict[str, Any]:
    """What the page may show of a customer: never the whole phone number."""
    return {
        "id": c.id,
        "name": c.name,
        "phone4": phone_suffix(c.phone),
        "folder_name": c.folder_name,
    }


def queue_order(matches: Sequence[FolderMatch]) -> list[FolderMatch]:
    """Folders in review or conflict, worst first: conflicts, then the lowest confidence."""
    queued = [m for m in matches if m.status in _STATUS_RANK]
    return sorted(queued, key=lambda m: (_STATUS_RANK[m.status], m.confidence, m.folder))


# --- building the queue --------------------------------------------------------------------


@dataclass(slots=True)
class Thumbnails:
    """Server-side thumbnails: fetched from Storage with the key, bounded, cached by bytes."""

    api_root: str | None  # Storage API root; None when no Storage URL is known (no pictures)
    bucket: str
    key: str
    http: aiohttp.ClientSession | None = None
    limit: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(FETCH_CONCURRENCY))
    cache: OrderedDict[str, tuple[bytes, str]] = field(default_factory=OrderedDict)
    cached_bytes: int = 0
    fetched: int = 0  # Storage downloads made (the cache saves the others)

    def url(self, path: str) -> str:
        assert self.api_root is not None
        return (
            f"{self.api_root}/object/authenticated/{quote(self.bucket, safe='')}/"
            f"{quote(path, safe='/')}"
        )

    async def get(self, path: str) -> tuple[bytes, str] | None:
        """(thumbnail bytes, content type), or None when Storage has no picture for `path`."""
        if path in self.cache:
            self.cache.move_to_end(path)
            return self.cache[path]
        if self.api_root is None or self.http is None:
            return None
        async with self.limit:
            self.fetched += 1
            try:
                async with self.http.get(self.url(path)) as response:
                    if response.status != 200:
                        return None
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                return None
        thumb = await anyio.to_thread.run_sync(shrink, raw)
        if thumb is None:
            return None
        self.cache[path] = thumb
        self.cached_bytes += len(thumb[0])
        while self.cached_bytes > CACHE_BYTES and self.cache:
            _, (old, _) = self.cache.popitem(last=False)
            self.cached_bytes -= len(old)
        return thumb


def shrink(raw: bytes) -> tuple[bytes, str] | None:
    """A JPEG at most THUMB_PIXELS on its longest side, or None when `raw` is no image we
    can decode (HEIC, a broken file)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=80)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return out.getvalue(), "image/jpeg"


async def _first_media(source: Any, folder: str) -> list[MediaFile]:
    files: list[MediaFile] = []
    async with aclosing(source.walk_folder(folder)) as pages:
        async for page in pages:
            for obj in page:
                kind = classify(obj.path.rsplit("/", 1)[-1], obj.mimetype)[0]
                if kind in ("image", "video"):
                    files.append(MediaFile(obj.path, kind))
            if len(files) >= THUMBS_PER_FOLDER:
                break
    files.sort(key=lambda f: f.kind != "image")  # pictures first, videos after
    return files[:THUMBS_PER_FOLDER]


async def _api_root(opts: SourceOptions, source: Any) -> str | None:
    if isinstance(source, RestSource):
        return source.client.base_url
    if opts.storage_url and opts.key:
        return (await resolve_base_url(opts.storage_url, opts.key, opts.bucket)).url
    return None


@asynccontextmanager
async def open_queue(
    opts: SourceOptions, database_url: str
) -> AsyncIterator[tuple[Queue, Thumbnails]]:
    """List the bucket, match it, and gather each queued folder's first media files."""
    async with open_source(opts) as opened:
        async with db.connection(database_url) as conn:
            await db.init_schema(conn)
            matches = await match_with_database(conn, opened.top.folders)
            customers = {c.id: c for c in await load_customers(conn)}
        items = [QueueItem(m) for m in queue_order(matches)]
        links: dict[int, dict[str, str]] = {}
        for m in matches:
            if m.status in AUTOMATIC and m.customer_id is not None:
                links.setdefault(m.customer_id, {})[m.folder] = AUTOMATIC[m.status]
        limit = anyio.Semaphore(opts.list_concurrency)

        async def gather(item: QueueItem) -> None:
            async with limit:
                item.files = await _first_media(opened.source, item.match.folder)

        async with anyio.create_task_group() as tg:
            for item in items:
                tg.start_soon(gather, item)
        thumbs = Thumbnails(await _api_root(opts, opened.source), opts.bucket, opts.key or "")
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {thumbs.key}", "apikey": thumbs.key},
        timeout=aiohttp.ClientTimeout(total=opts.request_timeout_s),
    ) as http:
        thumbs.http = http
        yield Queue(items, customers, links), thumbs


# --- the page ------------------------------------------------------------------------------


def _text(value: object) -> str:
    """Escaped text, isolated for bidi: a right-to-left mark stays inside its own element."""
    return f"<bdi>{html.escape(str(value))}</bdi>"


def _candidate_html(queue: Queue, item: QueueItem, n: int, interactive: bool) -> str:
    c = item.match.candidates[n]
    customer = queue.customers.get(c.customer_id)
    phone4 = phone_suffix(customer.phone) if customer else None
    folder_name = customer.folder_name if customer else None
    facts = (
        f"name {c.name_score:.2f} as {_text(c.spelling or '-')} · phone {_text(c.phone_evidence)}"
        f" · confidence {c.confidence:.2f}"
    )
    button = (
        f'<button type="button" class="pick" data-customer="{c.customer_id}">'
        f"<kbd>{n + 1}</kbd> this one</button>"
        if interactive
        else ""
    )
    return (
        f'<li class="candidate">{button}<span class="who">{_text(c.name or "(no name)")}'
        f" · #{c.customer_id} · phone …{_text(phone4 or '----')}"
        f" · folder_name {_text(folder_name or '-')}</span>"
        f'<span class="facts">{facts}</span></li>'
    )


def _thumb_html(item_file: MediaFile, src: str | None) -> str:
    name = item_file.path.rsplit("/", 1)[-1]
    caption = f"<figcaption>{_text(name)}</figcaption>"
    if item_file.kind == "video":
        return f'<figure class="thumb video" title="{html.escape(name)}">▶{caption}</figure>'
    if src is None:
        return f'<figure class="thumb missing" title="{html.escape(name)}">?{caption}</figure>'
    return (
        f'<figure class="thumb"><img loading="lazy" alt="{html.escape(name)}"'
        f' src="{html.escape(src)}">{caption}</figure>'
    )


def render_item(
    queue: Queue, item: QueueItem, index: int, sources: dict[str, str | None], interactive: bool
) -> str:
    m = item.match
    thumbs = "".join(_thumb_html(f, sources.get(f.path)) for f in item.files) or (
        '<p class="empty">no images or videos</p>'
    )
    candidates = "".join(
        _candidate_html(queue, item, n, interactive) for n in range(min(3, len(m.candidates)))
    )
    actions = (
        '<div class="actions"><button type="button" class="none"><kbd>n</kbd> none of them'
        '</button><button type="button" class="skip"><kbd>s</kbd> skip</button>'
        '<input type="search" class="search" placeholder="another customer: name or phone">'
        '<ul class="results"></ul><div class="confirm" role="alertdialog" hidden></div></div>'
        if interactive
        else ""
    )
    decided = f' data-decided="{html.escape(item.decided)}"' if item.decided else ""
    return (
        f'<section class="folder" id="f{index}" data-folder="{html.escape(m.folder)}"{decided}>'
        f'<h2><span class="status {m.status}">{m.status}</span> {_text(m.folder)}'
        f' <span class="outcome"></span></h2>'
        f'<p class="reason">{_text(m.reason or "")}</p>'
        f'<div class="strip">{thumbs}</div><ol class="candidates">{candidates}</ol>{actions}'
        "</section>"
    )


def render_page(
    queue: Queue, sources: dict[str, str | None], *, interactive: bool, style: str, script: str
) -> str:
    decided = sum(item.decided is not None for item in queue.items)
    body = "".join(
        render_item(queue, item, i, sources, interactive) for i, item in enumerate(queue.items)
    )
    help_line = (
        "<p class=help>Keys: <kbd>1</kbd> <kbd>2</kbd> <kbd>3</kbd> a candidate, <kbd>n</kbd>"
        " none, <kbd>s</kbd> skip, <kbd>j</kbd>/<kbd>k</kbd> next/previous folder.</p>"
        if interactive
        else "<p class=help>A static copy of the review queue: decide with"
        " <code>loader review</code> or <code>loader match apply</code>.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No icon to fetch: a browser asking for /favicon.ico would get 403 (a console error).
        '<link rel="icon" href="data:,"><title>loader review</title>'
        f"{style}</head><body><header><h1>Folders to decide</h1>"
        f'<p id="progress"><span id="decided">{decided}</span> of'
        f' <span id="total">{len(queue.items)}</span> decided</p>{help_line}</header>'
        f"<main>{body or '<p>Nothing to review.</p>'}</main>{script}</body></html>"
    )


def _asset(name: str) -> str:
    return resources.files("loader.static").joinpath(name).read_text(encoding="utf-8")


# --- the local server -------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    queue: Queue
    thumbs: Thumbnails
    database_url: str
    token: str
    write_folder_name: bool = False


SESSION = web.AppKey("session", Session)


def _thumb_src(path: str) -> str:
    return f"thumb?path={quote(path, safe='')}"


async def _page(request: web.Request) -> web.Response:
    s = request.app[SESSION]
    sources = {f.path: _thumb_src(f.path) for item in s.queue.items for f in item.files}
    page = render_page(
        s.queue,
        sources,
        interactive=True,
        style='<link rel="stylesheet" href="review.css">',
        script='<script src="review.js"></script>',
    )
    return web.Response(text=page, content_type="text/html", headers=_NO_STORE)


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    return web.Response(text=_asset(name), content_type=kind, headers=_NO_STORE)


async def _thumb(request: web.Request) -> web.Response:
    s = request.app[SESSION]
    path = request.query.get("path", "")
    # Only the queue's own files: the page is no way to read anything else from Storage.
    if path not in s.queue.files:
        raise web.HTTPNotFound()
    thumb = await s.thumbs.get(path)
    if thumb is None:
        raise web.HTTPNotFound()
    body, kind = thumb
    return web.Response(
        body=body, content_type=kind, headers={"Cache-Control": "private, max-age=3600"}
    )


async def _search(request: web.Request) -> web.Response:
    s = request.app[SESSION]
    return web.json_response(s.queue.search(request.query.get("q", "")), dumps=_dumps)


async def _decide(request: web.Request) -> web.Response:
    s = request.app[SESSION]
    # CSRF: a POST must carry the token in a header (a cross-site form cannot set one) and
    # come from this page's own origin when the browser says where it comes from.
    if not _same(request.headers.get("X-Review-Token", ""), s.token):
        raise web.HTTPForbidden()
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden()
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=_DECISION_FORM) from exc
    if not _is_decision(body):
        raise web.HTTPBadRequest(text=_DECISION_FORM)
    folder, customer = body["folder"], body["customer_id"]
    confirmed = body.get("confirmed", False)
    try:
        s.queue.item(folder)
        if customer is not None and customer not in s.queue.customers:
            raise BadInputError(f"unknown customer id {customer}")
        # Unlinking another folder needs the person to have read what it does first. An
        # answer, not an error status: the page shows it and asks (no console error).
        warning = s.queue.unlinks(folder, customer)
        if warning is not None and not confirmed:
            return web.json_response({"confirm": warning}, dumps=_dumps)
        async with db.connection(s.database_url) as conn:
            summary = await apply_decisions(
                conn, {folder: customer}, write_folder_name=s.write_folder_name
            )
    except BadInputError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    s.queue.recorded(folder, customer)
    decided = sum(i.decided is not None for i in s.queue.items)
    return web.json_response(
        {"decided": decided, "total": len(s.queue.items), "skipped": summary.skipped},
        dumps=_dumps,
    )


_DECISION_FORM = "expected {folder, customer_id[, confirmed]}"


def _is_decision(body: Any) -> bool:
    """A decision as the page posts it: a folder (text), a customer id (an integer, or null
    to link none) and, optionally, `confirmed` (a boolean)."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("folder"), str)
        and "customer_id" in body
        and (body["customer_id"] is None or type(body["customer_id"]) is int)
        and type(body.get("confirmed", False)) is bool
    )


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (which is never equal)."""
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def build_app(session: Session) -> web.Application:
    """The review app: every route lives under `/r/{token}/`; anything else is 403."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        prefix = f"/r/{session.token}/"
        path = request.path
        if not _same(path[: len(prefix)], prefix):
            return web.Response(status=403, text="forbidden: open the URL `loader review` printed")
        response = await handler(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app = web.Application(middlewares=[guard])
    app[SESSION] = session
    base = f"/r/{session.token}"
    app.router.add_get(f"{base}/", _page)
    app.router.add_get(f"{base}/thumb", _thumb)
    app.router.add_get(f"{base}/search", _search)
    app.router.add_post(f"{base}/decide", _decide)
    app.router.add_get(f"{base}/{{name}}", _static)
    return app


@asynccontextmanager
async def serving(
    opts: SourceOptions,
    database_url: str,
    *,
    port: int = 0,
    write_folder_name: bool = False,
) -> AsyncIterator[tuple[str, Session]]:
    """Build the queue and serve the page on 127.0.0.1; yield (page URL with token, session)."""
    async with open_queue(opts, database_url) as (queue, thumbs):
        session = Session(queue, thumbs, database_url, secrets.token_urlsafe(24), write_folder_name)
        runner = web.AppRunner(build_app(session), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            bound = runner.addresses[0][1]
            yield f"http://127.0.0.1:{bound}/r/{session.token}/", session
        finally:
            await runner.cleanup()


# --- the static export -----------------------------------------------------------------------


async def export_html(opts: SourceOptions, database_url: str) -> tuple[str, int]:
    """The queue as one self-contained HTML page (thumbnails as data: URIs); (page, folders)."""
    async with open_queue(opts, database_url) as (queue, thumbs):
        sources: dict[str, str | None] = {}
        images = [f.path for item in queue.items for f in item.files if f.kind == "image"]

        async def embed(path: str) -> None:
            thumb = await thumbs.get(path)
            if thumb is not None:
                body, kind = thumb
                sources[path] = f"data:{kind};base64,{base64.b64encode(body).decode()}"

        async with anyio.create_task_group() as tg:
            for path in images:
                tg.start_soon(embed, path)
    page = render_page(
        queue,
        sources,
        interactive=False,
        style=f"<style>{_asset('review.css')}</style>",
        script="",
    )
    return page, len(queue.items)
