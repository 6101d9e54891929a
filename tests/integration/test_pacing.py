"""An operator upgrade on the sandbox: the next release renders every pod template differently;
with a bound of 2 exactly two clusters roll (their new pods stay unready, so the rollouts stay
under way) and the others wait, saying so; with pacing off every cluster rolls at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from helpers import wait_for
from kube_helpers import condition, create_cluster, get_cluster, make_config, status_current
from operator_process import OperatorProcess

NEXT_RELEASE = Path(__file__).with_name("next_release.py")
NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"
NAMES = ("c1", "c2", "c3", "c4", "c5")


def _ready(api: Any, ns: str, name: str) -> bool:
    body = get_cluster(api, name, ns)
    return status_current(body) and condition(body, "Ready").get("status") == "True"


def _rolled(api: Any, ns: str) -> set[str]:
    """Clusters whose Deployment has the next release's pod template."""
    deployments = client.AppsV1Api(api).list_namespaced_deployment(ns).items
    return {
        d.metadata.name
        for d in deployments
        if (d.spec.template.metadata.labels or {}).get(NOT_READY_LABEL) == "true"
    }


def _queued(api: Any, ns: str) -> set[str]:
    return {
        name
        for name in NAMES
        if condition(get_cluster(api, name, ns), "Progressing").get("reason") == "RolloutQueued"
    }


@pytest.fixture
def fleet(api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path) -> str:
    op = OperatorProcess(operator_credentials, tmp_path / "v1.log", ("--namespace", own_namespace))
    op.start()
    try:
        for name in NAMES:
            make_config(api_client, name, own_namespace)
            create_cluster(api_client, name, own_namespace, replicas=2)
        wait_for(
            lambda: all(_ready(api_client, own_namespace, n) for n in NAMES),
            timeout=120,
            interval=0.5,
            message="the fleet Ready under the current release",
        )
    finally:
        op.stop()
    return own_namespace


@contextmanager
def _upgrade(credentials: Path, log: Path, ns: str, bound: int) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        credentials,
        log,
        ("--namespace", ns, f"--max-operator-rollouts={bound}"),
        launcher=(str(NEXT_RELEASE),),
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


def test_an_operator_upgrade_rolls_at_most_the_bound(
    api_client: Any, fleet: str, operator_credentials: Path, tmp_path: Path
) -> None:
    with _upgrade(operator_credentials, tmp_path / "v2.log", fleet, bound=2):
        # Every cluster was judged: two roll, the other three say they wait.
        wait_for(
            lambda: len(_queued(api_client, fleet)) == 3,
            timeout=60,
            interval=0.5,
            message="three clusters reporting RolloutQueued",
        )
        assert _rolled(api_client, fleet) == {"c1", "c2"}
        for name in _queued(api_client, fleet):
            body = get_cluster(api_client, name, fleet)
            assert condition(body, "Ready")["status"] == "True", body["status"]
            assert condition(body, "Stalled")["status"] == "False", body["status"]


def test_without_pacing_the_whole_fleet_rolls_at_once(
    api_client: Any, fleet: str, operator_credentials: Path, tmp_path: Path
) -> None:
    """The bound's test can fail: with pacing off the same upgrade rolls all five."""
    with _upgrade(operator_credentials, tmp_path / "v2.log", fleet, bound=0):
        wait_for(
            lambda: _rolled(api_client, fleet) == set(NAMES),
            timeout=60,
            interval=0.5,
            message="every cluster rolling the next release",
        )
        assert not _queued(api_client, fleet)
