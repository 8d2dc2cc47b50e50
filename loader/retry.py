"""The one retry policy: how many attempts, and how long to wait between them.

Storage calls and database calls both retry transient failures with exponential backoff and
full jitter (a random wait up to the doubled ceiling, so many workers that failed together
do not retry together). A server's `Retry-After` is a floor, never shortened.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Attempts per call, first one included (also the default of `--retries`).
ATTEMPTS = 6


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    attempts: int = ATTEMPTS
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 0)."""
        backoff = random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        return max(backoff, retry_after or 0.0)
