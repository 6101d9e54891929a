"""A release channel on real nodes: three stand-in clusters (canary, staging, prod) on one
AidboxReleaseChannel, releases pulled from the sandbox's registry. A release that fails at start
halts the channel at the canary while the canary's old pods serve every request and the later
waves' pods are not touched; a good release then reaches the canary (back from the failed one),
staging and prod in that order.

One registry session and one operator (--release-channels=on, watching this module's namespace
only) serve the module."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from standin import pods, standin_spec, wait_settled
from traffic import Traffic, get_json

from aidbox_sandbox.realnode import RealNodes
from aidbox_sandbox.registry import Registry
from channels import GROUP, VERSION, channel_status, create_channel, delete_channel, move_channel
from helpers import sandbox_progress, wait_for
from kube_helpers import cluster_manifest, condition, get_cluster, make_config, namespace_lifetime

REPLICAS = 2
# The module's namespace, watched by its own operator only (the session operator takes t-*).
PREFIX = f"ch{secrets.token_hex(2)}-"
# A repository of the module's own: the registry may be shared with another session.
REPOSITORY = f"{PREFIX}channels/aidbox"
FAILURE = 'migration 2510.3 failed: column "resource" of relation "patient" does not exist'
RATE = 60.0
TIERS = ("canary", "staging", "prod")  # each cluster is named after its tier
WAVES = [
    {"name": "canary", "matchLabels": {"tier": "canary"}},
    {"name": "staging", "matchLabels": {"tier": "staging"}},
    {"name": "prod"},
]


@pytest.fixture(scope="module")
def registry(
    sandbox: Any, real_nodes: RealNodes, request: pytest.FixtureRequest
) -> Iterator[Registry]:
    """The sandbox's registry with the releases the module runs: 2510.2, a 2510.3 that fails
    at start like a failed migration, and a good 2510.4."""
    progress = sandbox_progress(request)
    with sandbox.registry_session(progress) as reg:
        reg.push_standin("2510.2", REPOSITORY, progress=progress)
        reg.push_standin("2510.3", REPOSITORY, fail_start=FAILURE, progress=progress)
        reg.push_standin("2510.4", REPOSITORY, progress=progress)
        yield reg


@pytest.fixture(scope="module")
def fleet(
    api_client: client.ApiClient, start_operator: Any, registry: Registry
) -> Iterator[tuple[str, str]]:
    """(namespace, channel): the channel Complete on 2510.2 with one cluster in each wave."""
    api = api_client
    start_operator(
        *("--namespace", f"{PREFIX}*"),
        "--release-channels=on",
        "--image-pinning=registry",
        *("--plain-http-registry", registry.host),
    )
    channel = f"{PREFIX}stable"
    for ns in namespace_lifetime(api, f"{PREFIX}fleet"):
        create_channel(api, channel, registry.reference(REPOSITORY, "2510.2"), WAVES)
        try:
            for tier in TIERS:
                launch(api, ns, tier, channel)
            wait_for(
                lambda: complete_on(api, channel, "2510.2"),
                timeout=180,
                interval=0.5,
                message="the channel Complete on 2510.2 with a Ready cluster in each wave",
            )
            for tier in TIERS:
                wait_settled(api, tier, ns, REPLICAS, registry.reference(REPOSITORY, "2510.2"))
            yield ns, channel
        finally:
            delete_channel(api, channel)


def launch(api: client.ApiClient, ns: str, tier: str, channel: str) -> None:
    """A stand-in cluster on the real nodes labelled with its tier, on `channel` (no image of
    its own); a stopping pod takes about two seconds, so rolls stay short."""
    make_config(api, tier, ns, data={"BOX_ID": tier, "STANDIN_DRAIN_SECONDS": "1"})
    spec = standin_spec(REPLICAS, imagePullPolicy="IfNotPresent", preStopDelaySeconds=1)
    del spec["image"]
    body = cluster_manifest(tier, ns, **spec, channel=channel)
    body["metadata"]["labels"] = {"tier": tier}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "aidboxclusters", body
    )


def complete_on(api: client.ApiClient, channel: str, version: str) -> dict[str, Any] | None:
    status = channel_status(api, channel)
    waves = status.get("waves") or []
    done = status.get("phase") == "Complete" and status.get("image", "").endswith(f":{version}")
    counted = [(w["clusters"], w.get("ready", 0)) for w in waves] == [(1, 1)] * len(TIERS)
    return status if done and counted else None


def template_image(api: client.ApiClient, ns: str, name: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    return str(dep.spec.template.spec.containers[0].image)


def uids(api: client.ApiClient, ns: str, name: str) -> set[str]:
    return {p.metadata.uid for p in pods(api, name, ns)}


def halted(api: client.ApiClient, channel: str) -> dict[str, Any] | None:
    status = channel_status(api, channel)
    return status if status.get("phase") == "Halted" else None


def says_halted(api: client.ApiClient, ns: str, name: str) -> None:
    """The cluster's Progressing condition names the halt (what it said last, if not)."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        seen.update(condition(get_cluster(api, name, ns), "Progressing"))
        return seen.get("reason") == "ChannelHalted"

    try:
        wait_for(check, timeout=30, interval=0.5, message=f"{name} saying the channel is halted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its Progressing condition: {seen}") from None


