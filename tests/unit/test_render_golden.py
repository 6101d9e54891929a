"""Golden files: what the operator renders for known inputs. Regenerate deliberately with
`UPDATE_GOLDEN=1 pytest tests/unit/test_render_golden.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render import RenderContext, render_cluster
from aidbox_operator.render.secrets import AUTH_KEYS, CLUSTER_SECRET_KEY

GOLDEN = Path(__file__).parent / "golden"
CONTEXTS = {
    "minimal": RenderContext(),
    "custom": RenderContext(
        config_hash="0123456789abcdef", generated_keys=(*AUTH_KEYS, CLUSTER_SECRET_KEY)
    ),
    "single": RenderContext(config_hash="fedcba9876543210"),
    "exposed": RenderContext(config_hash="00112233aabbccdd"),
    "gateway": RenderContext(config_hash="44556677eeff0011"),
    "autoscaled": RenderContext(config_hash="8899aabbccddeeff", deployment_exists=True),
    "netpol": RenderContext(config_hash="8899aabbccddeeff"),
}


@pytest.mark.parametrize("case", sorted(CONTEXTS))
def test_render_matches_golden(case: str) -> None:
    cluster = AidboxCluster.model_validate(
        yaml.safe_load((GOLDEN / f"{case}.input.yaml").read_text())
    )
    rendered = yaml.safe_dump_all(
        render_cluster(cluster, CONTEXTS[case]), sort_keys=False, width=100
    )
    golden = GOLDEN / f"{case}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"render of {case} changed; see UPDATE_GOLDEN"


def test_render_is_deterministic() -> None:
    cluster = AidboxCluster.model_validate(
        yaml.safe_load((GOLDEN / "custom.input.yaml").read_text())
    )
    assert render_cluster(cluster, CONTEXTS["custom"]) == render_cluster(
        cluster, CONTEXTS["custom"]
    )
