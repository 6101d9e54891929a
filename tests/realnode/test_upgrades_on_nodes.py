"""Release changes on real nodes: stand-in releases pulled from the sandbox's registry, and an
operator that pins moving tags through that registry (--image-pinning=registry, plain HTTP on
127.0.0.1). A moving tag runs as the digest it named until spec.upgrade.tagRefresh changes, even
in a pod that replaces a lost one after the tag moved; a release that fails at start is held
with its termination message while the old pods serve every request, and going back from it
needs no override; with spec.upgrade.strategy Recreate no pod of the new release exists before
every old pod has stopped.

One registry session and one operator serve the module; each test has a namespace of its own,
which the session operator (t-*) does not watch."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from standin import SELECTOR, pods, settled, standin_spec, wait_settled
from traffic import Traffic, get_json

from aidbox_operator.model.constants import ALLOW_DOWNGRADE_ANNOTATION
from aidbox_sandbox.realnode import RealNodes
from aidbox_sandbox.registry import Registry
from helpers import sandbox_progress, wait_for
from kube_helpers import (
    condition,
    create_cluster,
    events_for,
    get_cluster,
    make_config,
    namespace_lifetime,
    patch_spec,
    wait_condition,
)
from operator_process import OperatorProcess

NAME = "box"
REPLICAS = 2
# Namespaces of this module, watched by its own operator only.
PREFIX = f"up{secrets.token_hex(2)}-"
# A repository of the module's own: the registry may be shared with another session.
REPOSITORY = f"{PREFIX}upgrades/aidbox"
FAILURE = 'migration 2510.3 failed: column "resource" of relation "patient" does not exist'
RATE = 60.0


@pytest.fixture(scope="module")
def registry(
    sandbox: Any, real_nodes: RealNodes, request: pytest.FixtureRequest
) -> Iterator[Registry]:
    """The sandbox's registry, the real nodes connected to it, and the releases the tests
    run: 2510.1, 2510.2 and a 2510.3 that fails at start like a failed migration."""
    progress = sandbox_progress(request)
    with sandbox.registry_session(progress) as reg:
        for version in ("2510.1", "2510.2"):
            reg.push_standin(version, REPOSITORY, progress=progress)
        reg.push_standin("2510.3", REPOSITORY, fail_start=FAILURE, progress=progress)
        yield reg


@pytest.fixture(scope="module")
def pinning_operator(start_operator: Any, registry: Registry) -> OperatorProcess:
    op: OperatorProcess = start_operator(
        *("--namespace", f"{PREFIX}*"),
        "--image-pinning=registry",
        *("--plain-http-registry", registry.host),
    )
    return op


@pytest.fixture
def ns(
    api_client: client.ApiClient, pinning_operator: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[str]:
    slug = request.node.name.removeprefix("test_").replace("_", "-")[:30].strip("-")
    yield from namespace_lifetime(api_client, f"{PREFIX}{slug}")


# -- the cluster under test


def launch(api: client.ApiClient, ns: str, image: str, **overrides: Any) -> None:
    """A cluster of the stand-in on the real nodes, pulling `image`; a stopping pod takes about
    two seconds (a one-second preStop pause, a one-second drain), so rolls stay short."""
    make_config(api, NAME, ns, data={"BOX_ID": NAME, "STANDIN_DRAIN_SECONDS": "1"})
    spec = standin_spec(
        REPLICAS, image=image, imagePullPolicy="IfNotPresent", preStopDelaySeconds=1
    )
    create_cluster(api, NAME, ns, **{**spec, **overrides})


def template_image(api: client.ApiClient, ns: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(NAME, ns)
    return str(dep.spec.template.spec.containers[0].image)


def ready_on(api: client.ApiClient, ns: str, image: str, timeout: float = 120) -> dict[str, Any]:
    """Every pod runs `image` and is Ready, and the cluster says so for its current spec."""
    wait_settled(api, NAME, ns, REPLICAS, image, timeout=timeout)
    return wait_condition(api, NAME, ns, "Ready", "True", timeout=60)


def names(api: client.ApiClient, ns: str) -> set[str]:
    return {p.metadata.name for p in pods(api, NAME, ns)}


def image_id(pod: client.V1Pod) -> str:
    """The image the pod's container runs, as the node resolved it (repo@sha256:...)."""
    statuses = pod.status.container_statuses or []
    return str(statuses[0].image_id or "") if statuses else ""


