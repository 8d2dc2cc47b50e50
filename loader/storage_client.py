"""A small async client for the Supabase Storage REST API (the calls the loader needs).

Facts it is built on (docs/storage.md): errors come back as HTTP 400 with the real status
in the JSON body; an unknown bucket or prefix lists as `200 []`; v1 `limit` is silently capped
at 1500; v2 may be missing on older servers. Transient failures (429, 5xx, 544, timeouts,
resets, truncated JSON) are retried with exponential backoff and full jitter, honouring
`Retry-After`; other 4xx are not.

A stalled response costs a small multiple of the server's usual latency, not the request
timeout (docs/performance.md, "Stalled Storage responses"). Each client keeps the latencies
of its recent successful requests: a request still running at `hedge_after` × their p95 is
raced by one identical request (every call of this client is a read), the first whole answer
wins and the other is cancelled; an attempt still running at `stall_factor` × their p99 is
cut and sent again at once.
"""

from __future__ import annotations

import base64
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import anyio
import msgspec
import orjson

from loader.errors import (
    BucketNotFoundError,
    ExitCode,
    LoaderError,
    StorageAuthError,
    StorageUnreachableError,
)
from loader.redact import redact_url
from loader.retry import RetryPolicy
from loader.storage_objects import MalformedPageError, V2Page, decode_v1_page, decode_v2_page

V1_PAGE_CAP = 1500
V2_PAGE_CAP = 1000


class TransientStorageError(LoaderError):
    """A failure worth retrying; raised as StorageUnreachableError once retries run out."""

    exit_code = ExitCode.STORAGE_UNREACHABLE

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageRequestError(LoaderError):
    """A 4xx answer that retrying will not change (bad request, not found, ...)."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, status: str, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(slots=True)
class ClientStats:
    """Requests of one client. `calls` counts every request sent (hedges included);
    `retries` every attempt after a call's first (early ones included); `early_retries`
    attempts cut at the stall deadline and sent again at once; `hedges` racing requests sent,
    `hedges_won` those whose answer was used."""

    calls: int = 0
    retries: int = 0
    early_retries: int = 0
    hedges: int = 0
    hedges_won: int = 0


# -- tail latency ------------------------------------------------------------------------
# The flags' defaults, measured with benchmarks/bench_e2e.py --stall-rate (docs/performance.md).
STALL_FACTOR = 2.0  # an attempt is cut at this multiple of the recent p99 ...
STALL_FLOOR_S = 0.25  # ... but never sooner: a fast server's jitter is no stall
HEDGE_AFTER = 2.0  # a read is raced at this multiple of the recent p95
# Hedges per request of the client that is not one, plus one to start with (the first
# requests of a run come before any budget): a server that is slow as a whole gets a tenth
# more load, not double.
HEDGE_SHARE = 0.1
# A call's first FREE_CUTS cuts leave its deadline as it is: a stall is as likely on a retry
# as on any request. Each further cut, and any "quiet" cut (no answer came while it ran,
# though other requests were running: the server is slow as a whole), gives the call's next
# attempts CUT_STRETCH times the time. So a call slow by itself (a heavy listing) gets through
# after a few cuts, and a server slow as a whole is sent each request about twice, not six
# times, before the window learns its new latencies.
FREE_CUTS = 2
CUT_STRETCH = 2.0
LATENCY_WINDOW = 256  # recent successful requests whose latencies set both thresholds
# A latency quantile is never taken above this many medians of the window: one stall that
# did answer (30 s among 0.1 s answers) is the p99 of any window under 100 answers, and no
# stall after it would be cut. A server slow as a whole moves the median as well.
MEDIAN_CAP = 5.0
# Fewer samples than this: only the request timeout cuts, and a request is hedged after
# STALL_FLOOR_S (nothing is known of the server yet).
MIN_SAMPLES = 10
# A running attempt re-reads its thresholds this often: the first requests of a run start
# before any sample exists, and must not wait for the request timeout once samples do.
RECHECK_S = 0.25


@dataclass(slots=True, frozen=True)
class TailPolicy:
    """`--stall-factor` and `--hedge-after`; None turns either off."""

    stall_factor: float | None = STALL_FACTOR
    hedge_after: float | None = HEDGE_AFTER


def tail_latency(samples: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile of `samples` (not empty), at most MEDIAN_CAP × their
    median."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return min(rank(q), MEDIAN_CAP * rank(0.5))


def stall_deadline(samples: Sequence[float], factor: float | None, ceiling_s: float) -> float:
    """Seconds an attempt may run before it is cut: `factor` × the p99 of `samples` (recent
    successful latencies, `tail_latency`), at least STALL_FLOOR_S, at most `ceiling_s` (the
    request timeout), which also applies with fewer than MIN_SAMPLES samples or with `factor`
    None."""
    if factor is None or len(samples) < MIN_SAMPLES:
        return ceiling_s
    return min(ceiling_s, max(STALL_FLOOR_S, factor * tail_latency(samples, 0.99)))


def hedge_delay(samples: Sequence[float], after: float | None) -> float | None:
    """Seconds after which a request is raced by a hedge: `after` × the p95 of `samples`,
    STALL_FLOOR_S with fewer than MIN_SAMPLES samples; None (never) with `after` None."""
    if after is None:
        return None
    if len(samples) < MIN_SAMPLES:
        return STALL_FLOOR_S
    return after * tail_latency(samples, 0.95)


async def _connected(session: Any, ctx: Any, params: Any) -> None:
    """A request got its connection (new or kept alive): its latency sample starts here, not
    while it waited for a free connection of the pool (behind hedges, say)."""
    if ctx.trace_request_ctx is not None:
        ctx.trace_request_ctx["connected"] = time.monotonic()


class _Cut(Exception):
    """An attempt ran past its stall deadline and was cancelled; `quiet` when the client got
    no answer at all while it ran, though other attempts were under way."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet


