#!/usr/bin/env python3
"""`make demo`: a scripted tour of the operator on the sandbox, with real kubectl commands.

Apply an HA cluster, wait for Ready, kill a pod and watch recovery, change the ConfigMap and watch
the rolling restart, scale with `kubectl scale`, show `kubectl get abx` and the conditions, clean
up. Exits 0 only when every step really happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ha.yaml"
NAME = "fhir"


class DemoFailed(Exception):
    pass


class Tour:
    def __init__(self, kubectl: str, kubeconfig: Path, namespace: str, pause: float) -> None:
        self.kubectl, self.namespace, self.pause = kubectl, namespace, pause
        self.kubeconfig = Path(kubeconfig)
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def step(self, title: str) -> None:
        print(f"\n\033[1m== {title}\033[0m", flush=True)
        time.sleep(self.pause)

    def sh(self, *args: str, show: bool = True, check: bool = True) -> str:
        cmd = [self.kubectl, "-n", self.namespace, *args]
        if show:
            print("$ kubectl " + " ".join(shlex.quote(a) for a in cmd[1:]), flush=True)
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if show and done.stdout.strip():
            print(done.stdout.rstrip(), flush=True)
        if check and done.returncode != 0:
            raise DemoFailed(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.sh(*args, "-o", "json", show=False))

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if check():
                    elapsed = time.monotonic() - started
                    print(f"   ok: {what} ({elapsed:.1f}s)", flush=True)
                    return elapsed
            except (DemoFailed, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise DemoFailed(f"timed out after {timeout:.0f}s: {what}")

    def cluster(self) -> dict[str, Any]:
        return dict(self.json("get", "abx", NAME))

    def ready(self, replicas: int) -> bool:
        body = self.cluster()
        status = body.get("status") or {}
        conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return bool(
            conds.get("Ready") == "True"
            and status.get("ready") == f"{replicas}/{replicas}"
            and status.get("observedGeneration") == body["metadata"]["generation"]
        )

    def pods(self) -> dict[str, dict[str, Any]]:
        items = self.json("get", "pods", "-l", f"app.kubernetes.io/instance={NAME}")["items"]
        return {
            p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")
        }


def run(tour: Tour) -> None:
    tour.step("1. Apply an HA AidboxCluster (examples/ha.yaml): 3 replicas of a pinned release")
    tour.sh("apply", "-f", str(EXAMPLE))
    tour.wait("Ready 3/3", lambda: tour.ready(3))
    tour.sh("get", "abx", NAME)
    tour.sh("get", "deployment,service,poddisruptionbudget,pods", "-o", "wide")

    tour.step("2. Kill a pod: the Deployment replaces it, the Service keeps the others")
    victim = sorted(tour.pods())[0]
    tour.sh("delete", "pod", victim, "--wait=false")
    tour.wait(
        "back to 3 ready pods, without the killed one",
        lambda: victim not in tour.pods() and len(tour.pods()) == 3 and tour.ready(3),
    )
    tour.sh("get", "pods")

    tour.step("3. Change the ConfigMap: Aidbox reads it only at start, so the pods roll")
    before = set(tour.pods())
    tour.sh(
        "patch",
        "configmap",
        "fhir-settings",
        "--type=merge",
        "-p",
        json.dumps({"data": {"BOX_WEB_BASE_URL": "https://fhir2.example.com"}}),
    )
    tour.wait(
        "every pod replaced and Ready 3/3",
        lambda: not (set(tour.pods()) & before) and tour.ready(3),
        timeout=180,
    )
    tour.sh("get", "replicasets")
    events = tour.sh(
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={NAME}",
        "--sort-by=.lastTimestamp",
    )
    if "rolling restart" not in events:
        raise DemoFailed("no Event announced the rolling restart")

    tour.step("4. Scale with kubectl scale (the scale subresource)")
    tour.sh("scale", "abx", NAME, "--replicas=5")
    tour.wait("Ready 5/5", lambda: tour.ready(5))
    tour.sh("get", "abx", NAME, "-o", "wide")

    tour.step("5. Conditions, as kubectl wait and GitOps tools read them")
    tour.sh("wait", "--for=condition=Ready", f"abx/{NAME}", "--timeout=30s")
    for cond in tour.cluster()["status"]["conditions"]:
        print(f"   {cond['type']:<12} {cond['status']:<6} {cond['reason']:<18} {cond['message']}")

    tour.step("6. Clean up: deleting the AidboxCluster removes everything it owns")
    tour.sh("delete", "-f", str(EXAMPLE), "--wait=true")
    print("\ndemo complete: every step happened", flush=True)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, help="default: start/use the sandbox")
    parser.add_argument("--kubectl", help="default: the sandbox's kubectl, else kubectl on PATH")
    parser.add_argument("--namespace", default="aidbox-tour")
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="an operator is already running against this cluster",
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each step")
    return parser.parse_args()


def _prepare(args: argparse.Namespace) -> Tour:
    """The cluster to tour (the sandbox unless a kubeconfig is given), with the CRD installed
    and the tour's namespace created."""
    kubectl, kubeconfig = args.kubectl, args.kubeconfig
    if kubeconfig is None:
        from aidbox_sandbox import Sandbox

        sandbox = Sandbox()
        sandbox.up()
        kubeconfig = sandbox.kubeconfig
        kubectl = kubectl or str(sandbox.bin_dir / "kubectl")
    tour = Tour(kubectl or "kubectl", kubeconfig, args.namespace, args.pause)
    subprocess.run(
        [
            tour.kubectl,
            "apply",
            "--server-side",
            "-f",
            str(REPO / "crds" / "aidboxcluster.yaml"),
            "-f",
            str(REPO / "crds" / "aidboxreleasechannel.yaml"),
        ],
        env=tour.env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [tour.kubectl, "create", "namespace", args.namespace], env=tour.env, capture_output=True
    )
    return tour


def _start_operator(tour: Tour, namespace: str) -> subprocess.Popen[bytes]:
    log = open(Path(tour.kubeconfig).parent / "demo-operator.log", "ab")  # noqa: SIM115
    command = [
        sys.executable,
        "-m",
        "aidbox_operator",
        "run",
        "-n",
        namespace,
        "--image-pinning=off",
    ]
    operator = subprocess.Popen(
        [*command, "--metrics-port", "0"], env=tour.env, stdout=log, stderr=subprocess.STDOUT
    )
    print(f"operator started (pid {operator.pid}), log: {log.name}")
    return operator


def main() -> int:
    args = _parse_args()
    tour = _prepare(args)
    operator = None if args.no_operator else _start_operator(tour, args.namespace)
    try:
        run(tour)
        return 0
    except DemoFailed as err:
        print(f"\ndemo FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=20)
        subprocess.run(
            [tour.kubectl, "delete", "namespace", args.namespace, "--wait=false"],
            env=tour.env,
            capture_output=True,
        )


if __name__ == "__main__":
    sys.exit(main())
