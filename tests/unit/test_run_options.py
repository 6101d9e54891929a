"""`aidbox-operator run` options for leader election: on by default, client-go's timing, and
where the Lease lives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aidbox_operator.cli import build_parser, election_timing, handles_channels, operator_namespace
from aidbox_operator.runtime.leader import ElectionTiming


def _run(*argv: str) -> object:
    return build_parser().parse_args(["run", *argv])


def test_election_is_on_by_default_and_can_be_turned_off() -> None:
    assert _run().leader_elect is True  # type: ignore[attr-defined]
    assert _run("--leader-elect").leader_elect is True  # type: ignore[attr-defined]
    assert _run("--no-leader-elect").leader_elect is False  # type: ignore[attr-defined]


def test_timing_defaults_scale_and_validate() -> None:
    assert election_timing(_run()) == ElectionTiming(15, 10, 2)  # type: ignore[arg-type]
    short = election_timing(_run("--lease-seconds", "6"))  # type: ignore[arg-type]
    assert (short.lease_duration, short.renew_deadline) == (6, 4)
    assert short.retry_period == pytest.approx(0.8)
    with pytest.raises(SystemExit, match="renew deadline"):
        election_timing(_run("--lease-duration", "10", "--renew-deadline", "12"))  # type: ignore[arg-type]


def test_lease_namespace_comes_from_the_pod_then_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "work",
                "contexts": [
                    {"name": "home", "context": {"namespace": "elsewhere"}},
                    {"name": "work", "context": {"namespace": "ops"}},
                ],
            }
        )
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POD_NAMESPACE", "operators")
    assert operator_namespace() == "operators"
    monkeypatch.delenv("POD_NAMESPACE")
    assert operator_namespace() == "ops"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert operator_namespace() == "default"


def test_release_channels_are_handled_by_a_cluster_wide_operator_unless_told() -> None:
    """auto: only an operator watching every namespace handles the cluster-scoped channels (a
    namespaced one sees only part of a channel's clusters); on and off say so outright."""
    assert handles_channels("auto", []) is True
    assert handles_channels("auto", ["*"]) is True  # every namespace, spelt as a glob
    assert handles_channels("auto", ["*,!kube-system"]) is False
    assert handles_channels("auto", ["team-a"]) is False
    assert handles_channels("auto", ["t-*"]) is False
    assert handles_channels("on", ["team-a"]) is True
    assert handles_channels("off", []) is False
    assert _run().release_channels == "auto"  # type: ignore[attr-defined]
