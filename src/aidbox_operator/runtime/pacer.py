"""A bound on how many keyed activities run at once, granted in a stable order.

For changes nobody asked for at that moment (an operator release renders pods differently): at
most `limit` keys hold a slot; the others wait in key order, so a fleet moves in the same order
on every run and a bad change stops at the first few. A slot is held until its holder says it is
done (release), not for a fixed time: a holder that never finishes keeps the rest waiting, which
is the point.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Pacer(Generic[K]):
    def __init__(self, limit: int, on_free: Callable[[K], None] = lambda key: None) -> None:
        self.limit = limit  # 0: no bound
        self._on_free = on_free  # wakes the next waiter when a slot frees
        self._holding: set[K] = set()
        self._waiting: set[K] = set()
        # Closed: keys only queue up (see open()).
        self.opened = True

    @property
    def holding(self) -> frozenset[K]:
        return frozenset(self._holding)

    @property
    def waiting(self) -> frozenset[K]:
        return frozenset(self._waiting)

    def holds(self, key: K) -> bool:
        return key in self._holding

    def hold(self, key: K) -> None:
        """Count `key` as running whatever the bound (one found running after a restart)."""
        self._waiting.discard(key)
        self._holding.add(key)

    def close(self) -> None:
        """Grant nothing until open(): the line forms first, so the order slots are granted
        in is the keys' order, not the order their owners happened to ask in."""
        self.opened = False

    def open(self) -> None:
        if not self.opened:
            self.opened = True
            self._wake()

    def admit(self, key: K) -> int:
        """0 when `key` may run now (it then holds a slot), else its place in the line."""
        if self.limit <= 0 or key in self._holding:
            if self.limit > 0:
                self._waiting.discard(key)
            return 0
        self._waiting.add(key)
        line = sorted(self._waiting)  # type: ignore[type-var]
        place = line.index(key) + 1
        if self.opened and place <= self.limit - len(self._holding):
            self.hold(key)
            return 0
        return place

    def release(self, key: K) -> None:
        if key in self._holding:
            self._holding.discard(key)
            self._wake()

    def withdraw(self, key: K) -> None:
        """`key` no longer needs a slot (its change was overtaken): it leaves the line."""
        if key in self._waiting:
            self._waiting.discard(key)
            self._wake()

    def _wake(self) -> None:
        free = self.limit - len(self._holding)
        for waiter in sorted(self._waiting)[: max(free, 0)]:  # type: ignore[type-var]
            self._on_free(waiter)

    def forget(self, key: K) -> None:
        """The key is gone (its cluster deleted): it neither holds nor waits."""
        self.withdraw(key)
        self.release(key)
