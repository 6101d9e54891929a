"""Operator fixtures: the CRD installed once, and one operator process for the session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_for
from kube_helpers import install_crd
from operator_process import OperatorProcess


@pytest.fixture(scope="session")
def crd(api_client: Any) -> None:
    install_crd(api_client)


@pytest.fixture(scope="session")
def operator(
    crd: None,
    sandbox_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    # Tests that run an operator of their own use namespaces outside this pattern.
    op = OperatorProcess(sandbox_kubeconfig, log_path, ("--namespace", "t-*"))
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(f"\noperator log: {log_path}")


@pytest.fixture
def own_namespace(api_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace the session operator does not watch, for tests that run their own."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    name = f"own-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        message=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
