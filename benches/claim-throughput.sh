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
# (trust auth, as .ci/run sets up); installs wrk from Debian when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q --bin stampede -p stampede-api
cargo build --release -q --bin plain-claim -p stampede-benches

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); api_port=$(free_port); plain_port=$(free_port)
db="stampede_bench_$$"
secret="bench-secret-0123456789abcdef"; admin="bench-admin-token-0123456789"
cleanup() {
  kill "${api_pid:-}" "${plain_pid:-}" 2>/dev/null || true
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  sleep 0.5
  psql -w -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
psql -w -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
STAMPEDE_LISTEN=127.0.0.1:$api_port STAMPEDE_REDIS_URL=redis://127.0.0.1:$redis_port \
STAMPEDE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db STAMPEDE_JWT_SECRET=$secret \
STAMPEDE_ADMIN_TOKEN=$admin STAMPEDE_USER_RATE=0 STAMPEDE_BACKLOG_CAP=1000000000 RUST_LOG=warn \
  ./target/release/stampede api >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done

create() {
  curl -sf -XPOST "127.0.0.1:$api_port/v1/campaigns" -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' \
    -d '{"kind":"flash_sale","name":"bench","stock":1000000000,"per_user_limit":1000}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
stampede_campaign=$(create); plain_campaign=$(create)
./target/release/plain-claim "redis://127.0.0.1:$redis_port" "127.0.0.1:$plain_port" "$plain_campaign" &
plain_pid=$!

# 4,000 users x a limit of 1,000: every request in the run is accepted.
python3 - "$secret" >"$work/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = sys.argv[1].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
for u in range(4000):
    body = b64(json.dumps({"sub": f"user{u}", "exp": exp}).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")
PY
cat >"$work/stampede.lua" <<LUA
tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/v1/campaigns/$stampede_campaign/claims", {["Authorization"] = "Bearer " .. tokens[i]})
end
LUA
cat >"$work/plain.lua" <<'LUA'
i = 0
request = function()
  i = i % 4000 + 1
  return wrk.format("POST", "/claim/user" .. i)
end
LUA
sleep 0.5

run() { # name port script
  local out rps bad
  out=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$3" "http://127.0.0.1:$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 ${rps} req/s (non-2xx: ${bad:-0})" >&2
  if [ -n "$bad" ] && [ "$bad" != "0" ]; then
    echo "invalid round: $1 answered $bad requests with non-2xx (see $work/api.log)" >&2
    exit 1
  fi
  echo "$rps"
}
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
