"""kopf wiring only: the operator's lifecycle (startup, cleanup, signals, the liveness
endpoint).

kopf runs the process; the runtime does all the watching. Every watch, the AidboxClusters'
included, is one of the operator's own informers (reconcile/feeds.py), so there is one set of
watch timeouts, one 410 path, one namespace rule, and the workers start only once every watch
has listed. kopf registers no resource handler: it stores no progress, writes no annotations,
adds no finalizers and posts no Events, so the operator's only writes are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import kopf

from aidbox_operator.metrics import LEADER
from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.reconcile import Controller
from aidbox_operator.reconcile.feeds import Informers
from aidbox_operator.reconcile.pacing import DEFAULT_OPERATOR_ROLLOUTS
from aidbox_operator.runtime.client import DEFAULT_REQUEST_TIMEOUT, connect
from aidbox_operator.runtime.leader import ElectionTiming, LeaderElector
from aidbox_operator.runtime.registry import RegistryClient
from aidbox_operator.runtime.workers import DEFAULT_WORKERS


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


@dataclass(frozen=True)
class RunOptions:
    """What `aidbox-operator run` was asked for; handed to the handlers through kopf's memo."""

    workers: int = DEFAULT_WORKERS
    # `--namespace` values as given (names or kopf-style globs); empty: all namespaces.
    namespaces: tuple[str, ...] = ()
    # "namespace/name" of the Lease to elect a leader with; empty runs without election.
    leader_lease: str = ""
    election: ElectionTiming = field(default_factory=ElectionTiming)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    # Read each ready pod's /health for the running Aidbox version (pod addresses are
    # reachable from inside the cluster only).
    aidbox_health: bool = False
    # The namespace the operator runs in (a NetworkPolicy on the pods lets its /health reads
    # in); None when unknown.
    operator_namespace: str | None = None
    # Pin moving tags to digests through the registry's API (False: pods get spec.image as is).
    image_pinning: bool = True
    # Registries (host:port) spoken to over plain HTTP instead of HTTPS.
    plain_http_registries: tuple[str, ...] = ()
    # Handle AidboxReleaseChannels (cluster-scoped: one operator per channel writes its status).
    release_channels: bool = True
    # Clusters that may roll at once for a pod-template change nobody asked for (0: no bound).
    operator_rollouts: int = DEFAULT_OPERATOR_ROLLOUTS
    identity: str = field(
        default_factory=lambda: (
            os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        )
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    options: RunOptions = memo.get("options") or RunOptions()
    # The operator posts its own Events, once per real change; kopf's would repeat.
    settings.posting.enabled = False
    # kopf watches nothing (no resource handlers), so it has no namespaces to discover either.
    settings.scanning.disabled = True
    client = await connect(
        FIELD_MANAGER, identity=options.identity, request_timeout=options.request_timeout
    )
    resolver = None
    if options.image_pinning:
        resolver = RegistryClient(plain_http=frozenset(options.plain_http_registries))
        memo["resolver"] = resolver
    controller = Controller(
        client,
        workers=options.workers,
        aidbox_health=options.aidbox_health,
        resolver=resolver,
        operator_rollouts=options.operator_rollouts,
        release_channels=options.release_channels,
        operator_namespace=options.operator_namespace,
    )
    memo["controller"] = controller
    # The informers start before the workers, which wait for every one to list once.
    informers = Informers(
        client,
        controller.store,
        controller.queue,
        controller.forget,
        options.namespaces,
        channels=options.release_channels,
    )
    informers.start(controller.workers.caches_synced)
    memo["informers"] = informers
    if options.leader_lease:
        namespace, name = options.leader_lease.split("/", 1)
        controller.pause()  # standby until elected; watches keep the cache warm meanwhile
        elector = LeaderElector(
            client,
            namespace,
            name,
            options.identity,
            options.election,
            # Winning (again) resyncs every cluster; losing stops taking work, and the client's
            # guard refuses the writes of reconciles already under way.
            on_started=controller.resume,
            on_stopped=controller.pause,
        )
        client.may_write = elector.may_write
        memo["elector"] = asyncio.create_task(elector.run(), name="leader-election")
    else:
        # Without election this process is the one writer: the leader the per-cluster alerts
        # read (`and on (job, instance) (aidbox_operator_leader == 1)`), never a NoLeader.
        LEADER.set(1)
    controller.start()


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    elector: asyncio.Task[None] | None = memo.get("elector")
    if elector is not None:
        elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await elector  # releases the lease
    controller = _controller(memo)
    informers: Informers | None = memo.get("informers")
    if informers is not None:
        await informers.stop()
    await controller.stop()
    await controller.client.close()
    resolver: RegistryClient | None = memo.get("resolver")
    if resolver is not None:
        await resolver.close()
