"""Release channels: the wave planner (pure), and a channel moving clusters on the in-memory
API: a wave at a time, halting at the canary's failed upgrade with later waves untouched."""

from __future__ import annotations

from typing import Any

from fakeapi import Harness

from aidbox_operator.model.channel import ReleaseChannelSpec, ReleaseChannelStatus
from aidbox_operator.reconcile.feeds import ChannelFeed
from aidbox_operator.reconcile.kinds import CHANNEL_NAMESPACE
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.runtime.workqueue import WorkQueue
from aidbox_operator.status.waves import Member, plan_channel

REPO = "healthsamurai/aidboxone"
OLD, NEW = f"{REPO}:2510.1", f"{REPO}:2510.2"
NOW = "2026-12-01T10:00:00Z"
WAVES = [
    {"name": "canary", "matchLabels": {"tier": "canary"}},
    {"name": "staging", "matchLabels": {"tier": "staging"}, "maxConcurrent": 2, "soakSeconds": 60},
    {"name": "rest"},
]


def _spec(image: str = NEW) -> ReleaseChannelSpec:
    return ReleaseChannelSpec.model_validate({"image": image, "waves": WAVES})


def _m(name: str, tier: str, image: str = OLD, ready: bool = True, **kw: Any) -> Member:
    return Member(key=f"ns/{name}", labels={"tier": tier}, image=image, ready=ready, **kw)


def test_the_first_unfinished_wave_moves_up_to_its_concurrency() -> None:
    members = [_m("c1", "canary"), _m("s1", "staging"), _m("s2", "staging"), _m("p1", "prod")]
    plan = plan_channel(_spec(), ReleaseChannelStatus(), members, NOW, {})
    assert plan.status.phase == "Progressing" and plan.status.current_wave == "canary"
    assert plan.status.admitted == ["ns/c1"]
    members[0] = _m("c1", "canary", image=NEW)
    plan = plan_channel(_spec(), plan.status, members, NOW, {})
    assert plan.status.admitted == ["ns/c1", "ns/s1", "ns/s2"]  # canary done, staging: 2 at once
    assert [w.completed_at for w in plan.status.waves] == [NOW, "", ""]
    assert plan.status.progress == "1/3"


def test_a_soak_holds_the_next_wave_and_says_when_to_look_again() -> None:
    members = [_m("c1", "canary", image=NEW), _m("s1", "staging"), _m("p1", "prod")]
    moving = plan_channel(_spec(), ReleaseChannelStatus(), members, NOW, {})
    assert moving.status.current_wave == "staging" and "ns/s1" in moving.status.admitted
    members[1] = _m("s1", "staging", image=NEW)  # staging moved and is Ready
    plan = plan_channel(_spec(), moving.status, members, NOW, {})
    assert plan.status.phase == "Soaking" and plan.status.current_wave == "staging"
    assert "ns/p1" not in plan.status.admitted and plan.look_again == 60
    later = plan_channel(_spec(), plan.status, members, "2026-12-01T10:01:01Z", {})
    assert "ns/p1" in later.status.admitted and later.status.phase == "Progressing"


def test_waves_found_done_at_first_sight_need_no_soak() -> None:
    members = [_m("c1", "canary", image=NEW), _m("s1", "staging", image=NEW), _m("p1", "prod")]
    plan = plan_channel(_spec(), ReleaseChannelStatus(), members, NOW, {})
    assert plan.status.current_wave == "rest" and "ns/p1" in plan.status.admitted


def test_a_failed_canary_halts_the_channel() -> None:
    failed = _m("c1", "canary", image=NEW, ready=False, stalled=("UpgradeFailed", "exit 1"))
    plan = plan_channel(_spec(), ReleaseChannelStatus(), [failed, _m("s1", "staging")], NOW, {})
    assert plan.status.phase == "Halted"
    assert plan.status.admitted == ["ns/c1"]
    assert plan.status.waves[0].failed[0].reason == "UpgradeFailed"


