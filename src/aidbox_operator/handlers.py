"""kopf wiring only: the AidboxCluster watch, startup/cleanup and liveness.

The AidboxCluster handler is a raw event handler (`@kopf.on.event`): kopf stores no progress,
writes no annotations and adds no finalizers, so the operator's only writes are its own. The
children, pods, ConfigMaps and Secrets come through the operator's own informers
(reconcile/feeds.py), which let the API server filter them. The Controller de-duplicates events
into a work queue and reconciles level-triggered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from aidbox_operator.model import API_GROUP, API_VERSION, PLURAL
from aidbox_operator.reconcile import Controller, connect
from aidbox_operator.reconcile.controller import DEFAULT_WORKERS
from aidbox_operator.reconcile.feeds import Informers
from aidbox_operator.reconcile.kube import DEFAULT_REQUEST_TIMEOUT
from aidbox_operator.reconcile.leader import ElectionTiming, LeaderElector


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    return cast(dict[str, Any], event["object"])


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
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    if options.namespaces and not any(set("*?[!,") & set(ns) for ns in options.namespaces):
        # Exact namespace names: nothing to discover, so no cluster-wide Namespace list/watch
        # (which single-namespace RBAC forbids: kopf would retry it with 403s).
        settings.scanning.disabled = True
    # "Handler succeeded" for every watch event is noise at INFO.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    client = await connect(identity=options.identity, request_timeout=options.request_timeout)
    controller = Controller(client, workers=options.workers, aidbox_health=options.aidbox_health)
    memo["controller"] = controller
    # -- informers (children, pods, ConfigMap/Secret metadata): before the workers start ------
    informers = Informers(controller, options.namespaces)
    informers.start()
    memo["informers"] = informers
    # -- end informers -----------------------------------------------------------------------
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
    controller.start()


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    elector: asyncio.Task[None] | None = memo.get("elector")
    if elector is not None:
        elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await elector  # releases the lease
    controller = _controller(memo)
    # -- informers ---------------------------------------------------------------------------
    informers: Informers | None = memo.get("informers")
    if informers is not None:
        await informers.stop()
    # -- end informers -----------------------------------------------------------------------
    await controller.stop()
    await controller.client.close()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def cluster_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_cluster(event.get("type"), _body(event))
