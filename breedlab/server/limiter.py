"""Bounded concurrency: at most N requests generating, at most Q waiting, the rest refused at once.

Generation is CPU-bound, so more parallel requests only make every one of them
slower; a short queue absorbs bursts, and past it a client is better served by
an immediate 429 (retry later) than by a long wait. All bookkeeping runs on the
event loop thread (no lock needed); a ``Slot`` is released exactly once however
the request ends (finished, failed, client gone).
"""

from __future__ import annotations

import asyncio


class QueueFull(Exception):
    """Every slot is busy and the waiting queue is full."""


class SlotTimeout(Exception):
    """The request waited for a slot longer than allowed."""


class Slot:
    """One held generation slot; ``release`` is idempotent."""

    def __init__(self, limiter: Limiter):
        self._limiter, self._held = limiter, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter._release()


class Limiter:
    def __init__(self, max_concurrency: int, queue_limit: int, metrics=None):
        self.max_concurrency, self.queue_limit, self.metrics = max_concurrency, queue_limit, metrics
        self.running = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(max_concurrency)

    async def acquire(self, timeout: float) -> Slot:
        """A slot, waiting at most ``timeout`` seconds; QueueFull at once when the queue is full."""
        if self.running >= self.max_concurrency and self.waiting >= self.queue_limit:
            raise QueueFull(f"{self.running} requests generating and {self.waiting} waiting (limit "
                            f"{self.queue_limit}); retry later")
        self.waiting += 1
        self._gauge()
        try:
            await asyncio.wait_for(self._free.acquire(), timeout)
        except TimeoutError:
            raise SlotTimeout(f"no generation slot within {timeout:.0f} s") from None
        finally:
            self.waiting -= 1
        self.running += 1
        self._gauge()
        return Slot(self)

    def _release(self) -> None:
        self.running -= 1
        self._free.release()
        self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.inflight.set(self.running)
            self.metrics.waiting.set(self.waiting)
