"""Release changes on the sandbox's API server: the version record survives an operator restart,
a downgrade is refused (nothing running touched) until the override annotation names it, and
without the guard the same downgrade rolls (so these tests can fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_cluster,
    events_for,
    get_cluster,
    make_config,
    patch_spec,
    status_current,
)
from operator_process import OperatorProcess

REPO = "healthsamurai/aidboxone"
UNPROTECTED = Path(__file__).resolve().parents[1] / "faults" / "unprotected.py"
ALLOW = "aidbox.io/allow-downgrade-to"


def _operator(credentials: Path, log: Path, namespace: str, remove: str = "") -> OperatorProcess:
    if not remove:
        return OperatorProcess(credentials, log, ("--namespace", namespace))
    return OperatorProcess(
        credentials,
        log,
        ("--namespace", namespace),
        env={"FAULTS_REMOVE": remove},
        launcher=(str(UNPROTECTED),),
    )


def _template_image(api: Any, name: str, ns: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    return str(dep.spec.template.spec.containers[0].image)


def _settled_on(api: Any, name: str, ns: str, tag: str) -> dict[str, Any]:
    """Every pod runs `tag` and the operator reported it Ready for the current spec."""

    def done() -> dict[str, Any] | None:
        body = get_cluster(api, name, ns)
        status = body.get("status") or {}
        ready = condition(body, "Ready").get("status") == "True"
        return body if status_current(body) and ready and status.get("version") == tag else None

    return wait_for(done, timeout=120, interval=0.5, message=f"{name} Ready on {tag}")


def _running_newer(api: Any, name: str, ns: str) -> None:
    make_config(api, name, ns)
    create_cluster(api, name, ns, image=f"{REPO}:2510.1", replicas=2)
    body = _settled_on(api, name, ns, "2510.1")
    assert body["status"]["versionRecord"]["newestReady"] == "2510.1"
    patch_spec(api, name, ns, {"image": f"{REPO}:2510.2"})
    body = _settled_on(api, name, ns, "2510.2")
    assert body["status"]["versionRecord"]["newestReady"] == "2510.2"
    assert "upgrade" not in body["status"]


def _refused(api: Any, name: str, ns: str) -> dict[str, Any]:
    def stalled() -> dict[str, Any] | None:
        body = get_cluster(api, name, ns)
        cond = condition(body, "Stalled")
        current = cond.get("observedGeneration") == body["metadata"]["generation"]
        return body if current and cond.get("reason") == "DowngradeRefused" else None

    return wait_for(stalled, timeout=60, interval=0.5, message="Stalled/DowngradeRefused")


def test_a_downgrade_is_refused_after_an_operator_restart(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    ns = own_namespace
    op = _operator(operator_credentials, tmp_path / "first.log", ns)
    op.start()
    try:
        _running_newer(api_client, "fhir", ns)
    finally:
        op.stop()
    reasons = [e.reason for e in events_for(api_client, "fhir", ns)]
    assert "UpgradeStarted" in reasons and "UpgradeCompleted" in reasons, reasons

    # A new operator process knows only what status recorded.
    op = _operator(operator_credentials, tmp_path / "second.log", ns)
    op.start()
    try:
        patch_spec(api_client, "fhir", ns, {"image": f"{REPO}:2510.1"})
        body = _refused(api_client, "fhir", ns)
        message = condition(body, "Stalled")["message"]
        assert "2510.1" in message and "2510.2" in message and ALLOW in message, message
        assert body["status"]["observedGeneration"] < body["metadata"]["generation"]
        assert _template_image(api_client, "fhir", ns) == f"{REPO}:2510.2"
        warnings = [
            e
            for e in events_for(api_client, "fhir", ns)
            if e.type == "Warning" and e.reason == "DowngradeRefused"
        ]
        assert len(warnings) == 1 and (warnings[0].count or 1) == 1, warnings

        # The override names the exact release: the downgrade goes ahead.
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "fhir", {"metadata": {"annotations": {ALLOW: "2510.1"}}}
        )
        body = _settled_on(api_client, "fhir", ns, "2510.1")
        assert body["status"]["versionRecord"]["newestReady"] == "2510.2"
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    finally:
        op.stop()


def test_without_the_guard_the_downgrade_rolls(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    ns = own_namespace
    op = _operator(operator_credentials, tmp_path / "operator.log", ns, remove="downgrade")
    op.start()
    try:
        _running_newer(api_client, "fhir", ns)
        patch_spec(api_client, "fhir", ns, {"image": f"{REPO}:2510.1"})
        _settled_on(api_client, "fhir", ns, "2510.1")
        assert _template_image(api_client, "fhir", ns) == f"{REPO}:2510.1"
    finally:
        op.stop()
