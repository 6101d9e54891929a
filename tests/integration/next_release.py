"""The operator as its next release would be: the same code, rendering one more label on every
pod template (the kind of change an operator upgrade brings), which keeps the sandbox's pods
from becoming ready so that a rollout it starts stays under way. Test-only; never shipped."""

from __future__ import annotations

import sys
from typing import Any

from aidbox_operator import cli
from aidbox_operator.render import deployment

NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"


def _install() -> None:
    labels = deployment.pod_labels

    def next_labels(*args: Any) -> dict[str, str]:
        return {**labels(*args), NOT_READY_LABEL: "true"}

    deployment.pod_labels = next_labels


if __name__ == "__main__":
    _install()
    sys.exit(cli.main(sys.argv[1:]))
