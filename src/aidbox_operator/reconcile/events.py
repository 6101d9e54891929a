"""Kubernetes Events about an AidboxCluster. Called only for real changes and transitions,
so nothing repeats in a loop."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.reconcile.kube import EVENTS, ApiError, KubeClient

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


class EventRecorder:
    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    async def record(
        self, cluster: dict[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        meta = cluster["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": cluster["apiVersion"],
                "kind": cluster["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log_fn = log.warning if type_ == "Warning" else log.info
        log_fn(
            "%s: %s",
            reason,
            message,
            extra={"namespace": meta["namespace"], "cluster": meta["name"]},
        )
        try:
            await self._client.request(
                "POST", EVENTS.path(meta["namespace"]), body=event, verb="create"
            )
        except ApiError as err:
            # An Event is a courtesy: failing to post one must not fail the reconcile. In a
            # namespace being deleted nothing can be created, which is expected.
            level = logging.DEBUG if "being terminated" in err.message else logging.WARNING
            log.log(level, "could not post event %s: %s", reason, err)