def channel_events(api: client.ApiClient, channel: str) -> list[client.CoreV1Event]:
    """The channel's Warning Events (a cluster-scoped object's live in namespace default)."""
    found = client.CoreV1Api(api).list_namespaced_event(
        "default",
        field_selector=f"involvedObject.name={channel},involvedObject.kind=AidboxReleaseChannel,"
        "type=Warning",
    )
    return list(found.items)


def test_a_failing_release_halts_at_the_canary_and_a_good_one_reaches_every_wave(
    api_client: client.ApiClient,
    registry: Registry,
    real_nodes: RealNodes,
    fleet: tuple[str, str],
    tmp_path: Path,
) -> None:
    api, holder = api_client, real_nodes.holder("real-node-0")
    ns, channel = fleet

    def ref(version: str) -> str:
        return registry.reference(REPOSITORY, version)

    later = ("staging", "prod")
    untouched = {name: uids(api, ns, name) for name in later}
    svc = client.CoreV1Api(api).read_namespaced_service("canary", ns)
    ip, port = svc.spec.cluster_ip, svc.spec.ports[0].port
    # kube-proxy programs the Service a moment after the pods turn Ready.
    wait_for(lambda: get_json(holder, f"http://{ip}:{port}/"), timeout=30, message="the Service")

    # -- a release failing at start: the channel halts at the canary
    with Traffic(holder, ip, port, tmp_path / "channel-halt.json", RATE) as load:
        load.run_until(int(RATE))  # a second of traffic before the move
        move_channel(api, channel, ref("2510.3"))
        moved = time.monotonic()
        status = wait_for(
            lambda: halted(api, channel),
            timeout=120,
            interval=0.5,
            message="the channel Halted",
        )
        halted_after = time.monotonic() - moved
        load.run_until(load.progress()["sent"] + int(RATE))  # and a second after the halt
        result = load.stop()
    print(
        f"\nHalted {halted_after:.1f}s after the move; canary load: {result['sent']} sent, "
        f"{result['ok']} ok, {result['failed']} failed {result['errors']} in "
        f"{result['seconds']}s; versions {result['versions']}"
    )
    assert status["currentWave"] == "canary", status
    (failed,) = status["waves"][0]["failed"]
    assert (failed["namespace"], failed["name"], failed["reason"]) == (
        ns,
        "canary",
        "UpgradeFailed",
    ), failed
    assert FAILURE in failed["message"], failed
    assert [w["failed"] for w in status["waves"][1:]] == [[], []], status["waves"]
    assert result["failed"] == 0, f"failed requests: {result['errors']} at {result['failures']}"
    assert result["ok"] == result["sent"] >= 2 * RATE
    assert set(result["versions"]) == {"2510.2"}
    for name in later:
        says_halted(api, ns, name)
        assert template_image(api, ns, name) == ref("2510.2")
        assert uids(api, ns, name) == untouched[name], f"{name}'s pods were replaced"
    wait_for(
        lambda: any(e.reason == "WaveFailed" for e in channel_events(api, channel)),
        timeout=10,
        message="the channel's Warning Event WaveFailed",
    )

    # -- a good release: canary (back from the failed one), then staging, then prod
    move_channel(api, channel, ref("2510.4"))
    moved = time.monotonic()
    order: list[str] = []
    seconds: dict[str, float] = {}

    def done() -> dict[str, Any] | None:
        for name in TIERS:
            if name not in order and template_image(api, ns, name) == ref("2510.4"):
                order.append(name)
                seconds[name] = round(time.monotonic() - moved, 1)
        return complete_on(api, channel, "2510.4")

    status = wait_for(done, timeout=300, interval=0.2, message="the channel Complete on 2510.4")
    complete_after = time.monotonic() - moved
    print(f"\n2510.4 Complete {complete_after:.1f}s after the move; waves moved at {seconds}")
    assert order == list(TIERS), seconds
    assert status["newestReady"] == "2510.4" and status["stableImage"] == ref("2510.4"), status
    for name in TIERS:
        wait_settled(api, name, ns, REPLICAS, ref("2510.4"), timeout=60)
    canary = get_cluster(api, "canary", ns)
    assert condition(canary, "Stalled").get("status") != "True", condition(canary, "Stalled")
    assert canary["status"]["versionRecord"]["newestReady"] == "2510.4"
