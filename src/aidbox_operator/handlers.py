"""kopf wiring only: which watch events feed which Controller method.

Every handler is a raw event handler (`@kopf.on.event`): kopf stores no progress, writes no
annotations and adds no finalizers, so the operator's only writes are its own. The Controller
de-duplicates events into a work queue and reconciles level-triggered.
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
from aidbox_operator.model.constants import MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile import Controller, connect
from aidbox_operator.reconcile.kube import DEFAULT_REQUEST_TIMEOUT
from aidbox_operator.reconcile.leader import ElectionTiming, LeaderElector

OWNED = {MANAGED_BY_LABEL: MANAGED_BY}


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    return cast(dict[str, Any], event["object"])


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


@dataclass(frozen=True)
class RunOptions:
    """What `aidbox-operator run` was asked for; handed to the handlers through kopf's memo."""

    workers: int = 32
    # "namespace/name" of the Lease to elect a leader with; empty runs without election.
    leader_lease: str = ""
    election: ElectionTiming = field(default_factory=ElectionTiming)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
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
    # "Handler succeeded" for every watch event is noise at INFO.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    client = await connect(identity=options.identity, request_timeout=options.request_timeout)
    controller = Controller(client, workers=options.workers)
    memo["controller"] = controller
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
    await controller.stop()
    await controller.client.close()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def cluster_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_cluster(event.get("type"), _body(event))


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
@kopf.on.event("monitoring.coreos.com", "v1", "servicemonitors", labels=OWNED)
async def child_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_child(event.get("type"), _body(event))


@kopf.on.event("", "v1", "pods", labels=OWNED)
async def pod_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_pod(event.get("type"), _body(event))


# Every ConfigMap and Secret is summarized (a digest and key names, never contents), so that
# reconciles, and restarts above all, find referenced ones in the cache instead of asking.
@kopf.on.event("", "v1", "configmaps")
async def configmap_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_config("ConfigMap", event.get("type"), _body(event))


@kopf.on.event("", "v1", "secrets")
async def secret_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_config("Secret", event.get("type"), _body(event))
