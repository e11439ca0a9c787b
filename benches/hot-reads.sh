#!/usr/bin/env bash
# The hot read path through `stampede api` on Redis, next to the same server's /healthz,
# alternating A B C A B C in one run with wrk:
#   A  GET /healthz                          (the baseline: routing and HTTP only)
#   B  GET /v1/campaigns/{id}                (campaign read: in-process cache, ETag)
#   C  POST /v1/campaigns/{id}/claims        (sold-out refusals: the local flag, a JWT check)
# The campaign has one unit, claimed before the run; the refusals come from 4,000 users
# who hold nothing (all answered 409 sold_out). Prints each round and the ratios B/A, C/A.
#
# Usage: benches/hot-reads.sh [seconds per round, default 10] [connections, default 64]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q --bin stampede -p stampede-api

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); api_port=$(free_port)
db="stampede_bench_$$"
secret="bench-secret-0123456789abcdef"; admin="bench-admin-token-0123456789"
cleanup() {
  kill "${api_pid:-}" 2>/dev/null || true
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
STAMPEDE_ADMIN_TOKEN=$admin STAMPEDE_USER_RATE=0 RUST_LOG=warn \
  ./target/release/stampede api >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$secret" >"$work/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = sys.argv[1].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
for u in ["winner"] + [f"loser{u}" for u in range(4000)]:
    body = b64(json.dumps({"sub": u, "exp": exp}).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")
PY
campaign=$(curl -sf -XPOST "127.0.0.1:$api_port/v1/campaigns" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"kind":"flash_sale","name":"bench","stock":1}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
winner=$(head -n 1 "$work/tokens.txt")
curl -sf -o /dev/null -XPOST "127.0.0.1:$api_port/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $winner"
sed -i 1d "$work/tokens.txt"

cat >"$work/refusals.lua" <<LUA
tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/v1/campaigns/$campaign/claims", {["Authorization"] = "Bearer " .. tokens[i]})
end
done = function(summary, latency, requests)
  io.stderr:write(string.format("  statuses other than 409: see api.log if any (%d errors)\n", summary.errors.status))
end
LUA

run() { # name path [script]
  local out rps
  if [ -n "${3:-}" ]; then
    out=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$3" "http://127.0.0.1:$api_port$2" 2>/dev/null)
  else
    out=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$api_port$2")
  fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$1 ${rps} req/s" >&2
  echo "$rps"
}
healthz() { run healthz /healthz; }
reads() { run "campaign reads" "/v1/campaigns/$campaign"; }
refusals() { run "sold-out refusals" / "$work/refusals.lua"; }
# Warm-up: connections, caches, the sold-out flag.
secs_measured=$secs; secs=2
healthz >/dev/null 2>&1; reads >/dev/null 2>&1; refusals >/dev/null 2>&1
secs=$secs_measured
h1=$(healthz); r1=$(reads); s1=$(refusals)
h2=$(healthz); r2=$(reads); s2=$(refusals)
python3 - "$h1" "$h2" "$r1" "$r2" "$s1" "$s2" <<'PY'
import sys
h1, h2, r1, r2, s1, s2 = map(float, sys.argv[1:])
h, r, s = (h1 + h2) / 2, (r1 + r2) / 2, (s1 + s2) / 2
print(f"/healthz: {h:,.0f} req/s   campaign reads: {r:,.0f} req/s ({r / h:.2f} of healthz)   "
      f"sold-out refusals: {s:,.0f} req/s ({s / h:.2f} of healthz)")
PY
