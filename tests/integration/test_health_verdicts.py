"""kstatus and Argo CD verdicts of live AidboxClusters the real operator drove into each scenario.

Each test first establishes the scenario from facts the operator does not write (the
Deployment, its pods, the spec), then requires both verdicts of the live object to equal the
row of health_verdicts.VERDICTS on a status the operator wrote for the current spec (every
condition names the current generation): a verdict that is right only for the instant before
the operator reacts does not pass.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from channels import BROKEN, create_channel, delete_channel, move_channel
from channels import REPO as CHANNEL_REPO
from health_verdicts import EXPECTED, PAUSE_ANNOTATION, SCENARIOS, ArgoHealth, kstatus_verdicts
from helpers import wait_for
from kube_helpers import (
    GROUP,
    HTTP_ROUTE_CRD,
    PLURAL,
    VERSION,
    cluster_manifest,
    condition,
    create_cluster,
    get_cluster,
    make_config,
    patch_spec,
    status_current,
    wait_condition,
)
from operator_process import OperatorProcess, free_port

NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"
SELECTOR = "app.kubernetes.io/instance={}"
SETTLE = 30.0
OLD_IMAGE = "healthsamurai/aidboxone:2509"
NEW_IMAGE = "healthsamurai/aidboxone:2510"
# The sandbox keeps this release's pods running but never Ready (stages/).
SLOW = "healthsamurai/aidboxone:2510.998"

COVERED: set[str] = set()
ARGO = ArgoHealth()


def covers(scenario: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    assert scenario in EXPECTED, scenario
    COVERED.add(scenario)
    return lambda test: test


def verdicts(body: dict[str, Any]) -> tuple[tuple[str, str], str]:
    """((kstatus, Argo CD), explanation) for a live object."""
    k = kstatus_verdicts([body])[0]
    argo = ARGO(body)
    why = (
        f"kstatus {k['status']}: {k['message']!r}; Argo CD {argo['status']}: {argo['message']!r}; "
        f"generation {body['metadata'].get('generation')}, status {body.get('status')}"
    )
    return (k["status"], argo["status"]), why


def assert_verdicts(
    api: Any, name: str, ns: str, scenario: str, operator_runs: bool = True
) -> dict[str, Any]:
    """Both verdicts equal the scenario's row within SETTLE seconds, on a status the operator
    wrote for the current spec when an operator runs (without one the object cannot change)."""
    row = EXPECTED[scenario]
    expected = (row.kstatus, row.argocd)
    deadline = time.monotonic() + SETTLE
    while True:
        body = get_cluster(api, name, ns)
        got, why = verdicts(body)
        if got == expected and (status_current(body) or not operator_runs):
            return body
        if time.monotonic() > deadline:
            seen = "" if status_current(body) else " (no status for the current spec yet)"
            pytest.fail(
                f"{scenario}: expected {expected}, got {got}{seen} for {SETTLE:.0f}s; {why}"
            )
        time.sleep(0.5)


def _deployment(api: Any, name: str, ns: str) -> client.V1Deployment:
    return client.AppsV1Api(api).read_namespaced_deployment(name, ns)


def _rolled_out(api: Any, name: str, ns: str) -> bool:
    dep = _deployment(api, name, ns)
    st = dep.status
    want = dep.spec.replicas
    return bool(
        (st.observed_generation or 0) >= dep.metadata.generation
        and st.updated_replicas == want
        and st.replicas == want
        and st.ready_replicas == want
    )


def _running(api: Any, name: str, ns: str, **spec: Any) -> client.V1Deployment:
    """A cluster whose Deployment runs every replica of its spec: the start of most scenarios."""
    make_config(api, name, ns)
    create_cluster(api, name, ns, **{"image": OLD_IMAGE, "replicas": 2, **spec})
    wait_for(lambda: _rolled_out(api, name, ns), timeout=90, message=f"{name} rolled out")
    wait_condition(api, name, ns, "Ready")
    return _deployment(api, name, ns)


def _annotate_paused(api: Any, name: str, ns: str) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name, {"metadata": {"annotations": {PAUSE_ANNOTATION: "true"}}}
    )


def _template_unchanged(api: Any, name: str, ns: str, before: client.V1Deployment) -> None:
    after = _deployment(api, name, ns)
    assert after.metadata.generation == before.metadata.generation, "the held change was applied"
    assert after.spec.template == before.spec.template


@pytest.fixture
def own_operator(
    own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator watching only own_namespace, so the test may stop it."""
    op = OperatorProcess(
        operator_credentials, tmp_path / "operator.log", ("--namespace", own_namespace)
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


def test_every_scenario_is_driven_live() -> None:
    assert set(SCENARIOS) == COVERED


@covers("new")
def test_new(api_client: Any, own_namespace: str, crd: None) -> None:
    # Nobody watches own_namespace: the object stays exactly as created, before any status.
    create_cluster(api_client, "fresh", own_namespace, replicas=2)
    body = assert_verdicts(api_client, "fresh", own_namespace, "new", operator_runs=False)
    assert body["metadata"]["generation"] == 1


@pytest.mark.usefixtures("operator")
@covers("ready")
def test_ready(api_client: Any, namespace: str) -> None:
    _running(api_client, "ok", namespace)
    assert_verdicts(api_client, "ok", namespace, "ready")


@pytest.mark.usefixtures("operator")
@covers("rolling out")
def test_rolling_out(api_client: Any, namespace: str) -> None:
    # A deadline far away: the new pod never becomes ready, yet the rollout is not stuck.
    _running(api_client, "roll", namespace, progressDeadlineSeconds=600)
    patch_spec(api_client, "roll", namespace, {"podLabels": {NOT_READY_LABEL: "true"}})
    wait_for(
        lambda: [
            p
            for p in client.CoreV1Api(api_client)
            .list_namespaced_pod(namespace, label_selector=f"{NOT_READY_LABEL}=true")
            .items
            if p.status.phase == "Running"
        ],
        timeout=60,
        message="a new pod Running but not Ready",
    )
    assert_verdicts(api_client, "roll", namespace, "rolling out")


@covers("spec changed")
def test_spec_changed(api_client: Any, own_namespace: str, own_operator: OperatorProcess) -> None:
    ns = own_namespace
    _running(api_client, "edit", ns)
    # What a GitOps tool sees right after it applied a change, before the operator acts on it.
    own_operator.stop()
    patch_spec(api_client, "edit", ns, {"image": NEW_IMAGE})
    body = assert_verdicts(api_client, "edit", ns, "spec changed", operator_runs=False)
    assert body["metadata"]["generation"] > body["status"]["observedGeneration"]


@pytest.mark.usefixtures("operator")
@covers("stuck rollout")
def test_stuck_rollout(api_client: Any, namespace: str) -> None:
    _running(api_client, "stuck", namespace, progressDeadlineSeconds=8)
    # The same release: a new pod template that never becomes ready (an image change would make
    # this a failed upgrade, the next scenario).
    patch_spec(api_client, "stuck", namespace, {"podLabels": {NOT_READY_LABEL: "true"}})

    def deadline_exceeded() -> bool:
        conditions = _deployment(api_client, "stuck", namespace).status.conditions or []
        return any(
            c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conditions
        )

    wait_for(deadline_exceeded, timeout=60, message="Deployment ProgressDeadlineExceeded")
    body = assert_verdicts(api_client, "stuck", namespace, "stuck rollout")
    assert body["status"]["conditions"][-1]["reason"] == "RolloutStuck"


@pytest.mark.usefixtures("operator")
@covers("missing reference on a running cluster")
def test_missing_reference_on_a_running_cluster(api_client: Any, namespace: str) -> None:
    before = _running(api_client, "held", namespace)
    patch_spec(api_client, "held", namespace, {"configMapRef": {"name": "held-v2"}})
    assert_verdicts(api_client, "held", namespace, "missing reference on a running cluster")
    _template_unchanged(api_client, "held", namespace, before)

    # The held change goes through the moment the ConfigMap appears.
    client.CoreV1Api(api_client).create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held-v2"), data={"BOX_ID": "v2"}),
    )
    wait_for(
        lambda: (
            _deployment(api_client, "held", namespace).metadata.generation
            > before.metadata.generation
        ),
        timeout=30,
        message="the held change applied once the ConfigMap exists",
    )
    wait_for(lambda: _rolled_out(api_client, "held", namespace), timeout=90, message="rolled out")
    assert_verdicts(api_client, "held", namespace, "ready")


