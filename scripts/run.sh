#!/usr/bin/env bash
# `make run`: the operator on the local sandbox with an example applied. It never touches the
# cluster in your own KUBECONFIG: everything below uses the sandbox's kubeconfig.
#   EXAMPLE=examples/ha.yaml make run      another example
#   RUN_DETACH=1 make run                  leave the operator running in the background and return
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXAMPLE=${EXAMPLE:-examples/ha.yaml}
NAMESPACE=${NAMESPACE:-aidbox-demo}
OP="$VENV/bin/aidbox-operator"

"$OP" sandbox up
eval "$("$OP" sandbox env)"   # KUBECONFIG and kubectl of the sandbox, for this script only
state_dir=$(dirname "$KUBECONFIG")
log="$state_dir/operator.log"

kubectl apply --server-side -f crds/aidboxcluster.yaml
kubectl wait --for=condition=Established crd/aidboxclusters.aidbox.io --timeout=60s
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

if [ -f "$state_dir/operator.pid" ] && kill -0 "$(cat "$state_dir/operator.pid")" 2>/dev/null; then
  kill "$(cat "$state_dir/operator.pid")"; sleep 1
fi
"$OP" run --all-namespaces --metrics-port 0 >"$log" 2>&1 &
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
