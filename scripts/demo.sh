#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh — three demos, each stopping what it started whatever happens:
#   1. C: start two famd processes and run fam_demo (libfam) against them;
#   2. Python: examples/demo.py starts a local cluster with the launcher
#      (two famd, kodiakd with two MPI ranks), computes on distributed
#      arrays, checks the results against NumPy, and stops the cluster;
#   3. the taxi workflow of examples/taxi.ipynb as a script
#      (examples/taxi_demo.py, the notebook is made from it): a dataset
#      store, a filter, gathered and derived columns, a group-by, one more
#      month and the derived datasets caught up; it prints its tables.
set -euo pipefail
build=${1:-build}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

servers=""
for i in 0 1; do
  "$build/famd" --port 0 --pool-size 256M >"$tmp/famd$i.out" 2>"$tmp/famd$i.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$tmp/famd$i.out" && break; sleep 0.05; done
  addr=$(awk '/ready/ {print $3}' "$tmp/famd$i.out")
  [ -n "$addr" ] || { echo "famd $i did not start:"; cat "$tmp/famd$i.err"; exit 1; }
  echo "started famd #$i on $addr (pid ${pids[-1]})"
  servers="${servers:+$servers,}$addr"
done

echo "--- C demo (libfam) ---"
FAM_SERVERS="$servers" "$build/fam_demo" 4 20000
echo "--- stopping famd ---"
cleanup
pids=()
trap - EXIT

echo
echo "=== Python demo (import kodiak as ak) ==="
KODIAK_BUILD=$(cd "$build" && pwd) /usr/bin/python3 "$(dirname "$0")/../examples/demo.py"

echo
echo "=== The taxi notebook as a script (examples/taxi.ipynb, examples/taxi_demo.py) ==="
KODIAK_BUILD=$(cd "$build" && pwd) /usr/bin/python3 "$(dirname "$0")/../examples/taxi_demo.py"