@pytest.mark.usefixtures("operator")
@covers("paused with a pending change")
def test_paused_with_a_pending_change(api_client: Any, namespace: str) -> None:
    before = _running(api_client, "nap", namespace)
    _annotate_paused(api_client, "nap", namespace)
    patch_spec(api_client, "nap", namespace, {"image": NEW_IMAGE})
    assert_verdicts(api_client, "nap", namespace, "paused with a pending change")
    _template_unchanged(api_client, "nap", namespace, before)


@pytest.mark.usefixtures("operator")
@covers("refused child")
def test_refused_child(api_client: Any, namespace: str) -> None:
    before = _running(api_client, "nope", namespace)
    # Admitted as an AidboxCluster; the API server refuses the Deployment (limit below request).
    patch_spec(
        api_client,
        "nope",
        namespace,
        {"resources": {"requests": {"memory": "3Gi"}, "limits": {"memory": "1Gi"}}},
    )
    body = assert_verdicts(api_client, "nope", namespace, "refused child")
    _template_unchanged(api_client, "nope", namespace, before)
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]


@pytest.mark.usefixtures("operator")
@covers("unsupported version")
def test_unsupported_version(api_client: Any, namespace: str) -> None:
    before = _running(api_client, "old", namespace)
    # More than one replica needs Aidbox 2208 or newer.
    patch_spec(api_client, "old", namespace, {"image": "healthsamurai/aidboxone:2206"})
    body = assert_verdicts(api_client, "old", namespace, "unsupported version")
    _template_unchanged(api_client, "old", namespace, before)
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]


