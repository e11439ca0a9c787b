#!/usr/bin/env bash
# Orders and payment through the real processes (`stampede api`, `stampede worker`) on a
# redis-server and a PostgreSQL database of the run's own:
#   1. the cost a payment window adds to a claim: accepted claims/s on a flash sale with
#      a window next to one without, alternating A B A B on the same api, with wrk;
#   2. pay notifications/s: every request a first, correctly signed payment of a pending
#      order (signed before the round: the signature's 300 s tolerance covers it);
#   3. expiries/s: orders all past due while no worker runs, then one `stampede worker`
#      starts (defaults) and the time until none is pending is measured.
#
# Usage: benches/orders.sh [seconds per round, default 5] [connections, default 64] [orders to expire, default 100000]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-64}
expire_n=${3:-100000}
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh
pay_secret="bench-payment-secret"
start_api STAMPEDE_BACKLOG_CAP=1000000000 STAMPEDE_PAYMENT_SECRET="$pay_secret"

stats() { curl -sf "127.0.0.1:$api_port/v1/admin/campaigns/$1/stats" -H "Authorization: Bearer $admin"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# --- 1. claims with and without a payment window (no workers: the claim path only).
plain=$(create_campaign '{"kind":"flash_sale","name":"plain","stock":1000000000,"per_user_limit":1000}')
windowed=$(create_campaign '{"kind":"flash_sale","name":"window","stock":1000000000,"per_user_limit":1000,"price_cents":500,"payment_window_secs":86400}')
mint_tokens $(seq -f 'user%.0f' 0 3999) >"$work/tokens.txt"
token_script POST "/v1/campaigns/$plain/claims" >"$work/plain.lua"
token_script POST "/v1/campaigns/$windowed/claims" >"$work/window.lua"
run() { wrk_round "$@" | cut -d' ' -f1; }
secs_measured=$secs; secs=2
run plain "$api_port" "$work/plain.lua" >/dev/null 2>&1; run window "$api_port" "$work/window.lua" >/dev/null 2>&1
secs=$secs_measured
a1=$(run plain "$api_port" "$work/plain.lua"); b1=$(run window "$api_port" "$work/window.lua")
a2=$(run plain "$api_port" "$work/plain.lua"); b2=$(run window "$api_port" "$work/window.lua")

# --- 2. pay notifications: signed payments of pending orders of the windowed sale.
# The export lists persisted claims only, and no worker ran: start one and let it drain.
env STAMPEDE_REDIS_URL="redis://127.0.0.1:$redis_port" STAMPEDE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
  RUST_LOG=warn ./target/release/stampede worker >"$work/worker0.log" 2>&1 &
worker_pid=$!; bench_pids+=("$worker_pid")
for _ in $(seq 1 600); do
  [ "$(stats "$windowed" | field queue_backlog)" = "0" ] && break; sleep 0.5
done
python3 - "$api_port" "$admin" "$windowed" "$pay_secret" "$work/pay.txt" <<'PY'
import hashlib, hmac, json, sys, time, urllib.request
port, admin, campaign, secret, out = sys.argv[1:]
claims, after = [], ""
while True:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/campaigns/{campaign}/claims?after={after}&limit=10000",
                                 headers={"Authorization": f"Bearer {admin}"})
    page = json.load(urllib.request.urlopen(req))
    claims += page["claims"]
    if not page["next"]: break
    after = page["next"]
t = int(time.time()) + 60
with open(out, "w") as f:
    for i, c in enumerate(claims):
        body = json.dumps({"payment_id": f"pay-{i}", "claim_id": c["id"], "amount_cents": 500 * c["quantity"], "status": "succeeded"}, separators=(",", ":"))
        sig = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
        f.write(f"t={t},v1={sig}\t{body}\n")
print(f"{len(claims)} pending orders to pay", file=sys.stderr)
PY
cat >"$work/pay.lua" <<LUA
lines = {}
for line in io.lines("$work/pay.txt") do
  local sig, body = line:match("^([^\t]+)\t(.*)$")
  lines[#lines + 1] = {sig, body}
end
i = 0
request = function()
  i = i + 1
  if i > #lines then i = 1 end
  return wrk.format("POST", "/v1/payments/notify",
    {["Stampede-Signature"] = lines[i][1], ["Content-Type"] = "application/json"}, lines[i][2])
end
LUA
paid_before=$(stats "$windowed" | field paid_orders)
t0=$(date +%s.%N)
run pay "$api_port" "$work/pay.lua" >/dev/null
t1=$(date +%s.%N)
paid_after=$(stats "$windowed" | field paid_orders)

# --- 3. expiries: orders all due while no worker runs, then one worker sweeps them.
kill "$worker_pid"; wait "$worker_pid" 2>/dev/null || true
due=$(create_campaign "{\"kind\":\"flash_sale\",\"name\":\"due\",\"stock\":$expire_n,\"price_cents\":500,\"payment_window_secs\":1}")
mint_tokens $(seq -f 'due%.0f' 0 $((expire_n - 1))) >"$work/tokens.txt"
token_script POST "/v1/campaigns/$due/claims" >"$work/due.lua"
secs=$(( expire_n / 5000 + 5 )) run due "$api_port" "$work/due.lua" >/dev/null 2>&1 || true
accepted=$(stats "$due" | field accepted_claims)
sleep 2
pending=$(stats "$due" | field pending_orders)
e0=$(date +%s.%N)
env STAMPEDE_REDIS_URL="redis://127.0.0.1:$redis_port" STAMPEDE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
  RUST_LOG=warn ./target/release/stampede worker >"$work/worker1.log" 2>&1 &
bench_pids+=("$!")
while [ "$(stats "$due" | field pending_orders)" != "0" ]; do sleep 0.05; done
e1=$(date +%s.%N)
expired=$(stats "$due" | field expired_orders)

python3 - "$a1" "$a2" "$b1" "$b2" "$paid_before" "$paid_after" "$t0" "$t1" "$pending" "$expired" "$e0" "$e1" "$accepted" <<'PY'
import sys
a1, a2, b1, b2 = map(float, sys.argv[1:5])
pb, pa, t0, t1, pending, expired, e0, e1, accepted = map(float, sys.argv[5:])
a, b = (a1 + a2) / 2, (b1 + b2) / 2
print(f"accepted claims/s without a window: {a:,.0f}   with one: {b:,.0f}   ratio: {b / a:.2f}")
print(f"pay notifications: {pa - pb:,.0f} orders paid in {t1 - t0:.1f} s: {(pa - pb) / (t1 - t0):,.0f}/s")
print(f"expiries: {expired:,.0f} of {pending:,.0f} due orders ({accepted:,.0f} claims) expired {e1 - e0:.2f} s after a worker started: {expired / (e1 - e0):,.0f}/s")
PY
