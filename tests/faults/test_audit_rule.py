"""The one-writer rule the fault scenarios judge by, on hand-made timelines (no cluster)."""

from __future__ import annotations

from audit import Request, Timeline


def _lease(at: float, who: str) -> Request:
    return Request(at, who, "update", "leases", "ns", "aidbox-operator", 200)


def _write(at: float, who: str) -> Request:
    return Request(at, who, "patch", "deployments", "ns", "c1", 200)


def test_writes_are_judged_against_the_lease_holder_of_their_moment() -> None:
    timeline = Timeline(
        leases=[_lease(0, "a"), _lease(2, "a"), _lease(20, "b"), _lease(22, "b")],
        writes=[
            _write(1, "a"),  # a leads
            _write(10, "a"),  # a's lease (renewed at 2) still runs until 17
            _write(18, "a"),  # a's lease ran out: nobody may count on a leading now
            _write(21, "a"),  # b holds the lease
            _write(21.5, "b"),
        ],
    )
    bad = timeline.non_leader_writes(lease_seconds=15)
    assert [(w.at, w.identity) for w in bad] == [(18, "a"), (21, "a")]
    assert timeline.holders() == [(0, "a"), (20, "b")]
    assert timeline.handover_margins() == [-1.0]  # a wrote 1 s after b took over
