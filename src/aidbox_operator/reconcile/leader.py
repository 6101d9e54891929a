"""Leader election on a coordination.k8s.io Lease, so that of several operator replicas
exactly one reconciles; the others keep their caches warm and take over when the leader's
lease runs out (or at once, when it stops cleanly and releases it).

Expiry is judged by when this process last saw the lease change, not by the holder's clock,
so clock skew between nodes does not matter (as in client-go).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aidbox_operator.metrics import LEADER
from aidbox_operator.reconcile.kube import ApiError, KubeClient, ResourceKind

log = logging.getLogger(__name__)
LEASES = ResourceKind("coordination.k8s.io/v1", "Lease", "leases")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_every = max(1.0, lease_seconds / 3)
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.leading = False
        self._seen: tuple[str, str] | None = None  # (holder, renewTime) last observed
        self._seen_at = 0.0

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._try_once()
                except ApiError as err:
                    log.warning("leader election: %s", err)
                    if self.leading and time.monotonic() - self._seen_at > self.lease_seconds:
                        self._lose("could not renew the lease in time")
                        return
                await asyncio.sleep(self.renew_every if self.leading else self.renew_every / 2)
        finally:
            if self.leading:
                await self.release()

    async def _try_once(self) -> None:
        path = LEASES.path(self.namespace, self.name)
        lease = await self.client.get(LEASES, self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(transitions=0),
            }
            try:
                await self.client.request(
                    "POST", LEASES.path(self.namespace), body=body, verb="lease"
                )
            except ApiError as err:
                if err.conflict:
                    return  # someone else created it first
                raise
            self._gain()
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        observed = (holder, str(spec.get("renewTime", "")))
        if observed != self._seen:
            self._seen, self._seen_at = observed, time.monotonic()
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        expired = not holder or time.monotonic() - self._seen_at > duration
        if holder != self.identity and not expired:
            if self.leading:
                self._lose(f"lease taken by {holder}")
            return
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        lease["spec"] = self._spec(
            transitions, acquired=spec.get("acquireTime") if holder == self.identity else None
        )
        try:
            # PUT with the resourceVersion we read: of two candidates only one wins.
            await self.client.request("PUT", path, body=lease, verb="lease")
        except ApiError as err:
            if err.conflict:
                return
            raise
        self._seen, self._seen_at = (self.identity, lease["spec"]["renewTime"]), time.monotonic()
        if not self.leading:
            self._gain()

    def _spec(self, transitions: int, acquired: Any = None) -> dict[str, Any]:
        now = _now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _gain(self) -> None:
        self.leading = True
        self._seen_at = time.monotonic()
        LEADER.set(1)
        log.info("became the leader (%s/%s as %s)", self.namespace, self.name, self.identity)
        self.on_started()

    def _lose(self, why: str) -> None:
        self.leading = False
        LEADER.set(0)
        log.error("lost leadership: %s", why)
        self.on_stopped()

    async def release(self) -> None:
        """Hand the lease back on a clean stop, so a standby takes over without waiting."""
        self.leading = False
        LEADER.set(0)
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.request(
                    "PUT", LEASES.path(self.namespace, self.name), body=lease, verb="lease"
                )
                log.info("released the lease")
        except (ApiError, OSError) as err:
            log.warning("could not release the lease: %s", err)