def health_version(holder: int, pod: client.V1Pod) -> str | None:
    """about.version from the pod's own /health (from a node's netns), None without answer."""
    health = get_json(holder, f"http://{pod.status.pod_ip}:8080/health")
    return None if health is None else str(health["about"]["version"])


# -- (a) a moving tag


def test_a_moving_tag_runs_its_pinned_digest_until_refreshed(
    api_client: client.ApiClient, registry: Registry, real_nodes: RealNodes, ns: str
) -> None:
    api, holder = api_client, real_nodes.holder("real-node-0")
    stable = registry.reference(REPOSITORY, "stable")
    first = registry.push_standin("stable", REPOSITORY, version="2510.1")
    pinned = f"{registry.host}/{REPOSITORY}@{first}"

    started = time.monotonic()
    launch(api, ns, stable)
    wait_for(
        lambda: template_image(api, ns) == pinned,
        timeout=60,
        interval=0.2,
        message=f"the Deployment naming {pinned}",
    )
    pin_seconds = time.monotonic() - started
    body = ready_on(api, ns, pinned)
    ready_seconds = time.monotonic() - started
    pin = body["status"]["pinnedImage"]
    assert (pin["requested"], pin["image"], pin["version"]) == (stable, pinned, "2510.1")
    assert body["status"]["versionRecord"]["newestReady"] == "2510.1"
    print(f"\npinned in {pin_seconds:.1f}s, Ready in {ready_seconds:.1f}s after creation")

    # The tag moves; a pod replacing a lost one still runs the pinned digest.
    moved = registry.push_standin("stable", REPOSITORY, version="2510.2")
    assert moved != first and registry.digest(REPOSITORY, "stable") == moved
    before = names(api, ns)
    victim = sorted(before)[0]
    client.CoreV1Api(api).delete_namespaced_pod(victim, ns)
    wait_for(lambda: victim not in names(api, ns), timeout=60, message=f"{victim} gone")
    wait_settled(api, NAME, ns, REPLICAS, pinned, timeout=60)
    (replacement,) = [p for p in pods(api, NAME, ns) if p.metadata.name not in before]
    assert image_id(replacement).endswith(f"@{first}"), image_id(replacement)
    assert health_version(holder, replacement) == "2510.1"
    assert template_image(api, ns) == pinned
    assert get_cluster(api, NAME, ns)["status"]["pinnedImage"] == pin

    # A new tagRefresh resolves the tag again: the cluster rolls to what it names now.
    refreshed = f"{registry.host}/{REPOSITORY}@{moved}"
    patch_spec(api, NAME, ns, {"upgrade": {"tagRefresh": "2025-10-02"}})
    wait_for(
        lambda: template_image(api, ns) == refreshed,
        timeout=60,
        interval=0.2,
        message=f"the Deployment naming {refreshed}",
    )
    ready_on(api, ns, refreshed)

    def recorded() -> dict[str, Any] | None:
        status = get_cluster(api, NAME, ns)["status"]
        newest = status.get("versionRecord", {}).get("newestReady")
        return status if newest == "2510.2" and "upgrade" not in status else None

    status = wait_for(recorded, timeout=30, interval=0.5, message="2510.2 recorded")
    pin = status["pinnedImage"]
    assert (pin["requested"], pin["image"], pin["version"]) == (stable, refreshed, "2510.2")
    assert pin["refresh"] == "2025-10-02"
    started = [e.message for e in events_for(api, NAME, ns) if e.reason == "UpgradeStarted"]
    assert len(started) == 1 and started[0].startswith("2510.1 -> 2510.2:"), started
    for pod in pods(api, NAME, ns):
        assert image_id(pod).endswith(f"@{moved}"), image_id(pod)
        assert health_version(holder, pod) == "2510.2"


