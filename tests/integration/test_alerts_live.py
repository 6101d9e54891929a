"""Each alert fed by the operator's own series, fired by promtool on the series the real operator
exported while the sandbox held the alert's scenario (deploy/monitoring/prometheusrule.yaml;
tests/unit/test_alerts.py has the hand-written firing and silent cases of every alert).

At the moment a scenario holds, the operator's /metrics is scraped and the samples the alert's
expression reads become promtool input series held at their scraped values for the alert's
`for` plus a margin (tests/alert_cases.py), labelled with the job and instance a scrape gives.
A counter is the exception: AidboxOperatorReconcileErrors needs errors that go on, so its
series starts at the scraped count and rises one a minute, the pace of the operator's retries
once its backoff reaches the 60 s cap; live, the real counter rises past the alert's threshold
within the scenario. AidboxOperatorDown is the absence of every series: its input is the `up`
of the stopped operator's target, 0, next to nothing else.

Covered only by the promtool unit cases (tests/unit/alerts/tests.yaml), because the sandbox has
neither kube-state-metrics nor a real Aidbox (its pods are kwok's or stand-ins, which export no
Aidbox metrics): AidboxClusterBelowDisruptionBudget (kube-state-metrics'
kube_poddisruptionbudget_status_*), AidboxRequestLatencyHigh, AidboxDatabasePoolTimeouts,
AidboxHttpQueueHigh and AidboxJvmHeapHigh (Aidbox's own /metrics).
"""

from __future__ import annotations

import datetime
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import alert_cases
from alert_cases import Sample
from helpers import wait_for
from kube_helpers import (
    apply,
    condition,
    create_cluster,
    get_cluster,
    make_config,
    namespace_lifetime,
    patch_spec,
    status_current,
    wait_condition,
)
from operator_process import OperatorProcess, free_port

OLD = "healthsamurai/aidboxone:2509"
NEVER_READY = "healthsamurai/aidboxone:2510.998"
CRASHING = "healthsamurai/aidboxone:2510.999"
DATABASE_REFUSED = "healthsamurai/aidboxone:2510.996"
CLUSTER_ALERTS = (
    "AidboxClusterNotReady",
    "AidboxClusterRolloutFailed",
    "AidboxClusterStalled",
    "AidboxClusterMixedReleases",
)
LEASE_NAMESPACE = "aidbox-operator-system"  # where deploy/'s RBAC grants the operator its Lease
LEASE = "aidbox-operator"


def _scrape(op: OperatorProcess) -> list[Sample]:
    url = f"http://127.0.0.1:{op.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return alert_cases.samples(resp.read().decode())


def _instance(op: OperatorProcess) -> str:
    return f"127.0.0.1:{op.metrics_port}"


def _value(scraped: list[Sample], series: str, **labels: str) -> list[float]:
    return [v for s, lab, v in scraped if s == series and labels.items() <= lab.items()]


@pytest.fixture(scope="module")
def fleet(api_client: Any, operator: OperatorProcess) -> Iterator[str]:
    """One namespace with a cluster per scenario, started together so they progress at once:
    ok (Ready), slow (never Ready, not Stalled), pw (Stalled DatabaseRefused), fail (an upgrade
    whose pods crash: UpgradeFailed), mixed (an upgrade held on a never-Ready release)."""
    for ns in namespace_lifetime(api_client, f"t-alerts-live-{secrets.token_hex(3)}"):
        specs: dict[str, dict[str, Any]] = {
            "ok": {"image": OLD},
            "slow": {"image": NEVER_READY, "progressDeadlineSeconds": 600},
            "pw": {"image": DATABASE_REFUSED},
            "fail": {"image": OLD, "progressDeadlineSeconds": 8},
            "mixed": {"image": OLD, "progressDeadlineSeconds": 600},
        }
        for name, spec in specs.items():
            make_config(api_client, name, ns)
            create_cluster(api_client, name, ns, replicas=2, **spec)
        for name, image in (("fail", CRASHING), ("mixed", NEVER_READY)):
            wait_condition(api_client, name, ns, "Ready")
            patch_spec(api_client, name, ns, {"image": image})
        yield ns


def _scrape_when(
    op: OperatorProcess, holds: Any, what: str, ns: str = "", name: str = ""
) -> list[Sample]:
    """The scrape of the moment the scenario holds (with ns and name: that cluster's series
    and the operator's own)."""

    def scrape() -> list[Sample]:
        scraped = _scrape(op)
        if name:
            scraped = alert_cases.of_cluster(scraped, ns, name)
        return scraped if holds(scraped) else []

    return wait_for(scrape, timeout=90, interval=0.5, message=what)


