"""Workers that reconcile keys from a work queue (controller-runtime's discipline).

A key is reconciled by one worker at a time; a burst of events for it becomes one pass. The
workers take work only while this replica leads and once every informer has listed once. A pass
says what should happen next (an `Outcome`); a pass that raises is retried with backoff, and a
bug in one key's pass never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aidbox_operator.metrics import QUEUE_DEPTH, RECONCILE_SECONDS, RECONCILES
from aidbox_operator.runtime.backoff import backoff_delay
from aidbox_operator.runtime.client import ApiError, NotLeaderError
from aidbox_operator.runtime.workqueue import WorkQueue

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
# Concurrent reconciles: coroutines, so many cost little; measured in bench/ (32 kept the
# fleet burst limited by the API server, not by the operator).
DEFAULT_WORKERS = 32


@dataclass(frozen=True)
class Outcome:
    """What one pass asks of the workers."""

    # Look at the key again after this long without a watch event (None: only on events).
    requeue_after: float | None = None
    # The API refused what the pass sent: the same request would be refused again, so retry
    # with a growing delay (a watch event still triggers a pass at once).
    backoff: bool = False
    # The `result` label of the reconciles counter.
    label: str = "success"


class Workers(Generic[K]):
    def __init__(
        self,
        reconcile: Callable[[K], Awaitable[Outcome]],
        workers: int = DEFAULT_WORKERS,
        describe: Callable[[K], dict[str, str]] = lambda key: {},
    ) -> None:
        self._reconcile = reconcile
        self._describe = describe  # log record attributes naming the key
        self.queue: WorkQueue[K] = WorkQueue()
        self._count = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._failures: dict[K, int] = {}
        # Workers take work only while this replica leads (always, without leader election)...
        self.leading = asyncio.Event()
        self.leading.set()
        # ... and only once the informers' caches are complete (the informers clear it until
        # then); without informers there is nothing to wait for.
        self.caches_synced = asyncio.Event()
        self.caches_synced.set()
        QUEUE_DEPTH.set_function(lambda: self.queue.depth)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(self._count)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def pause(self) -> None:
        self.leading.clear()

    def resume(self, keys: Iterable[K]) -> None:
        """Start taking work again, beginning with `keys` (everything seen while paused)."""
        self.leading.set()
        for key in keys:
            self.queue.add(key)

    def forget(self, key: K) -> None:
        """The key's object is gone: no timer and no failure count outlive it."""
        self.queue.forget(key)
        self._failures.pop(key, None)

    async def _work(self) -> None:
        while True:
            await self.caches_synced.wait()
            await self.leading.wait()
            key = await self.queue.get()
            if not self.leading.is_set():
                self.queue.done(key)  # paused meanwhile; resume() queues every key again
                continue
            try:
                await self.reconcile(key)
            finally:
                self.queue.done(key)

    async def reconcile(self, key: K) -> None:
        extra = self._describe(key)
        started = time.monotonic()
        try:
            outcome = await self._reconcile(key)
        except NotLeaderError:
            # Leadership ended during the pass; the next leader (maybe this replica again,
            # which then resyncs everything) finishes it.
            log.info("pass stopped: no longer the leader", extra=extra)
            return
        except (TimeoutError, ApiError, OSError) as err:
            RECONCILES.labels(result="error").inc()
            if isinstance(err, ApiError) and "being terminated" in err.message:
                # The namespace is going away with everything in it; nothing to repair.
                log.debug("namespace is being deleted", extra=extra)
                return
            self._retry(key, err, extra)
            return
        except Exception as err:  # a bug must not stop the other keys
            RECONCILES.labels(result="error").inc()
            log.exception("reconcile failed", extra=extra)
            self._retry(key, err, extra)
            return
        finally:
            RECONCILE_SECONDS.observe(time.monotonic() - started)
        RECONCILES.labels(result=outcome.label).inc()
        self._follow_up(key, outcome)

    def _follow_up(self, key: K, outcome: Outcome) -> None:
        if outcome.backoff:
            self.queue.add_after(key, self.backoff(key))
            return
        self._failures.pop(key, None)
        if outcome.requeue_after is not None:
            self.queue.add_after(key, outcome.requeue_after)

    def backoff(self, key: K) -> float:
        """Count one more failure of `key`; the delay before its next try."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return backoff_delay(failures)

    def _retry(self, key: K, err: BaseException, extra: dict[str, str]) -> None:
        delay = self.backoff(key)
        # A timeout's text is empty: the type says what failed.
        what = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        log.warning("reconcile failed (%s); retrying in %.1fs", what, delay, extra=extra)
        self.queue.add_after(key, delay)
