"""A de-duplicating work queue: a burst of events for one cluster becomes one reconcile, and
no cluster is reconciled by two workers at once (the controller-runtime discipline)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        # When each timer fires (loop time): a shorter delay replaces a later timer.
        self._due: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: K) -> None:
        if key in self._pending:
            return
        if key in self._active:
            # Seen again while being worked on: run once more after the current pass.
            self._dirty.add(key)
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds; of several pending delays the earliest wins (a
        0.1 s retry never waits behind a 60 s backoff)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if key in self._timers:
            if self._due[key] <= due:
                return
            self._timers.pop(key).cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self._due.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)
        self._due[key] = due

    async def get(self) -> K:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        self._due.pop(key, None)
        if timer:
            timer.cancel()

    @property
    def depth(self) -> int:
        return len(self._pending | self._active | self._dirty)

    @property
    def idle(self) -> bool:
        return not self._pending and not self._active
