"""Fixtures of the fault-injection suite: a PRIVATE sandbox (its API server and etcd get
stopped and restarted, which the shared session sandbox of the other tests must never see) with
two real kubelet nodes, the operator's RBAC from deploy/ on it, and a fleet of operator replicas
behind fault proxies: processes run as deploy/ runs them, or deploy/'s Deployment as pods on the
real nodes (each scenario runs with both).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet import FIGURES_FILE, REMOVED, Fleet
from pods import OperatorPods

_RAN: list[bool] = []  # set once this session started the fault sandbox


@pytest.fixture(scope="session")
def fault_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from aidbox_sandbox import Sandbox, SandboxError

    FIGURES_FILE.unlink(missing_ok=True)
    _RAN.append(True)
    # AIDBOX_FAULTS_SANDBOX_DIR keeps one between runs (while working on the suite).
    kept = os.environ.get("AIDBOX_FAULTS_SANDBOX_DIR")
    state = Path(kept) if kept else tmp_path_factory.mktemp("fault-sandbox")
    box = Sandbox(state_dir=state, nodes=3, real_nodes=2)
    try:
        box.up(progress=lambda msg: print(f"[fault sandbox] {msg}", flush=True))
    except SandboxError as exc:
        box.down()
        pytest.fail(f"the fault suite's private sandbox could not start:\n{exc}", pytrace=False)
    try:
        yield box
    finally:
        if not kept:
            box.down()


@pytest.fixture(scope="session")
def fault_api(fault_sandbox: Any) -> Iterator[Any]:
    from kubernetes import client, config

    from kube_helpers import install_crd

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(fault_sandbox.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    install_crd(api)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def fault_credentials(
    fault_api: Any, fault_sandbox: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig acting as the operator's ServiceAccount with deploy/'s RBAC."""
    from rbac import operator_kubeconfig

    return operator_kubeconfig(fault_api, fault_sandbox, tmp_path_factory.mktemp("fault-sa"))


@pytest.fixture(scope="session")
def fault_operator_pods(fault_api: Any, fault_sandbox: Any, fault_credentials: Path) -> Any:
    """deploy/'s operator Deployment for the real nodes, its image loaded there."""
    from aidbox_sandbox.realnode import RealNodes
    from operator_image import load_image

    nodes = RealNodes(fault_sandbox)
    load_image(nodes)
    return OperatorPods(fault_api, fault_sandbox, nodes)


# FAULTS_REMOVE takes protections out of the operator's code, which only processes can run
# (unprotected.py); the image is the operator as shipped.
REPLICA_KINDS = ["processes"] if REMOVED else ["processes", "pods"]


@pytest.fixture(params=REPLICA_KINDS)
def fleet(
    fault_api: Any,
    fault_sandbox: Any,
    fault_credentials: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Fleet]:
    pods = request.getfixturevalue("fault_operator_pods") if request.param == "pods" else None
    fleet = Fleet(
        fault_api, fault_sandbox, fault_credentials, tmp_path, request.node.name, pods=pods
    )
    try:
        yield fleet
    finally:
        fleet.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES_FILE.exists() or not _RAN:
        return  # no scenario ran in this session: the file is an older session's
    rows = [json.loads(line) for line in FIGURES_FILE.read_text().splitlines() if line]
    terminalreporter.section("fault-injection figures")
    for row in rows:
        terminalreporter.write_line(json.dumps(row))
