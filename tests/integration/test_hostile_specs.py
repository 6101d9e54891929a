"""Hostile-input corpus, part 1 (issue 9): specs refused at admission, specs the API server
refuses after admission, half-set key pairs, a deleted keys Secret, a missing reference.

Each case asserts an admission refusal whose message names the field, or the specific
condition reason plus exactly one Warning Event (counted after the operator retried); and that
nothing the cluster does not own changed and its running workload was not disturbed.

Cases run in batches (one namespace per table, all clusters at once) so the corpus stays fast:
the clusters of a table are made Ready together, the hostile inputs land together, and each
parametrized test then checks its own cluster. The hostile-corpus operator (hx-* namespaces)
is the only one acting on these namespaces, so Event counts are this corpus' own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from aidbox_operator.model.autoscaling import MIN_ABOVE_MAX
from helpers import wait_for
from hostile import (
    PRIVATE,
    PUBLIC,
    Snapshot,
    Workload,
    api_message,
    assert_unchanged,
    assert_undisturbed,
    blocked_passes,
    describe,
    make_user_config,
    new_cluster,
    normal_events,
    saw_retries,
    settled_snapshot,
    temporary_namespace,
    wait_looked_at,
    wait_reason,
    warnings,
    workload,
)
from kube_helpers import GROUP, PLURAL, VERSION, condition, get_cluster, patch_spec, wait_condition
from operator_process import OperatorProcess

PEM = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
PUB = "-----BEGIN PUBLIC KEY-----\nnot-a-real-key\n-----END PUBLIC KEY-----\n"


# -- 1. refused at admission -----------------------------------------------------------------
MAIN_IS_OURS = "the container name main is the Aidbox container's own"


def _c(name: str) -> dict[str, str]:
    return {"name": name, "image": "busybox:1.36"}


def _hpa(**fields: Any) -> dict[str, Any]:
    return {"autoscaling": {"maxReplicas": 3, **fields}}


# (id, cluster name, spec, words the API server's message must contain)
ADMISSION: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("name-dots", "a.b", {}, ("metadata.name must be a DNS-1035 label",)),
    ("name-46-chars", "n" * 46, {}, ("metadata.name must be at most 45 characters",)),
    ("replicas-negative", "x", {"replicas": -1}, ("spec.replicas",)),
    ("replicas-absurd", "x", {"replicas": 100000}, ("spec.replicas", "1000")),
    ("port-zero", "x", {"port": 0}, ("spec.port",)),
    ("port-absurd", "x", {"port": 70000}, ("spec.port",)),
    ("image-space", "x", {"image": "healthsamurai/aidboxone: latest"}, ("spec.image",)),
    ("pull-policy", "x", {"imagePullPolicy": "Sometimes"}, ("spec.imagePullPolicy",)),
    ("pull-secret-empty", "x", {"imagePullSecrets": [{"name": ""}]}, ("imagePullSecrets[0].name",)),
    (
        "toleration-operator",
        "x",
        {"tolerations": [{"key": "k", "operator": "Sometimes"}]},
        ("spec.tolerations[0].operator",),
    ),
    (
        "toleration-effect",
        "x",
        {"tolerations": [{"key": "k", "operator": "Exists", "effect": "Never"}]},
        ("spec.tolerations[0].effect",),
    ),
    (
        "tolerations-absurd",
        "x",
        {"tolerations": [{"operator": "Exists"}] * 65},
        ("spec.tolerations",),
    ),
    (
        "spread-typo-maxskew",
        "x",
        {
            "topologySpreadConstraints": [
                {"maxskew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
            ]
        },
        ("spec.topologySpreadConstraints[0].maxSkew", "Required value"),
    ),
    (
        "spread-skew-zero",
        "x",
        {
            "topologySpreadConstraints": [
                {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
            ]
        },
        ("spec.topologySpreadConstraints[0].maxSkew",),
    ),
    (
        "spread-when-unknown",
        "x",
        {
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}
            ]
        },
        ("spec.topologySpreadConstraints[0].whenUnsatisfiable",),
    ),
    ("surge-negative", "x", {"rollingUpdate": {"maxSurge": -1}}, ("spec.rollingUpdate.maxSurge",)),
    (
        "unavailable-word",
        "x",
        {"rollingUpdate": {"maxUnavailable": "half"}},
        ("spec.rollingUpdate.maxUnavailable",),
    ),
    (
        "pdb-negative-percent",
        "x",
        {"podDisruptionBudget": {"maxUnavailable": "-5%"}},
        ("spec.podDisruptionBudget.maxUnavailable",),
    ),
    (
        "memory-word",
        "x",
        {"resources": {"limits": {"memory": "lots"}}},
        ("spec.resources.limits.memory",),
    ),
    (
        "env-value-and-valuefrom",
        "x",
        {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
        ("spec.env[0]", "either value or valueFrom"),
    ),
    ("env-empty-name", "x", {"env": [{"name": ""}]}, ("spec.env[0].name",)),
    (
        "env-absurd",
        "x",
        {"env": [{"name": f"V{i}", "value": "x"} for i in range(257)]},
        ("spec.env",),
    ),
    ("probe-period-zero", "x", {"livenessProbe": {"periodSeconds": 0}}, ("periodSeconds",)),
    ("probe-path-relative", "x", {"readinessProbe": {"path": "health"}}, ("spec.readinessProbe",)),
    ("grace-zero", "x", {"terminationGracePeriodSeconds": 0}, ("terminationGracePeriodSeconds",)),
    ("deadline-zero", "x", {"progressDeadlineSeconds": 0}, ("spec.progressDeadlineSeconds",)),
    ("min-ready-negative", "x", {"minReadySeconds": -1}, ("spec.minReadySeconds",)),
    ("pod-label-value", "x", {"podLabels": {"team": "bad value!"}}, ("spec.podLabels.team",)),
    (
        "pod-label-selector",
        "x",
        {"podLabels": {"app.kubernetes.io/instance": "other"}},
        ("podLabels must not set",),
    ),
    ("service-type", "x", {"service": {"type": "ExternalName"}}, ("spec.service.type",)),
    ("metrics-port-zero", "x", {"metrics": {"port": 0}}, ("spec.metrics.port",)),
    (
        "monitor-interval",
        "x",
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        ("spec.metrics.serviceMonitor.interval",),
    ),
    ("keys-on-loss", "x", {"authKeys": {"onLoss": "Sometimes"}}, ("spec.authKeys.onLoss",)),
    # kubectl sends fieldValidation=Strict: an unknown field is refused, not dropped.
    ("field-typo-strict", "x", {"replica": 3}, ('unknown field "spec.replica"',)),
    # Pod settings (issue 19, part 4).
    ("sidecar-named-main", "x", {"sidecars": [_c("main")]}, (MAIN_IS_OURS,)),
    ("init-named-main", "x", {"initContainers": [_c("main")]}, (MAIN_IS_OURS,)),
    (
        "sidecars-same-name",
        "x",
        {"sidecars": [_c("agent"), _c("agent")]},
        ("spec.sidecars[1]", "Duplicate value"),
    ),
    (
        "sidecar-and-init-same-name",
        "x",
        {"sidecars": [_c("agent")], "initContainers": [_c("agent")]},
        ("share one namespace of container names",),
    ),
    (
        "sidecar-without-image",
        "x",
        {"sidecars": [{"name": "agent"}]},
        ("spec.sidecars[0].image", "Required value"),
    ),
    (
        "volume-operator-name",
        "x",
        {"volumes": [{"name": "aidbox-tmp", "emptyDir": {}}]},
        ("volume names reserved by the operator (aidbox-tmp",),
    ),
    (
        "volumes-same-name",
        "x",
        {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
        ("spec.volumes[1]", "Duplicate value"),
    ),
    (
        "volume-without-name",
        "x",
        {"volumes": [{"emptyDir": {}}]},
        ("spec.volumes[0].name", "Required value"),
    ),
    (
        "mount-of-no-volume",
        "x",
        {"volumeMounts": [{"name": "nowhere", "mountPath": "/data"}]},
        ("every volumeMounts[].name must name a volume in spec.volumes",),
    ),
    (
        "mounts-same-path",
        "x",
        {
            "volumes": [{"name": "v", "emptyDir": {}}],
            "volumeMounts": [{"name": "v", "mountPath": "/d"}, {"name": "v", "mountPath": "/d"}],
        },
        ("spec.volumeMounts[1]", "Duplicate value"),
    ),
    (
        "env-from-both",
        "x",
        {"extraEnvFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
        ("configMapRef or secretRef, exactly one",),
    ),
    (
        "env-from-without-name",
        "x",
        {"extraEnvFrom": [{"secretRef": {"optional": True}}]},
        ("spec.extraEnvFrom[0].secretRef.name", "Required value"),
    ),
    ("priority-class-name", "x", {"priorityClassName": "Bad_Name"}, ("spec.priorityClassName",)),
    (
        "automount-word",
        "x",
        {"automountServiceAccountToken": "yes"},
        ("spec.automountServiceAccountToken",),
    ),
    # Autoscaling (issue 19): the HPA API's own limits, and what cannot work together.
    ("hpa-min-above-max", "x", _hpa(minReplicas=5, maxReplicas=3), (MIN_ABOVE_MAX,)),
    ("hpa-default-min-above-max", "x", _hpa(maxReplicas=1), (MIN_ABOVE_MAX,)),
    ("hpa-min-zero", "x", _hpa(minReplicas=0), ("spec.autoscaling.minReplicas",)),
    ("hpa-max-zero", "x", _hpa(minReplicas=1, maxReplicas=0), ("spec.autoscaling.maxReplicas",)),
    ("hpa-max-missing", "x", {"autoscaling": {}}, ("spec.autoscaling.maxReplicas", "Required")),
    (
        "hpa-cpu-zero",
        "x",
        _hpa(targetCPUUtilizationPercentage=0),
        ("spec.autoscaling.targetCPUUtilizationPercentage",),
    ),
    (
        "hpa-memory-absurd",
        "x",
        _hpa(targetMemoryUtilizationPercentage=5000),
        ("spec.autoscaling.targetMemoryUtilizationPercentage",),
    ),
    (
        "hpa-cpu-typo",
        "x",
        _hpa(targetCpuUtilizationPercentage=50),
        ('unknown field "spec.autoscaling.targetCpuUtilizationPercentage"',),
    ),
    (
        "hpa-policy-period",
        "x",
        _hpa(
            behavior={
                "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}
            }
        ),
        ("spec.autoscaling.behavior.scaleDown.policies[0].periodSeconds",),
    ),
    (
        "hpa-policies-empty",
        "x",
        _hpa(behavior={"scaleUp": {"policies": []}}),
        ("spec.autoscaling.behavior.scaleUp.policies",),
    ),
    (
        "hpa-select-policy",
        "x",
        _hpa(behavior={"scaleUp": {"selectPolicy": "Sometimes"}}),
        ("spec.autoscaling.behavior.scaleUp.selectPolicy",),
    ),
    (
        "hpa-and-manage-replicas-false",
        "x",
        {**_hpa(), "manageReplicas": False},
        ("set autoscaling or manageReplicas: false, not both",),
    ),
    (
        "hpa-cpu-unrequested",
        "x",
        {**_hpa(), "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}},
        ("autoscaling on cpu", "needs a cpu request"),
    ),
    # NetworkPolicy peers (issue 19): an empty peer would admit the whole namespace.
    (
        "netpol-empty-peer",
        "x",
        {"networkPolicy": {"enabled": True, "allowFrom": [{}]}},
        ("spec.networkPolicy.allowFrom[0]", "a peer is an ipBlock"),
    ),
    (
        "netpol-bad-cidr",
        "x",
        {"networkPolicy": {"enabled": True, "metricsFrom": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}},
        ("spec.networkPolicy.metricsFrom[0].ipBlock.cidr", "must be a CIDR"),
    ),
    (
        "netpol-ipblock-and-selector",
        "x",
        {
            "networkPolicy": {
                "ingressController": {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}
            }
        },
        ("spec.networkPolicy.ingressController", "a peer is an ipBlock"),
    ),
    (
        "netpol-in-without-values",
        "x",
        {
            "networkPolicy": {
                "allowFrom": [
                    {"namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "In"}]}}
                ]
            }
        },
        ("matchExpressions[0]", "In and NotIn need values"),
    ),
]


@pytest.fixture(scope="module")
def admission_ns(
    api_client: Any, hostile_operator: OperatorProcess
) -> Iterator[tuple[str, Snapshot]]:
    with temporary_namespace(api_client, "admission") as ns:
        yield ns, settled_snapshot(api_client, ns, set())


@pytest.mark.parametrize(
    ("name", "spec", "words"), [pytest.param(*c[1:], id=c[0]) for c in ADMISSION]
)
def test_refused_at_admission(
    api_client: Any,
    admission_ns: tuple[str, Snapshot],
    name: str,
    spec: dict[str, Any],
    words: tuple[str, ...],
) -> None:
    ns, before = admission_ns
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AidboxCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    with pytest.raises(ApiException) as raised:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body, field_validation="Strict"
        )
    # 422 for an invalid value; 400 for a strict-decoding error (unknown field).
    assert raised.value.status in (400, 422), raised.value.body
    text = api_message(raised.value)
    for word in words:
        assert word in text, text
    clusters = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL
    )["items"]
    assert clusters == []
    assert_unchanged(api_client, ns, before, set())


# -- 2. accepted, then refused (or held) on a running cluster ------------------------------
@dataclass(frozen=True)
class Refusal:
    id: str
    reason: str  # the Degraded/Stalled condition's reason, and the one Warning Event's
    words: tuple[str, ...]  # all in the condition's message
    spec: dict[str, Any] = field(default_factory=dict)
    # Changes outside the spec: (api, namespace, cluster name) -> objects it changed/deleted.
    act: Callable[[Any, str, str], set[tuple[str, str]]] | None = None
    held: bool = False  # waiting for something (Reconciling) rather than refused (Stalled)


def _delete_keys(api: Any, ns: str, name: str) -> set[tuple[str, str]]:
    client.CoreV1Api(api).delete_namespaced_secret(f"{name}-auth-keys", ns)
    return set()  # the cluster's own Secret: not in the snapshot of foreign objects


def _half_set_user_secret(api: Any, ns: str, name: str) -> set[tuple[str, str]]:
    client.CoreV1Api(api).patch_namespaced_secret(name, ns, {"stringData": {PRIVATE: PEM}})
    return {("Secret", name)}


def _toleration(**fields: Any) -> dict[str, Any]:
    return {"tolerations": [fields]}


REFUSALS = [
    Refusal(
        "memory-limit-below-request",
        "ApplyFailed",
        ("Deployment", "resources.requests", "memory"),
        {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}},
    ),
    Refusal(
        "cpu-limit-below-request",
        "ApplyFailed",
        ("Deployment", "resources.requests", "cpu"),
        {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}},
    ),
    Refusal(
        "service-account-bad-name",
        "ApplyFailed",
        ("spec.template.spec.serviceAccountName", "Bad_Name"),
        {"serviceAccountName": "Bad_Name"},
    ),
    Refusal(
        "pod-annotations-over-256k",
        "ApplyFailed",
        ("spec.template.annotations", "Too long"),
        {"podAnnotations": {"example.com/blob": "x" * (256 * 1024)}},
    ),
    Refusal(
        "pod-annotation-bad-key",
        "ApplyFailed",
        ("spec.template.annotations", "bad key"),
        {"podAnnotations": {"bad key": "v"}},
    ),
    Refusal(
        "pod-label-bad-key",
        "ApplyFailed",
        ("spec.template.labels", "bad key"),
        {"podLabels": {"bad key": "v"}},
    ),
    Refusal(
        "node-selector-bad-value",
        "ApplyFailed",
        ("spec.template.spec.nodeSelector", "bad value!"),
        {"nodeSelector": {"disk": "bad value!"}},
    ),
    Refusal(
        "node-selector-bad-key",
        "ApplyFailed",
        ("spec.template.spec.nodeSelector", "bad key"),
        {"nodeSelector": {"bad key": "ssd"}},
    ),
    Refusal(
        "toleration-exists-with-value",
        "ApplyFailed",
        ("spec.template.spec.tolerations[0]",),
        _toleration(key="k", operator="Exists", value="v"),
    ),
    Refusal(
        "toleration-seconds-without-noexecute",
        "ApplyFailed",
        ("spec.template.spec.tolerations[0].effect",),
        _toleration(key="k", operator="Equal", value="v", effect="NoSchedule", tolerationSeconds=5),
    ),
    Refusal(
        "toleration-equal-without-key",
        "ApplyFailed",
        ("spec.template.spec.tolerations[0].operator",),
        _toleration(operator="Equal", value="v"),
    ),
    Refusal(
        "surge-and-unavailable-zero",
        "ApplyFailed",
        ("spec.strategy.rollingUpdate.maxUnavailable",),
        {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}},
    ),
    Refusal(
        "env-name-with-equals",
        "ApplyFailed",
        ("spec.template.spec.containers[0].env", "BAD=NAME"),
        {"env": [{"name": "BAD=NAME", "value": "x"}]},
    ),
    Refusal(
        "env-secret-ref-without-key",
        "ApplyFailed",
        ("secretKeyRef.key", "Required value"),
        {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
    ),
    Refusal(
        "env-value-from-typo",
        "InvalidSpec",
        ("secretKeyRf",),
        {"env": [{"name": "X", "valueFrom": {"secretKeyRf": {"name": "s", "key": "k"}}}]},
    ),
    Refusal(
        "service-annotation-bad-key",
        "ApplyFailed",
        ("Service", "metadata.annotations", "bad key"),
        {"service": {"annotations": {"bad key": "v"}}},
    ),
    Refusal(
        "metrics-port-equals-web-port",
        "InvalidSpec",
        ("metrics.port 8080 is also the web port",),
        {"metrics": {"enabled": True, "port": 8080}},
    ),
    Refusal(
        "spread-unknown-field",
        "InvalidSpec",
        ("topologySpreadConstraints[0]", "labelselector"),
        {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelselector": {"matchLabels": {"a": "b"}},
                }
            ]
        },
    ),
    Refusal(
        "affinity-unknown-field",
        "InvalidSpec",
        ("affinity: unknown field 'nodeAfinity'",),
        {"affinity": {"nodeAfinity": {}}},
    ),
    Refusal(
        "container-security-typo",
        "InvalidSpec",
        ("containerSecurityContext", "readOnlyRootFileSystem"),
        {"containerSecurityContext": {"readOnlyRootFileSystem": True}},
    ),
    Refusal(
        "sidecar-unknown-field",
        "InvalidSpec",
        ("sidecars[0]", "imagePullPolicyy"),
        {"sidecars": [{**_c("agent"), "imagePullPolicyy": "Always"}]},
    ),
    Refusal(
        # (A volume with no source at all is no refusal: the API server makes it an emptyDir.)
        "volume-two-sources",
        "ApplyFailed",
        ("spec.template.spec.volumes[0]", "may not specify more than 1 volume type"),
        {
            "volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}],
            "volumeMounts": [{"name": "v", "mountPath": "/d"}],
        },
    ),
    Refusal(
        "unsupported-version-with-two-replicas",
        "UnsupportedVersion",
        ("2112", "2208"),
        {"image": "healthsamurai/aidboxone:2112", "replicas": 2},
    ),
    Refusal(
        "missing-config-map",
        "MissingReference",
        ("ConfigMap/nowhere",),
        {"configMapRef": {"name": "nowhere"}},
        held=True,
    ),
    Refusal("keys-secret-deleted-hold", "AuthKeysMissing", ("-auth-keys",), act=_delete_keys),
    Refusal(
        "user-secret-gains-private-key-only",
        "AuthKeysIncomplete",
        (PRIVATE, PUBLIC),
        act=_half_set_user_secret,
    ),
]


@dataclass
class RefusalBatch:
    ns: str
    uids: set[str]
    before: Snapshot
    workloads: dict[str, Workload]
    generations: dict[str, int]
    touched: set[tuple[str, str]]
    retried: bool  # the operator looked at the refused clusters again (retries happened)


def _short(case_id: str) -> str:
    return "r-" + case_id[:40].rstrip("-")


@pytest.fixture(scope="module")
def refusals(api_client: Any, hostile_operator: OperatorProcess) -> Iterator[RefusalBatch]:
    with temporary_namespace(api_client, "refused") as ns:
        uids = set()
        for case in REFUSALS:
            name = _short(case.id)
            make_user_config(api_client, name, ns)
            uids.add(new_cluster(api_client, name, ns, {"replicas": 1})["metadata"]["uid"])
        for case in REFUSALS:
            wait_condition(api_client, _short(case.id), ns, "Ready", timeout=90)
        before = settled_snapshot(api_client, ns, uids)
        workloads = {c.id: workload(api_client, _short(c.id), ns) for c in REFUSALS}
        generations = {}
        touched: set[tuple[str, str]] = set()
        passes = blocked_passes(hostile_operator)
        for case in REFUSALS:
            name = _short(case.id)
            generations[case.id] = get_cluster(api_client, name, ns)["metadata"]["generation"]
            if case.spec:
                patch_spec(api_client, name, ns, case.spec)
            if case.act:
                touched |= case.act(api_client, ns, name)
        # Every refused cluster is retried (backoff from 0.5 s); a held one is not retried
        # unless something changes. Let the operator retry the lot a few times.
        retried = saw_retries(hostile_operator, passes, 4 * len(REFUSALS), timeout=60)
        yield RefusalBatch(ns, uids, before, workloads, generations, touched, retried)


@pytest.mark.parametrize("case", REFUSALS, ids=[c.id for c in REFUSALS])
def test_refused_on_running_cluster(api_client: Any, refusals: RefusalBatch, case: Refusal) -> None:
    ns, name = refusals.ns, _short(case.id)
    body = wait_reason(api_client, name, ns, case.reason)
    degraded = condition(body, "Degraded")
    for word in case.words:
        assert word in degraded["message"], degraded["message"]
    status = body["status"]
    assert condition(body, "Ready")["status"] == "False"
    if case.held:
        assert condition(body, "Reconciling")["status"] == "True"
        assert condition(body, "Stalled")["status"] == "False"
        # Held: this generation is not applied, so it is not observed.
        assert status["observedGeneration"] == refusals.generations[case.id]
    else:
        stalled = condition(body, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", case.reason)
        assert status["observedGeneration"] == body["metadata"]["generation"]
    assert refusals.retried, "refused clusters were not looked at again"
    assert warnings(api_client, name, ns) == [case.reason], describe(api_client, name, ns)
    assert_undisturbed(api_client, name, ns, refusals.workloads[case.id])
    assert_unchanged(api_client, ns, refusals.before, refusals.uids, refusals.touched)
    if case.act is _delete_keys:
        with pytest.raises(ApiException) as raised:
            client.CoreV1Api(api_client).read_namespaced_secret(f"{name}-auth-keys", ns)
        assert raised.value.status == 404, "the keys Secret was regenerated under Hold"


def test_fixing_a_refused_spec_is_applied_at_once(api_client: Any, refusals: RefusalBatch) -> None:
    """After several refusals the backoff is long (seconds to a minute); a spec change must
    not wait for it."""
    ns, name = refusals.ns, _short("memory-limit-below-request")
    wait_reason(api_client, name, ns, "ApplyFailed", "Stalled")
    apps = client.AppsV1Api(api_client)
    patch_spec(api_client, name, ns, {"resources": {"limits": {"memory": "2Gi"}}})

    def applied() -> bool:
        dep = apps.read_namespaced_deployment(name, ns)
        limits = dep.spec.template.spec.containers[0].resources.limits or {}
        return limits.get("memory") == "2Gi"

    wait_for(applied, timeout=3, interval=0.1, message="the fixed spec applied")
    wait_condition(api_client, name, ns, "Ready", timeout=60)
    assert "Recovered" in normal_events(api_client, name, ns)


# -- 3. half-set key pairs on a new cluster ----------------------------------------------
# (id, where the key is set, which key)
HALF_SET = [
    (f"{key_id}-via-{where}", where, key)
    for where in ("secret", "configmap", "env")
    for key_id, key in (("private-only", PRIVATE), ("public-only", PUBLIC))
]


@dataclass
class HalfSetBatch:
    ns: str
    uids: set[str]
    before: Snapshot
    retried: bool


def _half_set_name(case_id: str) -> str:
    return "h-" + case_id


@pytest.fixture(scope="module")
def half_set(api_client: Any, hostile_operator: OperatorProcess) -> Iterator[HalfSetBatch]:
    with temporary_namespace(api_client, "half-set") as ns:
        value = {PRIVATE: PEM, PUBLIC: PUB}
        specs = {}
        for case_id, where, key in HALF_SET:
            name = _half_set_name(case_id)
            make_user_config(
                api_client,
                name,
                ns,
                config={key: value[key]} if where == "configmap" else None,
                secret={key: value[key]} if where == "secret" else None,
            )
            env = [{"name": key, "value": value[key]}] if where == "env" else []
            specs[name] = {"replicas": 1, "env": env}
        before = settled_snapshot(api_client, ns, set())
        uids = {new_cluster(api_client, n, ns, s)["metadata"]["uid"] for n, s in specs.items()}
        passes = blocked_passes(hostile_operator)
        wait_looked_at(api_client, list(specs), ns)
        # A refused spec is not retried by itself; a watch event (any status write) is. Make
        # sure each cluster was looked at again at least once.
        for name in specs:
            client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, {"metadata": {"labels": {"poke": "1"}}}
            )
        retried = saw_retries(hostile_operator, passes, 2 * len(specs), timeout=30)
        yield HalfSetBatch(ns, uids, before, retried)


@pytest.mark.parametrize(("case_id", "where", "key"), HALF_SET, ids=[c[0] for c in HALF_SET])
def test_half_set_key_pair(
    api_client: Any, half_set: HalfSetBatch, case_id: str, where: str, key: str
) -> None:
    ns, name = half_set.ns, _half_set_name(case_id)
    body = wait_reason(api_client, name, ns, "AuthKeysIncomplete", "Stalled")
    message = condition(body, "Degraded")["message"]
    other = PUBLIC if key == PRIVATE else PRIVATE
    assert f"sets {key} but not {other}" in message, message
    assert PEM.splitlines()[1] not in message  # no key material in status
    assert body["status"]["phase"] == "Invalid"
    assert half_set.retried, "refused clusters were not looked at again"
    assert warnings(api_client, name, ns) == ["AuthKeysIncomplete"], describe(api_client, name, ns)
    # Nothing was made for a refused spec, and nothing of the user's was touched.
    deployments = client.AppsV1Api(api_client).list_namespaced_deployment(ns).items
    assert name not in {d.metadata.name for d in deployments}
    assert_unchanged(api_client, ns, half_set.before, half_set.uids)


def test_half_set_refusal_lifts_when_both_keys_are_set(
    api_client: Any, half_set: HalfSetBatch
) -> None:
    """The refusal is not sticky: completing the pair lets the cluster start."""
    ns, name = half_set.ns, _half_set_name("private-only-via-secret")
    wait_reason(api_client, name, ns, "AuthKeysIncomplete", "Stalled")
    client.CoreV1Api(api_client).patch_namespaced_secret(name, ns, {"stringData": {PUBLIC: PUB}})
    wait_condition(api_client, name, ns, "Ready", timeout=60)
    wait_for(
        lambda: "Recovered" in normal_events(api_client, name, ns),
        timeout=10,
        message="Recovered event",
    )
    assert warnings(api_client, name, ns) == ["AuthKeysIncomplete"], describe(api_client, name, ns)


# -- 4. every pod setting accepted ------------------------------------------------------------
def test_every_pod_setting_is_accepted_and_runs(
    api_client: Any, hostile_operator: OperatorProcess
) -> None:
    """The refusals above are not too strict: a spec using every pod setting passes admission,
    the API server takes the Deployment the operator renders from it, and the cluster becomes
    Ready."""
    with temporary_namespace(api_client, "pod-settings") as ns:
        name = "pods"
        make_user_config(api_client, name, ns)
        client.CoreV1Api(api_client).create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="more"), data={"A": "1"})
        )
        spec = {
            "replicas": 1,
            "extraEnvFrom": [
                {"configMapRef": {"name": "more"}},
                {"secretRef": {"name": "absent", "optional": True}},
            ],
            "priorityClassName": "system-cluster-critical",
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}},
                            },
                        }
                    ]
                }
            },
            "podSecurityContext": {"fsGroup": 1000},
            "containerSecurityContext": {"readOnlyRootFilesystem": True},
            "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            "initContainers": [{**_c("wait"), "command": ["true"]}],
            "sidecars": [_c("agent")],
        }
        new_cluster(api_client, name, ns, spec)
        wait_condition(api_client, name, ns, "Ready", timeout=90)
        pod = client.AppsV1Api(api_client).read_namespaced_deployment(name, ns).spec.template.spec
        assert [c.name for c in pod.containers] == ["main", "agent"]
        assert [c.name for c in pod.init_containers] == ["wait"]
        assert {v.name for v in pod.volumes} == {"cache", "aidbox-tmp"}
        assert {m.mount_path for m in pod.containers[0].volume_mounts} == {"/cache", "/tmp"}
        assert pod.automount_service_account_token is False
        assert pod.priority_class_name == "system-cluster-critical"
        assert pod.containers[0].resources.limits == {"memory": "2Gi"}
        assert warnings(api_client, name, ns) == [], describe(api_client, name, ns)
