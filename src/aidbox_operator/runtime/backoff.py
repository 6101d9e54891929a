"""How long to wait after the n-th failure in a row: one formula for every retry loop (reconcile
passes, informers, background reads), so they all back off alike and are tuned in one place."""

from __future__ import annotations

import random

BASE_SECONDS = 0.5
MAX_SECONDS = 60.0


def backoff_delay(failures: int, *, cap: float | None = None, jitter: float = 0.0) -> float:
    """0.5 s after the first failure, doubling up to `cap`; `jitter` spreads it by +-that share,
    so that many loops failing together (a restarted API server) do not retry together."""
    delay = min(MAX_SECONDS if cap is None else cap, BASE_SECONDS * 2 ** max(0, failures - 1))
    if jitter:
        delay *= random.uniform(1.0 - jitter, 1.0 + jitter)
    return float(delay)
