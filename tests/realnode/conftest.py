"""Real kubelet nodes for these tests: added to the session's sandbox (two nodes, tainted, so
only the stand-in clusters below land there). They fail, never skip, when the nodes cannot
start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

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

    capman = request.config.pluginmanager.getplugin("capturemanager")

    def progress(msg: str) -> None:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                print(f"[sandbox] {msg}", flush=True)

    sandbox.real_nodes = REAL_NODES
    try:
        sandbox.up(progress)
    except SandboxError as exc:
        pytest.fail(f"real nodes could not start:\n{exc}", pytrace=False)
    yield RealNodes(sandbox)
