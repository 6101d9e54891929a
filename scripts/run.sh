#!/usr/bin/env bash
# `make run`: the operator on the local sandbox with an example applied. It never touches the
# cluster in your own KUBECONFIG: everything below uses the sandbox's kubeconfig.
#   EXAMPLE=examples/ha.yaml make run      another example
#   RUN_DETACH=1 make run                  leave the operator running in the background and return
#   scripts/run.sh stop                    stop that operator (`make down` does, before the sandbox)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXAMPLE=${EXAMPLE:-examples/ha.yaml}
NAMESPACE=${NAMESPACE:-aidbox-demo}
OP="$VENV/bin/aidbox-operator"

# The operator started last time, if it still runs: its pid is in the sandbox's state folder,
# and /proc must show that pid running `aidbox-operator run` (a pid can be reused).
stop_operator() {
  local pid_file="$1/operator.pid" pid
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "aidbox-operator run"; then
    kill "$pid"   # SIGTERM: it hands its Lease back, so the next one leads at once
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped the operator started by make run (pid $pid)"
  fi
  rm -f "$pid_file"
}

if [ "${1:-}" = "stop" ]; then
  stop_operator "$(dirname "$("$OP" sandbox kubeconfig)")"
  exit 0
fi

"$OP" sandbox up
eval "$("$OP" sandbox env)"   # KUBECONFIG and kubectl of the sandbox, for this script only
state_dir=$(dirname "$KUBECONFIG")
log="$state_dir/operator.log"

kubectl apply --server-side -f crds/aidboxcluster.yaml -f crds/aidboxreleasechannel.yaml
kubectl wait --for=condition=Established crd/aidboxclusters.aidbox.io --timeout=60s
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

stop_operator "$state_dir"
# Leader election is on (a Lease in the kubeconfig's namespace, `default`): an operator started
# meanwhile by `make demo` or by hand stands by instead of writing alongside this one.
# The sandbox has no route to public registries: moving tags reach its (simulated) pods as
# written instead of being pinned through the registry.
"$OP" run --all-namespaces --metrics-port 0 --image-pinning=off >"$log" 2>&1 &
echo $! >"$state_dir/operator.pid"
echo "operator running (pid $!), log: $log"

kubectl apply -n "$NAMESPACE" -f "$EXAMPLE"
name=$(kubectl get -n "$NAMESPACE" -f "$EXAMPLE" -o jsonpath='{range .items[?(@.kind=="AidboxCluster")]}{.metadata.name}{end}')
kubectl get -n "$NAMESPACE" abx "$name" -w &
watcher=$!
kubectl wait -n "$NAMESPACE" --for=condition=Ready "abx/$name" --timeout=180s
kill "$watcher" 2>/dev/null || true
echo
kubectl get -n "$NAMESPACE" abx,deployment,service,poddisruptionbudget,pods -o wide
echo
echo "Use the sandbox from another shell:  eval \"\$($OP sandbox env)\""
if [ "${RUN_DETACH:-}" = "1" ]; then
  echo "operator left running in the background (pid $(cat "$state_dir/operator.pid")); stop with: make down"
  exit 0
fi
echo "operator log follows; Ctrl-C stops the operator (the sandbox stays up: make down)"
trap 'kill "$(cat "$state_dir/operator.pid")" 2>/dev/null; exit 0' INT TERM
tail -n +1 -f "$log" &
wait "$(cat "$state_dir/operator.pid")"
