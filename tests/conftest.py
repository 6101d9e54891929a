"""Shared fixtures: a real API server for integration and e2e tests.

By default the session starts the local sandbox (aidbox_sandbox) and stops it at
the end unless it was already running. With AIDBOX_TEST_USE_EXISTING_CLUSTER=1 the cluster in
$KUBECONFIG is used instead. A test that needs a cluster fails (never skips) when there is none.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import sandbox_progress, wait_for
from kube_helpers import install_crd
from operator_process import OperatorProcess

USE_EXISTING = os.environ.get("AIDBOX_TEST_USE_EXISTING_CLUSTER") == "1"
_CLUSTER_DIRS = ("integration", "e2e", "realnode", "gitops")
# Each suite's directory under tests/ is also its marker (declared in pyproject.toml), so that
# `pytest -m "not faults and not realnode"` runs the quick suites.
SUITES = ("unit", "integration", "e2e", "faults", "realnode", "gitops")
_TESTS = Path(__file__).resolve().parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """With AIDBOX_PREBUILD=1 (make test), build what later suites need in the background, at
    the lowest CPU priority (tests/prebuild.py)."""
    if os.environ.get("AIDBOX_PREBUILD") != "1":
        return
    from aidbox_sandbox import build

    log = build.cache_root() / "logs" / "prebuild.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        _PREBUILD.append(
            subprocess.Popen(
                ["nice", "-n", "19", sys.executable, str(_TESTS / "prebuild.py")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    for process in _PREBUILD:  # its builds write to temporary names: stopping it is safe
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


_PREBUILD: list[subprocess.Popen[bytes]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if not path.is_relative_to(_TESTS):
            continue
        suite = path.relative_to(_TESTS).parts[0]
        if suite in SUITES:
            item.add_marker(getattr(pytest.mark, suite))
        if suite in _CLUSTER_DIRS:
            item.add_marker(pytest.mark.sandbox)


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The running Sandbox object, or None when an existing cluster is used."""
    if USE_EXISTING:
        yield None
        return
    from aidbox_sandbox import Sandbox, SandboxError

    box = Sandbox()
    progress = sandbox_progress(request)
    session = box.session(progress)
    failure = None
    try:
        session.__enter__()
    except SandboxError as exc:
        failure = str(exc)
    if failure is not None:  # fail (never skip) with the sandbox's own explanation
        pytest.fail(f"the sandbox could not start:\n{failure}", pytrace=False)
    try:
        yield box
    finally:
        # Stops the sandbox unless it was running before or another session still uses it.
        session.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sandbox_registry(
    sandbox: Any, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The sandbox's OCI registry (aidbox_sandbox.registry.Registry, plain HTTP on
    127.0.0.1) for the session: started on first use, stopped at the end unless it ran before.
    With an existing cluster, a registry of this test session's own."""
    from aidbox_sandbox.registry import Registry

    progress = sandbox_progress(request)
    if sandbox is not None:
        with sandbox.registry_session(progress) as registry:
            yield registry
        return
    own = Registry(tmp_path_factory.mktemp("registry")).start(progress)
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="session")
def sandbox_kubeconfig(sandbox: Any) -> Path:
    if sandbox is None:
        env = os.environ.get("KUBECONFIG", "")
        first = next((p for p in env.split(os.pathsep) if p), "")
        if not first or not Path(first).expanduser().is_file():
            pytest.fail(
                "AIDBOX_TEST_USE_EXISTING_CLUSTER=1 needs KUBECONFIG pointing at a kubeconfig "
                f"file (got {env!r})",
                pytrace=False,
            )
        return Path(first).expanduser()
    path: Path = sandbox.kubeconfig
    return path


@pytest.fixture(scope="session")
def api_client(sandbox_kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(sandbox_kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    try:
        yield api
    finally:
        api.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    slug = re.sub(r"-+", "-", slug)[:45].strip("-") or "test"
    return f"t-{slug}-{secrets.token_hex(3)}"


def _temporary_namespace(api_client: Any, name: str) -> Iterator[str]:
    from kube_helpers import namespace_lifetime

    yield from namespace_lifetime(api_client, name)


@pytest.fixture
def namespace(api_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (watched by the session operator), deleted afterwards."""
    yield from _temporary_namespace(api_client, _namespace_name(request.node.name))


@pytest.fixture(scope="session")
def crd(api_client: Any) -> None:
    install_crd(api_client)


@pytest.fixture(scope="session")
def operator_credentials(
    crd: None, api_client: Any, sandbox: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig acting as the operator's own ServiceAccount, with the RBAC from deploy/:
    every test that runs the operator also proves the RBAC is enough."""
    from rbac import operator_kubeconfig

    workdir = tmp_path_factory.mktemp("operator-sa")
    return operator_kubeconfig(api_client, sandbox, workdir)


@pytest.fixture(scope="session")
def operator(
    operator_credentials: Path, api_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    # Tests that run an operator of their own use namespaces outside this pattern.
    op = OperatorProcess(operator_credentials, log_path, ("--namespace", "t-*"))
    op.start()
    try:
        _wait_until_serving(api_client, op)
        yield op
    finally:
        op.stop()
        if "is forbidden: User" in op.log_text():
            pytest.fail(f"the operator was refused a request (RBAC); log: {log_path}")
        print(f"\noperator log: {log_path}")


def _wait_until_serving(api_client: Any, op: OperatorProcess) -> None:
    """Healthy is not yet serving: the informers must list first. A probe cluster in a new
    t-* namespace whose status appears proves the operator serves new matching namespaces."""
    from kube_helpers import create_cluster, get_cluster, operator_wrote_status

    for name in _temporary_namespace(api_client, f"t-probe-{secrets.token_hex(3)}"):
        create_cluster(api_client, "probe", name)
        wait_for(
            lambda n=name: operator_wrote_status(get_cluster(api_client, "probe", n)),
            timeout=120,
            message=f"the operator serving new namespaces; log:\n{op.log_tail()}",
        )


@pytest.fixture
def own_namespace(api_client: Any) -> Iterator[str]:
    """A namespace the session operator does not watch, for tests that run their own."""
    yield from _temporary_namespace(api_client, f"own-{secrets.token_hex(4)}")


@pytest.fixture(scope="session")
def hostile_operator(
    operator_credentials: Path, api_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator of its own for the hostile-input corpus, watching hx-* namespaces only: the
    corpus counts Warning Events and reconcile passes, which another session's operator on the
    shared sandbox (watching t-*) would otherwise add to."""
    from hostile import PREFIX, probe_operator

    log_path = tmp_path_factory.mktemp("hostile-operator") / "operator.log"
    op = OperatorProcess(operator_credentials, log_path, ("--namespace", f"{PREFIX}*"))
    op.start()
    try:
        probe_operator(api_client, op)
        yield op
    finally:
        op.stop()
        if "is forbidden: User" in op.log_text():
            pytest.fail(f"the operator was refused a request (RBAC); log: {log_path}")
        print(f"\nhostile-corpus operator log: {log_path}")