def test_a_cluster_not_ready_in_time_halts_the_channel() -> None:
    slow = _m("c1", "canary", image=NEW, ready=False, upgrade_started="2026-12-01T09:00:00Z")
    plan = plan_channel(_spec(), ReleaseChannelStatus(), [slow], NOW, {})
    assert plan.status.phase == "Halted"
    assert plan.status.waves[0].failed[0].reason == "NotReadyInTime"


def test_an_older_image_is_refused_unless_named() -> None:
    done = ReleaseChannelStatus(newest_ready="2510.2", image=NEW)
    members = [_m("c1", "canary", image=NEW)]
    plan = plan_channel(_spec(OLD), done, members, NOW, {})
    assert plan.status.phase == "Refused" and plan.status.admitted == []
    allowed = plan_channel(
        _spec(OLD), done, members, NOW, {"aidbox.io/allow-downgrade-to": "2510.1"}
    )
    assert allowed.status.admitted == ["ns/c1"]


def test_a_complete_channel_records_its_stable_image_and_newest_release() -> None:
    members = [_m("c1", "canary", image=NEW), _m("p1", "prod", image=NEW)]
    spec = ReleaseChannelSpec.model_validate({"image": NEW, "waves": [WAVES[0], WAVES[2]]})
    plan = plan_channel(spec, ReleaseChannelStatus(), members, NOW, {})
    assert (plan.status.phase, plan.status.stable_image, plan.status.newest_ready) == (
        "Complete",
        NEW,
        "2510.2",
    )


def _fleet(h: Harness) -> None:
    h.channel("stable", image=OLD, waves=WAVES)
    for name, tier in (("c1", "canary"), ("s1", "staging"), ("p1", "prod")):
        h.config("ConfigMap", name, {"BOX_ID": name})
        h.config("Secret", name, {"BOX_LICENSE": "bGlj"})
        h.cluster(name, labels={"tier": tier}, channel="stable", replicas=2)


async def _settle(h: Harness, names: tuple[str, ...] = ("c1", "s1", "p1")) -> None:
    for name in names:
        await h.reconcile(name)
        h.roll_out(name)
        await h.reconcile(name)
    await h.reconcile_channel("stable")


def _image(h: Harness, name: str) -> str:
    dep = h.api.objects[("Deployment", "default", name)]
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def _channel_status(h: Harness) -> dict[str, Any]:
    return dict(h.api.objects[("AidboxReleaseChannel", "", "stable")].get("status") or {})


def _move(h: Harness, image: str) -> None:
    body = h.api.objects[("AidboxReleaseChannel", "", "stable")]
    body["spec"]["image"] = image
    body["metadata"]["generation"] += 1
    body["metadata"]["resourceVersion"] = str(next(h.api._ids))


async def test_a_channel_moves_the_canary_first_and_halts_when_it_fails() -> None:
    h = Harness()
    _fleet(h)
    await _settle(h)
    assert _channel_status(h)["phase"] == "Complete"
    assert {_image(h, n) for n in ("c1", "s1", "p1")} == {OLD}
    _move(h, NEW)
    await h.reconcile_channel("stable")
    assert _channel_status(h)["admitted"] == ["default/c1"]
    for name in ("c1", "s1", "p1"):
        await h.reconcile(name)
    assert _image(h, "c1") == NEW and _image(h, "s1") == _image(h, "p1") == OLD
    waiting = h.condition("Progressing", "s1")
    assert waiting["reason"] == "WaveQueued" and h.condition("Ready", "s1")["status"] == "True"
    # The canary's new release fails at start: the old pods keep serving.
    h.pod("c1-2", ready=False, restarts=1, exit_message="migration failed", name="c1")
    h.deployment_status("c1", replicas=3, readyReplicas=2, updatedReplicas=1, availableReplicas=2)
    await h.reconcile("c1")
    assert h.condition("Stalled", "c1")["reason"] == "UpgradeFailed"
    await h.reconcile_channel("stable")
    status = _channel_status(h)
    assert status["phase"] == "Halted" and status["currentWave"] == "canary"
    assert status["waves"][0]["failed"][0]["name"] == "c1"
    for name in ("s1", "p1"):
        await h.reconcile(name)
        assert _image(h, name) == OLD
        assert h.condition("Progressing", name)["reason"] == "ChannelHalted"
    assert "WaveFailed" in h.event_reasons()


