"""Pacing of pod-template changes nobody asked for: the generic Pacer, and the reconcile pass
on the in-memory API with an operator whose rendering changed."""

from __future__ import annotations

from typing import Any

import pytest
from fakeapi import Harness

from aidbox_operator.model.constants import (
    OPERATOR_ROLLOUT_ANNOTATION,
    RESTART_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
)
from aidbox_operator.render import deployment as deployment_render
from aidbox_operator.runtime.pacer import Pacer

NAMES = ("a", "b", "c", "d")


def test_pacer_admits_in_key_order_up_to_its_limit() -> None:
    woken: list[str] = []
    pacer: Pacer[str] = Pacer(2, on_free=woken.append)
    assert pacer.admit("d") == 0  # alone in line: takes a free slot
    assert pacer.admit("c") == 0
    assert pacer.admit("b") == 1 and pacer.admit("a") == 1  # "a" goes before "b"
    assert pacer.admit("b") == 2
    pacer.release("d")
    assert woken == ["a"]
    assert pacer.admit("b") == 2 and pacer.admit("a") == 0
    pacer.withdraw("b")
    pacer.release("c")
    assert pacer.holding == {"a"} and not pacer.waiting


def test_pacer_without_a_limit_admits_everyone() -> None:
    pacer: Pacer[str] = Pacer(0)
    assert all(pacer.admit(name) == 0 for name in NAMES)


def _fleet(h: Harness) -> None:
    for name in NAMES:
        h.config("ConfigMap", name, {"BOX_ID": name})
        h.config("Secret", name, {"BOX_LICENSE": "bGlj"})
        h.cluster(name, image="healthsamurai/aidboxone:2510.1", replicas=2)


async def _converge(h: Harness, name: str) -> None:
    await h.reconcile(name)
    h.roll_out(name)
    await h.reconcile(name)


def _image_env(h: Harness, name: str) -> list[Any]:
    dep = h.api.objects[("Deployment", "default", name)]
    return list(dep["spec"]["template"]["spec"]["containers"][0].get("env") or [])


def _new_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next operator release renders one more variable into every pod."""
    build_env = deployment_render.build_env

    def with_extra(*args: Any) -> list[dict[str, Any]]:
        return [*build_env(*args), {"name": "BOX_NEW_DEFAULT", "value": "on"}]

    monkeypatch.setattr(deployment_render, "build_env", with_extra)


def _upgraded(h: Harness, name: str) -> bool:
    return any(e["name"] == "BOX_NEW_DEFAULT" for e in _image_env(h, name))


async def _released_fleet(monkeypatch: pytest.MonkeyPatch, slots: int) -> Harness:
    """Every cluster Ready, then a new operator release (rendering the pods differently)
    starts with `slots` rollout slots."""
    h = Harness()
    h.controller.pacer.limit = slots
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    _new_release(monkeypatch)
    h.restart()  # the new operator release starts
    h.controller.pacer.limit = slots
    return h


async def test_an_operator_release_rolls_two_clusters_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = await _released_fleet(monkeypatch, 2)
    for name in reversed(NAMES):  # the order passes run in does not decide who goes first
        await h.reconcile(name)
    assert not any(_upgraded(h, n) for n in NAMES)  # the line formed; a and b are woken
    for name in ("a", "b", "c"):
        await h.reconcile(name)
    assert [n for n in NAMES if _upgraded(h, n)] == ["a", "b"]
    waiting = h.condition("Progressing", "c")
    assert waiting["status"] == "True" and waiting["reason"] == "RolloutQueued"
    assert "one of 2 rollout slots" in waiting["message"]
    assert h.condition("Ready", "c")["status"] == "True"  # not failed: it runs its spec
    assert h.condition("Stalled", "c")["status"] == "False"
    dep = h.api.objects[("Deployment", "default", "a")]
    assert dep["metadata"]["annotations"][OPERATOR_ROLLOUT_ANNOTATION] == "true"
    woken: list[tuple[str, str]] = []
    monkeypatch.setattr(h.controller.pacer, "_on_free", woken.append)
    h.roll_out("a")
    await h.reconcile("a")  # a is Ready again: its slot goes to c
    assert woken == [("default", "c")]
    await h.reconcile("c")
    assert _upgraded(h, "c") and not _upgraded(h, "d")
    assert (
        OPERATOR_ROLLOUT_ANNOTATION
        not in (h.api.objects[("Deployment", "default", "a")]["metadata"]["annotations"])
    )


async def test_a_users_own_change_is_never_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    h.controller.pacer.limit = 1
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    _new_release(monkeypatch)
    for name in NAMES:
        await h.reconcile(name)
    assert _upgraded(h, "a") and not _upgraded(h, "d")
    h.update_spec("d", podAnnotations={"team": "x"})
    await h.reconcile("d")
    assert _upgraded(h, "d")
    h.config("ConfigMap", "c", {"BOX_ID": "changed"})
    await h.reconcile("c")
    assert _upgraded(h, "c")


async def test_a_restarted_operator_counts_the_rollouts_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.controller.pacer.limit = 1
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    _new_release(monkeypatch)
    await h.reconcile("a")
    assert _upgraded(h, "a")  # rolling, and then the operator restarts
    h.restart()
    h.controller.pacer.limit = 1
    for name in ("b", "c"):
        await h.reconcile(name)
        assert not _upgraded(h, name)
        assert h.condition("Progressing", name)["reason"] == "RolloutQueued"


async def test_pacing_off_rolls_every_cluster_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound's tests can fail: without it every cluster rolls in the same breath."""
    h = Harness()
    h.controller.pacer.limit = 0
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    _new_release(monkeypatch)
    for name in NAMES:
        await h.reconcile(name)
    assert all(_upgraded(h, name) for name in NAMES)


