"""spec.autoscaling and replicas left to another controller (issue 19): the model's refusals
and the CRD's rules, the HorizontalPodAutoscaler rendered, and on the fake API the replicas a
new Deployment starts with, the hand-over of its replicas, and the HPA's pruning. The same
refusals on the real API server: tests/integration/test_hostile_specs.py and
tests/integration/test_autoscaling.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fakeapi import Harness
from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.crd import spec_schema
from aidbox_operator.reconcile.replicas import HANDOVER_MANAGER
from aidbox_operator.render import RenderContext, effective_replicas, render_cluster
from aidbox_operator.render.autoscaling import REPLICAS_LEFT_TO_ANNOTATION, build_autoscaler
from aidbox_operator.status.observation import Observation
from aidbox_operator.status.replicas import replicas_record

IMAGE = "healthsamurai/aidboxone:2510"
HPA = {"minReplicas": 2, "maxReplicas": 5}


def _cluster(**spec: Any) -> AidboxCluster:
    return AidboxCluster.model_validate({"metadata": {"name": "a", "namespace": "n"}, "spec": spec})


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}, "must not exceed"),
        ({"autoscaling": {"maxReplicas": 1}}, "minReplicas (default 2) must not exceed"),
        ({"autoscaling": {"minReplicas": 0, "maxReplicas": 3}}, "minReplicas"),
        ({"autoscaling": {"minReplicas": 1, "maxReplicas": 0}}, "maxReplicas"),
        ({"autoscaling": {"minReplicas": 1}}, "maxReplicas"),
        ({"autoscaling": {**HPA, "targetCPUUtilizationPercentage": 0}}, "targetCPU"),
        ({"autoscaling": {**HPA, "targetMemoryUtilizationPercentage": 1001}}, "targetMemory"),
        ({"autoscaling": {**HPA, "targetCpuUtilizationPercentage": 50}}, "targetCpu"),
        (
            {"autoscaling": {**HPA, "behavior": {"scaleUp": {"policies": []}}}},
            "policies",
        ),
        (
            {
                "autoscaling": {
                    **HPA,
                    "behavior": {
                        "scaleDown": {
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]
                        }
                    },
                }
            },
            "periodSeconds",
        ),
        (
            {
                "autoscaling": {
                    **HPA,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 3601}},
                }
            },
            "stabilizationWindowSeconds",
        ),
        (
            {"autoscaling": {**HPA, "behavior": {"scaleUp": {"selectPolicy": "Sometimes"}}}},
            "selectPolicy",
        ),
        ({"autoscaling": HPA, "manageReplicas": False}, "not both"),
        (
            {"autoscaling": HPA, "resources": {"requests": {"memory": "1Gi"}}},
            "needs a cpu request",
        ),
        (
            {
                "autoscaling": {**HPA, "targetMemoryUtilizationPercentage": 80},
                "resources": {"limits": {"cpu": "1"}},
            },
            "needs a memory request",
        ),
    ],
)
def test_model_refuses(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _cluster(**spec)
    assert words in str(raised.value)


def test_model_accepts_and_defaults() -> None:
    spec = _cluster(autoscaling={"maxReplicas": 4}).spec
    assert spec.autoscaling is not None and spec.autoscaling.min_replicas == 2
    assert spec.autoscaling.cpu_target() == 80  # no target set: CPU 80%
    assert spec.replicas_left_to_others
    memory_only = _cluster(
        autoscaling={"maxReplicas": 4, "targetMemoryUtilizationPercentage": 70},
        resources={"requests": {"memory": "2Gi"}},
    ).spec.autoscaling
    assert memory_only is not None and memory_only.cpu_target() is None
    # A limit alone is requested by Kubernetes: enough for the HPA.
    _cluster(autoscaling={"maxReplicas": 4}, resources={"limits": {"cpu": "2"}})


def test_crd_carries_the_rules() -> None:
    schema = spec_schema()
    auto = schema["properties"]["autoscaling"]
    assert auto["required"] == ["maxReplicas"] and "default" not in auto
    assert auto["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
    assert auto["properties"]["minReplicas"]["minimum"] == 1
    assert "targetCPUUtilizationPercentage" in auto["properties"]
    rules = {r["rule"]: r["message"] for r in schema["x-kubernetes-validations"]}
    transitions = [rule for rule in rules if "oldSelf.replicas" in rule]
    # kubectl scale writes spec.replicas through the scale subresource: refused on both.
    assert len(transitions) == 2
    assert any("manageReplicas is false" in rules[rule] for rule in transitions)
    assert any("spec.autoscaling is set" in rules[rule] for rule in transitions)


def test_autoscaler_rendered() -> None:
    cluster = _cluster(autoscaling={"maxReplicas": 4})
    hpa = build_autoscaler(cluster)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "a",
    }
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "behavior" not in hpa["spec"]
    kinds = [m["kind"] for m in render_cluster(cluster)]
    assert kinds[-1] == "HorizontalPodAutoscaler"
    assert "HorizontalPodAutoscaler" not in [m["kind"] for m in render_cluster(_cluster())]


@pytest.mark.parametrize(
    ("spec", "created", "replicas"),
    [
        ({"replicas": 3}, 3, 3),
        ({"replicas": 3, "manageReplicas": False}, 3, None),
        ({"replicas": 2, "autoscaling": {"minReplicas": 3, "maxReplicas": 5}}, 3, None),
        ({"replicas": 9, "autoscaling": {"minReplicas": 3, "maxReplicas": 5}}, 5, None),
    ],
)
def test_deployment_replicas(spec: dict[str, Any], created: int, replicas: int | None) -> None:
    """Found by a hostile-input run: a new Deployment with manageReplicas false had no
    replicas, so it ran 1 instead of spec.replicas. Now it starts with spec.replicas (within
    autoscaling's bounds), and an existing one's count is left out (and so alone)."""
    cluster = _cluster(**spec)
    new = render_cluster(cluster)[0]
    assert new["spec"]["replicas"] == created
    assert REPLICAS_LEFT_TO_ANNOTATION not in new["metadata"]["annotations"]
    existing = render_cluster(cluster, RenderContext(deployment_exists=True))[0]
    assert existing["spec"].get("replicas") == replicas
    left = replicas is None
    assert (REPLICAS_LEFT_TO_ANNOTATION in existing["metadata"]["annotations"]) == left
    assert effective_replicas(cluster, None) == created
    assert effective_replicas(cluster, 7) == (7 if left else created)


def _ready(h: Harness, **spec: Any) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.cluster(**{"image": IMAGE, **spec})


def _deployment(h: Harness) -> dict[str, Any]:
    body = h.api.get_object("Deployment", "aidbox")
    assert body is not None
    return body


async def test_replicas_handed_over_not_reset() -> None:
    h = Harness()
    _ready(h, replicas=3, autoscaling={"minReplicas": 1, "maxReplicas": 6})
    await h.reconcile()
    assert _deployment(h)["spec"]["replicas"] == 3  # created with spec.replicas
    hpa = h.api.get_object("HorizontalPodAutoscaler", "aidbox")
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 6
    h.roll_out()
    await h.reconcile()  # the pass after the create lets go of the replicas
    deployment = _deployment(h)
    assert deployment["spec"]["replicas"] == 3
    assert REPLICAS_LEFT_TO_ANNOTATION in deployment["metadata"]["annotations"]
    managers = [m["manager"] for m in deployment["metadata"]["managedFields"]]
    assert HANDOVER_MANAGER in managers
    # The HPA's choice stands through later applies (a spec change re-applies the Deployment).
    deployment = h.api.objects[("Deployment", "default", "aidbox")]
    deployment["spec"]["replicas"] = 5
    deployment["metadata"]["managedFields"].append({"manager": "kube-controller-manager"})
    h.update_spec(image="healthsamurai/aidboxone:2511")
    await h.reconcile()
    assert _deployment(h)["spec"]["replicas"] == 5
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is not None
    handovers = h.api.requests["apply"]
    await h.reconcile()
    assert h.api.requests["apply"] == handovers  # nothing more to hand over


async def test_manage_replicas_false_starts_with_spec_replicas() -> None:
    h = Harness()
    _ready(h, replicas=2, manageReplicas=False)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    await h.reconcile()
    assert _deployment(h)["spec"]["replicas"] == 2
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is not None
    assert "Deleted" not in h.event_reasons()  # the PDB was never made and dropped
    assert h.condition("Ready")["status"] == "True"


async def test_autoscaler_pruned_and_replicas_taken_back() -> None:
    h = Harness()
    _ready(h, replicas=2, autoscaling={"minReplicas": 2, "maxReplicas": 6})
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    deployment = h.api.objects[("Deployment", "default", "aidbox")]
    deployment["spec"]["replicas"] = 4  # the HPA's choice
    body = h.api.objects[("AidboxCluster", "default", "aidbox")]
    del body["spec"]["autoscaling"]
    h.update_spec()
    await h.reconcile()
    assert h.api.get_object("HorizontalPodAutoscaler", "aidbox") is None
    assert "Deleted" in h.event_reasons()
    deployment = _deployment(h)
    assert deployment["spec"]["replicas"] == 2  # spec.replicas counts again
    assert REPLICAS_LEFT_TO_ANNOTATION not in deployment["metadata"]["annotations"]


async def test_unapplied_replicas_change_is_said_once() -> None:
    """Where the CRD predates the rules that refuse it (Helm never upgrades a chart's CRDs), a
    spec.replicas change the operator will not apply is reported: Degraded, one Warning."""
    h = Harness()
    _ready(h, replicas=2, manageReplicas=False)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.status()["replicasAtHandOver"] == 2
    assert h.condition("Degraded")["status"] == "False"
    h.update_spec(replicas=5)  # kubectl scale abx, admitted by an old CRD
    await h.reconcile()
    await h.reconcile()
    degraded = h.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReplicasNotApplied")
    assert "spec.replicas 5 is not applied" in degraded["message"]
    assert "another controller (manageReplicas: false)" in degraded["message"]
    assert h.event_reasons().count("ReplicasNotApplied") == 1
    assert [e["type"] for e in h.api.events if e["reason"] == "ReplicasNotApplied"] == ["Warning"]
    assert _deployment(h)["spec"]["replicas"] == 2
    h.update_spec(replicas=2)
    await h.reconcile()
    assert h.condition("Degraded")["status"] == "False"
    assert "Recovered" in h.event_reasons()
    h.update_spec(manageReplicas=True)
    await h.reconcile()
    assert "replicasAtHandOver" not in h.status()


async def test_version_rule_follows_the_autoscaled_count() -> None:
    """Release 2206 runs one replica only: an autoscaler that may start with 2 is refused
    before anything is made, one bounded at 1 is not."""
    h = Harness()
    old = "healthsamurai/aidboxone:2206"
    _ready(h, replicas=1, image=old, autoscaling={"minReplicas": 2, "maxReplicas": 3})
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "UnsupportedVersion"
    assert h.api.get_object("Deployment", "aidbox") is None
    h.update_spec(autoscaling={"minReplicas": 1, "maxReplicas": 1})
    await h.reconcile()
    assert _deployment(h)["spec"]["replicas"] == 1
    h.roll_out()
    await h.reconcile()
    assert h.condition("Stalled")["status"] == "False"


def test_hand_over_record_kept_while_the_spec_is_unread() -> None:
    """A pass over an invalid spec reads no spec.replicas: the record stands, so a change made
    together with the fix is still compared with the count at the hand-over."""
    previous = ClusterStatus(replicas_at_hand_over=2)
    unread = Observation(generation=3, desired_replicas=2, selector="", deployment=None)
    assert replicas_record(unread, previous) == 2
    managed = replace(unread, spec_replicas=4)
    assert replicas_record(managed, previous) is None  # the operator sets them again
    left = replace(managed, replicas_left_to="HorizontalPodAutoscaler/a")
    assert replicas_record(left, previous) == 2
    assert replicas_record(left, ClusterStatus()) == 4  # first pass: recorded as it is
