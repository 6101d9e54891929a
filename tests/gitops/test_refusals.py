"""A change the operator refuses, committed to git: the Kustomization reports it within its
timeout and nothing that runs is touched. Three kinds of refusal:

- a downgrade, refused at admission by deploy/base's policy: Flux's dry-run apply fails with the
  policy's own message, and nothing of the commit is applied;
- an invalid value the CRD admits (a memory limit below the request): the operator reports the
  cluster Stalled and kstatus Failed, so Flux fails fast, naming the cluster and its verdict;
- a missing ConfigMap: the operator holds the change (kstatus InProgress), so Flux fails when
  its timeout runs out.

Flux v1.9's health check message carries the kstatus verdict of each object, not the object's
own message (fluxcd/pkg/ssa WaitForSetWithContext): for the last two the operator's message is
on the AidboxCluster, which the Kustomization's message names."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from helpers import wait_for
from kube_helpers import REPO, apply, condition, stopwatch

from .flux_objects import CLUSTER, IMAGE, GitOps, aidbox_files
from .test_flux import synced


def _template(api: Any, ns: str) -> tuple[int, Any]:
    dep = client.AppsV1Api(api).read_namespaced_deployment(CLUSTER, ns)
    return dep.metadata.generation, dep.spec.template


def _failed(gitops: GitOps, revision: str, within: float) -> tuple[str, float]:
    """The Kustomization's Ready=False message for `revision`, and how long it took."""
    elapsed = stopwatch()
    try:
        body = wait_for(
            lambda: gitops.failed(revision),
            timeout=within,
            interval=0.5,
            message=f"the Kustomization failing {revision}",
        )
    except AssertionError as exc:  # say what Flux and the operator reported instead
        cluster = gitops.cluster().get("status", {}).get("conditions")
        raise AssertionError(
            f"{exc}\nKustomization Ready: {gitops.ready()}\ncluster: {cluster}"
        ) from None
    return str(condition(body, "Ready")["message"]), elapsed()


@pytest.fixture
def downgrade_policy(api_client: Any, namespace: str) -> Iterator[str]:
    """deploy/base's downgrade policy, bound to this test's namespace only."""
    base = REPO / "deploy" / "base"
    policy = yaml.safe_load((base / "downgrade-policy.yaml").read_text())
    binding = copy.deepcopy(yaml.safe_load((base / "downgrade-policy-binding.yaml").read_text()))
    name = f"{policy['metadata']['name']}-{secrets.token_hex(3)}"
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    binding["spec"]["matchResources"] = {"namespaceSelector": selector}
    apply(api_client, policy)
    apply(api_client, binding)
    try:
        yield name
    finally:
        admission = client.AdmissionregistrationV1Api(api_client)
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)


@pytest.mark.usefixtures("operator")
def test_a_downgrade_is_refused_with_the_policy_message(
    api_client: Any, flux: Any, namespace: str, downgrade_policy: str
) -> None:
    # The policy judges YYMM.MINOR tags only (moving YYMM tags are the operator's to resolve).
    gitops = synced(api_client, flux, namespace, tag="2510.2")
    wait_for(
        lambda: gitops.cluster()["status"].get("versionRecord", {}).get("newestReady") == "2510.2",
        timeout=30,
        message="2510.2 recorded as the newest Ready release",
    )
    before = _template(api_client, namespace)
    revision = gitops.commit(aidbox_files("2510.1"), "downgrade to 2510.1")
    # Refused by the dry-run apply, before any health check: well within the timeout.
    message, took = _failed(gitops, revision, within=30)
    assert f"ValidatingAdmissionPolicy '{downgrade_policy}'" in message, message
    assert "spec.image asks for Aidbox 2510.1, older than 2510.2" in message, message
    assert "aidbox.io/allow-downgrade-to" in message, message
    assert gitops.cluster()["spec"]["image"] == f"{IMAGE}:2510.2"
    assert _template(api_client, namespace) == before
    print(f"\ndowngrade refused, reported after {took:.1f}s: {message}")


@pytest.mark.usefixtures("operator")
def test_an_invalid_value_the_crd_admits_fails_fast(
    api_client: Any, flux: Any, namespace: str
) -> None:
    gitops = synced(api_client, flux, namespace)
    before = _template(api_client, namespace)
    limits = {"requests": {"memory": "3Gi"}, "limits": {"memory": "1Gi"}}
    revision = gitops.commit(aidbox_files(resources=limits), "a limit below the request")
    # Fails fast on the Failed verdict: well within the Kustomization's 45 s timeout.
    message, took = _failed(gitops, revision, within=40)
    assert f"AidboxCluster/{namespace}/{CLUSTER} status: 'Failed'" in message, message
    stalled = condition(gitops.cluster(), "Stalled")
    assert stalled.get("status") == "True" and stalled.get("message"), stalled
    assert _template(api_client, namespace) == before
    print(f"\nrefused child reported after {took:.1f}s: {message}; cluster Stalled: {stalled}")


@pytest.mark.usefixtures("operator")
def test_a_missing_configmap_fails_at_the_timeout(
    api_client: Any, flux: Any, namespace: str
) -> None:
    # 30 s: the shortest health check timeout Flux takes (Kustomization.GetTimeout).
    gitops = synced(api_client, flux, namespace, timeout="30s")
    before = _template(api_client, namespace)
    revision = gitops.commit(
        aidbox_files(configMapRef={"name": f"{CLUSTER}-v2"}), "name a ConfigMap not in git"
    )
    message, took = _failed(gitops, revision, within=30 + 20)
    assert "timeout waiting for" in message, message
    assert f"AidboxCluster/{namespace}/{CLUSTER} status: 'InProgress'" in message, message
    held = [c for c in gitops.cluster()["status"]["conditions"] if f"{CLUSTER}-v2" in c["message"]]
    assert held, gitops.cluster()["status"]["conditions"]
    assert _template(api_client, namespace) == before
    print(f"\nmissing ConfigMap reported after {took:.1f}s: {message}; cluster: {held[0]}")
