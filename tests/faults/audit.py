"""Who wrote what, when: the API server's audit log read as a timeline of operator writes and
leader Lease writes, to prove that at most one replica wrote at any time.

Every replica sends `aidbox-operator/<identity>` as its user agent. A write by replica X at
(server) time t is a non-leader write unless the last successful write of the Lease before t
was X's own and is younger than the lease duration: any other replica that held the Lease
at t must have written it after X did.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

AGENT = "aidbox-operator/"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    at: float  # seconds since the epoch, as received by the API server
    identity: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int


@dataclass
class Timeline:
    leases: list[Request] = field(default_factory=list)  # successful Lease writes
    writes: list[Request] = field(default_factory=list)  # other writes by operator replicas
    foreign: list[Request] = field(default_factory=list)  # writes by kopf etc. (should be none)

    def non_leader_writes(self, lease_seconds: float, since: float = 0.0) -> list[Request]:
        self.leases.sort(key=lambda lease: lease.at)
        times = [lease.at for lease in self.leases]
        bad = []
        for write in self.writes:
            if write.at < since:
                continue
            index = bisect_right(times, write.at) - 1
            holder = self.leases[index] if index >= 0 else None
            if (
                holder is None
                or holder.identity != write.identity
                or write.at - holder.at > lease_seconds
            ):
                bad.append(write)
        return bad

    def writers(self, since: float = 0.0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for write in self.writes:
            if write.at >= since:
                counts[write.identity] = counts.get(write.identity, 0) + 1
        return counts

    def handover_margins(self, since: float = 0.0) -> list[float]:
        """For each change of leader: seconds from the old leader's last write (until it leads
        again, if ever) to the new leader's acquisition of the Lease; negative when the old
        leader wrote after it had been replaced."""
        margins = []
        changes = self.holders()
        for index, ((_, old), (at, _new)) in enumerate(pairwise(changes)):
            back = next((t for t, who in changes[index + 2 :] if who == old), float("inf"))
            last = max(
                (w.at for w in self.writes if w.identity == old and w.at < back), default=None
            )
            if at >= since and last is not None and last >= since:
                margins.append(round(at - last, 1))
        return margins

    def holders(self, since: float = 0.0) -> list[tuple[float, str]]:
        """(time, identity) of each change of the Lease's holder."""
        changes: list[tuple[float, str]] = []
        for lease in sorted(self.leases, key=lambda lease: lease.at):
            if not changes or changes[-1][1] != lease.identity:
                changes.append((lease.at, lease.identity))
        return [c for c in changes if c[0] >= since]


class AuditLog:
    """Reads the audit log incrementally (it holds every request of the whole session)."""

    def __init__(self, path: Path, lease_namespace: str, lease_name: str) -> None:
        self.path = path
        self.lease = (lease_namespace, lease_name)
        self.timeline = Timeline()
        # (identity, status code) of every answered request of a replica, reads included.
        self.codes: Counter[tuple[str, int]] = Counter()
        self._offset = 0

    def answered(self, identities: set[str], low: int, high: int = 600) -> int:
        self.read()
        return sum(
            n for (who, code), n in self.codes.items() if who in identities and low <= code < high
        )

    def read(self) -> Timeline:
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        for line in data[:end].splitlines():
            if AGENT.encode() in line or b'"userAgent":"kopf' in line:
                self._add(json.loads(line))
        return self.timeline

    def _add(self, event: dict[str, Any]) -> None:
        if event.get("stage") != "ResponseComplete":
            return
        agent = str(event.get("userAgent", ""))
        code = int((event.get("responseStatus") or {}).get("code", 0))
        if agent.startswith(AGENT):
            self.codes[(agent[len(AGENT) :], code)] += 1
        if event.get("verb") not in WRITE_VERBS:
            return
        ref = event.get("objectRef") or {}
        request = Request(
            at=datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp(),
            identity=agent[len(AGENT) :] if agent.startswith(AGENT) else agent,
            verb=event["verb"],
            resource=str(ref.get("resource", "")),
            namespace=str(ref.get("namespace", "")),
            name=str(ref.get("name", "")),
            code=code,
        )
        if not agent.startswith(AGENT):
            self.timeline.foreign.append(request)
        elif request.resource == "leases" and (request.namespace, request.name) == self.lease:
            if request.code < 300:
                self.timeline.leases.append(request)
        else:
            self.timeline.writes.append(request)
