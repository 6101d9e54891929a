"""Real kubelet nodes for these tests: added to the session's sandbox (two nodes, tainted, so
only the stand-in clusters below land there). They fail, never skip, when the nodes cannot
start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import sandbox_progress
from operator_process import OperatorProcess

REAL_NODES = 2


@pytest.fixture(scope="session")
def real_nodes(sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    if sandbox is None:
        pytest.fail(
            "the real-node tests need the local sandbox (they run kubelets on this machine); "
            "unset AIDBOX_TEST_USE_EXISTING_CLUSTER",
            pytrace=False,
        )
    from aidbox_sandbox import SandboxError
    from aidbox_sandbox.realnode import RealNodes

    progress = sandbox_progress(request)
    sandbox.real_nodes = REAL_NODES
    try:
        sandbox.up(progress)
    except SandboxError as exc:
        pytest.fail(f"real nodes could not start:\n{exc}", pytrace=False)
    yield RealNodes(sandbox)


@pytest.fixture(scope="module")
def start_operator(
    operator_credentials: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start an operator of the module's own with flags of its choosing (the session's
    `operator` takes none), as the session's runs: the operator's ServiceAccount and RBAC, no
    election, and --image-pinning=off unless the flags name it. Give it namespaces outside the
    session operator's t-*, e.g. start_operator("--namespace", "up-*"). Each one started is
    stopped at the module's end, which fails if one was refused a request."""
    started: list[OperatorProcess] = []

    def start(*args: str) -> OperatorProcess:
        op = OperatorProcess(
            operator_credentials, tmp_path_factory.mktemp("operator") / "operator.log", args
        )
        started.append(op)
        op.start()
        return op

    yield start
    for op in started:
        op.stop()
        print(f"\noperator log: {op.log_path}")
    refused = [str(op.log_path) for op in started if "is forbidden: User" in op.log_text()]
    if refused:
        pytest.fail(f"an operator was refused a request (RBAC); log: {', '.join(refused)}")
