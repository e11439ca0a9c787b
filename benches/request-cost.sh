#!/usr/bin/env bash
# What one request costs `stampede api` in CPU instructions, counted by callgrind: a
# count, not a time, so it repeats on this shared, noisy machine where req/s ratios
# swing by a factor of two between rounds (benches/README.md). The api runs under
# `valgrind --tool=callgrind` on its own redis-server and PostgreSQL database; the same
# client (one keep-alive connection, a bearer token per request, as in hot-reads.sh)
# sends N requests of each kind, and each kind's instructions are read between two
# zeroed dumps:
#   A  GET /healthz                     (the baseline: routing and HTTP only)
#   B  GET /v1/campaigns/{id}           (a campaign read)
#   C  POST /v1/campaigns/{id}/claims   (a sold-out refusal: the local flag, a JWT check)
# Prints instructions per request of each, the ratios B/A and C/A, and the functions
# that take the most of C. Only the api process is counted: the kernel's TCP work,
# which every kind pays alike, is not.
#
# Usage: benches/request-cost.sh [requests per kind, default 3000]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh

env STAMPEDE_LISTEN="127.0.0.1:$api_port" STAMPEDE_REDIS_URL="redis://127.0.0.1:$redis_port" \
  STAMPEDE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" STAMPEDE_JWT_SECRET="$secret" \
  STAMPEDE_ADMIN_TOKEN="$admin" STAMPEDE_USER_RATE=0 STAMPEDE_IP_RATE=0 RUST_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --dump-instr=no --compress-strings=no --compress-pos=no \
  ./target/release/stampede api >"$work/api.log" 2>&1 &
api_pid=$!
bench_pids+=("$api_pid")
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.2; done
campaign=$(create_campaign '{"kind":"flash_sale","name":"bench","stock":1}')
winner=$(mint_tokens winner)
curl -sf -o /dev/null -XPOST "127.0.0.1:$api_port/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $winner"
mint_tokens $(seq -f 'loser%.0f' 0 999) >"$work/tokens.txt"

# One phase: N requests of a kind on one keep-alive connection, each with the next token.
phase() { # method path expected-status count
  python3 - "$api_port" "$work/tokens.txt" "$@" <<'PY'
import http.client, sys
port, tokens, method, path, want, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
tokens = open(tokens).read().split()
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
for i in range(n):
    c.request(method, path, headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Length": "0"})
    r = c.getresponse(); r.read()
    if r.status != want:
        sys.exit(f"{method} {path}: {r.status}, expected {want}")
PY
}
# Instructions counted since the last zeroing.
counted() {
  callgrind_control -d "$1" "$api_pid" >/dev/null
  local f
  f=$(ls -t "$work"/cg.* | head -n 1)
  # "summary: N" (or "totals: N") is the dump's instruction count.
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
}
kinds=("GET /healthz 200" "GET /v1/campaigns/$campaign 200" "POST /v1/campaigns/$campaign/claims 409")
names=(healthz read refusal)
# Warm-up: connections, caches, the sold-out flag, the token cache.
for k in "${kinds[@]}"; do phase $k 1000; done
declare -A cost
for i in 0 1 2; do
  callgrind_control -z "$api_pid" >/dev/null
  phase ${kinds[$i]} "$n"
  cost[${names[$i]}]=$(counted "${names[$i]}")
done
out=${COST_DIR:-/tmp/stampede-request-cost}
mkdir -p "$out"
python3 - "$n" "$out" "${cost[healthz]}" "${cost[read]}" "${cost[refusal]}" "$work"/cg.* <<'PY'
import collections, re, shutil, sys
n, out = int(sys.argv[1]), sys.argv[2]
h, r, c = (int(x) / n for x in sys.argv[3:6])
print(f"instructions per request in the api (callgrind, {n} each): "
      f"/healthz {h:,.0f}   campaign read {r:,.0f} ({r / h:.2f}x)   sold-out refusal {c:,.0f} ({c / h:.2f}x)")

def self_costs(path):
    """Each function's own instructions in a callgrind dump (calls' costs skipped)."""
    cost, fn, skip = collections.Counter(), None, False
    for line in open(path):
        line = line.rstrip("\n")
        if skip:
            skip = False
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("calls="):
            skip = True  # the next line is the call's inclusive cost
        elif re.match(r"^[+-]?\d+ \d+$", line):
            cost[fn] += int(line.split()[1])
    return cost

dumps = {}
for path in sys.argv[6:]:
    for line in open(path):
        if line.startswith("desc: Trigger: dump "):
            dumps[line.split()[-1]] = path
            break
for name in ("healthz", "read", "refusal"):
    shutil.copy(dumps[name], f"{out}/{name}.callgrind")
base, refusal = self_costs(dumps["healthz"]), self_costs(dumps["refusal"])
print(f"what a refusal costs beyond /healthz, by function (own instructions per request; dumps in {out}):")
extra = {f: (refusal[f] - base.get(f, 0)) / n for f in refusal}
for f, d in sorted(extra.items(), key=lambda kv: -kv[1])[:20]:
    print(f"  {d:8,.0f}  {f[:140]}")
PY
echo "repeat: benches/request-cost.sh $n"
