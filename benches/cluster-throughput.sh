#!/usr/bin/env bash
# One hot campaign on a single Redis node next to the same campaign with `buckets: 3` on
# a 3-master Redis Cluster, through the same `stampede api`
# binary, alternating A B A B in one run with wrk (the same Lua script shape, tokens
# picked per request, same connections). Reports accepted claims/s and p99 of each, the
# cost ratio (single / cluster claims/s: on one 2-core machine the cluster cannot be
# faster, it can only show what buckets cost per claim), and how evenly the claim
# script ran on the three masters (INFO commandstats, calls during the cluster rounds).
#
# Like with like: the single node has no replica, so by default neither have the
# cluster's masters (a replica applies every write again, on the same 2 cores). Set
# REPLICAS=1 for the production shape (6 nodes) to see what replication adds.
#
# The apis run without workers (the claim path is what is measured), so the backlog
# cap is lifted and the rate limit is off (wrk cycles through 4,000 users).
#
# Usage: benches/cluster-throughput.sh [seconds per round, default 10] [connections, default 64]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh

# --- A cluster of the run's own (ports <= 55535: each bus is port + 10000).
replicas=${REPLICAS:-0}
cluster_ports=()
for _ in $(seq 1 $(( 3 * (1 + replicas) ))); do
  while :; do
    p=$(( (RANDOM % 30000) + 20000 ))
    if ! (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && ! (echo >/dev/tcp/127.0.0.1/$((p + 10000))) 2>/dev/null; then break; fi
  done
  cluster_ports+=("$p")
  mkdir -p "$work/node-$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
    --dir "$work/node-$p" --save "" --appendonly no --repl-diskless-sync-delay 0 --daemonize yes >/dev/null
done
stop_cluster() { for p in "${cluster_ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done; }
trap 'stop_cluster; cleanup' EXIT
sleep 0.5
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas "$replicas" --cluster-yes >/dev/null
for _ in $(seq 1 100); do
  ok=1
  for p in "${cluster_ports[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0; done
  [ "$ok" = 1 ] && break; sleep 0.2
done
seeds=$(printf 'redis://127.0.0.1:%s,' "${cluster_ports[@]}"); seeds=${seeds%,}
masters() { redis-cli -p "${cluster_ports[0]}" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "[:@]"); print a[2]}'; }
evalsha_calls() { redis-cli -p "$1" info commandstats | awk -F'[=,:]' '/^cmdstat_evalsha:/ {print $3}' | tr -d '\r'; }

# --- Two apis of the same binary: one on the single node, one on the cluster.
start_api STAMPEDE_BACKLOG_CAP=1000000000
single_port=$api_port
api_port=$(free_port)
env STAMPEDE_LISTEN="127.0.0.1:$api_port" STAMPEDE_REDIS_CLUSTER="$seeds" \
  STAMPEDE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" STAMPEDE_JWT_SECRET="$secret" \
  STAMPEDE_ADMIN_TOKEN="$admin" STAMPEDE_USER_RATE=0 STAMPEDE_BACKLOG_CAP=1000000000 RUST_LOG=warn \
  ./target/release/stampede api >"$work/cluster-api.log" 2>&1 &
bench_pids+=("$!")
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
cluster_port=$api_port

api_port=$single_port
single_campaign=$(create_campaign '{"kind":"flash_sale","name":"single","stock":1000000000,"per_user_limit":1000}')
api_port=$cluster_port
cluster_campaign=$(create_campaign '{"kind":"flash_sale","name":"bucketed","stock":1000000000,"per_user_limit":1000,"buckets":3}')

mint_tokens $(seq -f 'user%.0f' 0 3999) >"$work/tokens.txt"
token_script POST "/v1/campaigns/$single_campaign/claims" >"$work/single.lua"
token_script POST "/v1/campaigns/$cluster_campaign/claims" >"$work/cluster.lua"

run() { wrk_round "$@"; }
secs_measured=$secs; secs=2
run single "$single_port" "$work/single.lua" >/dev/null 2>&1; run cluster "$cluster_port" "$work/cluster.lua" >/dev/null 2>&1
secs=$secs_measured
declare -A before
for m in $(masters); do before[$m]=$(evalsha_calls "$m"); done
s1=$(run single "$single_port" "$work/single.lua"); c1=$(run cluster "$cluster_port" "$work/cluster.lua")
s2=$(run single "$single_port" "$work/single.lua"); c2=$(run cluster "$cluster_port" "$work/cluster.lua")
spread=""
for m in $(masters); do spread="$spread $m:$(( $(evalsha_calls "$m") - ${before[$m]:-0} ))"; done
python3 - "$s1" "$s2" "$c1" "$c2" "$spread" "$secs" "$conns" "$replicas" <<'PY'
import sys
s1, s2, c1, c2 = (tuple(map(float, a.split())) for a in sys.argv[1:5])
s = (s1[0] + s2[0]) / 2; c = (c1[0] + c2[0]) / 2
sp = max(s1[1], s2[1]); cp = max(c1[1], c2[1])
calls = {k: int(v) for k, v in (x.split(":") for x in sys.argv[5].split())}
mean = sum(calls.values()) / len(calls)
worst = max(abs(v - mean) / mean for v in calls.values()) if mean else float("inf")
print(f"single node, buckets 1: {s:,.0f} accepted claims/s, p99 {sp:.1f} ms")
print(f"3-master cluster ({sys.argv[8]} replica each), buckets 3: {c:,.0f} accepted claims/s, p99 {cp:.1f} ms")
print(f"cost per claim, cluster / single: {s / c:.2f}x (target <= 1.3x)")
print(f"claim script calls per master during the cluster rounds: {calls}; largest deviation from the mean {worst:.0%} (target <= 25%)")
print(f"repeat: REPLICAS={sys.argv[8]} benches/cluster-throughput.sh {sys.argv[6]} {sys.argv[7]}")
PY
