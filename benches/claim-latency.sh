#!/usr/bin/env bash
# Claim latency at half the maximum rate: `stampede api` on a redis-server and a
# PostgreSQL database of the run's own (no worker on the machine: the claims wait in the
# stream, as they do while the workers run elsewhere), driven by stampede-loadgen.
#   1. the maximum: a burst of claims, closed loop, as many as the api answers;
#   2. open loop at half that rate (coordinated-omission corrected): p50, p99, p99.9;
#   3. the floor: `/healthz` through the same loadgen, open loop at the same rate.
# Each phase gets a fresh campaign with stock for every claim, so every reply is an
# accepted claim (201). The audit's drain wait is cut short (no worker): the latency
# figures are what this script reads, from loadgen's JSON report.
#
# Usage: benches/claim-latency.sh [users per phase, default 200000] [connections, default 64]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up).
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-200000}
conns=${2:-64}
cargo build --release -q --bin stampede -p stampede-api
cargo build --release -q -p stampede-loadgen
. benches/lib.sh
start_api

phase() { # extra loadgen flags...; prints loadgen's JSON report
  ./target/release/stampede-loadgen flash --target "http://127.0.0.1:$api_port" \
    --jwt-secret "$secret" --admin-token "$admin" --users "$users" --stock "$users" \
    --dup-fraction 0 --concurrency "$conns" --drain-timeout 1s --json -q \
    --user-prefix "p$RANDOM-" "$@" 2>"$work/loadgen.log" || true
}
field() { # json path...
  python3 -c 'import json,sys
r = json.load(sys.stdin)
for k in sys.argv[1:]: r = r[k]
print(r)' "$@"
}

max=$(phase | tee "$work/max.json" | field throughput_rps)
half=$(python3 -c "print(int($max / 2))")
phase --rate "$half" >"$work/half.json"
# 3. The floor: the same server's /healthz, open loop at the same rate for as long, the
# same connections. No claim can answer faster than the machine schedules a bare reply;
# when this p99 is near the claims', the tail is the shared cores, not the claim path.
secs=$(python3 -c "print(max(5, int($users / $half)))")
./target/release/stampede-loadgen http --target "http://127.0.0.1:$api_port" \
  --rate "$half" --duration "${secs}s" --concurrency "$conns" --json -q \
  >"$work/floor.json" 2>"$work/loadgen-floor.log"
python3 - "$work/max.json" "$work/half.json" "$work/floor.json" "$users" "$conns" <<'PY'
import json, sys
mx, half, floor = (json.load(open(p)) for p in sys.argv[1:4])
users, conns = sys.argv[4:6]
lat, fl = half["latency_ms"], floor["latency_ms"]
print(f"max (burst, closed loop): {mx['throughput_rps']:,.0f} claims/s   "
      f"open loop at {half['throughput_rps']:,.0f}/s (half): "
      f"p50 {lat['p50']:.2f} ms   p99 {lat['p99']:.2f} ms   p99.9 {lat['p999']:.2f} ms   "
      f"201s: {half['statuses'].get('201', 0)} of {half['requests']}")
print(f"floor: /healthz open loop at {floor['throughput_rps']:,.0f}/s: "
      f"p50 {fl['p50']:.2f} ms   p99 {fl['p99']:.2f} ms   p99.9 {fl['p999']:.2f} ms   "
      f"claims' p99 / floor's p99: {lat['p99'] / fl['p99']:.2f}")
print(f"repeat: benches/claim-latency.sh {users} {conns}")
PY
