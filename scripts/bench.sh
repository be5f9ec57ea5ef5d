#!/usr/bin/env bash
# Starts a topology on loopback with release binaries, runs one loadtest
# scenario against it, and stops everything. Used for BENCHMARKS.md.
#
#   scripts/bench.sh TOPOLOGY LOADTEST-ARGS...
#
# TOPOLOGY:
#   single  one `server` process, embedded store (the default product)
#   redis2  redis-server + canvas-api + two gateways (the Kubernetes shape;
#           GATEWAYS=N starts N, clients spread round-robin over them)
#   cluster3  scripts/cluster.sh: Redis, 2 canvas-api, 3 gateways behind
#           nginx; clients use nginx's one URL
# In LOADTEST-ARGS, @GW_PID@ stands for the first gateway's pid.
# With BENCH_STATS_DIR set, the run also leaves there what the paper model
# counts: Redis's per-command calls and pub/sub totals over the run
# (redis2), every service's /metrics at the end, and the CPU seconds and
# RSS of every process it started.
# Services run with COOLDOWN_MS=0 PALETTE=any and no per-IP limits;
# FANOUT_WINDOW_MS and other
# variables in the environment pass through to them.
set -euo pipefail
cd "$(dirname "$0")/.."
topology=${1:?usage: scripts/bench.sh single|redis2|cluster3 LOADTEST-ARGS...}
shift
cargo build --release --workspace --bins --quiet

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 200); do
    curl -fs "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "error: $1 never became ready" >&2
  exit 1
}
export COOLDOWN_MS=0 PALETTE=any RUST_LOG=${RUST_LOG:-warn}
# Every load-test client comes from loopback: per-IP limits would measure
# themselves, not the system (set them to measure them).
export MAX_CONNECTIONS_PER_IP=${MAX_CONNECTIONS_PER_IP:-0} MESSAGES_PER_SEC_PER_IP=${MESSAGES_PER_SEC_PER_IP:-0}
export HTTP_PLACEMENTS_PER_SEC_PER_IP=${HTTP_PLACEMENTS_PER_SEC_PER_IP:-0} MAX_PENDING_CONNECTIONS_PER_IP=${MAX_PENDING_CONNECTIONS_PER_IP:-0}

urls=()
case "$topology" in
  single)
    port=$(free_port)
    DATA_DIR="$work/data" LISTEN_ADDR="127.0.0.1:$port" target/release/server 2>"$work/server.log" &
    pids+=($!)
    gw_pid=$!
    wait_http "http://127.0.0.1:$port"
    urls+=("ws://127.0.0.1:$port/ws")
    ;;
  redis2)
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
    pids+=($!)
    until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
    export REDIS_URL="redis://127.0.0.1:$rport"
    aport=$(free_port)
    LISTEN_ADDR="127.0.0.1:$aport" target/release/canvas-api 2>"$work/api.log" &
    pids+=($!)
    wait_http "http://127.0.0.1:$aport"
    gw_pid=""
    gateways=${GATEWAYS:-2}
    [[ $gateways =~ ^[1-9][0-9]*$ && $gateways -le 64 ]] || { echo "GATEWAYS must be 1..64, got $gateways" >&2; exit 2; }
    for i in $(seq 1 "$gateways"); do
      port=$(free_port)
      POD_ID="bench-$i" CANVAS_API_URL="http://127.0.0.1:$aport" LISTEN_ADDR="127.0.0.1:$port" \
        target/release/server 2>"$work/gw$i.log" &
      pids+=($!)
      gw_pid=${gw_pid:-$!}
      wait_http "http://127.0.0.1:$port"
      urls+=("ws://127.0.0.1:$port/ws")
    done
    ;;
  cluster3)
    port=$(free_port)
    export CLUSTER_DIR="$work/cluster" CLUSTER_PORT="$port" CLUSTER_BIN_DIR=target/release
    scripts/cluster.sh up >/dev/null
    # cleanup() stops the cluster too.
    trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; cleanup' EXIT
    gw_pid=$(cat "$CLUSTER_DIR/pids/gateway-1.pid")
    urls+=("ws://127.0.0.1:$port/ws")
    ;;
  *) echo "unknown topology $topology" >&2; exit 2 ;;
esac

args=()
for a in "$@"; do args+=("${a//@GW_PID@/$gw_pid}"); done
url_list=$(IFS=,; echo "${urls[*]}")
stats=${BENCH_STATS_DIR:-}
if [[ -n $stats ]]; then
  mkdir -p "$stats"
  [[ -n ${rport:-} ]] && redis-cli -p "$rport" CONFIG RESETSTAT >/dev/null
fi
status=0
target/release/loadtest --url "$url_list" "${args[@]}" || status=$?
if [[ -n $stats ]]; then
  # CPU (user + system, in 1/100 s) and RSS (KiB) of every process this
  # script started, with its name.
  page_kib=$(($(getconf PAGESIZE) / 1024))
  for pid in "${pids[@]}"; do
    [[ -r /proc/$pid/stat ]] || continue
    read -r -a f </proc/$pid/stat
    echo "$pid ${f[1]} cpu_ticks=$((f[13] + f[14])) rss_kib=$((f[23] * page_kib))"
  done >"$stats/processes.txt"
  if [[ -n ${rport:-} ]]; then
    redis-cli -p "$rport" INFO commandstats >"$stats/redis-commandstats.txt"
    redis-cli -p "$rport" INFO stats >"$stats/redis-stats.txt"
    curl -fs "http://127.0.0.1:$aport/metrics" >"$stats/canvas-api.metrics" || true
  fi
  i=0
  for url in "${urls[@]}"; do
    i=$((i + 1))
    base=${url#ws://}
    curl -fs "http://${base%/ws}/metrics" >"$stats/gateway-$i.metrics" || true
  done
fi
exit $status
