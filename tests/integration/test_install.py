"""deploy/ (kustomize) and charts/ (helm) render the same install: same RBAC, same CRD, same pod.

kubectl is the sandbox's (kustomize built in); helm is built from source by tests/tools.py when
missing. The default deploy/ is also applied with `--server-side --dry-run=server`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbac import OPERATOR_NAMESPACE, REPO, kubectl, kustomize
from tools import helm

CHART = REPO / "charts" / "aidbox-operator"
CRD_FILE = REPO / "crds" / "aidboxcluster.yaml"


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _helm(*args: str) -> str:
    out = subprocess.run(
        [str(helm()), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, f"helm {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _template(*values: str) -> tuple[str, list[dict[str, Any]]]:
    text = _helm(
        "template",
        "aidbox-operator",
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--include-crds",
        *values,
    )
    return text, [d for d in yaml.safe_load_all(text) if d]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _by_kind(docs)[("Deployment", "aidbox-operator")]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.fixture(scope="module")
def cluster_wide(sandbox: Any) -> list[dict[str, Any]]:
    return kustomize(sandbox, "cluster-wide")


@pytest.fixture(scope="module")
def single_namespace(sandbox: Any) -> list[dict[str, Any]]:
    return kustomize(sandbox, "single-namespace")


def test_default_deploy_is_the_cluster_wide_overlay(
    sandbox: Any, cluster_wide: list[dict[str, Any]]
) -> None:
    assert kustomize(sandbox, REPO / "deploy") == cluster_wide
    kinds = sorted({d["kind"] for d in cluster_wide})
    assert kinds == sorted(
        {
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
    )
    for doc in cluster_wide:
        # kubectl's kustomize does not know the admission policy kinds are cluster-scoped and
        # gives them the base's namespace too; the API server ignores it.
        cluster_scoped = (
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        )
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == OPERATOR_NAMESPACE, doc["metadata"]


def test_kustomize_crd_is_the_generated_file(cluster_wide: list[dict[str, Any]]) -> None:
    crd = _by_kind(cluster_wide)[("CustomResourceDefinition", "aidboxclusters.aidbox.io")]
    assert crd == yaml.safe_load(CRD_FILE.read_text())


def test_operator_pod_hardening(cluster_wide: list[dict[str, Any]]) -> None:
    deployment = _by_kind(cluster_wide)[("Deployment", "aidbox-operator")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "aidbox-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
    assert container["resources"]["requests"] and container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    args = container["args"]
    assert "--all-namespaces" in args
    assert args[args.index("--log-format") + 1] == "json"
    assert args[args.index("--health-endpoint") + 1] == "http://0.0.0.0:8080/healthz"
    assert args[args.index("--metrics-port") + 1] == "8081"
    assert "--leader-elect" in args
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
    assert env["POD_NAME"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["fieldPath"] == "metadata.namespace"


def test_single_namespace_overlay(single_namespace: list[dict[str, Any]]) -> None:
    objs = _by_kind(single_namespace)
    assert ("ClusterRoleBinding", "aidbox-operator") not in objs
    binding = objs[("RoleBinding", "aidbox-operator")]
    watched = binding["metadata"]["namespace"]
    assert watched == "aidbox"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "aidbox-operator",
    }
    container = _container(single_namespace)
    assert container["args"][:2] == ["--namespace", "$(WATCH_NAMESPACE)"]
    assert "--all-namespaces" not in container["args"]
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WATCH_NAMESPACE"] == watched
    cluster_rules = objs[("ClusterRole", "aidbox-operator-cluster")]["rules"]
    # The CRD read, and the cluster-scoped release channels (handled by a namespaced install
    # only when started with --release-channels=on).
    assert cluster_rules == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["aidbox.io"],
            "resources": ["aidboxreleasechannels"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["aidbox.io"],
            "resources": ["aidboxreleasechannels/status"],
            "verbs": ["patch"],
        },
    ]


def test_server_side_dry_run_of_deploy(sandbox: Any, sandbox_kubeconfig: Path) -> None:
    # A server-side dry run does not create the namespace that the other objects go into.
    subprocess.run(
        [
            kubectl(sandbox),
            "--kubeconfig",
            str(sandbox_kubeconfig),
            "create",
            "namespace",
            "aidbox-operator-system",
        ],
        capture_output=True,
        check=False,
    )
    out = subprocess.run(
        [
            kubectl(sandbox),
            "--kubeconfig",
            str(sandbox_kubeconfig),
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            str(REPO / "deploy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "deployment.apps/aidbox-operator serverside-applied (server dry run)" in out.stdout
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        applied = f"{kind}.admissionregistration.k8s.io/aidbox-operator-downgrade"
        assert f"{applied} serverside-applied (server dry run)" in out.stdout, out.stdout


# -- helm ----------------------------------------------------------------------------------------


def test_helm_lint() -> None:
    out = _helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out
    _helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={a,b}")


def test_helm_crd_is_byte_identical_to_the_generated_file() -> None:
    # charts/aidbox-operator/crds/aidboxcluster.yaml is a symlink to crds/aidboxcluster.yaml.
    link = CHART / "crds" / "aidboxcluster.yaml"
    assert link.is_symlink() and link.resolve() == CRD_FILE.resolve()
    text, _ = _template()
    expected = CRD_FILE.read_text()
    assert f"# Source: aidbox-operator/crds/aidboxcluster.yaml\n{expected}" in text


def test_helm_renders_the_same_install_as_deploy(cluster_wide: list[dict[str, Any]]) -> None:
    _, docs = _template()
    chart, deploy = _by_kind(docs), _by_kind(cluster_wide)
    assert (
        deploy[("CustomResourceDefinition", "aidboxclusters.aidbox.io")]
        == (chart[("CustomResourceDefinition", "aidboxclusters.aidbox.io")])
    )
    for key in (
        ("ClusterRole", "aidbox-operator"),
        ("ClusterRole", "aidbox-operator-cluster"),
        ("Role", "aidbox-operator-leader-election"),
    ):
        assert chart[key]["rules"] == deploy[key]["rules"], key
    for key in (
        ("ClusterRoleBinding", "aidbox-operator"),
        ("ClusterRoleBinding", "aidbox-operator-cluster"),
        ("RoleBinding", "aidbox-operator-leader-election"),
    ):
        assert chart[key]["roleRef"] == deploy[key]["roleRef"], key
        assert chart[key]["subjects"] == deploy[key]["subjects"], key
    assert chart[("Role", "aidbox-operator-leader-election")]["metadata"]["namespace"] == (
        OPERATOR_NAMESPACE
    )
    chart_pod = chart[("Deployment", "aidbox-operator")]["spec"]["template"]["spec"]
    deploy_pod = deploy[("Deployment", "aidbox-operator")]["spec"]["template"]["spec"]
    assert chart[("Deployment", "aidbox-operator")]["spec"]["replicas"] == 2
    assert chart_pod["securityContext"] == deploy_pod["securityContext"]
    assert chart_pod["volumes"] == deploy_pod["volumes"]
    chart_c, deploy_c = chart_pod["containers"][0], deploy_pod["containers"][0]
    for field in (
        "image",
        "args",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    ):
        assert chart_c[field] == deploy_c[field], field
    assert ("ServiceMonitor", "aidbox-operator") not in chart
    # A drain never takes both operator replicas; the budget selects exactly their pods.
    for install in (chart, deploy):
        pdb = install[("PodDisruptionBudget", "aidbox-operator")]
        operator = install[("Deployment", "aidbox-operator")]
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert pdb["spec"]["selector"] == operator["spec"]["selector"]
    assert chart[("Service", "aidbox-operator-metrics")]["spec"]["ports"][0]["port"] == 8081
    # The downgrade policy as tests/integration/test_downgrade_admission.py reads it from
    # deploy/base: kustomize and helm both keep each expression as it is written there.
    for kind, file in (
        ("ValidatingAdmissionPolicy", "downgrade-policy.yaml"),
        ("ValidatingAdmissionPolicyBinding", "downgrade-policy-binding.yaml"),
    ):
        key = (kind, "aidbox-operator-downgrade")
        shipped = yaml.safe_load((REPO / "deploy" / "base" / file).read_text())
        assert chart[key]["apiVersion"] == deploy[key]["apiVersion"] == shipped["apiVersion"]
        assert chart[key]["spec"] == deploy[key]["spec"] == shipped["spec"], key


def test_helm_downgrade_policy_follows_the_release_and_can_be_turned_off() -> None:
    text = _helm("template", "fhir", str(CHART), "--namespace", OPERATOR_NAMESPACE)
    objs = _by_kind([d for d in yaml.safe_load_all(text) if d])
    name = "fhir-aidbox-operator-downgrade"
    policy = objs[("ValidatingAdmissionPolicy", name)]
    assert objs[("ValidatingAdmissionPolicyBinding", name)]["spec"]["policyName"] == name
    shipped = yaml.safe_load((REPO / "deploy" / "base" / "downgrade-policy.yaml").read_text())
    assert policy["spec"] == shipped["spec"]
    _, off = _template("--set", "downgradePolicy.enabled=false")
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]


def test_helm_watch_namespaces_matches_single_namespace(
    single_namespace: list[dict[str, Any]],
) -> None:
    _, docs = _template("--set", "watchNamespaces={team-a,team-b}")
    chart, overlay = _by_kind(docs), _by_kind(single_namespace)
    assert ("ClusterRoleBinding", "aidbox-operator") not in chart
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == overlay[("RoleBinding", "aidbox-operator")]["roleRef"]
    key = ("ClusterRole", "aidbox-operator-cluster")
    assert chart[key]["rules"] == overlay[key]["rules"]
    args = _container(docs)["args"]
    assert args[:4] == ["--namespace", "team-a", "--namespace", "team-b"]
    assert "--all-namespaces" not in args


def test_helm_values() -> None:
    _, docs = _template(
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "replicas=3",
        "--set",
        "image.repository=registry.example/aidbox-operator",
        "--set",
        "image.tag=9.9.9",
        "--set",
        "logFormat=text",
        "--set",
        "metrics.port=9090",
        "--set",
        "resources.limits.memory=1Gi",
    )
    objs = _by_kind(docs)
    monitor = objs[("ServiceMonitor", "aidbox-operator")]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = objs[("Service", "aidbox-operator-metrics")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert objs[("Deployment", "aidbox-operator")]["spec"]["replicas"] == 3
    container = _container(docs)
    assert container["image"] == "registry.example/aidbox-operator:9.9.9"
    args = container["args"]
    assert args[args.index("--log-format") + 1] == "text"
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == 9090
    assert container["resources"]["limits"]["memory"] == "1Gi"


def test_helm_has_no_operator_budget_for_a_single_replica() -> None:
    """One replica: a budget of maxUnavailable 1 would still allow the drain, but it would
    say nothing true; none is rendered, nor when turned off."""
    for values in (("--set", "replicas=1"), ("--set", "podDisruptionBudget.enabled=false")):
        _, docs = _template(*values)
        assert ("PodDisruptionBudget", "aidbox-operator") not in _by_kind(docs), values
