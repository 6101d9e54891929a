"""A release channel on the sandbox: three clusters in three waves move to a release one wave
at a time; a release whose pods fail at start halts the channel after the canary, and the
other clusters' pods are not touched.

Beside the channel's operator runs a bystander: an operator watching one other namespace,
started without --release-channels, as a team's namespaced install would be. It must leave
the channels alone: it sees none of their clusters, so a status it wrote would say every
wave is empty and done, and take back what the channel's operator admitted."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from channels import BROKEN, REPO, channel_status, create_channel, delete_channel, move_channel
from helpers import wait_for
from kube_helpers import condition, create_cluster, get_cluster, make_config, namespace_lifetime
from operator_process import OperatorProcess

TIERS = {"c1": "canary", "s1": "staging", "p1": "prod"}


@pytest.fixture(scope="module")
def bystander(
    api_client: Any, operator_credentials: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, OperatorProcess]]:
    """An operator watching one namespace of its own, with a cluster there on a channel it
    does not handle (ChannelsNotHandled): it is serving, and it is running beside every test
    of this module."""
    log_path = tmp_path_factory.mktemp("bystander") / "operator.log"
    for ns in namespace_lifetime(api_client, f"own-by-{secrets.token_hex(3)}"):
        op = OperatorProcess(operator_credentials, log_path, ("--namespace", ns))
        op.start()
        try:
            make_config(api_client, "b1", ns)
            create_cluster(api_client, "b1", ns, replicas=1, channel="ch-bystander")
            wait_for(
                lambda n=ns: (
                    condition(get_cluster(api_client, "b1", n), "Progressing").get("reason")
                    == "ChannelsNotHandled"
                ),
                timeout=60,
                interval=0.5,
                message=f"the bystander saying it does not handle channels; log:\n{op.log_tail()}",
            )
            yield ns, op
        finally:
            op.stop()


@pytest.fixture
def channel(channel_operator: tuple[str, OperatorProcess]) -> str:
    return channel_operator[0]


@pytest.fixture
def channel_operator(
    api_client: Any,
    own_namespace: str,
    operator_credentials: Path,
    tmp_path: Path,
    bystander: tuple[str, OperatorProcess],
) -> Iterator[tuple[str, OperatorProcess]]:
    name = f"ch-{secrets.token_hex(3)}"
    op = OperatorProcess(
        operator_credentials,
        tmp_path / "operator.log",
        ("--namespace", own_namespace, "--release-channels=on"),
    )
    op.start()
    try:
        create_channel(api_client, name, f"{REPO}:2510.1")
        for cluster, tier in TIERS.items():
            make_config(api_client, cluster, own_namespace)
            body = {"replicas": 2, "channel": name}
            create_cluster(api_client, cluster, own_namespace, **body)
            client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
                "aidbox.io",
                "v1alpha1",
                own_namespace,
                "aidboxclusters",
                cluster,
                {"metadata": {"labels": {"tier": tier}}},
            )
        wait_for(
            lambda: _settled(channel_status(api_client, name), len(TIERS)),
            timeout=120,
            interval=0.5,
            message="the channel Complete on 2510.1 with every cluster Ready",
        )
        yield name, op
    finally:
        op.stop()
        delete_channel(api_client, name)


def _settled(status: dict[str, Any], clusters: int) -> bool:
    """Complete with `clusters` clusters Ready: a channel with no member yet (its clusters
    still being created) is Complete too."""
    waves = status.get("waves") or []
    ready = sum(w.get("ready", 0) for w in waves)
    return status.get("phase") == "Complete" and ready == clusters


def _pods(api: Any, ns: str, cluster: str) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={cluster}"
    )
    return {p.metadata.uid for p in pods.items}


def _image(api: Any, ns: str, cluster: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(cluster, ns)
    return str(dep.spec.template.spec.containers[0].image)


def test_a_broken_release_halts_after_the_canary(
    api_client: Any, own_namespace: str, channel: str
) -> None:
    ns = own_namespace
    untouched = {c: _pods(api_client, ns, c) for c in ("s1", "p1")}
    move_channel(api_client, channel, BROKEN)

    def halted() -> dict[str, Any] | None:
        status = channel_status(api_client, channel)
        return status if status.get("phase") == "Halted" else None

    status = wait_for(halted, timeout=60, interval=0.5, message="the channel Halted")
    assert status["currentWave"] == "canary"
    failed = status["waves"][0]["failed"]
    assert failed[0]["name"] == "c1" and failed[0]["reason"] == "UpgradeFailed", failed
    assert "migration 2510.999 failed" in failed[0]["message"]
    stalled = condition(get_cluster(api_client, "c1", ns), "Stalled")
    assert stalled["reason"] == "UpgradeFailed", stalled
    for cluster in ("s1", "p1"):
        wait_for(
            lambda c=cluster: (
                condition(get_cluster(api_client, c, ns), "Progressing").get("reason")
                == "ChannelHalted"
            ),
            timeout=30,
            interval=0.5,
            message=f"{cluster} saying the channel is halted",
        )
        assert _image(api_client, ns, cluster) == f"{REPO}:2510.1"
        assert _pods(api_client, ns, cluster) == untouched[cluster]
    events = client.CoreV1Api(api_client).list_namespaced_event(
        "default",
        field_selector=f"involvedObject.name={channel},involvedObject.kind=AidboxReleaseChannel",
    )
    reasons = {e.reason for e in events.items}
    assert "WaveFailed" in reasons, reasons


def test_a_good_release_reaches_every_wave_in_order(
    api_client: Any, own_namespace: str, channel: str
) -> None:
    ns = own_namespace
    move_channel(api_client, channel, f"{REPO}:2510.2")
    order: list[str] = []

    def complete() -> bool:
        for cluster in TIERS:
            if cluster not in order and _image(api_client, ns, cluster).endswith("2510.2"):
                order.append(cluster)
        status = channel_status(api_client, channel)
        # Complete for the new image, not the old one the move has not reached yet.
        return status.get("phase") == "Complete" and status.get("image") == f"{REPO}:2510.2"

    wait_for(complete, timeout=120, interval=0.2, message="the channel Complete on 2510.2")
    assert order == ["c1", "s1", "p1"]
    status = channel_status(api_client, channel)
    assert status["newestReady"] == "2510.2" and status["stableImage"] == f"{REPO}:2510.2"


def _window(hours_from_now: int) -> dict[str, str]:
    """A one-hour maintenance window starting `hours_from_now` hours from now (UTC)."""
    start = datetime.now(UTC) + timedelta(hours=hours_from_now)
    end = start + timedelta(hours=1)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timeZone": "UTC"}


def test_a_wave_waits_for_its_maintenance_window(
    api_client: Any, own_namespace: str, channel: str
) -> None:
    ns = own_namespace
    waves = [
        {"name": "canary", "matchLabels": {"tier": "canary"}},
        {"name": "rest", "maintenanceWindows": [_window(6)]},
    ]
    client.CustomObjectsApi(api_client).patch_cluster_custom_object(
        "aidbox.io",
        "v1alpha1",
        "aidboxreleasechannels",
        channel,
        {"spec": {"image": f"{REPO}:2510.2", "waves": waves}},
    )

    def rest_waiting() -> bool:
        status = channel_status(api_client, channel)
        return (
            status.get("image") == f"{REPO}:2510.2"
            and status.get("currentWave") == "rest"
            and status.get("admitted") == [f"{ns}/c1"]
            and _image(api_client, ns, "c1").endswith("2510.2")
        )

    wait_for(rest_waiting, timeout=60, interval=0.5, message="the canary moved, rest waiting")
    # The channel judged the wave (its status names it) and let nobody in: nothing moved.
    assert channel_status(api_client, channel)["admitted"] == [f"{ns}/c1"]
    assert _image(api_client, ns, "s1") == _image(api_client, ns, "p1") == f"{REPO}:2510.1"
    waves[1]["maintenanceWindows"] = [_window(0)]
    client.CustomObjectsApi(api_client).patch_cluster_custom_object(
        "aidbox.io", "v1alpha1", "aidboxreleasechannels", channel, {"spec": {"waves": waves}}
    )
    wait_for(
        lambda: (
            channel_status(api_client, channel).get("phase") == "Complete"
            and _image(api_client, ns, "p1").endswith("2510.2")
        ),
        timeout=60,
        interval=0.5,
        message="the window open: the channel Complete",
    )


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_a_crash_during_the_canary_soak_neither_skips_nor_restarts_it(
    api_client: Any, own_namespace: str, channel_operator: tuple[str, OperatorProcess]
) -> None:
    """The operator is killed (SIGKILL) halfway through the canary wave's soak and started
    again: the soak ends when it would have without the crash (its start is kept in the
    channel's status; a restart that lost it would skip the soak, or start it over, so that
    an operator restarting often would hold the channel for ever), then the later waves move
    in order."""
    name, op = channel_operator
    ns, soak = own_namespace, 30
    waves = [
        {"name": "canary", "matchLabels": {"tier": "canary"}, "soakSeconds": soak},
        {"name": "staging", "matchLabels": {"tier": "staging"}},
        {"name": "rest"},
    ]
    client.CustomObjectsApi(api_client).patch_cluster_custom_object(
        "aidbox.io",
        "v1alpha1",
        "aidboxreleasechannels",
        name,
        {"spec": {"image": f"{REPO}:2510.2", "waves": waves}},
    )

    def soaking() -> bool:
        status = channel_status(api_client, name)
        return status.get("phase") == "Soaking" and status.get("image") == f"{REPO}:2510.2"

    wait_for(soaking, timeout=60, interval=0.2, message="the canary wave soaking on 2510.2")
    soak_end = _stamp(channel_status(api_client, name)["waves"][0]["completedAt"])
    soak_end += timedelta(seconds=soak)
    wait_for(
        lambda: datetime.now(UTC) >= soak_end - timedelta(seconds=soak / 2),
        timeout=soak,
        interval=0.2,
        message="halfway through the soak",
    )
    assert _image(api_client, ns, "s1") == _image(api_client, ns, "p1") == f"{REPO}:2510.1"
    assert op.proc is not None
    os.kill(op.pid, signal.SIGKILL)
    op.proc.wait(timeout=10)
    op.start()
    seen: dict[str, datetime] = {}  # when each later cluster was first seen on 2510.2

    def complete() -> bool:
        for cluster in ("s1", "p1"):
            if cluster not in seen and _image(api_client, ns, cluster).endswith("2510.2"):
                seen[cluster] = datetime.now(UTC)
        status = channel_status(api_client, name)
        return status.get("phase") == "Complete" and status.get("image") == f"{REPO}:2510.2"

    wait_for(complete, timeout=120, interval=0.2, message="the channel Complete after the crash")
    # completedAt is whole seconds (one of slack before); after, the time a pass takes to see
    # the soak over and move staging. Started over at the restart, it would end ~15 s later.
    assert soak_end - timedelta(seconds=1) <= seen["s1"] <= soak_end + timedelta(seconds=8), (
        soak_end,
        seen,
    )
    assert seen["p1"] >= seen["s1"], seen