def _held(op: OperatorProcess, ns: str, name: str, holds: Any, what: str) -> list[Sample]:
    return _scrape_when(op, holds, f"{ns}/{name}: {what}", ns, name)


def _fires(
    tmp_path: Path, alert: str, op: OperatorProcess, scraped: list[Sample], **labels: str
) -> None:
    expected = [{"severity": alert_cases.rules()[alert]["labels"]["severity"], **labels}]
    series = alert_cases.input_series(alert, scraped, _instance(op))
    out = alert_cases.run(tmp_path, alert, series, expected)
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\ninput series: {series}"


def test_cluster_not_ready(tmp_path: Path, operator: OperatorProcess, fleet: str) -> None:
    scraped = _held(
        operator,
        fleet,
        "slow",
        lambda s: (
            _value(s, "aidbox_cluster_ready") == [0]
            and _value(s, "aidbox_cluster_replicas_desired") == [2]
        ),
        "not Ready",
    )
    assert not _value(scraped, "aidbox_cluster_stalled")
    _fires(tmp_path, "AidboxClusterNotReady", operator, scraped, namespace=fleet, name="slow")


def test_cluster_rollout_failed(
    tmp_path: Path, api_client: Any, operator: OperatorProcess, fleet: str
) -> None:
    scraped = _held(
        operator,
        fleet,
        "fail",
        lambda s: _value(s, "aidbox_cluster_stalled", reason="UpgradeFailed") == [1],
        "Stalled UpgradeFailed",
    )
    assert condition(get_cluster(api_client, "fail", fleet), "Stalled")["reason"] == "UpgradeFailed"
    _fires(
        tmp_path,
        "AidboxClusterRolloutFailed",
        operator,
        scraped,
        namespace=fleet,
        name="fail",
        reason="UpgradeFailed",
    )


def test_cluster_stalled(tmp_path: Path, operator: OperatorProcess, fleet: str) -> None:
    scraped = _held(
        operator,
        fleet,
        "pw",
        lambda s: _value(s, "aidbox_cluster_stalled", reason="DatabaseRefused") == [1],
        "Stalled DatabaseRefused",
    )
    _fires(
        tmp_path,
        "AidboxClusterStalled",
        operator,
        scraped,
        namespace=fleet,
        name="pw",
        reason="DatabaseRefused",
    )


def test_cluster_mixed_releases(tmp_path: Path, operator: OperatorProcess, fleet: str) -> None:
    scraped = _held(
        operator,
        fleet,
        "mixed",
        lambda s: (
            _value(s, "aidbox_cluster_pods", version="2509")
            and _value(s, "aidbox_cluster_pods", version="2510.998")
        ),
        "pods of 2509 and 2510.998",
    )
    assert not _value(scraped, "aidbox_cluster_stalled")
    _fires(tmp_path, "AidboxClusterMixedReleases", operator, scraped, namespace=fleet, name="mixed")


def test_no_cluster_alert_on_a_ready_cluster(
    tmp_path: Path, api_client: Any, operator: OperatorProcess, fleet: str
) -> None:
    wait_condition(api_client, "ok", fleet, "Ready")
    scraped = _held(
        operator,
        fleet,
        "ok",
        lambda s: (
            _value(s, "aidbox_cluster_ready") == [1]
            and status_current(get_cluster(api_client, "ok", fleet))
        ),
        "Ready",
    )
    assert _value(scraped, "aidbox_operator_leader") == [1]
    for alert in CLUSTER_ALERTS:
        series = alert_cases.input_series(alert, scraped, _instance(operator))
        out = alert_cases.run(tmp_path, alert, series, [])
        assert out.returncode == 0, f"{alert}: {out.stdout}{out.stderr}"


