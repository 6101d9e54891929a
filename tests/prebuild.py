"""Builds, at the lowest CPU priority, the tools that the later suites of a full run need (the
registry, kubelet and kube-proxy, Flux's controllers, metrics-server, Traefik, helm, promtool,
the verdict helpers, the manifest linters), while the first suites run. Those mostly wait on
timers and the cluster, so the builds take cores that would sit idle, and each later test finds
its binary built instead of building it then.

Started by conftest.py for `make test` (AIDBOX_PREBUILD=1). Every build holds the same lock the
test's own build takes, so a test that needs a binary before it is ready waits for it (or builds
it itself when this process failed); a failure here fails no test by itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tools  # tests/ is not a package: found through the path above
from aidbox_sandbox import build, traefik

# The order the suites need them in: gitops (Flux's two controllers), integration (verdict
# helpers, the registry), realnode (kubelet, kube-proxy, metrics-server, the Traefik ingress
# controller), unit (helm, promtool, and kustomize, kube-score and Checkov, a pip install into
# its own venv, for the manifest linters). The verdict helpers take seconds, so they come first
# all the same.
STEPS: tuple[tuple[str, Callable[[], object]], ...] = (
    ("kstatus", tools.kstatus),
    ("argocd-health", tools.argocd_health),
    ("source-controller, kustomize-controller", build.ensure_flux_binaries),
    ("registry", build.ensure_registry_binary),
    ("kubelet, kube-proxy", build.ensure_node_binaries),
    ("metrics-server", tools.metrics_server),
    ("traefik", traefik.ensure_binary),
    ("helm", tools.helm),
    ("promtool", tools.promtool),
    ("kustomize", tools.kustomize),
    ("kube-score", tools.kube_score),
    ("checkov", tools.checkov),
)


def main() -> int:
    for name, step in STEPS:
        started = time.monotonic()
        try:
            step()
        except Exception as exc:  # the test that needs it builds it again and fails loudly
            print(f"prebuild {name}: failed: {exc}", flush=True)
            continue
        print(f"prebuild {name}: ready after {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
