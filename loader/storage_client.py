"""A small async client for the Supabase Storage REST API (the calls the loader needs).

Facts it is built on (docs/storage.md): errors come back as HTTP 400 with the real status
in the JSON body; an unknown bucket or prefix lists as `200 []`; v1 `limit` is silently capped
at 1500; v2 may be missing on older servers. Transient failures (429, 5xx, 544, timeouts,
resets, truncated JSON) are retried with exponential backoff and full jitter, honouring
`Retry-After`; other 4xx are not.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
import orjson

from loader.errors import (
    BucketNotFoundError,
    LoaderError,
    StorageAuthError,
    StorageUnreachableError,
)
from loader.retry import RetryPolicy

V1_PAGE_CAP = 1500
V2_PAGE_CAP = 1000


class TransientStorageError(LoaderError):
    """A failure worth retrying; raised as StorageUnreachableError once retries run out."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageRequestError(LoaderError):
    """A 4xx answer that retrying will not change (bad request, not found, ...)."""

    def __init__(self, message: str, status: str, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(slots=True)
class ClientStats:
    calls: int = 0
    retries: int = 0


class RateLimiter:
    """At most `rate` request starts per second across all tasks (`--max-rps`)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = anyio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        await anyio.sleep(start - now)


def jwt_role(key: str) -> str | None:
    """The `role` claim of a JWT key (no signature check), or None if the key is not a JWT.

    New-style Supabase secret keys (`sb_secret_...`) are not JWTs and carry no role.
    """
    parts = key.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class StorageClient:
    """One keep-alive HTTP session against one Storage base URL.

    `base_url` is the Storage API root (e.g. `https://x.supabase.co/storage/v1` or a bare
    Storage server); use `resolve_base_url` to accept a Supabase project URL as well.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        connections: int = 32,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry or RetryPolicy()
        # Shared by every client of one command, so `--max-rps` holds across all of them.
        self._limiter = limiter
        self.stats = ClientStats()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StorageClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300),
            headers={"Authorization": f"Bearer {self._key}", "apikey": self._key},
            timeout=self._timeout,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    # -- public calls -------------------------------------------------------------------

    async def get_bucket(self, bucket: str) -> dict[str, Any]:
        """The bucket's record; BucketNotFoundError if it does not exist."""
        try:
            return await self._call("GET", f"/bucket/{quote(bucket, safe='')}", None)
        except StorageRequestError as exc:
            if exc.status == "404" or exc.code in ("NoSuchBucket", "not_found"):
                raise BucketNotFoundError(f"bucket {bucket!r} does not exist") from None
            raise

    async def list_v1(self, bucket: str, prefix: str, *, limit: int, offset: int) -> list[Any]:
        """One page of one level under `prefix` (folders have `id` null)."""
        body = {
            "prefix": prefix,
            "limit": limit,
            "offset": offset,
            "sortBy": {"column": "name", "order": "asc"},
        }
        page = await self._call("POST", f"/object/list/{quote(bucket, safe='')}", body)
        if not isinstance(page, list):
            raise TransientStorageError("v1 list answered with something other than a list")
        return page

    async def list_v2(
        self, bucket: str, prefix: str, *, cursor: str | None, limit: int, delimiter: bool
    ) -> dict[str, Any]:
        """One cursor page of the v2 list (recursive when `delimiter` is False)."""
        body: dict[str, Any] = {"prefix": prefix, "limit": limit, "with_delimiter": delimiter}
        if cursor:
            body["cursor"] = cursor
        page = await self._call("POST", f"/object/list-v2/{quote(bucket, safe='')}", body)
        if not isinstance(page, dict) or not isinstance(page.get("objects"), list):
            raise TransientStorageError("v2 list answered without an objects array")
        return page

    # -- plumbing -----------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await self._once(method, path, body)
            except TransientStorageError as exc:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise StorageUnreachableError(
                        f"{method} {path} failed after {attempt} attempts: {exc}"
                    ) from None
                self.stats.retries += 1
                await anyio.sleep(self.retry.delay(attempt, exc.retry_after))

    async def _once(self, method: str, path: str, body: Any) -> Any:
        assert self._session is not None, "use StorageClient as an async context manager"
        if self._limiter is not None:
            await self._limiter.wait()
        self.stats.calls += 1
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(
                method, self.base_url + path, data=data, headers=headers
            ) as response:
                raw = await response.read()
                return self._decode(response.status, response.headers, raw)
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise TransientStorageError(f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            raise TransientStorageError(
                f"cannot connect to {self._host()}: {exc.os_error}"
            ) from None
        except aiohttp.ClientError as exc:
            raise TransientStorageError(f"{type(exc).__name__}: {exc}") from None

    def _host(self) -> str:
        return urlsplit(self.base_url).netloc

    def _decode(self, status: int, headers: Any, raw: bytes) -> Any:
        try:
            payload = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            # A 200 with a cut-off body is a broken transfer, not an answer.
            if status < 500 and status not in (429, 404):
                raise TransientStorageError(f"invalid JSON in a {status} response") from None
            payload = None
        if status == 200:
            return payload
        body_status, code, message = _error_fields(payload)
        if status == 429 or status >= 500 or body_status in ("429", "500", "503", "544"):
            raise TransientStorageError(
                f"HTTP {status} {code or ''} {message or ''}".strip(), _retry_after(headers)
            )
        if status == 404 and body_status is None:
            # A gateway or framework 404 (no Storage error body): this route does not exist.
            raise StorageRequestError(
                f"no Storage API at {self.base_url} (HTTP 404)", status="route", code=None
            )
        effective = body_status or str(status)
        if effective in ("401", "403") or code in ("AccessDenied", "InvalidJWT"):
            raise StorageAuthError(
                f"Storage rejected the key ({code or effective}: {message or 'unauthorized'});"
                " pass the project's service-role key with --key or SUPABASE_SERVICE_ROLE_KEY"
            )
        raise StorageRequestError(
            f"Storage answered {effective} {code or ''}: {message or 'no message'}",
            status=effective,
            code=code,
        )


def _error_fields(payload: Any) -> tuple[str | None, str | None, str | None]:
    if not isinstance(payload, dict):
        return None, None, None
    status = payload.get("statusCode")
    return (
        str(status) if status is not None else None,
        payload.get("code") or payload.get("error"),
        payload.get("message"),
    )


async def resolve_base_url(url: str, key: str, bucket: str, **client_options: Any) -> str:
    """The Storage API root for `url`, which may be a Supabase project URL or a Storage root.

    A URL already ending in `/storage/v1` is used as is. Otherwise `{url}/storage/v1` is tried
    first (hosted and self-hosted Supabase behind their gateway), then `url` itself (a bare
    Storage server), by asking each for the bucket.
    """
    base = url.rstrip("/")
    if base.endswith("/storage/v1"):
        return base
    for candidate in (f"{base}/storage/v1", base):
        async with StorageClient(candidate, key, **client_options) as client:
            try:
                await client.get_bucket(bucket)
            except StorageRequestError as exc:
                if exc.status == "route":
                    continue
                raise
            return candidate
    raise StorageUnreachableError(f"no Storage API found at {url} (tried /storage/v1 and root)")
