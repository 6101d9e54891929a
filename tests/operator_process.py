"""The operator as a child process for tests (aidbox_sandbox.operator, shared with bench/)."""

from __future__ import annotations

from aidbox_sandbox.operator import WRITE_VERBS, OperatorProcess, free_port

__all__ = ["WRITE_VERBS", "OperatorProcess", "free_port", "wait_quiet"]


def wait_quiet(op: OperatorProcess, seconds: float = 2.0, timeout: float = 30.0) -> None:
    """Wait until the operator has made no request for `seconds`."""
    if not op.wait_quiet(seconds, timeout):
        raise AssertionError(f"the operator did not go quiet within {timeout}s")