# -- (b) a release that fails at start


def test_b_a_release_failing_at_start_is_held_while_the_old_pods_serve(
    api_client: client.ApiClient,
    registry: Registry,
    real_nodes: RealNodes,
    ns: str,
    tmp_path: Path,
) -> None:
    api, holder = api_client, real_nodes.holder("real-node-0")
    good, bad = (registry.reference(REPOSITORY, v) for v in ("2510.2", "2510.3"))
    launch(api, ns, good)
    ready_on(api, ns, good)
    svc = client.CoreV1Api(api).read_namespaced_service(NAME, ns)
    ip, port = svc.spec.cluster_ip, svc.spec.ports[0].port
    # kube-proxy programs the Service a moment after the pods turn Ready.
    wait_for(lambda: get_json(holder, f"http://{ip}:{port}/"), timeout=30, message="the Service")
    serving = names(api, ns)

    with Traffic(holder, ip, port, tmp_path / "failed-upgrade.json", RATE) as load:
        load.run_until(int(RATE))  # a second of traffic before the change
        patch_spec(api, NAME, ns, {"image": bad})
        patched = time.monotonic()
        body = wait_condition(api, NAME, ns, "Stalled", "True", "UpgradeFailed", timeout=120)
        failed_after = time.monotonic() - patched
        load.run_until(load.progress()["sent"] + int(RATE))  # and a second after the verdict
        result = load.stop()
    print(
        f"\nUpgradeFailed {failed_after:.1f}s after the patch; load: {result['sent']} sent, "
        f"{result['ok']} ok, {result['failed']} failed {result['errors']} in "
        f"{result['seconds']}s; versions {result['versions']}"
    )
    message = condition(body, "Stalled")["message"]
    assert FAILURE in message, message
    assert body["status"]["upgrade"]["from"] == "2510.2"
    assert body["status"]["upgrade"]["to"] == "2510.3"
    assert result["failed"] == 0, f"failed requests: {result['errors']} at {result['failures']}"
    assert result["ok"] == result["sent"] >= 2 * RATE
    assert set(result["versions"]) == {"2510.2"}
    assert serving <= names(api, ns), "an old pod was stopped while the new release failed"

    # Back to the release that ran: no downgrade (2510.3 never became Ready), no annotation.
    patch_spec(api, NAME, ns, {"image": good})
    body = ready_on(api, ns, good)
    assert ALLOW_DOWNGRADE_ANNOTATION not in (body["metadata"].get("annotations") or {})
    assert condition(body, "Stalled").get("status") != "True", condition(body, "Stalled")
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert body["status"]["version"] == "2510.2"
    assert body["status"]["versionRecord"]["newestReady"] == "2510.2"
    assert names(api, ns) == serving, "the failing pod is gone, the old ones stayed"
    reasons = {e.reason for e in events_for(api, NAME, ns)}
    assert "DowngradeRefused" not in reasons, reasons


# -- (c) Recreate


