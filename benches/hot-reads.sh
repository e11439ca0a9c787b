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
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh

start_api
campaign=$(create_campaign '{"kind":"flash_sale","name":"bench","stock":1}')
winner=$(mint_tokens winner)
curl -sf -o /dev/null -XPOST "127.0.0.1:$api_port/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $winner"
mint_tokens $(seq -f 'loser%.0f' 0 3999) >"$work/tokens.txt"

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
