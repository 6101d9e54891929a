"""`kubectl aidbox` (installed as kubectl-aidbox, so kubectl finds it as a plugin)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aidbox_operator.kubectl import completion
from aidbox_operator.kubectl.api import Kube, PluginError
from aidbox_operator.kubectl.report import collect, write_bundle
from aidbox_operator.kubectl.views import (
    STATUS_HEADER,
    VERSIONS_HEADER,
    status_row,
    table,
    versions_rows,
)
from aidbox_operator.model.constants import PAUSED_ANNOTATION, RESTART_ANNOTATION

Command = Callable[[argparse.Namespace, Kube], int]


def _scope(args: argparse.Namespace, kube: Kube) -> str | None:
    return None if args.all_namespaces else (args.namespace or kube.namespace)


def _status(args: argparse.Namespace, kube: Kube) -> int:
    bodies = kube.clusters(_scope(args, kube))
    if args.name:
        bodies = [b for b in bodies if b["metadata"]["name"] == args.name]
        if not bodies:
            raise PluginError(f"AidboxCluster {args.name} not found")
    if not bodies:
        print("No AidboxClusters found.", file=sys.stderr)
        return 0
    sys.stdout.write(table(STATUS_HEADER, [status_row(b) for b in bodies]))
    return 0


def _versions(args: argparse.Namespace, kube: Kube) -> int:
    sys.stdout.write(table(VERSIONS_HEADER, versions_rows(kube.clusters(_scope(args, kube)))))
    return 0


def _pause(args: argparse.Namespace, kube: Kube) -> int:
    namespace = args.namespace or kube.namespace
    kube.annotate(namespace, args.name, {PAUSED_ANNOTATION: "true"})
    print(f"aidboxcluster {namespace}/{args.name} paused: no change is applied until resumed")
    return 0


def _resume(args: argparse.Namespace, kube: Kube) -> int:
    namespace = args.namespace or kube.namespace
    kube.annotate(namespace, args.name, {PAUSED_ANNOTATION: None})
    print(f"aidboxcluster {namespace}/{args.name} resumed")
    return 0


def _restart(args: argparse.Namespace, kube: Kube) -> int:
    namespace = args.namespace or kube.namespace
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kube.annotate(namespace, args.name, {RESTART_ANNOTATION: stamp})
    print(
        f"aidboxcluster {namespace}/{args.name}: rolling restart requested at {stamp}; the "
        "operator replaces the pods at the Deployment's pace (status.restartedAt shows it)"
    )
    return 0


def _report(args: argparse.Namespace, kube: Kube) -> int:
    namespace = args.namespace or kube.namespace
    log = args.operator_log.read_text() if args.operator_log else None
    files = collect(kube, namespace, args.name, log)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = f"aidbox-report-{namespace}-{args.name}-{stamp}"
    path = args.output or Path(f"{folder}.tar.gz")
    write_bundle(files, path, folder)
    print(f"support bundle written to {path} (no Secret values; see README.txt inside)")
    return 0


COMMANDS: dict[str, tuple[Command, str]] = {
    "status": (_status, "one line per cluster: ready pods, phase, releases, URL, reason"),
    "versions": (_versions, "which Aidbox releases run where"),
    "pause": (_pause, "hold every change to a cluster (aidbox.io/paused)"),
    "resume": (_resume, "let changes through again"),
    "restart": (_restart, "a rolling restart through the operator (status.restartedAt)"),
    "report": (_report, "a support bundle of one cluster, without Secret values"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl aidbox", description="Look after AidboxClusters run by aidbox-operator."
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=text, description=text)
        if name in ("status", "versions"):
            cmd.add_argument("-A", "--all-namespaces", action="store_true")
        if name == "status":
            cmd.add_argument("name", nargs="?", help="only this cluster")
        elif name != "versions":
            cmd.add_argument("name", help="the AidboxCluster")
        if name == "report":
            cmd.add_argument("-o", "--output", type=Path, help="bundle path (.tar.gz)")
            cmd.add_argument(
                "--operator-log",
                type=Path,
                help="the operator's log file, when it does not run in a pod",
            )
    comp = sub.add_parser("completion", help="print a shell completion script (bash, zsh)")
    comp.add_argument("shell", choices=("bash", "zsh"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "completion":
        sys.stdout.write(completion.script(args.shell, build_parser()))
        return 0
    args.all_namespaces = getattr(args, "all_namespaces", False)
    try:
        return COMMANDS[args.command][0](args, Kube(args.kubeconfig, args.context))
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
