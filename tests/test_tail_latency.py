"""Tail latency: a stalled Storage response is cut short or raced, never waited out.

The servers here stall every Nth response for far longer than a test may run (`STALL_S`,
beyond the tests' own timeouts), with `--request-timeout` as long: a stall that was waited
out fails its test by timeout. That is a bound, not a timing assertion; the counts say how
each stall was cut short.
"""

from __future__ import annotations

import anyio
import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.devtools.storage_server import STATS, Faults, build_app
from loader.listing import SourceOptions
from loader.migrate import MigrateOptions, migrate
from loader.storage_client import (
    HEDGE_SHARE,
    MIN_SAMPLES,
    STALL_FLOOR_S,
    RateLimiter,
    StorageClient,
    hedge_delay,
    stall_deadline,
)
from tests.sample import media_names, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, ServeStorageApp, catalogue_of

STALL_S = 60.0  # a stall outlasts every test of this file
TIMEOUT_S = STALL_S  # --request-timeout: only a cut or a hedge ends a stall sooner


@pytest.mark.slow  # ~7 s: a migration listing 1,700 objects ten at a time, with stalls
@pytest.mark.timeout(STALL_S / 2)
async def test_stalls_are_cut_short_and_the_migration_is_exact(
    serve_storage_app: ServeStorageApp, db: asyncpg.Connection, db_url: str
) -> None:
    app = build_app(sample_catalogue(), bucket=STORAGE_BUCKET, key=STORAGE_KEY,
                    faults=Faults(stall_every=5, stall_s=STALL_S))  # fmt: skip
    url = await serve_storage_app(app)
    # v1 with small pages: many calls, so the client learns the server's latency and both
    # the deadline and the hedges come into play.
    source = SourceOptions(bucket=STORAGE_BUCKET, storage_url=url, key=STORAGE_KEY,
                           list_api="v1", page_size=10, list_concurrency=4,
                           request_timeout_s=TIMEOUT_S)  # fmt: skip
    result = await migrate(MigrateOptions(source=source, database_url=db_url, batch_size=100,
                                          match="none"))  # fmt: skip
    assert result.status == "succeeded"
    rows = await db.fetch("SELECT file_path FROM image_assets")
    assert sorted(r["file_path"] for r in rows) == sorted(media_names())
    stalls = app[STATS].faults["stall"]
    counts = result.requests
    assert stalls >= 5, "the listing made too few calls to test anything"
    # Each stalled request was cut (an early retry ends one, or a racing pair) or raced by
    # a hedge that answered first (or was itself the stalled one).
    assert counts.early_retries + counts.hedges >= stalls
    assert counts.early_retries >= 1 and counts.hedges_won >= 1
    assert counts.retries == counts.early_retries  # nothing waited for the request timeout
    assert counts.hedges <= HEDGE_SHARE * (counts.calls - counts.hedges) + 1


class CountingLimiter(RateLimiter):
    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.waits = 0

    async def wait(self) -> None:
        self.waits += 1
        await super().wait()


@pytest.mark.slow  # ~1 s: forty calls with stalls
@pytest.mark.timeout(STALL_S / 2)
async def test_hedges_wait_their_turn_under_max_rps_and_keep_to_their_budget(
    serve_storage_app: ServeStorageApp,
) -> None:
    names = [f"originals/customers/c{i:02d}/a.jpg" for i in range(40)]
    app = build_app(catalogue_of(names), bucket=STORAGE_BUCKET, key=STORAGE_KEY,
                    faults=Faults(stall_every=4, stall_s=STALL_S))  # fmt: skip
    url = await serve_storage_app(app)
    limiter = CountingLimiter(rate=2_000)
    async with StorageClient(url, STORAGE_KEY, connections=4, timeout_s=TIMEOUT_S,
                             limiter=limiter) as client:  # fmt: skip

        async def list_some(start: int) -> None:
            for i in range(start, len(names), 4):
                page = await client.list_v1(STORAGE_BUCKET, f"originals/customers/c{i:02d}/",
                                            limit=10, offset=0)  # fmt: skip
                assert [e["name"] for e in page] == ["a.jpg"]

        async with anyio.create_task_group() as tg:
            for start in range(4):
                tg.start_soon(list_some, start)
    stats = client.stats
    assert app[STATS].faults["stall"] >= 5
    assert stats.hedges >= 1
    # Every request, hedges included, took its turn (a hedge cancelled while waiting for it
    # took one and sent nothing).
    assert limiter.waits >= stats.calls
    assert stats.hedges <= HEDGE_SHARE * (stats.calls - stats.hedges) + 1


# -- the pure thresholds --------------------------------------------------------------------

latency = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)
samples_of = st.lists(latency, min_size=0, max_size=3 * MIN_SAMPLES)
factor = st.floats(min_value=1.0, max_value=100.0, allow_nan=False)
ceiling = st.floats(min_value=0.1, max_value=600.0, allow_nan=False)


@given(samples_of, factor, ceiling)
def test_the_deadline_lies_between_the_floor_and_the_request_timeout(
    samples: list[float], k: float, top: float
) -> None:
    deadline = stall_deadline(samples, k, top)
    assert min(STALL_FLOOR_S, top) <= deadline <= top
    if len(samples) < MIN_SAMPLES:
        assert deadline == top  # nothing known yet: the request timeout
    assert stall_deadline(samples, None, top) == top  # --stall-factor off


@given(samples_of, st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=3 * MIN_SAMPLES,
                            max_size=3 * MIN_SAMPLES), factor, factor, ceiling)  # fmt: skip
def test_the_deadline_and_the_hedge_delay_grow_with_the_latencies_and_the_factor(
    samples: list[float], more: list[float], k: float, extra: float, top: float
) -> None:
    slower = [s + m for s, m in zip(samples, more, strict=False)]  # each sample no faster
    assert stall_deadline(slower, k, top) >= stall_deadline(samples, k, top)
    assert stall_deadline(samples, k + extra, top) >= stall_deadline(samples, k, top)
    hedge, hedge_slower = hedge_delay(samples, k), hedge_delay(slower, k)
    assert hedge is not None and hedge_slower is not None
    assert hedge_slower >= hedge
    assert hedge_delay(samples, None) is None  # --hedge-after off
    if len(samples) < MIN_SAMPLES:
        assert hedge == STALL_FLOOR_S  # nothing known yet: hedged after the floor
