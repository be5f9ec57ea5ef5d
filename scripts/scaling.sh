#!/usr/bin/env bash
# How latency and throughput scale: runs `loadtest fanout` through
# scripts/bench.sh for each (topology, observers, rate) given and prints one
# Markdown table row per run, from the tool's --json summary.
#
#   scripts/scaling.sh SECONDS TOPOLOGY:OBSERVERS:RATE...
#   scripts/scaling.sh 10 redis2:50:1000 redis2:200:1000 cluster3:200:1000
#
# Every run is bounded by SECONDS (plus the tool's drain); writers are a
# tenth of the observers (at least 2), as in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: scripts/scaling.sh SECONDS TOPOLOGY:OBSERVERS:RATE...}
shift
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1 && secs <= 600)) || { echo "SECONDS must be 1-600" >&2; exit 2; }
(($# > 0)) || { echo "give at least one TOPOLOGY:OBSERVERS:RATE" >&2; exit 2; }

echo "| topology | observers | rate/s | acked/s | deliveries/s | lost | p50 ms | p99 ms | p99.9 ms | max ms | board |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for spec in "$@"; do
  IFS=: read -r topology observers rate <<<"$spec"
  [[ $observers =~ ^[0-9]+$ && $rate =~ ^[0-9]+$ ]] || { echo "bad spec $spec" >&2; exit 2; }
  writers=$((observers / 10 > 2 ? observers / 10 : 2))
  json=$(scripts/bench.sh "$topology" fanout --writers "$writers" --observers "$observers" \
    --rate "$rate" --duration "$secs" --json 2>/dev/null || true)
  python3 - "$topology" "$observers" "$rate" "$json" <<'EOF'
import json, sys
topology, observers, rate, raw = sys.argv[1:5]
try:
    d = json.loads(raw)
except ValueError:
    print(f"| {topology} | {observers} | {rate} | run failed | | | | | | | |")
    sys.exit(0)
l = d["latency_ms"]
board = "ok" if d["board_mismatches"] == 0 else f'{d["board_mismatches"]} wrong'
print(f'| {topology} | {observers} | {rate} | {d["placement_rate"]:,.0f} | {d["delivery_rate"]:,.0f} '
      f'| {d["lost"]} | {l["p50"]:.1f} | {l["p99"]:.1f} | {l["p999"]:.1f} | {l["max"]:.1f} | {board} |')
EOF
done
