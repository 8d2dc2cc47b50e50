"""`verify --check-urls`: do the cdn_urls the app will use actually answer?

Each URL is asked with HEAD, the way a browser's image request would be answered but without
the body; where HEAD is not allowed (405/501, some CDNs) a one-byte ranged GET stands in.
No key is sent: public URLs must work without one. Requests run with bounded concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import anyio
from yarl import URL

HEAD_REFUSED = (405, 501)


@dataclass(slots=True, frozen=True)
class UrlFailure:
    url: str
    answer: str  # "HTTP 400", or the connection error


async def check_urls(
    urls: Sequence[str], *, concurrency: int = 16, timeout_s: float = 15.0
) -> list[UrlFailure]:
    """The URLs that did not answer 200 (206 to the ranged GET), in the order given."""
    failures: dict[int, UrlFailure] = {}
    limiter = anyio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def check(i: int, url: str) -> None:
            async with limiter:
                answer = await _ask(session, url)
            if answer is not None:
                failures[i] = UrlFailure(url, answer)

        async with anyio.create_task_group() as tg:
            for i, url in enumerate(urls):
                tg.start_soon(check, i, url)
    return [failures[i] for i in sorted(failures)]


async def _ask(session: aiohttp.ClientSession, url: str) -> str | None:
    """None when `url` works, else what it answered."""
    # The URL is already percent-encoded: send it exactly as the app would.
    target = URL(url, encoded=True)
    try:
        async with session.head(target, allow_redirects=True) as response:
            status = response.status
        if status in HEAD_REFUSED:
            ranged = {"Range": "bytes=0-0"}
            async with session.get(target, headers=ranged, allow_redirects=True) as response:
                status = response.status
                if status in (200, 206):
                    return None
        elif status == 200:
            return None
        return f"HTTP {status}"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}".rstrip(": ")
