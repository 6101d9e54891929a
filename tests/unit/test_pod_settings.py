"""Pod settings (issue 19, part 4): each spec field, what it renders into the pod template, the
defaults that keep pods out of BestEffort, and each refusal of the model. The same refusals at
admission (CEL and the schema, on the real API server) are in
tests/integration/test_hostile_specs.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fakeapi import Harness
from pydantic import ValidationError

from aidbox_operator.kubectl.report import _referenced_secrets
from aidbox_operator.model import AidboxCluster, AidboxClusterSpec
from aidbox_operator.model.constants import CONTAINER_NAME, TMP_VOLUME
from aidbox_operator.model.crd import spec_schema
from aidbox_operator.reconcile.observe import envfrom_keys, references
from aidbox_operator.reconcile.store import ConfigSummary
from aidbox_operator.render import build_deployment
from aidbox_operator.render.deployment import HARDENED_SECURITY_CONTEXT

IMAGE = "healthsamurai/aidboxone:2510"


def _cluster(**spec: Any) -> AidboxCluster:
    return AidboxCluster.model_validate({"metadata": {"name": "a", "namespace": "n"}, "spec": spec})


def _pod(user_keys: frozenset[str] = frozenset(), **spec: Any) -> dict[str, Any]:
    deployment = build_deployment(_cluster(**spec), user_keys=user_keys)
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["containers"][0]
    assert container["name"] == CONTAINER_NAME
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def qos_class(pod: dict[str, Any]) -> str:
    """Kubernetes' QoS class of a pod spec (pkg/apis/core/helper/qos), for cpu and memory."""
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or r.get("limits") or {}).get(k) == r["limits"][k]
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


# -- defaults ---------------------------------------------------------------------------------
def test_defaults_keep_pods_out_of_best_effort_with_a_heap_that_fits() -> None:
    pod = _pod()
    main = _main(pod)
    assert main["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert qos_class(pod) == "Burstable"
    assert qos_class({"containers": [{"name": "x"}]}) == "BestEffort"  # the helper itself
    assert _env(main)["JAVA_OPTS"]["value"] == "-XX:MaxRAMPercentage=70"
    assert pod["automountServiceAccountToken"] is False
    assert main["securityContext"] == HARDENED_SECURITY_CONTEXT
    for absent in ("affinity", "priorityClassName", "securityContext", "volumes"):
        assert absent not in pod
    assert "initContainers" not in pod and len(pod["containers"]) == 1
    assert "volumeMounts" not in main


def test_user_resources_are_taken_as_written() -> None:
    main = _main(_pod(resources={"limits": {"memory": "6Gi"}}))
    assert main["resources"] == {"limits": {"memory": "6Gi"}}
    # The heap share follows whatever limit is in force.
    assert _env(main)["JAVA_OPTS"]["value"] == "-XX:MaxRAMPercentage=70"


def test_no_heap_share_without_a_memory_limit() -> None:
    main = _main(_pod(resources={"requests": {"cpu": "1", "memory": "3Gi"}}))
    assert "limits" not in main["resources"]
    assert "JAVA_OPTS" not in _env(main)


def test_instance_name_is_each_pods_own_name() -> None:
    env = _env(_main(_pod()))
    assert env["BOX_INSTANCE_NAME"]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
    }


@pytest.mark.parametrize("name", ["JAVA_OPTS", "BOX_INSTANCE_NAME"])
def test_users_env_replaces_a_default(name: str) -> None:
    env = _main(_pod(env=[{"name": name, "value": "mine"}]))["env"]
    assert [e for e in env if e["name"] == name] == [{"name": name, "value": "mine"}]


@pytest.mark.parametrize("name", ["JAVA_OPTS", "BOX_INSTANCE_NAME"])
def test_a_default_set_in_the_users_configmap_or_secret_is_left_out(name: str) -> None:
    # env would hide the ConfigMap's value: the operator sets none of its own.
    env = _env(_main(_pod(user_keys=frozenset({name}))))
    assert name not in env


# -- security contexts and readOnlyRootFilesystem ---------------------------------------------
def test_container_security_context_is_merged_key_by_key() -> None:
    main = _main(_pod(containerSecurityContext={"runAsUser": 1001, "capabilities": {}}))
    context = main["securityContext"]
    assert context["runAsUser"] == 1001
    assert context["capabilities"] == {}  # a key set replaces ours whole
    assert context["allowPrivilegeEscalation"] is False
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsNonRoot"] is True


def test_read_only_root_gets_a_writable_tmp() -> None:
    pod = _pod(containerSecurityContext={"readOnlyRootFilesystem": True})
    main = _main(pod)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": TMP_VOLUME, "emptyDir": {}} in pod["volumes"]
    assert {"name": TMP_VOLUME, "mountPath": "/tmp"} in main["volumeMounts"]


