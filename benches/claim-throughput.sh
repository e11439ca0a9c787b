#!/usr/bin/env bash
# Accepted claims per second through `stampede api` on Redis (JWT checked, claim script,
# enqueue, JSON reply) next to the plain baseline (src/bin/plain-claim.rs: axum +
# redis-rs, one EVALSHA of the same script per request, nothing else), alternating
# A B A B in one run against one redis-server of its own, with wrk.
#
# The api runs without workers (what is measured is the claim path), so the backlog
# grows by every accepted claim: its cap is lifted, and the rate limit is off (wrk
# cycles through 4,000 users). A round with any non-2xx reply is reported as invalid.
#
# Usage: benches/claim-throughput.sh [seconds per round, default 10] [connections, default 64]
# Prints each round and the ratio stampede / plain. Needs PostgreSQL on 127.0.0.1
# (trust auth, as .ci/run sets up); installs wrk from Debian when absent (benches/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
cargo build --release -q --bin stampede -p stampede-api
cargo build --release -q --bin plain-claim -p stampede-benches
. benches/lib.sh

start_api STAMPEDE_BACKLOG_CAP=1000000000
plain_port=$(free_port)
bench='{"kind":"flash_sale","name":"bench","stock":1000000000,"per_user_limit":1000}'
stampede_campaign=$(create_campaign "$bench"); plain_campaign=$(create_campaign "$bench")
./target/release/plain-claim "redis://127.0.0.1:$redis_port" "127.0.0.1:$plain_port" "$plain_campaign" &
bench_pids+=("$!")

# 4,000 users x a limit of 1,000: every request in the run is accepted.
mint_tokens $(seq -f 'user%.0f' 0 3999) >"$work/tokens.txt"
token_script POST "/v1/campaigns/$stampede_campaign/claims" >"$work/stampede.lua"
# Like with like: the same request shape as the measured route (the next user's bearer
# token on every request), the user named in the path, which the plain handler reads
# instead of verifying the token.
cat >"$work/plain.lua" <<LUA
tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/claim/user" .. (i - 1), {["Authorization"] = "Bearer " .. tokens[i]})
end
LUA
sleep 0.5

run() { wrk_round "$@" | cut -d' ' -f1; }
# Warm-up: connections, script cache, allocator, campaign caches.
secs_measured=$secs; secs=2
run stampede "$api_port" "$work/stampede.lua" >/dev/null 2>&1; run plain "$plain_port" "$work/plain.lua" >/dev/null 2>&1
secs=$secs_measured
s1=$(run stampede "$api_port" "$work/stampede.lua"); p1=$(run plain "$plain_port" "$work/plain.lua")
s2=$(run stampede "$api_port" "$work/stampede.lua"); p2=$(run plain "$plain_port" "$work/plain.lua")
python3 - "$s1" "$s2" "$p1" "$p2" <<'PY'
import sys
s1, s2, p1, p2 = map(float, sys.argv[1:])
s, p = (s1 + s2) / 2, (p1 + p2) / 2
print(f"stampede api accepted claims/s: {s:,.0f}   plain axum+redis-rs EVALSHA handler: {p:,.0f}   ratio: {s / p:.2f}")
PY
