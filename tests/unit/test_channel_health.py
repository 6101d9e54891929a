"""kstatus and Argo CD verdicts for AidboxReleaseChannels whose status the operator computed
(status.waves.plan_channel and channel_conditions), judged by the real tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aidbox_operator.model.channel import ReleaseChannelSpec, ReleaseChannelStatus
from aidbox_operator.status.waves import Member, channel_conditions, plan_channel, refused_downgrade
from tools import argocd_health_verdicts, kstatus_verdicts

SCRIPT = (
    Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "aidboxreleasechannel-health.lua"
)
NOW = "2026-12-01T10:00:00Z"
OLD, NEW = "healthsamurai/aidboxone:2510.1", "healthsamurai/aidboxone:2510.2"


def _channel(members: list[Member], image: str = NEW, **previous: Any) -> dict[str, Any]:
    spec = ReleaseChannelSpec.model_validate({"image": image, "waves": [{"name": "all"}]})
    before = ReleaseChannelStatus.model_validate(previous)
    plan = plan_channel(spec, before, members, NOW, {})
    refusal = refused_downgrade(spec, before, {})
    status = plan.status.model_copy(
        update={
            "conditions": channel_conditions(plan.status, refusal, 2, NOW),
            "observed_generation": before.observed_generation if refusal else 2,
        }
    )
    return {
        "apiVersion": "aidbox.io/v1alpha1",
        "kind": "AidboxReleaseChannel",
        "metadata": {"name": "stable", "generation": 2},
        "spec": spec.model_dump(by_alias=True, mode="json"),
        "status": status.to_api(),
    }


def _member(image: str, ready: bool = True, **kw: Any) -> Member:
    return Member(key="ns/a", labels={}, image=image, ready=ready, **kw)


CASES = {
    "complete": (_channel([_member(NEW)]), "Current", "Healthy"),
    "moving": (_channel([_member(OLD)]), "InProgress", "Progressing"),
    "halted": (
        _channel([_member(NEW, ready=False, stalled=("UpgradeFailed", "exit 1"))]),
        "Failed",
        "Degraded",
    ),
    "refused": (
        _channel([_member(NEW)], image=OLD, newestReady="2510.2", observedGeneration=1),
        "InProgress",
        "Degraded",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_channel_verdicts(case: str) -> None:
    body, kstatus, argo = CASES[case]
    assert kstatus_verdicts([body])[0]["status"] == kstatus, body["status"]
    verdict = argocd_health_verdicts(SCRIPT, [body])[0]
    assert "error" not in verdict, verdict
    assert verdict["status"] == argo, (verdict, body["status"])
