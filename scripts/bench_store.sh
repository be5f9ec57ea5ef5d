#!/usr/bin/env bash
# The store alone, for BENCHMARKS.md: the same placement batches into one
# Redis node and into a 3-master Redis Cluster, both on loopback, started
# here and stopped on exit (by the PIDs this script started). Runs are
# interleaved (node, cluster, node, cluster, ...) so both see the same
# machine; each prints one JSON line (canvas-api/examples/store_bench.rs).
#
#   scripts/bench_store.sh [ROUNDS] [STORE_BENCH-ARGS...]
#
# e.g. scripts/bench_store.sh 2 --batch 16 --concurrency 8 --seconds 10
# Neither Redis persists (no RDB, no AOF): this measures the store's work,
# not the disk's.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
shift || true
cargo build --release -p canvas-api --example store_bench --quiet
bench=target/release/examples/store_bench

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port whose cluster bus port (+10000) is free too.
free_port() {
  python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p >= 55000: continue
    try:
        b = socket.socket(); b.bind(("127.0.0.1", p + 10000)); b.close(); print(p); break
    except OSError: pass'
}
wait_ping() {
  for _ in $(seq 1 200); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "error: redis on port $1 never answered" >&2
  exit 1
}
start_redis() { # port [extra args...]
  local port=$1
  shift
  mkdir -p "$work/$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work/$port" "$@" >"$work/$port/log" 2>&1 &
  pids+=($!)
  wait_ping "$port"
}

single=$(free_port)
start_redis "$single"
nodes=()
for _ in 1 2 3; do
  port=$(free_port)
  start_redis "$port" --cluster-enabled yes --cluster-node-timeout 5000
  nodes+=("127.0.0.1:$port")
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$work/create.log"
for node in "${nodes[@]}"; do
  for _ in $(seq 1 300); do
    redis-cli -p "${node#*:}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.05
  done
done
urls=$(printf 'redis://%s,' "${nodes[@]}")
urls=${urls%,}

for _ in $(seq 1 "$rounds"); do
  redis-cli -p "$single" flushall >/dev/null
  "$bench" --redis-url "redis://127.0.0.1:$single" "$@"
  for node in "${nodes[@]}"; do redis-cli -p "${node#*:}" flushall >/dev/null; done
  "$bench" --cluster-nodes "$urls" "$@"
done
