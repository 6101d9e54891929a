"""Flux for the GitOps suite: source-controller, kustomize-controller and a git server on the
local sandbox (aidbox_sandbox.flux), started on first use and stopped at the end of the session
unless they ran before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpers import sandbox_progress


@pytest.fixture(scope="session")
def flux(sandbox: Any, crd: None, request: pytest.FixtureRequest) -> Iterator[Any]:
    if sandbox is None:
        pytest.fail(
            "the GitOps tests run Flux as host processes of the local sandbox; they cannot use "
            "AIDBOX_TEST_USE_EXISTING_CLUSTER=1",
            pytrace=False,
        )
    progress = sandbox_progress(request)
    with sandbox.flux_session(progress) as running:
        yield running