@pytest.mark.usefixtures("operator")
@covers("upgrade in progress")
def test_upgrade_in_progress(api_client: Any, namespace: str) -> None:
    _running(api_client, "up", namespace)
    # The new release's first pod never becomes ready here: the upgrade stays under way.
    patch_spec(
        api_client, "up", namespace, {"image": NEW_IMAGE, "podLabels": {NOT_READY_LABEL: "true"}}
    )
    body = assert_verdicts(api_client, "up", namespace, "upgrade in progress")
    wait_for(
        lambda: (get_cluster(api_client, "up", namespace).get("status") or {}).get("upgrade"),
        timeout=SETTLE,
        message="status.upgrade",
    )
    upgrade = get_cluster(api_client, "up", namespace)["status"]["upgrade"]
    assert (upgrade["from"], upgrade["to"], upgrade["strategy"]) == ("2509", "2510", "Rolling")
    assert body["status"]["versionRecord"]["newestReady"] == "2509"


@covers("new pods refused by a quota")
def test_new_pods_refused_by_a_quota(
    api_client: Any, own_namespace: str, own_operator: OperatorProcess
) -> None:
    """Two pods run; a ResourceQuota allows no more; the new release's surge pod is refused:
    the cluster says why (the API server's words), with one Warning, and reads as under way."""
    ns, core = own_namespace, client.CoreV1Api(api_client)
    _running(api_client, "quota", ns, progressDeadlineSeconds=600)
    quota = {"metadata": {"name": "pods-limit"}, "spec": {"hard": {"pods": "2"}}}
    core.create_namespaced_resource_quota(ns, quota)
    wait_for(
        lambda: (
            (core.read_namespaced_resource_quota("pods-limit", ns).status.used or {}).get("pods")
            == "2"
        ),
        timeout=60,
        message="the quota controller counting the pods",
    )
    patch_spec(api_client, "quota", ns, {"image": NEW_IMAGE})
    _progressing_reason(api_client, "quota", ns, "PodsRefused")
    body = assert_verdicts(api_client, "quota", ns, "new pods refused by a quota")
    assert "exceeded quota: pods-limit" in condition(body, "Progressing")["message"]
    events = core.list_namespaced_event(ns, field_selector="reason=PodsRefused").items
    assert len(events) == 1 and events[0].type == "Warning", events


@covers("new pods refused by a quota")
def test_a_new_cluster_with_no_room_in_a_cpu_quota_says_why_within_seconds(
    api_client: Any, own_namespace: str, own_operator: OperatorProcess
) -> None:
    """A namespace whose ResourceQuota on requests.cpu leaves no room for even one pod: the
    Deployment controller cannot create any; the cluster names the quota (the API server's
    words) within seconds, not only at the progress deadline, with one Warning."""
    ns, core = own_namespace, client.CoreV1Api(api_client)
    quota = {"metadata": {"name": "cpu-limit"}, "spec": {"hard": {"requests.cpu": "100m"}}}
    core.create_namespaced_resource_quota(ns, quota)
    wait_for(
        lambda: core.read_namespaced_resource_quota("cpu-limit", ns).status.hard,
        timeout=60,
        message="the quota controller taking the quota in",
    )
    make_config(api_client, "cpu", ns)
    create_cluster(api_client, "cpu", ns, image=OLD_IMAGE, replicas=2)
    started = time.monotonic()
    _progressing_reason(api_client, "cpu", ns, "PodsRefused")
    assert time.monotonic() - started < 30
    body = assert_verdicts(api_client, "cpu", ns, "new pods refused by a quota")
    message = condition(body, "Progressing")["message"]
    assert "exceeded quota: cpu-limit" in message and "requests.cpu" in message, message
    assert body["status"]["ready"] == "0/2"
    assert condition(body, "Ready")["reason"] == "PodsRefused"
    events = core.list_namespaced_event(ns, field_selector="reason=PodsRefused").items
    assert len(events) == 1 and events[0].type == "Warning", events


