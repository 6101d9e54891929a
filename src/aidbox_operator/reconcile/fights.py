"""Another writer that keeps changing what the operator manages: repair, but ever more slowly,
so that pods are not replaced every few seconds while two controllers disagree."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from aidbox_operator.reconcile.store import ChildKey

WINDOW_SECONDS = 120.0
# Repairs within the window that make it a fight rather than a one-off edit.
FIGHT_REPAIRS = 3
FIRST_PAUSE_SECONDS = 30.0
MAX_PAUSE_SECONDS = 600.0


@dataclass
class Fight:
    writer: str
    next_repair_at: float
    pause: float


class WriterFights:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._repairs: dict[ChildKey, deque[float]] = defaultdict(deque)
        self._fights: dict[ChildKey, Fight] = {}

    def wait_left(self, child: ChildKey) -> float:
        """Seconds until the next repair of this child is allowed (0: now)."""
        fight = self._fights.get(child)
        return max(0.0, fight.next_repair_at - self.clock()) if fight else 0.0

    def fight(self, child: ChildKey) -> Fight | None:
        return self._fights.get(child)

    def repaired(self, child: ChildKey) -> bool:
        """Record a drift repair; True when this child is now in a fight."""
        now = self.clock()
        times = self._repairs[child]
        times.append(now)
        while times and now - times[0] > WINDOW_SECONDS:
            times.popleft()
        fight = self._fights.get(child)
        if fight is not None:
            fight.pause = min(MAX_PAUSE_SECONDS, fight.pause * 2)
            fight.next_repair_at = now + fight.pause
            return True
        return len(times) >= FIGHT_REPAIRS

    def start(self, child: ChildKey, writer: str) -> Fight:
        fight = Fight(writer, self.clock() + FIRST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS)
        self._fights[child] = fight
        return fight

    def in_sync(self, child: ChildKey) -> None:
        """The child held what we want without a repair: the other writer stopped."""
        if child in self._fights and not self._recent(child):
            del self._fights[child]

    def _recent(self, child: ChildKey) -> bool:
        times = self._repairs.get(child)
        return bool(times) and self.clock() - times[-1] <= WINDOW_SECONDS  # type: ignore[index]

    def forget(self, namespace: str, name: str) -> None:
        for child in [c for c in self._repairs if c[1:] == (namespace, name)]:
            self._repairs.pop(child, None)
            self._fights.pop(child, None)


def fight_message(kind: str, name: str, fight: Fight) -> str:
    return (
        f"{kind} {name}: field manager {fight.writer!r} keeps changing fields the operator "
        f"manages; it is repaired at most every {fight.pause:.0f} s now. Stop that writer, or "
        "make the change through the AidboxCluster spec"
    )