async def test_a_channel_completes_wave_by_wave() -> None:
    h = Harness()
    _fleet(h)
    await _settle(h)
    body = h.api.objects[("AidboxReleaseChannel", "", "stable")]
    body["spec"]["waves"][1]["soakSeconds"] = 0
    _move(h, NEW)
    for wave in ("c1", "s1", "p1"):
        await h.reconcile_channel("stable")
        await _settle(h)
        assert _image(h, wave) == NEW
    assert _channel_status(h)["phase"] == "Complete"
    assert _channel_status(h)["newestReady"] == "2510.2"
    assert "ChannelComplete" in h.event_reasons()


async def test_a_waiting_cluster_is_not_rewritten_as_the_channel_steps_on() -> None:
    """p1 waits while the canary and then staging move: its status says the same throughout
    (a message naming the channel's phase or wave cost each waiting cluster a write a step)."""
    h = Harness()
    _fleet(h)
    await _settle(h)
    _move(h, NEW)
    await h.reconcile_channel("stable")
    await h.reconcile("p1")
    message = h.condition("Progressing", "p1")["message"]
    steps = []
    for wave in ("c1", "s1"):
        await _settle(h, (wave,))  # the wave moves; the channel goes on to staging, then soaks
        status = _channel_status(h)
        steps.append((status["phase"], status["currentWave"]))
        writes = h.api.writes()
        await h.reconcile("p1")  # judged again: its channel's status changed
        assert h.condition("Progressing", "p1")["message"] == message
        assert h.api.writes() == writes, wave
    assert steps == [("Progressing", "staging"), ("Soaking", "staging")]
    assert _image(h, "p1") == OLD


async def test_a_halt_is_news_to_every_cluster_of_the_channel() -> None:
    """Waiting clusters repeat the channel's phase and wave in their status: a channel going
    Halted queues them all, though the clusters it admits stay the same, and though the store
    holds the Halted status already (written by the channel's pass) when its event arrives."""
    store, queue = ObjectStore(), WorkQueue[Key]()
    for name in ("c1", "s1"):
        meta = {"namespace": "default", "name": name}
        store.put_cluster({"metadata": meta, "spec": {"channel": "stable"}})
    feed = ChannelFeed(store, queue, lambda key: None)

    def channel(phase: str) -> dict[str, Any]:
        status = {"image": NEW, "phase": phase, "currentWave": "canary", "admitted": ["default/c1"]}
        return {"metadata": {"name": "stable"}, "spec": {"image": NEW}, "status": status}

    async def queued() -> set[Key]:
        keys = set()
        while queue.depth:
            key = await queue.get()
            queue.done(key)
            keys.add(key)
        return keys

    feed.event("ADDED", channel("Progressing"))
    await queued()
    feed.event("MODIFIED", channel("Progressing"))
    assert await queued() == {(CHANNEL_NAMESPACE, "stable")}
    store.put_channel(channel("Halted"))  # the channel's pass keeps what it wrote
    feed.event("MODIFIED", channel("Halted"))
    assert await queued() == {(CHANNEL_NAMESPACE, "stable"), ("default", "c1"), ("default", "s1")}


def test_an_older_channel_event_never_takes_back_a_newer_status() -> None:
    """Under load a watch event can arrive after the channel's pass stored the status it wrote:
    clusters reading the older admission list flipped their image back and forth."""
    from aidbox_operator.reconcile.store import ObjectStore

    store = ObjectStore()
    newer = {"metadata": {"name": "stable", "resourceVersion": "12"}, "status": {"admitted": ["a"]}}
    older = {"metadata": {"name": "stable", "resourceVersion": "11"}, "status": {"admitted": []}}
    store.put_channel(newer)
    store.put_channel(older)
    channel = store.channel("stable")
    assert channel is not None and channel["status"]["admitted"] == ["a"]