class PodWatch:
    """Every change to the cluster's pods in the API server's order (one watch, resumed from
    its last resourceVersion, so none is missed), each with the time it arrived."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.core, self.ns = client.CoreV1Api(api), ns
        self.selector = SELECTOR.format(name=NAME)
        listed = self.core.list_namespaced_pod(ns, label_selector=self.selector)
        self.version = listed.metadata.resource_version
        self.events: list[tuple[float, str, client.V1Pod]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.ns,
                    label_selector=self.selector,
                    resource_version=self.version,
                    timeout_seconds=2,
                )
                for event in stream:
                    assert event["type"] in ("ADDED", "MODIFIED", "DELETED"), event
                    pod = event["object"]
                    self.events.append((time.time(), event["type"], pod))
                    self.version = pod.metadata.resource_version
        except BaseException as exc:
            self.error = exc

    def stop(self) -> list[tuple[float, str, client.V1Pod]]:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error
        return self.events


def _stopped(pod: client.V1Pod) -> bool:
    """The pod's containers have all ended (the kubelet reports a terminal phase once they
    have, and only then deletes the pod)."""
    statuses = pod.status.container_statuses or []
    ended = bool(statuses) and all(s.state and s.state.terminated for s in statuses)
    return ended or pod.status.phase in ("Succeeded", "Failed")


def test_c_recreate_stops_every_old_pod_before_a_new_one_exists(
    api_client: client.ApiClient, registry: Registry, ns: str
) -> None:
    api = api_client
    old_image, new_image = (registry.reference(REPOSITORY, v) for v in ("2510.1", "2510.2"))
    launch(api, ns, old_image, upgrade={"strategy": "Recreate"})
    ready_on(api, ns, old_image)
    old = names(api, ns)

    pod_watch = PodWatch(api, ns)
    patch_spec(api, NAME, ns, {"image": new_image})
    patched, patched_at = time.monotonic(), time.time()
    # What status.upgrade said while it rolled, each change with when it was first seen.
    reported: list[tuple[float, str, dict[str, int]]] = []
    while not settled(api, NAME, ns, REPLICAS, new_image):
        assert time.monotonic() - patched < 120, f"the roll did not settle; saw {reported}"
        upgrade = get_cluster(api, NAME, ns).get("status", {}).get("upgrade")
        seen = (upgrade["strategy"], upgrade.get("pods", {})) if upgrade else None
        if seen and (not reported or reported[-1][1:] != seen):
            reported.append((round(time.monotonic() - patched, 1), *seen))
        time.sleep(0.2)
    events = pod_watch.stop()
    ready_on(api, ns, new_image)
    print(f"\nstatus.upgrade (s after the patch, strategy, pods): {reported}")
    # Recreate throughout: also once every old pod is gone and the Deployment rolls again.
    assert reported and {strategy for _, strategy, _ in reported} == {"Recreate"}, reported

    # Per pod: the position in the stream (and arrival time) of its first event, of the first
    # event showing its containers stopped, and of its deletion.
    first: dict[str, tuple[int, float]] = {}
    stopped: dict[str, tuple[int, float]] = {}
    gone: dict[str, tuple[int, float]] = {}
    last: dict[str, client.V1Pod] = {}
    for index, (at, kind, pod) in enumerate(events):
        name = pod.metadata.name
        first.setdefault(name, (index, at))
        last[name] = pod
        if _stopped(pod) or kind == "DELETED":
            stopped.setdefault(name, (index, at))
        if kind == "DELETED":
            gone[name] = (index, at)
    new = set(first) - old
    assert len(new) == REPLICAS and set(gone) >= old, (sorted(first), sorted(gone))

    def when(seen: dict[str, tuple[int, float]], name: str) -> str:
        """Position in the stream and arrival, seconds after the patch."""
        return f"#{seen[name][0]} +{seen[name][1] - patched_at:.2f}s" if name in seen else "-"

    def stamp(name: str) -> str:
        pod = last[name]
        statuses = pod.status.container_statuses or []
        state = statuses[0].state if statuses else None
        ended = state.terminated.finished_at if state and state.terminated else None
        running = state.running.started_at if state and state.running else None
        return (
            f"{name}: created {pod.metadata.creation_timestamp:%H:%M:%S} (seen {when(first, name)}"
            f"), started {running and f'{running:%H:%M:%S}'}, containers stopped "
            f"{ended and f'{ended:%H:%M:%S}'} (seen {when(stopped, name)}), gone "
            f"{when(gone, name)}"
        )

    report = "\n".join(stamp(n) for n in sorted(old) + sorted(new))
    print(f"\nRecreate, in the order of one watch on the pods:\n{report}")
    # The Deployment controller (strategy Recreate) scales the new ReplicaSet up once no old
    # pod is running: every old pod's containers stopped, its phase terminal. That order is
    # what Recreate promises and what is asserted, by the position of each event in one watch
    # stream (resourceVersion order, so no clock is compared). The old pod objects' deletion,
    # the kubelet's last write after that terminal phase, races the new pods' creation (here
    # the new pods were created most of a second before the old objects went): reported
    # above, not asserted.
    last_stop = max(stopped[name][0] for name in old)
    first_new = min(first[name][0] for name in new)
    assert last_stop < first_new, report
