"""Per-cluster metrics: each AidboxCluster's series follow its status (phase, release,
readiness, pods per release, upgrade, Stalled reason) and go when the cluster goes."""

from __future__ import annotations

from fakeapi import Harness

from aidbox_operator.metrics import REGISTRY

NAME = "metrics-a"  # the registry is the process's: a name no other test uses


def _series(metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of `metric` for this test's cluster, by their labels."""
    found = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == metric and sample.labels.get("name") == NAME:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": "default", "name": NAME, **extra}.items()))


async def _pass(h: Harness) -> None:
    h.sync()
    await h.controller._reconcile(("default", NAME))
    h.sync()


async def test_a_clusters_series_follow_its_status_and_go_with_it() -> None:
    h = Harness()
    h.config("ConfigMap", NAME, {"BOX_ID": "a"})
    h.config("Secret", NAME, {"BOX_LICENSE": "bGlj"})
    h.cluster(NAME, image="healthsamurai/aidboxone:2510.1", replicas=2)
    await _pass(h)
    h.roll_out(NAME)
    await _pass(h)
    assert _series("aidbox_cluster_info") == {_labels(phase="Ready", version="2510.1"): 1}
    assert _series("aidbox_cluster_ready") == {_labels(): 1}
    assert _series("aidbox_cluster_replicas_desired") == {_labels(): 2}
    assert _series("aidbox_cluster_replicas_ready") == {_labels(): 2}
    assert _series("aidbox_cluster_pods") == {_labels(version="2510.1"): 2}
    assert _series("aidbox_cluster_upgrading") == {_labels(): 0}
    assert _series("aidbox_cluster_stalled") == {}
    # A new release rolls: the info series moves to the new labels, none is left behind.
    h.update_spec(NAME, image="healthsamurai/aidboxone:2510.2")
    await _pass(h)
    h.pod(f"{NAME}-2", image="healthsamurai/aidboxone:2510.2", ready=False, name=NAME)
    h.deployment_status(NAME, replicas=3, readyReplicas=2, updatedReplicas=1)
    await _pass(h)
    assert list(_series("aidbox_cluster_info")) == [_labels(phase="Progressing", version="2510.2")]
    assert _series("aidbox_cluster_upgrading") == {_labels(): 1}
    assert _series("aidbox_cluster_ready") == {_labels(): 0}
    h.roll_out(NAME)
    await _pass(h)
    assert _series("aidbox_cluster_pods") == {_labels(version="2510.2"): 2}
    assert _series("aidbox_cluster_info") == {_labels(phase="Ready", version="2510.2"): 1}
    # Deleted: every series of it goes.
    del h.api.objects[("AidboxCluster", "default", NAME)]
    h.sync()
    for metric in ("info", "ready", "replicas_desired", "replicas_ready", "pods", "upgrading"):
        assert _series(f"aidbox_cluster_{metric}") == {}, metric


async def test_a_stalled_cluster_is_labelled_with_its_reason() -> None:
    h = Harness()
    h.cluster(NAME, image="healthsamurai/aidboxone:2510.1", replicas=2, env=[{"name": "x"}])
    h.config("ConfigMap", NAME, {"BOX_ID": "a"})
    h.config("Secret", NAME, {"BOX_SECURITY_AUTH_KEYS_PRIVATE": "a2V5"})  # half a key pair
    await _pass(h)
    reasons = {dict(k)["reason"] for k in _series("aidbox_cluster_stalled")}
    assert reasons == {"AuthKeysIncomplete"}
    h.config("Secret", NAME, {"BOX_LICENSE": "bGlj"})
    await _pass(h)
    h.roll_out(NAME)
    await _pass(h)
    assert _series("aidbox_cluster_stalled") == {}
    del h.api.objects[("AidboxCluster", "default", NAME)]
    h.sync()


async def test_a_replica_that_steps_down_exports_no_cluster_series() -> None:
    """A standby's last view of a cluster goes stale the moment it loses the Lease: it must
    not keep saying Ready (or Stalled) beside the leader's series."""
    h = Harness()
    h.config("ConfigMap", NAME, {"BOX_ID": "a"})
    h.config("Secret", NAME, {"BOX_LICENSE": "bGlj"})
    h.cluster(NAME, image="healthsamurai/aidboxone:2510.1", replicas=2, podAnnotations={"x": "y"})
    await _pass(h)
    h.roll_out(NAME)
    await _pass(h)
    assert _series("aidbox_cluster_ready") == {_labels(): 1}
    assert _phase_count("Ready") >= 1
    h.controller.pause()  # the Lease is lost
    for metric in ("info", "ready", "replicas_desired", "replicas_ready", "pods", "upgrading"):
        assert _series(f"aidbox_cluster_{metric}") == {}, metric
    assert _phase_count("Ready") == 0


def _phase_count(phase: str) -> float:
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "aidbox_operator_clusters" and sample.labels == {"phase": phase}:
                return float(sample.value)
    return 0.0