@dataclass(slots=True)
class _Answer:
    """What one racing request came back with: a decoded page, or the error it raised."""

    hedge: bool
    value: Any = None
    error: Exception | None = None


@dataclass(slots=True)
class _Race:
    """The answers of one attempt's requests, as they come (an anyio.Event is not reset:
    `arrived` is replaced once its answers are read)."""

    answers: list[_Answer] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def report(self, answer: _Answer) -> None:
        self.answers.append(answer)
        self.arrived.set()


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


@dataclass(slots=True, frozen=True)
class KeyKind:
    """What a key says about itself: `service` is True when it is known to bypass row-level
    security (a JWT with role service_role, or an `sb_secret_` key), False when it is known
    not to (another JWT role, an `sb_publishable_` key), None when nothing is known.

    `sb_api_key` marks Supabase's new API keys (`sb_secret_`, `sb_publishable_`): they are not
    JWTs, and only Supabase's hosted API gateway translates them into JWTs for Storage; a
    Storage server reached without that gateway verifies every key as a JWT."""

    label: str
    service: bool | None
    sb_api_key: bool = False

    def __str__(self) -> str:
        return self.label


def key_kind(key: str) -> KeyKind:
    """Recognise Supabase's key kinds; the key itself never appears in the result."""
    if key.startswith("sb_secret_"):
        return KeyKind("an sb_secret_ key", True, sb_api_key=True)
    if key.startswith("sb_publishable_"):
        return KeyKind("a publishable (sb_publishable_) key", False, sb_api_key=True)
    role = jwt_role(key)
    if role is None:
        return KeyKind("a key that is neither a JWT nor an sb_ API key", None)
    return KeyKind(f"a JWT with role {role!r}", role == "service_role")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class StorageClient:
    """One keep-alive HTTP session against one Storage base URL.

    `base_url` is the Storage API root (e.g. `https://x.supabase.co/storage/v1` or a bare
    Storage server); `resolve_base_url` finds it for any URL form the user gives.
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
        tail: TailPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        # The connector's limit: hedges wait for a free connection like any request.
        self._connections = connections
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry or RetryPolicy()
        # Shared by every client of one command, so `--max-rps` holds across all of them.
        self._limiter = limiter
        self.tail = tail or TailPolicy()
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._answered_at = -math.inf  # when the latest answer came (time.monotonic)
        self._running = 0  # attempts under way
        self.stats = ClientStats()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StorageClient:
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(_connected)
        trace.on_connection_reuseconn.append(_connected)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300),
            headers={"Authorization": f"Bearer {self._key}", "apikey": self._key},
            timeout=self._timeout,
            trace_configs=[trace],
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
                raise BucketNotFoundError(
                    f"bucket {bucket!r} does not exist at {redact_url(self.base_url)}"
                ) from exc
            raise

    async def list_v1(
        self, bucket: str, prefix: str, *, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """One page of one level under `prefix`: entries with a string `name` (folders have
        `id` null)."""
        body = {
            "prefix": prefix,
            "limit": limit,
            "offset": offset,
            "sortBy": {"column": "name", "order": "asc"},
        }
        path = f"/object/list/{quote(bucket, safe='')}"
        return await self._call("POST", path, body, decode_v1_page)

    async def list_v2(
        self, bucket: str, prefix: str, *, cursor: str | None, limit: int, delimiter: bool
    ) -> V2Page:
        """One cursor page of the v2 list (recursive when `delimiter` is False)."""
        body: dict[str, Any] = {"prefix": prefix, "limit": limit, "with_delimiter": delimiter}
        if cursor:
            body["cursor"] = cursor
        path = f"/object/list-v2/{quote(bucket, safe='')}"
        return await self._call("POST", path, body, decode_v2_page)

    # -- plumbing -----------------------------------------------------------------------

    def counts(self) -> ClientStats:
        """A copy of the request counts so far."""
        return replace(self.stats)

    async def _call(
        self, method: str, path: str, body: Any, decode: Callable[[bytes], Any] | None = None
    ) -> Any:
        """One call with retries; `decode` reads a 200 answer (default: any JSON)."""
        attempt = 0
        cuts = stretch = 0
        while True:
            try:
                return await self._attempt(method, path, body, decode, stretch)
            except _Cut as cut:
                # Sent again at once. Cuts do not use up `--retries`: they stretch the
                # deadline (FREE_CUTS, CUT_STRETCH), which reaches the request timeout.
                cuts += 1
                if cut.quiet or cuts > FREE_CUTS:
                    stretch += 1
                self.stats.retries += 1
                self.stats.early_retries += 1
            except TransientStorageError as exc:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise StorageUnreachableError(
                        f"{method} {path} failed after {attempt} attempts: {exc}"
                    ) from exc
                self.stats.retries += 1
                await anyio.sleep(self.retry.delay(attempt, exc.retry_after))

    async def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        decode: Callable[[bytes], Any] | None,
        stretch: int,
    ) -> Any:
        """One attempt: the request, raced by at most one hedge once it runs past the hedge
        delay, and cut (`_Cut`) once its latest request runs past the stall deadline
        (`_cut_after`): a hedge is a fresh request and gets the whole deadline. Both
        thresholds are re-read while it runs, as samples arrive. The first whole answer
        wins; a transient failure of one racer leaves the other running."""
        await self._pace()
        started = latest = time.monotonic()
        race = _Race()
        answer: _Answer | None = None
        racing, hedged = 1, False
        self._running += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._race, race, method, path, body, decode, False)
                while answer is None:
                    now = time.monotonic()
                    cut_at = latest + self._cut_after(stretch)
                    if now >= cut_at:
                        break
                    hedge_at = math.inf
                    if not hedged:
                        delay = hedge_delay(self.latencies, self.tail.hedge_after)
                        hedge_at = started + delay if delay is not None else math.inf
                        if now >= hedge_at and self._may_hedge():
                            hedged, racing, latest = True, racing + 1, now
                            self.stats.hedges += 1
                            tg.start_soon(self._race, race, method, path, body, decode, True)
                            continue
                    wake = min(cut_at, hedge_at if hedge_at > now else math.inf,
                               now + RECHECK_S)  # fmt: skip
                    with anyio.move_on_after(wake - now):
                        await race.arrived.wait()
                    while race.answers and answer is None:
                        got = race.answers.pop(0)
                        racing -= 1
                        if got.error is None or racing == 0:
                            answer = got
                        elif not isinstance(got.error, TransientStorageError):
                            answer = got  # settled: another answer would say the same
                    if race.arrived.is_set():
                        race.arrived = anyio.Event()
                if racing:
                    tg.cancel_scope.cancel()  # the loser, or the racers of a cut attempt
        finally:
            self._running -= 1
        if answer is None:
            # Others running (not only this call, at the end of a run) and none answered.
            raise _Cut(quiet=self._running > 0 and self._answered_at < started)
        if answer.error is not None:
            raise answer.error
        if answer.hedge:
            self.stats.hedges_won += 1
        return answer.value

    def _cut_after(self, stretch: int) -> float:
        """Seconds an attempt may run after `stretch` stretching cuts of its call; math.inf when
        only the request timeout cuts it (then a normal, counted attempt)."""
        deadline = stall_deadline(self.latencies, self.tail.stall_factor, self._timeout_s)
        deadline *= CUT_STRETCH**stretch
        return deadline if deadline < self._timeout_s else math.inf

    def _may_hedge(self) -> bool:
        """Within the budget once this hedge is counted: HEDGE_SHARE hedges per request that
        is not one, plus one."""
        return self.stats.hedges <= HEDGE_SHARE * (self.stats.calls - self.stats.hedges)

    async def _race(
        self,
        race: _Race,
        method: str,
        path: str,
        body: Any,
        decode: Callable[[bytes], Any] | None,
        hedge: bool,
    ) -> None:
        """One request of an attempt, its answer or error sent to `_attempt` (which raises
        errors outside its task group, so callers see them as they are)."""
        if hedge:
            await self._pace()  # a hedge is a request like any other under `--max-rps`
        timing = {"connected": time.monotonic()}  # `_connected` moves it on
        try:
            value = await self._once(method, path, body, decode, timing)
        except Exception as exc:
            race.report(_Answer(hedge, error=exc))
        else:
            self._answered_at = time.monotonic()
            self.latencies.append(self._answered_at - timing["connected"])
            race.report(_Answer(hedge, value))

    async def _pace(self) -> None:
        if self._limiter is not None:
            await self._limiter.wait()

    async def _once(
        self,
        method: str,
        path: str,
        body: Any,
        decode: Callable[[bytes], Any] | None,
        timing: dict[str, float],
    ) -> Any:
        assert self._session is not None, "use StorageClient as an async context manager"
        self.stats.calls += 1
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(
                method, self.base_url + path, data=data, headers=headers, trace_request_ctx=timing
            ) as response:
                raw = await response.read()
                return self._decode(response.status, response.headers, raw, decode)
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise TransientStorageError(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientStorageError(
                f"cannot connect to {self._host()}: {exc.os_error}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransientStorageError(f"{type(exc).__name__}: {exc}") from exc

    def _host(self) -> str:
        return urlsplit(self.base_url).netloc

    def _decode(
        self, status: int, headers: Any, raw: bytes, decode: Callable[[bytes], Any] | None
    ) -> Any:
        if status == 200 and decode is not None:
            try:
                return decode(raw)
            except (msgspec.DecodeError, orjson.JSONDecodeError) as exc:
                raise TransientStorageError("invalid JSON in a 200 response") from exc
            except MalformedPageError as exc:
                raise TransientStorageError(str(exc)) from exc
        try:
            payload = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            # A 200 with a cut-off body is a broken transfer, not an answer.
            if status < 500 and status not in (429, 404):
                raise TransientStorageError(f"invalid JSON in a {status} response") from exc
            payload = None
        if status == 200:
            return payload
        body_status, code, message = _error_fields(payload)
        if status == 429 or status >= 500 or body_status in ("429", "500", "503", "544"):
            raise TransientStorageError(
                f"HTTP {status} {code or ''} {message or ''}".strip(), _retry_after(headers)
            )
        if _route_not_found(status, payload):
            raise StorageRequestError(
                f"HTTP 404 {message or 'not found'}".strip(), status="route", code=None
            )
        effective = body_status or str(status)
        if effective in ("401", "403") or code in ("AccessDenied", "InvalidJWT"):
            raise StorageAuthError(_refusal(key_kind(self._key), code or effective, message))
        raise StorageRequestError(
            f"Storage answered {effective} {code or ''}: {message or 'no message'}",
            status=effective,
            code=code,
        )


def _refusal(kind: KeyKind, code: str, message: str | None) -> str:
    """Why Storage refused the key, and which key to pass instead.

    An sb_ API key refused with an answer about JWTs met a server that verifies every key as
    a JWT (a self-hosted Storage with no gateway in front): the real server answers a key
    that is not a JWT with HTTP 400 `{"statusCode":"403","code":"AccessDenied","message":
    "Invalid Compact JWS"}` (jose; "jwt malformed" before it switched from jsonwebtoken in
    2025), and signed-URL routes say `InvalidJWT`. Such a server takes the JWT service-role
    key only.
    """
    detail = f"{code}: {message or 'unauthorized'}"
    if kind.sb_api_key and _about_jwts(code, message):
        return (
            f"Storage rejected the key ({detail}): this server accepts only JWTs, and"
            f" {kind} is not one (only Supabase's hosted API gateway translates sb_ API keys"
            " into JWTs); pass the JWT service-role key instead, the eyJ... service_role key"
            " from the project's API settings (SERVICE_ROLE_KEY in a self-hosted setup), with"
            " --key or SUPABASE_SERVICE_ROLE_KEY"
        )
    return (
        f"Storage rejected the key ({detail});"
        " pass the project's service-role key with --key or SUPABASE_SERVICE_ROLE_KEY"
    )


def _about_jwts(code: str, message: str | None) -> bool:
    """The refusal speaks of JWTs (or JWS, their signed form): the server parsed the key as
    one. A gateway refusing an unknown API key says nothing of the kind."""
    text = f"{code} {message or ''}".lower()
    return "jwt" in text or "jws" in text


def _error_fields(payload: Any) -> tuple[str | None, str | None, str | None]:
    if not isinstance(payload, dict):
        return None, None, None
    status = payload.get("statusCode")
    return (
        str(status) if status is not None else None,
        payload.get("code") or payload.get("error"),
        payload.get("message"),
    )


def _route_not_found(status: int, payload: Any) -> bool:
    """An HTTP 404 saying the route does not exist, as opposed to a Storage error.

    Storage errors carry `statusCode` as a string. The framework's own 404 for a path outside
    Storage's routes carries it as a number; the Supabase gateway's has none
    (`no Route matched with those values`); a plain-text 404 has no JSON at all. Inside its
    route groups Storage answers `Route METHOD:/path not found` with a string statusCode.
    """
    if status != 404:
        return False
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), str):
        return True
    message = payload.get("message")
    return isinstance(message, str) and message.startswith("Route ")


STORAGE_PATH = "/storage/v1"


def url_forms(url: str) -> list[str]:
    """The Storage API roots `url` may stand for, the likelier first.

    A Supabase project URL serves Storage under `/storage/v1` (behind the gateway); a bare
    Storage server serves the same routes at its root. A URL already ending in `/storage/v1`
    is a gateway URL, or a bare server given the wrong form.
    """
    base = url.strip().rstrip("/")
    if base.endswith(STORAGE_PATH):
        return [base, base[: -len(STORAGE_PATH)]]
    return [base + STORAGE_PATH, base]


def public_url_base(api_root: str, bucket: str) -> str:
    """Where a bucket's public objects live: `{api_root}/object/public/{bucket}`, without any
    credentials that were in the URL."""
    parts = urlsplit(api_root.rstrip("/"))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    root = urlunsplit(parts._replace(netloc=netloc))
    return f"{root}/object/public/{quote(bucket, safe='')}"


@dataclass(slots=True, frozen=True)
class ResolvedBase:
    """The Storage API root that answered, and the bucket's record when the key could read
    it (`public` tells whether its public URLs work)."""

    url: str
    bucket: dict[str, Any] | None


async def resolve_base_url(
    url: str, key: str | None, bucket: str, **client_options: Any
) -> ResolvedBase:
    """Find the Storage API root behind `url` by asking each form (`url_forms`) for the bucket.

    A route-not-found 404 means "wrong form, try the next"; any Storage answer settles it.
    With a key, the bucket must exist (`BucketNotFoundError`) and the key must be accepted.
    Without a key (only the public URL base is needed), a refusal still proves the root.
    When no form answers: `StorageUnreachableError` naming every URL tried and why.
    """
    tried: list[str] = []
    dead_hosts: set[str] = set()
    for candidate in url_forms(url):
        probe = redact_url(f"{candidate}/bucket/{quote(bucket, safe='')}")
        host = urlsplit(candidate).netloc
        if host in dead_hosts:
            tried.append(f"{probe} (not tried: host unreachable)")
            continue
        async with StorageClient(candidate, key or "", **client_options) as client:
            try:
                record = await client.get_bucket(bucket)
            except StorageRequestError as exc:
                if exc.status != "route":
                    if key:
                        raise
                    return ResolvedBase(candidate, None)
                tried.append(f"{probe} ({exc})")
                continue
            except StorageUnreachableError as exc:
                tried.append(f"{probe} ({exc})")
                dead_hosts.add(host)
                continue
            except (StorageAuthError, BucketNotFoundError):
                if key:
                    raise
                return ResolvedBase(candidate, None)
        return ResolvedBase(candidate, record if isinstance(record, dict) else None)
    raise StorageUnreachableError(
        f"no Storage API answers at {redact_url(url)}; tried: {'; '.join(tried)}"
    )
