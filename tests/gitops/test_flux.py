"""A real Flux (source-controller and kustomize-controller, built from their modules) drives the
operator from a git repository on the sandbox's git server: the Kustomization (wait: true, so
kstatus judges the AidboxCluster) is Ready only when the cluster is, goes not-ready while a new
release rolls, and reports a refused change within its timeout without disturbing what runs."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from helpers import wait_for
from kube_helpers import condition, stopwatch

from .flux_objects import CLUSTER, IMAGE, GitOps, aidbox_files, cluster_ready

# The release the sandbox starts slowly (sandbox stage sandbox-pod-slow-start-release).
SLOW_START = "2510.997"


def _deployment(api: Any, ns: str) -> client.V1Deployment:
    return client.AppsV1Api(api).read_namespaced_deployment(CLUSTER, ns)


def _rolled_out(dep: client.V1Deployment) -> bool:
    st, want = dep.status, dep.spec.replicas
    return bool(
        (st.observed_generation or 0) >= dep.metadata.generation
        and st.updated_replicas == want
        and st.replicas == want
        and st.ready_replicas == want
    )


def _pod_images(api: Any, ns: str) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={CLUSTER}"
    )
    return {p.spec.containers[0].image for p in pods.items if not p.metadata.deletion_timestamp}


def synced(api: Any, flux: Any, ns: str, timeout: str = "45s", **spec: Any) -> GitOps:
    """A repository with aidbox_files(**spec), applied by Flux and Ready."""
    gitops = GitOps(api, flux, ns, timeout)
    revision = gitops.start(aidbox_files(**spec))
    gitops.wait_applied(revision)
    return gitops


def test_first_sync_is_ready_only_after_the_cluster(
    api_client: Any, flux: Any, operator: Any, namespace: str
) -> None:
    gitops = GitOps(api_client, flux, namespace)
    elapsed = stopwatch()
    revision = gitops.start(aidbox_files())
    cluster_ready_at: float | None = None
    too_early: list[dict[str, Any]] = []  # wait_for takes an exception for "not yet": a list

    def flux_ready() -> dict[str, Any] | None:
        nonlocal cluster_ready_at
        # Read the Kustomization first: were it Ready before the cluster, the cluster read
        # after it could only be Ready too late, never too early.
        applied = gitops.applied(revision)
        cluster = gitops.cluster()
        if cluster_ready(cluster) and cluster_ready_at is None:
            cluster_ready_at = elapsed()
        if applied and not cluster_ready(cluster):
            too_early.append(cluster.get("status") or {})
        return applied

    body = wait_for(flux_ready, timeout=120, interval=0.2, message=f"Ready on {revision}")
    flux_at = elapsed()
    assert not too_early, f"the Kustomization was Ready before the AidboxCluster: {too_early}"
    assert cluster_ready_at is not None
    assert condition(body, "Healthy").get("status") == "True", body["status"]
    inventory = {e["id"] for e in body["status"]["inventory"]["entries"]}
    assert f"{namespace}_{CLUSTER}_aidbox.io_AidboxCluster" in inventory, inventory
    print(
        f"\nfirst sync: AidboxCluster Ready {cluster_ready_at:.1f}s, Kustomization Ready "
        f"{flux_at:.1f}s after the commit"
    )


def test_a_release_bump_is_not_ready_while_the_pods_roll(
    api_client: Any, flux: Any, operator: Any, namespace: str
) -> None:
    # The release's pods become Ready 3 s after they are scheduled (a sandbox stage): the roll
    # lasts longer than one poll, so the Kustomization is seen on it, not only before or after.
    gitops = synced(api_client, flux, namespace)
    revision = gitops.commit(aidbox_files(SLOW_START), f"bump the release to {SLOW_START}")
    seen_rolling: list[dict[str, Any]] = []
    ready_mid_roll: list[Any] = []  # wait_for takes an exception for "not yet": a list

    def settled() -> dict[str, Any] | None:
        applied = gitops.applied(revision)
        dep = _deployment(api_client, namespace)
        if applied and not _rolled_out(dep):
            ready_mid_roll.append(dep.status)
        if applied:
            return applied
        attempted = (gitops.get().get("status") or {}).get("lastAttemptedRevision")
        if attempted == revision and not _rolled_out(dep):
            seen_rolling.append(gitops.ready())
        return None

    wait_for(settled, timeout=180, interval=0.2, message=f"Ready on {revision}")
    assert not ready_mid_roll, f"the Kustomization was Ready mid-roll: {ready_mid_roll}"
    assert seen_rolling, "never saw the Kustomization not-ready on the new revision mid-roll"
    assert all(c.get("status") != "True" for c in seen_rolling), seen_rolling
    body = gitops.cluster()
    assert cluster_ready(body) and body["status"]["version"] == SLOW_START, body["status"]
    assert _pod_images(api_client, namespace) == {f"{IMAGE}:{SLOW_START}"}
    print(f"\nmid-roll: {len(seen_rolling)} polls, Kustomization Ready: {seen_rolling[0]}")