def test_read_only_root_leaves_tmp_to_the_users_own_mount() -> None:
    pod = _pod(
        containerSecurityContext={"readOnlyRootFilesystem": True},
        volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
        volumeMounts=[{"name": "scratch", "mountPath": "/tmp"}],
    )
    assert [v["name"] for v in pod["volumes"]] == ["scratch"]
    assert _main(pod)["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]


def test_no_scratch_volume_while_the_root_is_writable() -> None:
    pod = _pod(containerSecurityContext={"readOnlyRootFilesystem": False})
    assert "volumes" not in pod and "volumeMounts" not in _main(pod)


def test_pod_security_context_is_passed_through() -> None:
    context = {"fsGroup": 1000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
    assert _pod(podSecurityContext=context)["securityContext"] == context


# -- scheduling and the service account token ----------------------------------------------
def test_affinity_priority_and_token() -> None:
    affinity = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "pg"}},
                    },
                }
            ]
        }
    }
    pod = _pod(
        affinity=affinity, priorityClassName="aidbox-critical", automountServiceAccountToken=True
    )
    assert pod["affinity"] == affinity
    assert pod["priorityClassName"] == "aidbox-critical"
    assert pod["automountServiceAccountToken"] is True
    # The default spreading stays beside an affinity.
    assert len(pod["topologySpreadConstraints"]) == 2