def _webhook_refusing_deployments(ns: str) -> dict[str, Any]:
    """A validating webhook at a closed loopback port for Deployments in `ns`: every apply of
    the cluster's Deployment fails with the API server's 500 (an outage, not a refusal of the
    content), so each reconcile pass errors and is retried."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"alerts-live-{ns}"},
        "webhooks": [
            {
                "name": "refuse.alerts-live.aidbox.io",
                "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/refuse"},
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }


def test_operator_reconcile_errors(
    tmp_path: Path, api_client: Any, namespace: str, operator: OperatorProcess
) -> None:
    hook = _webhook_refusing_deployments(namespace)
    apply(api_client, hook)
    try:
        before = _value(_scrape(operator), "aidbox_operator_reconciles_total", result="error")
        make_config(api_client, "err", namespace)
        create_cluster(api_client, "err", namespace, replicas=2)
        threshold = 5  # the rule's `> 5` failed passes in 10 minutes
        scraped = _scrape_when(
            operator,
            lambda s: (
                sum(_value(s, "aidbox_operator_reconciles_total", result="error"))
                > sum(before) + threshold
            ),
            "the operator's reconcile errors past the threshold",
        )
    finally:
        client.AdmissionregistrationV1Api(api_client).delete_validating_webhook_configuration(
            hook["metadata"]["name"]
        )
    # The errors counted are this cluster's passes failing on the webhook, not others'.
    failed = 'failed calling webhook "refuse.alerts-live.aidbox.io"'
    ours = [line for line in operator.log_text().splitlines() if failed in line]
    assert len([line for line in ours if f"[{namespace}/err]" in line]) > threshold, ours
    [errors] = _value(scraped, "aidbox_operator_reconciles_total", result="error")
    alert = "AidboxOperatorReconcileErrors"
    series = alert_cases.input_series(alert, scraped, _instance(operator))
    [counter] = [x for x in series if 'result="error"' in x["series"]]
    # From the scraped count on, one failed pass a minute: the retries at the backoff cap.
    counter["values"] = f"{errors:g}+1x{alert_cases.eval_minutes(alert) + 1}"
    series = [x for x in series if "result=" not in x["series"] or x is counter]
    out = alert_cases.run(tmp_path, alert, series, [{"severity": "warning"}])
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\ninput series: {series}"


@pytest.fixture
def lease_held_elsewhere(api_client: Any) -> Iterator[None]:
    """The operator's Lease held and renewed by someone else for an hour: no replica of ours
    can take it."""
    leases = client.CoordinationV1Api(api_client)
    now = datetime.datetime.now(datetime.UTC)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=LEASE),
        spec=client.V1LeaseSpec(
            holder_identity="somewhere-else",
            lease_duration_seconds=3600,
            acquire_time=now,
            renew_time=now,
        ),
    )
    try:
        leases.delete_namespaced_lease(LEASE, LEASE_NAMESPACE)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    leases.create_namespaced_lease(LEASE_NAMESPACE, body)
    try:
        yield
    finally:
        leases.delete_namespaced_lease(LEASE, LEASE_NAMESPACE)


@pytest.mark.usefixtures("lease_held_elsewhere")
def test_operator_no_leader_and_down(
    tmp_path: Path, own_namespace: str, operator_credentials: Path
) -> None:
    args: tuple[str, ...] = ("--namespace", own_namespace, "--leader-elect")
    args += ("--leader-election-namespace", LEASE_NAMESPACE)
    standby = OperatorProcess(operator_credentials, tmp_path / "standby.log", args)
    standby.start()
    try:
        # It read the Lease and stood by, twice (not merely not yet started): a candidate's
        # only single-object reads are of the Lease, one each retry period.
        scraped = _scrape_when(
            standby,
            lambda s: sum(_value(s, "aidbox_operator_api_requests_total", verb="get")) >= 2,
            "the standby reading the Lease",
        )
        assert _value(scraped, "aidbox_operator_leader") == [0]
        alert = "AidboxOperatorNoLeader"
        series = alert_cases.input_series(alert, scraped, _instance(standby))
        out = alert_cases.run(tmp_path, alert, series, [{"severity": "critical"}])
        assert out.returncode == 0, f"{out.stdout}{out.stderr}\ninput series: {series}"
        # While it is scraped, the operator is not down, leader or not.
        out = alert_cases.run(
            tmp_path,
            "AidboxOperatorDown",
            alert_cases.input_series("AidboxOperatorDown", scraped, _instance(standby)),
            [],
        )
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        standby.stop()
    _down(tmp_path, standby)


def _down(tmp_path: Path, stopped: OperatorProcess) -> None:
    """A stopped operator's target answers nothing: Prometheus records its `up` as 0 and no
    other series of it."""
    with pytest.raises(OSError):
        _scrape(stopped)
    alert = "AidboxOperatorDown"
    series = [
        {
            "series": f'up{{job="{alert_cases.JOB}",instance="{_instance(stopped)}"}}',
            "values": f"0x{alert_cases.eval_minutes(alert) + 1}",
        }
    ]
    out = alert_cases.run(tmp_path, alert, series, [{"severity": "critical"}])
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\ninput series: {series}"
