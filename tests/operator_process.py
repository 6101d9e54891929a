"""The operator as a child process for tests (aidbox_sandbox.operator, shared with bench/)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aidbox_sandbox.operator import WRITE_VERBS, OperatorProcess, free_port

__all__ = [
    "WRITE_VERBS",
    "OperatorProcess",
    "free_port",
    "reconciles",
    "requests",
    "wait_counted",
    "wait_quiet",
]

_RECONCILES = "aidbox_operator_reconciles_total{"
_QUEUE_DEPTH = "aidbox_operator_queue_depth"
Counter = Callable[[dict[str, float]], float]


def wait_quiet(op: OperatorProcess, seconds: float = 2.0, timeout: float = 30.0) -> None:
    """Wait until the operator has made no request for `seconds`."""
    if not op.wait_quiet(seconds, timeout):
        raise AssertionError(f"the operator did not go quiet within {timeout}s")


def reconciles(result: str | None = None) -> Counter:
    """The operator's finished reconcile passes (of one result: success, blocked, error)."""
    wanted = f'{_RECONCILES}result="{result}"}}' if result else _RECONCILES
    return lambda metrics: sum(v for k, v in metrics.items() if k.startswith(wanted))


def requests(verb: str) -> Counter:
    """The operator's API requests of one verb (get: it reads a referenced ConfigMap or Secret
    whenever its resourceVersion moves)."""
    key = f'aidbox_operator_api_requests_total{{verb="{verb}"}}'
    return lambda metrics: metrics.get(key, 0.0)


def wait_counted(
    op: OperatorProcess,
    counter: Counter,
    since: float,
    what: str,
    more: int = 1,
    timeout: float = 30.0,
) -> float:
    """Proof that the operator saw what a test did, for a test about to assert that nothing
    came of it (no write, no rollout, no Event): `counter` (read with `counter(op.metrics())`
    *before* the action) has grown by `more`, and no cluster waits for or is in a pass (so the
    pass that counted has finished, writes included). A fixed sleep proves nothing: the
    operator may not have looked yet. Returns the counter's new value."""
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    while True:
        last = op.metrics()
        if counter(last) >= since + more and last.get(_QUEUE_DEPTH, 1) == 0:
            return counter(last)
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for proof that the operator saw {what}: "
                f"counter {counter(last)} (wanted >= {since + more}), queue depth "
                f"{last.get(_QUEUE_DEPTH)}; log:\n{op.log_tail(20)}"
            )
        time.sleep(0.1)