@pytest.mark.usefixtures("operator")
@covers("upgrade failed")
def test_upgrade_failed(api_client: Any, namespace: str) -> None:
    _running(api_client, "fail", namespace, progressDeadlineSeconds=8)
    patch_spec(
        api_client,
        "fail",
        namespace,
        {"image": NEW_IMAGE, "podLabels": {NOT_READY_LABEL: "true"}},
    )
    body = assert_verdicts(api_client, "fail", namespace, "upgrade failed")
    stalled = next(c for c in body["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "UpgradeFailed", stalled
    assert "2509" in stalled["message"] and "never became Ready" in stalled["message"]
    # Going back to the release that ran is no downgrade: 2510 never became Ready.
    patch_spec(
        api_client, "fail", namespace, {"image": OLD_IMAGE, "podLabels": {NOT_READY_LABEL: None}}
    )
    assert_verdicts(api_client, "fail", namespace, "ready")


# The sandbox's kwok stages crash pods of these releases with the JDBC driver's words as their
# log tail (sandbox/.../stages/pod-database-*.yaml); tests/realnode/test_database.py drives
# both states with a real PostgreSQL.
DATABASE_REFUSED = "healthsamurai/aidboxone:2510.996"
DATABASE_UNREACHABLE = "healthsamurai/aidboxone:2510.995"


def _stopped_by_database(
    api: Any, ns: str, image: str, scenario: str, reason: str, words: str
) -> None:
    make_config(api, "db", ns)
    create_cluster(api, "db", ns, image=image, replicas=2)
    stalled = condition(assert_verdicts(api, "db", ns, scenario), "Stalled")
    assert stalled["reason"] == reason and words in stalled["message"], stalled


@pytest.mark.usefixtures("operator")
@covers("database refuses the credentials")
def test_database_refuses_the_credentials(api_client: Any, namespace: str) -> None:
    _stopped_by_database(
        api_client,
        namespace,
        DATABASE_REFUSED,
        "database refuses the credentials",
        "DatabaseRefused",
        "password authentication failed",
    )


@pytest.mark.usefixtures("operator")
@covers("database unreachable")
def test_database_unreachable(api_client: Any, namespace: str) -> None:
    _stopped_by_database(
        api_client,
        namespace,
        DATABASE_UNREACHABLE,
        "database unreachable",
        "DatabaseUnreachable",
        "Connection to 10.96.0.99:5432 refused",
    )


@pytest.mark.usefixtures("operator")
@covers("refused downgrade")
def test_refused_downgrade(api_client: Any, namespace: str) -> None:
    before = _running(api_client, "back", namespace)
    patch_spec(api_client, "back", namespace, {"image": "healthsamurai/aidboxone:2409.2"})
    body = assert_verdicts(api_client, "back", namespace, "refused downgrade")
    _template_unchanged(api_client, "back", namespace, before)
    assert body["status"]["observedGeneration"] < body["metadata"]["generation"]


@covers("moving tag not resolved")
def test_moving_tag_not_resolved(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    """An operator that pins tags, and a registry that does not answer (a closed loopback
    port): the change is held, nothing running is touched, the verdicts say it waits."""
    closed = free_port()
    op = OperatorProcess(
        operator_credentials,
        tmp_path / "operator.log",
        (
            "--namespace",
            own_namespace,
            "--image-pinning=registry",
            f"--plain-http-registry=127.0.0.1:{closed}",
        ),
    )
    op.start()
    try:
        # A full YYMM.MINOR tag is never looked up: the cluster runs before the registry matters.
        before = _running(api_client, "tag", own_namespace, image=f"{OLD_IMAGE}.1")
        patch_spec(api_client, "tag", own_namespace, {"image": f"127.0.0.1:{closed}/aidbox:latest"})
        body = assert_verdicts(api_client, "tag", own_namespace, "moving tag not resolved")
        reconciling = next(c for c in body["status"]["conditions"] if c["type"] == "Reconciling")
        assert reconciling["reason"] == "TagUnresolved", reconciling
        _template_unchanged(api_client, "tag", own_namespace, before)
    finally:
        op.stop()


@covers("operator rollout queued")
def test_operator_rollout_queued(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    """Two clusters Ready; the next operator release (its pods never Ready here) may roll one
    cluster at a time: the other waits, Current and Healthy."""
    op = OperatorProcess(operator_credentials, tmp_path / "v1.log", ("--namespace", own_namespace))
    op.start()
    try:
        for name in ("q1", "q2"):
            _running(api_client, name, own_namespace, image=f"{OLD_IMAGE}.1")
    finally:
        op.stop()
    nxt = OperatorProcess(
        operator_credentials,
        tmp_path / "v2.log",
        ("--namespace", own_namespace, "--max-operator-rollouts=1"),
        launcher=(str(Path(__file__).with_name("next_release.py")),),
    )
    nxt.start()
    try:
        _progressing_reason(api_client, "q2", own_namespace, "RolloutQueued")
        assert_verdicts(api_client, "q2", own_namespace, "operator rollout queued")
    finally:
        nxt.stop()


def _progressing_reason(api: Any, name: str, ns: str, reason: str) -> None:
    """Until the operator says why the cluster waits: the verdicts are judged on that status."""
    wait_for(
        lambda: condition(get_cluster(api, name, ns), "Progressing").get("reason") == reason,
        timeout=60,
        interval=0.5,
        message=f"{name} Progressing/{reason}",
    )


def _channel_fleet(api: Any, ns: str, channel: str) -> None:
    create_channel(api, channel, f"{CHANNEL_REPO}:2510.1")
    for name, tier in (("w1", "canary"), ("w2", "prod")):
        make_config(api, name, ns)
        manifest = cluster_manifest(name, ns, replicas=2, channel=channel)
        manifest["metadata"]["labels"] = {"tier": tier}
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, manifest
        )
    for name in ("w1", "w2"):
        wait_for(lambda n=name: _rolled_out(api, n, ns), timeout=90, message=f"{name} rolled out")


@pytest.mark.usefixtures("operator")
@covers("on a channel no operator handles")
def test_on_a_channel_no_operator_handles(api_client: Any, namespace: str) -> None:
    """The session operator watches t-* namespaces and was started without
    --release-channels: a running cluster put on a channel is held, its pods untouched."""
    before = _running(api_client, "lone", namespace)
    patch_spec(api_client, "lone", namespace, {"channel": "stable", "image": None})
    _progressing_reason(api_client, "lone", namespace, "ChannelsNotHandled")
    assert_verdicts(api_client, "lone", namespace, "on a channel no operator handles")
    _template_unchanged(api_client, "lone", namespace, before)


@pytest.fixture
def channel_operator(
    own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> Iterator[str]:
    op = OperatorProcess(
        operator_credentials,
        tmp_path / "operator.log",
        ("--namespace", own_namespace, "--release-channels=on"),
    )
    op.start()
    channel = f"vc-{secrets.token_hex(3)}"
    try:
        yield channel
    finally:
        op.stop()


@covers("waiting for its channel wave")
def test_waiting_for_its_channel_wave(
    api_client: Any, own_namespace: str, channel_operator: str
) -> None:
    channel = channel_operator
    try:
        _channel_fleet(api_client, own_namespace, channel)
        # The canary's new release runs but never becomes Ready: its wave stays under way.
        move_channel(api_client, channel, SLOW)
        _progressing_reason(api_client, "w2", own_namespace, "WaveQueued")
        assert_verdicts(api_client, "w2", own_namespace, "waiting for its channel wave")
    finally:
        delete_channel(api_client, channel)


@covers("behind a halted channel")
def test_behind_a_halted_channel(
    api_client: Any, own_namespace: str, channel_operator: str
) -> None:
    channel = channel_operator
    try:
        _channel_fleet(api_client, own_namespace, channel)
        move_channel(api_client, channel, BROKEN)
        _progressing_reason(api_client, "w2", own_namespace, "ChannelHalted")
        assert_verdicts(api_client, "w2", own_namespace, "behind a halted channel")
    finally:
        delete_channel(api_client, channel)


@pytest.mark.usefixtures("operator")
@covers("route or monitor kind not installed")
def test_route_or_monitor_kind_not_installed(api_client: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd = HTTP_ROUTE_CRD["metadata"]["name"]
    if any(c.metadata.name == crd for c in ext.list_custom_resource_definition().items):
        ext.delete_custom_resource_definition(crd)
    wait_for(
        lambda: all(c.metadata.name != crd for c in ext.list_custom_resource_definition().items),
        timeout=30,
        message="no HTTPRoute CRD",
    )
    route = {"parentRefs": [{"name": "public"}], "hostnames": ["fhir.example.com"]}
    _running(api_client, "routed", namespace, httpRoute=route)
    body = assert_verdicts(api_client, "routed", namespace, "route or monitor kind not installed")
    assert condition(body, "Degraded")["reason"] == "HTTPRouteUnavailable"
