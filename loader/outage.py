"""Telling a dead Storage server from failing folders.

A folder whose listing still fails after all its retries is normally recorded and the run goes
on. But when the server as a whole is gone, every folder would spend its full retries before
failing: most of an hour on a large bucket before the user learns the server is down. So the
walk counts folders that failed as unreachable with no page listed in between; at `limit` of
them it stops with `StorageUnreachableError` (exit 6), leaving the run resumable. The number
of requests spent is then bounded by (limit + concurrency) × retries, whatever the folder
count.
"""

from __future__ import annotations

from dataclasses import dataclass

from loader.errors import StorageUnreachableError


@dataclass(slots=True)
class OutageDetector:
    limit: int
    in_a_row: int = 0

    @classmethod
    def for_concurrency(cls, concurrency: int) -> OutageDetector:
        # Every concurrent walk may hit the outage at once: wait for more failures than there
        # are walks, so one slow folder never trips it, and at least three.
        return cls(limit=max(3, concurrency + 1))

    def listed(self) -> None:
        """A page came back: the server is alive."""
        self.in_a_row = 0

    def failed(self, folder: str, error: StorageUnreachableError) -> None:
        """A folder failed as unreachable; raises once the server looks down as a whole."""
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise StorageUnreachableError(
                f"the Storage server looks down: {self.in_a_row} folders in a row failed after"
                f" all their retries, with nothing listed in between (last: {folder!r}: {error});"
                " check the server and the network"
            ) from error
