"""The operator as a next release would be, for the operator-upgrade scenario: the same code,
rendering one more environment variable on every pod template (`AIDBOX_BENCH_RELEASE`, set to
this process's `AIDBOX_BENCH_RELEASE`). The sandbox's pods become ready, so each rollout it
starts finishes. Benchmark-only; never shipped.

    python bench/next_release.py run ...   (the arguments of `aidbox-operator`)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from aidbox_operator import cli
from aidbox_operator.model import AidboxCluster
from aidbox_operator.render import deployment

RELEASE_VARIABLE = "AIDBOX_BENCH_RELEASE"


def _install(release: str) -> None:
    build_env = deployment.build_env

    def next_env(
        cluster: AidboxCluster,
        generated_keys: tuple[str, ...],
        user_keys: frozenset[str] = frozenset(),
    ) -> list[dict[str, Any]]:
        env = build_env(cluster, generated_keys, user_keys)
        return [*env, {"name": RELEASE_VARIABLE, "value": release}]

    deployment.build_env = next_env


if __name__ == "__main__":
    _install(os.environ[RELEASE_VARIABLE])
    sys.exit(cli.main(sys.argv[1:]))
