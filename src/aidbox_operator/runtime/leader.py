"""Leader election on a coordination.k8s.io Lease, so that of several operator replicas exactly
one writes; the others keep their caches warm and take over when the leader's lease runs out
(or at once, when it stops cleanly and releases it).

The timing is client-go's: lease duration > renew deadline > retry period.

- A standby takes the lease only after it has seen the lease unchanged for a lease duration,
  measured by its own monotonic clock from when *it* saw the last change (so clock skew between
  nodes does not matter).
- The leader renews every retry period. It counts itself leader only until its renew deadline
  after the start of its last successful renewal, by its own monotonic clock, whatever the
  election loop is doing: a renewal that hangs or fails in any way (any exception, not only
  API errors) cannot stretch that. Since a standby waits a whole lease duration from a moment
  no earlier than that renewal's start, the old leader has stopped writing at least
  (lease duration - renew deadline) before anyone else can acquire the lease.
- `may_write` is the guard the API client asks before every write.
- Losing the lease pauses the workers and makes this replica a candidate again; winning it
  (again) resumes them with a full resync.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aidbox_operator.metrics import LEADER
from aidbox_operator.runtime.client import LEASE_VERB, ApiError, KubeClient
from aidbox_operator.runtime.kinds import LEASES

log = logging.getLogger(__name__)
# client-go's JitterFactor: candidates spread their polls by up to 20 % of the retry period.
JITTER = 1.2


@dataclass(frozen=True)
class ElectionTiming:
    """Seconds. Defaults are client-go's (and kube-controller-manager's)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(f"the renew deadline must exceed {JITTER} x the retry period")
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")

    @classmethod
    def for_lease(cls, lease_duration: float) -> ElectionTiming:
        """client-go's proportions (15 / 10 / 2) scaled to another lease duration."""
        return cls(lease_duration, lease_duration * 2 / 3, lease_duration * 2 / 15)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        timing: ElectionTiming | None = None,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or ElectionTiming()
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self._leading = False
        self._renewed_at = 0.0  # start of the last successful acquire/renew (monotonic)
        self._seen: tuple[str, str] | None = None  # (holder, renewTime) last observed
        self._seen_at = 0.0

    @property
    def leading(self) -> bool:
        """True only while the last successful renewal is younger than the renew deadline."""
        return self._leading and self.clock() < self._renewed_at + self.timing.renew_deadline

    def may_write(self) -> bool:
        return self.leading

    async def run(self) -> None:
        """Campaign, lead until the lease is lost, campaign again; forever (until cancelled)."""
        try:
            while True:
                await self._acquire()
                self._gain()
                why = await self._renew_until_lost()
                self._lose(why)
        finally:
            if self._leading:
                await self.release()

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._attempt(self.timing.renew_deadline):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any failure: still a candidate, try again later
                log.warning("leader election: %s", _describe(err))
            await asyncio.sleep(self.timing.retry_period * random.uniform(1.0, JITTER))

    async def _renew_until_lost(self) -> str:
        """Renew every retry period; return why leadership ended."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            while True:
                remaining = self._renewed_at + self.timing.renew_deadline - self.clock()
                if remaining <= 0:
                    return f"could not renew the lease within {self.timing.renew_deadline:g}s"
                try:
                    if await self._attempt(remaining):
                        break
                    return "the lease is held by another replica"
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # network, timeout, API error, bug: all the same
                    log.warning("leader election: renewal failed: %s", _describe(err))
                pause = self._renewed_at + self.timing.renew_deadline - self.clock()
                await asyncio.sleep(max(0.0, min(self.timing.retry_period, pause)))

    async def _attempt(self, seconds: float) -> bool:
        """One try to acquire or renew; True when this replica now holds the lease."""
        started = self.clock()
        async with asyncio.timeout(seconds):
            held = await self._try_acquire_or_renew()
        if held:
            # The start of the attempt, not its end: the API server wrote the renewal after
            # this instant, and every standby saw it after that.
            self._renewed_at = started
        return held

    async def _try_acquire_or_renew(self) -> bool:
        lease = await self.client.get(LEASES, self.namespace, self.name)
        if lease is None:
            return await self._create()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        observed = (holder, str(spec.get("renewTime", "")))
        if observed != self._seen:
            self._seen, self._seen_at = observed, self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        expired = not holder or self.clock() - self._seen_at > duration
        if holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        lease["spec"] = self._spec(
            transitions, acquired=spec.get("acquireTime") if holder == self.identity else None
        )
        try:
            # PUT with the resourceVersion we read: of two candidates only one wins.
            await self.client.request(
                "PUT", LEASES.path(self.namespace, self.name), body=lease, verb=LEASE_VERB
            )
        except ApiError as err:
            if err.conflict:
                return False
            raise
        self._seen, self._seen_at = (self.identity, lease["spec"]["renewTime"]), self.clock()
        return True

    async def _create(self) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(transitions=0),
        }
        try:
            await self.client.request(
                "POST", LEASES.path(self.namespace), body=body, verb=LEASE_VERB
            )
        except ApiError as err:
            if err.conflict:
                return False  # another candidate created it first
            raise
        return True

    def _spec(self, transitions: int, acquired: Any = None) -> dict[str, Any]:
        now = _now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _gain(self) -> None:
        self._leading = True
        LEADER.set(1)
        log.info("became the leader (%s/%s as %s)", self.namespace, self.name, self.identity)
        self.on_started()

    def _lose(self, why: str) -> None:
        self._leading = False
        LEADER.set(0)
        log.error("lost leadership: %s; standing by", why)
        self.on_stopped()

    async def release(self) -> None:
        """Hand the lease back on a clean stop, so a standby takes over without waiting."""
        still_held = self.leading
        self._leading = False
        LEADER.set(0)
        if not still_held:
            return  # past the renew deadline another replica may hold it: not ours to touch
        try:
            async with asyncio.timeout(self.client.request_timeout):
                lease = await self.client.get(LEASES, self.namespace, self.name)
                if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    lease["spec"]["holderIdentity"] = ""
                    lease["spec"]["leaseDurationSeconds"] = 1
                    await self.client.request(
                        "PUT",
                        LEASES.path(self.namespace, self.name),
                        body=lease,
                        verb=LEASE_VERB,
                    )
                    log.info("released the lease")
        except Exception as err:  # best effort: the lease expires by itself anyway
            log.warning("could not release the lease: %s", _describe(err))


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__
