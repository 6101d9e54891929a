"""Small helpers shared by the integration and e2e tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition",
) -> T:
    """Call predicate until it returns something truthy and return that value.

    Exceptions raised by the predicate count as "not yet"; on timeout an AssertionError names
    the condition and shows the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {message}; last: {last!r}"
            )
        time.sleep(interval)


def sandbox_progress(request: Any) -> Callable[[str], None]:
    """Progress lines of a sandbox part shown past pytest's capture: a first use builds it,
    which takes minutes."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def progress(msg: str) -> None:
        if capman is None:
            print(f"[sandbox] {msg}", flush=True)
            return
        with capman.global_and_fixture_disabled():
            print(f"[sandbox] {msg}", flush=True)

    return progress
