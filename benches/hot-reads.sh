#!/usr/bin/env bash
# The hot read path through `stampede api` on Redis, next to the same server's /healthz,
# alternating A B C A B C in one run with wrk:
#   A  GET /healthz                          (the baseline: routing and HTTP only)
#   B  GET /v1/campaigns/{id}                (campaign read: in-process cache, ETag)
#   C  POST /v1/campaigns/{id}/claims        (sold-out refusals: the local flag, a JWT check)
# The campaign has one unit, claimed before the run; the refusals come from 4,000 users
# who hold nothing (all answered 409 sold_out). Prints each round (with the api's CPU time
# per request, user and kernel, from /proc) and the ratios B/A, C/A.
#
# Like with like: all three are driven through the same wrk Lua script (a token picked
# per request, sent as the Authorization header, the method and path as the route needs),
# on the same connections; a static wrk baseline would flatter the ratios by 10-20
# points on 2 cores. Five alternations by default; each ratio is the median of the
# rounds' ratios, and the api's CPU per request is given as each kind's median too (it
# swings less than req/s on this shared machine, whose speed changes within a minute).
#
# Usage: benches/hot-reads.sh [seconds per round, default 10] [connections, default 64]
#                             [alternations, default 5]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
alternations=${3:-5}
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh

start_api
campaign=$(create_campaign '{"kind":"flash_sale","name":"bench","stock":1}')
winner=$(mint_tokens winner)
curl -sf -o /dev/null -XPOST "127.0.0.1:$api_port/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $winner"
mint_tokens $(seq -f 'loser%.0f' 0 3999) >"$work/tokens.txt"

token_script GET /healthz >"$work/healthz.lua"
token_script GET "/v1/campaigns/$campaign" >"$work/reads.lua"
token_script POST "/v1/campaigns/$campaign/claims" >"$work/refusals.lua"

# The api's CPU time so far, user and system, in clock ticks (/proc/PID/stat fields 14, 15).
api_ticks() { awk '{print $14, $15}' "/proc/$api_pid/stat"; }
run() { # name script expected-status
  local out rps other t0 t1 cpu
  t0=$(api_ticks)
  out=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$2" "http://127.0.0.1:$api_port/")
  t1=$(api_ticks)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  # wrk counts any status outside 2xx/3xx as Non-2xx: the refusals (409) all are.
  other=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  # The api's CPU per request, user and kernel: where a gap in req/s comes from.
  cpu=$(echo "$t0 $t1 $rps $secs $(getconf CLK_TCK)" | awk '{n = $5 * $6; printf "%.2f %.2f", ($3 - $1) * 1e6 / $7 / n, ($4 - $2) * 1e6 / $7 / n}')
  echo "$1 ${rps} req/s (non-2xx: ${other:-0}; api ${cpu% *} us user + ${cpu#* } us system per request)" >&2
  if [ "$3" = 2xx ] && [ -n "$other" ] && [ "$other" != 0 ]; then
    echo "invalid round: $1 answered $other requests outside 2xx (see $work/api.log)" >&2
    exit 1
  fi
  echo "$rps,${cpu% *},${cpu#* }"
}
healthz() { run healthz "$work/healthz.lua" 2xx; }
reads() { run "campaign reads" "$work/reads.lua" 2xx; }
refusals() { run "sold-out refusals" "$work/refusals.lua" 409; }
# Warm-up: connections, caches, the sold-out flag.
secs_measured=$secs; secs=2
healthz >/dev/null 2>&1; reads >/dev/null 2>&1; refusals >/dev/null 2>&1
secs=$secs_measured
rounds=()
for _ in $(seq 1 "$alternations"); do rounds+=("$(healthz) $(reads) $(refusals)"); done
python3 - "$secs" "$conns" "$alternations" "${rounds[@]}" <<'PY'
import statistics, sys
secs, conns, n = sys.argv[1:4]
# Each round: (req/s, user µs, system µs) of /healthz, reads, refusals.
rounds = [[tuple(map(float, k.split(","))) for k in r.split()] for r in sys.argv[4:]]
med = statistics.median
h = med([r[0][0] for r in rounds])
reads = med([r[1][0] / r[0][0] for r in rounds]); refusals = med([r[2][0] / r[0][0] for r in rounds])
print(f"/healthz: {h:,.0f} req/s   campaign reads: {reads:.2f} of healthz   "
      f"sold-out refusals: {refusals:.2f} of healthz   (medians of {n} alternations)")
cpu = lambda i: f"{med([r[i][1] for r in rounds]):.2f} + {med([r[i][2] for r in rounds]):.2f}"
print(f"api CPU per request, user + system µs (medians): /healthz {cpu(0)}   "
      f"reads {cpu(1)}   refusals {cpu(2)}")
print(f"repeat: benches/hot-reads.sh {secs} {conns} {n}")
PY