# -- volumes and containers ----------------------------------------------------------------
def test_volumes_mounts_init_containers_and_sidecars() -> None:
    pod = _pod(
        volumes=[{"name": "ca", "configMap": {"name": "ca"}}],
        volumeMounts=[{"name": "ca", "mountPath": "/etc/ca", "readOnly": True}],
        initContainers=[{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
        sidecars=[{"name": "proxy", "image": "envoyproxy/envoy:v1.35.0"}],
    )
    assert pod["volumes"] == [{"name": "ca", "configMap": {"name": "ca"}}]
    assert _main(pod)["volumeMounts"] == [{"name": "ca", "mountPath": "/etc/ca", "readOnly": True}]
    assert pod["initContainers"] == [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}]
    assert [c["name"] for c in pod["containers"]] == [CONTAINER_NAME, "proxy"]


def test_extra_env_from_comes_after_the_main_two() -> None:
    main = _main(
        _pod(
            extraEnvFrom=[
                {"configMapRef": {"name": "more"}},
                {"secretRef": {"name": "extra", "optional": True}},
            ]
        )
    )
    assert main["envFrom"] == [
        {"configMapRef": {"name": "a"}},
        {"secretRef": {"name": "a"}},
        {"configMapRef": {"name": "more"}},
        {"secretRef": {"name": "extra", "optional": True}},
    ]


# -- refusals of the model ------------------------------------------------------------------
MAIN_REFUSED = "the container name main is the Aidbox container's own"
RESERVED = "volume names reserved by the operator (aidbox-tmp"
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("affinity-typo", {"affinity": {"nodeAfinity": {}}}, "affinity: unknown field 'nodeAfinity'"),
    (
        "affinity-nested-typo",
        {
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "podAffinityTerm": {"topologykey": "x"}}
                    ]
                }
            }
        },
        "podAffinityTerm: unknown field 'topologykey'",
    ),
    ("priority-class-bad", {"priorityClassName": "Bad_Name"}, "priorityClassName"),
    ("pod-security-typo", {"podSecurityContext": {"fsgroup": 1}}, "unknown field 'fsgroup'"),
    (
        "container-security-typo",
        {"containerSecurityContext": {"readOnlyRootFileSystem": True}},
        "containerSecurityContext: unknown field 'readOnlyRootFileSystem'",
    ),
    ("volume-without-name", {"volumes": [{"emptyDir": {}}]}, "volumes[0]: a volume needs a name"),
    ("volume-reserved", {"volumes": [{"name": TMP_VOLUME, "emptyDir": {}}]}, RESERVED),
    (
        "volume-twice",
        {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
        "volumes: 'v' appears twice",
    ),
    ("volume-typo", {"volumes": [{"name": "v", "emptydir": {}}]}, "unknown field 'emptydir'"),
    (
        "mount-of-no-volume",
        {"volumeMounts": [{"name": "nowhere", "mountPath": "/x"}]},
        "must name a volume in spec.volumes",
    ),
    (
        "mount-path-twice",
        {
            "volumes": [{"name": "v", "emptyDir": {}}],
            "volumeMounts": [{"name": "v", "mountPath": "/x"}, {"name": "v", "mountPath": "/x"}],
        },
        "volumeMounts[].mountPath: '/x' appears twice",
    ),
    (
        "mount-typo",
        {
            "volumes": [{"name": "v", "emptyDir": {}}],
            "volumeMounts": [{"name": "v", "mountpath": "/x"}],
        },
        "unknown field 'mountpath'",
    ),
    ("sidecar-main", {"sidecars": [{"name": "main", "image": "x"}]}, MAIN_REFUSED),
    ("init-main", {"initContainers": [{"name": "main", "image": "x"}]}, MAIN_REFUSED),
    ("sidecar-without-image", {"sidecars": [{"name": "s"}]}, "needs a name and an image"),
    (
        "sidecar-and-init-same-name",
        {
            "sidecars": [{"name": "s", "image": "x"}],
            "initContainers": [{"name": "s", "image": "x"}],
        },
        "'s' appears twice",
    ),
    (
        "sidecar-typo",
        {"sidecars": [{"name": "s", "image": "x", "imagePullPolicyy": "Always"}]},
        "sidecars[0]: unknown field 'imagePullPolicyy'",
    ),
    (
        "sidecar-port-typo",
        {"sidecars": [{"name": "s", "image": "x", "ports": [{"containerport": 1}]}]},
        "sidecars[0].ports[0]: unknown field 'containerport'",
    ),
    (
        "env-from-both",
        {"extraEnvFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
        "configMapRef or secretRef, exactly one",
    ),
    ("env-from-neither", {"extraEnvFrom": [{}]}, "configMapRef or secretRef, exactly one"),
    ("env-from-no-name", {"extraEnvFrom": [{"secretRef": {}}]}, "name"),
]


@pytest.mark.parametrize(("spec", "words"), [pytest.param(*c[1:], id=c[0]) for c in REFUSED])
def test_model_refuses(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        AidboxClusterSpec.model_validate(spec)


# -- the schema's admission rules (run by the API server: tests/integration) ---------------
def test_schema_refuses_duplicates_and_reserved_names_at_admission() -> None:
    props = spec_schema()["properties"]
    for field, key in (
        ("volumes", "name"),
        ("initContainers", "name"),
        ("sidecars", "name"),
        ("volumeMounts", "mountPath"),
    ):
        assert props[field]["x-kubernetes-list-type"] == "map", field
        assert props[field]["x-kubernetes-list-map-keys"] == [key], field
        assert key in props[field]["items"]["required"], field
    for field in ("initContainers", "sidecars"):
        rules = [r["rule"] for r in props[field]["items"]["x-kubernetes-validations"]]
        assert rules == [f"self.name != '{CONTAINER_NAME}'"]
    assert TMP_VOLUME in props["volumes"]["items"]["x-kubernetes-validations"][0]["rule"]
    spec_rules = " ".join(r["rule"] for r in spec_schema()["x-kubernetes-validations"])
    assert "self.volumeMounts.all" in spec_rules and "self.sidecars.all" in spec_rules
    assert props["automountServiceAccountToken"]["default"] is False
    for field in (
        "affinity",
        "priorityClassName",
        "podSecurityContext",
        "containerSecurityContext",
        "automountServiceAccountToken",
        "volumes",
        "volumeMounts",
        "initContainers",
        "sidecars",
        "extraEnvFrom",
    ):
        assert props[field].get("description"), field


# -- reconcile: extra sources are watched, required, and roll the pods ---------------------
def test_extra_sources_are_references_of_the_cluster() -> None:
    cluster = _cluster(
        extraEnvFrom=[
            {"configMapRef": {"name": "more"}},
            {"secretRef": {"name": "extra", "optional": True}},
            {"secretRef": {"name": "a", "optional": True}},  # also the secretRef: required
        ]
    )
    refs = references(cluster)
    assert refs[("ConfigMap", "n", "more")] is True
    assert refs[("Secret", "n", "extra")] is False
    assert refs[("Secret", "n", "a")] is True
    configs = {ref: ConfigSummary(exists=True, keys=frozenset({ref[2].upper()})) for ref in refs}
    assert envfrom_keys(cluster, configs) >= {"MORE", "EXTRA", "A"}
    assert "A-AUTH-KEYS" not in envfrom_keys(cluster, configs)


async def test_a_change_in_an_extra_configmap_rolls_the_pods() -> None:
    h = Harness()
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.config("ConfigMap", "more", {"BOX_FEATURE": "on"})
    h.cluster(image=IMAGE, extraEnvFrom=[{"configMapRef": {"name": "more"}}])
    await h.reconcile()
    h.roll_out()
    await h.reconcile()

    def template() -> dict[str, Any]:
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        result: dict[str, Any] = dep["spec"]["template"]
        return result

    before = template()["metadata"]["annotations"]["aidbox.io/config-hash"]
    h.config("ConfigMap", "more", {"BOX_FEATURE": "off", "JAVA_OPTS": "-Xmx3g"})
    result = await h.reconcile()
    assert template()["metadata"]["annotations"]["aidbox.io/config-hash"] != before
    assert any("rolling restart" in message for _, message in result.changes)
    # JAVA_OPTS now comes from the user's ConfigMap: the operator's default is gone.
    env = {e["name"] for e in template()["spec"]["containers"][0]["env"]}
    assert "JAVA_OPTS" not in env and "BOX_INSTANCE_NAME" in env


async def test_a_missing_extra_configmap_holds_the_rollout() -> None:
    h = Harness()
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.cluster(image=IMAGE, extraEnvFrom=[{"configMapRef": {"name": "absent"}}])
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") is None
    assert h.status()["missingReferences"] == ["ConfigMap/absent"]


# -- the support bundle ---------------------------------------------------------------------
def test_support_bundle_blanks_the_extra_secrets_values() -> None:
    cluster = {
        "metadata": {"name": "a"},
        "spec": {
            "extraEnvFrom": [{"secretRef": {"name": "extra"}}, {"configMapRef": {"name": "cm"}}]
        },
    }
    assert _referenced_secrets(cluster, {}) == ["a", "extra"]