async def test_an_operator_rollout_waits_for_the_clusters_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.controller.pacer.limit = 2
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    h.update_spec("a", maintenanceWindows=[{"start": "02:00", "end": "02:30"}])
    await _converge(h, "a")
    _new_release(monkeypatch)
    h.controller.reconciler.clock = lambda: "2026-12-01T12:00:00Z"
    result = await h.reconcile("a")
    assert not _upgraded(h, "a")
    message = h.condition("Progressing", "a")["message"]
    assert "maintenance window (opens 2026-12-02T02:00Z)" in message
    assert result.retry_after == 14 * 3600
    # A later pass while it waits says the same: no status write for the time gone by.
    h.controller.reconciler.clock = lambda: "2026-12-01T12:07:13Z"
    writes = h.api.writes()
    result = await h.reconcile("a")
    assert result.retry_after is not None and result.retry_after < 14 * 3600  # judged again
    assert h.condition("Progressing", "a")["message"] == message
    assert h.api.writes() == writes
    h.controller.reconciler.clock = lambda: "2026-12-01T02:10:00Z"
    await h.reconcile("a")
    assert _upgraded(h, "a")


async def test_a_refused_user_change_is_never_taken_for_the_operators_own() -> None:
    """A spec change the API server refuses finishes its generation (Stalled/ApplyFailed) but
    never reaches the Deployment: the next pass must not queue it as an operator rollout."""
    from aidbox_operator.runtime.client import ApiError

    h = Harness()
    h.controller.pacer.limit = 1
    _fleet(h)
    for name in NAMES:
        await _converge(h, name)
    h.api.refuse = lambda verb, kind, body: (
        ApiError(422, "Invalid", "spec.template: bad")
        if verb == "apply" and kind == "Deployment"
        else None
    )
    h.update_spec("b", podAnnotations={"bad": "x"})
    await h.reconcile("b")
    assert h.condition("Stalled", "b")["reason"] == "ApplyFailed"
    await h.reconcile("b")
    assert h.condition("Stalled", "b")["reason"] == "ApplyFailed"
    assert h.condition("Progressing", "b")["reason"] != "RolloutQueued"
    assert not h.controller.pacer.holding and not h.controller.pacer.waiting


async def test_a_restart_asked_for_is_not_queued_behind_an_operator_rollout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every slot is taken by an operator rollout; a restart the user asks for on a waiting
    cluster is the user's own change and goes through at once."""
    h = await _released_fleet(monkeypatch, 1)
    for name in NAMES:
        await h.reconcile(name)
    await h.reconcile("a")
    assert _upgraded(h, "a") and not _upgraded(h, "d")
    assert h.condition("Progressing", "d")["reason"] == "RolloutQueued"
    h.annotate({RESTART_ANNOTATION: "2026-12-02T02:00:00Z"}, "d")
    await h.reconcile("d")
    template = h.api.objects[("Deployment", "default", "d")]["spec"]["template"]
    assert template["metadata"]["annotations"][RESTARTED_AT_ANNOTATION] == "2026-12-02T02:00:00Z"
