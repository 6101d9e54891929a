"""kopf wiring only: which watch events feed which Controller method.

Every handler is a raw event handler (`@kopf.on.event`): kopf stores no progress, writes no
annotations and adds no finalizers, so the operator's only writes are its own. The Controller
de-duplicates events into a work queue and reconciles level-triggered.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import kopf

from aidbox_operator.model import API_GROUP, API_VERSION, PLURAL
from aidbox_operator.model.constants import MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile import Controller, connect

OWNED = {MANAGED_BY_LABEL: MANAGED_BY}
WORKERS_ENV = "AIDBOX_OPERATOR_WORKERS"


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    return cast(dict[str, Any], event["object"])


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The operator posts its own Events, once per real change; kopf's would repeat.
    settings.posting.enabled = False
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    # "Handler succeeded" for every watch event is noise at INFO.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    client = await connect()
    controller = Controller(client, workers=int(os.environ.get(WORKERS_ENV, "8")))
    controller.start()
    memo["controller"] = controller


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    controller = _controller(memo)
    await controller.stop()
    await controller.client.close()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def cluster_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_cluster(event.get("type"), _body(event))


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
async def child_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_child(event.get("type"), _body(event))


@kopf.on.event("", "v1", "pods", labels=OWNED)
async def pod_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_pod(event.get("type"), _body(event))


def _referenced(kind: str) -> Any:
    def check(body: Any, memo: kopf.Memo, **_: Any) -> bool:
        return "controller" in memo and _controller(memo).is_referenced(kind, body)

    return check


@kopf.on.event("", "v1", "configmaps", when=_referenced("ConfigMap"))
async def configmap_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_config("ConfigMap", event.get("type"), _body(event))


@kopf.on.event("", "v1", "secrets", when=_referenced("Secret"))
async def secret_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).observe_config("Secret", event.get("type"), _body(event))
