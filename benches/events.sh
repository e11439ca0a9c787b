#!/usr/bin/env bash
# Behaviour events through the real processes, on a redis-server and a PostgreSQL
# database of the run's own:
#   1. ingestion: `POST /v1/events` with one event per request through `stampede api` next
#      to the same server's `/healthz`, the same wrk script shape (a bearer token and a
#      request per call), A B A B; then batches of 100 events per request (events/s);
#   2. persistence: one `stampede worker` (defaults) writing every ingested event into its
#      day's partition of `events` (and its minute's count), next to PostgreSQL's own
#      `COPY` of the same rows into a copy of that partition (same columns and indexes).
#
# Usage: benches/events.sh [seconds per round, default 5] [connections, default 64]
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-64}
cargo build --release -q --bin stampede -p stampede-api
. benches/lib.sh
start_api STAMPEDE_EVENTS_BACKLOG_CAP=1000000000 STAMPEDE_IP_RATE=0
campaign=$(create_campaign '{"kind":"flash_sale","name":"events","stock":1000}')
mint_tokens $(seq -f 'viewer%.0f' 0 3999) >"$work/tokens.txt"

body_of() {
  python3 - "$campaign" "$1" <<'PY'
import json, sys
campaign, n = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"events": [{"type": "view", "campaign_id": campaign, "props": {"page": "pdp"}}] * n}, separators=(",", ":")))
PY
}
events_script() {
  cat <<LUA
tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
body = [[$(body_of "$1")]]
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/v1/events", {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}, body)
end
LUA
}
events_script 1 >"$work/one.lua"
events_script 100 >"$work/hundred.lua"
token_script GET /healthz >"$work/healthz.lua"
run() { wrk_round "$@" | cut -d' ' -f1; }
secs_measured=$secs; secs=2
run events "$api_port" "$work/one.lua" >/dev/null 2>&1; run healthz "$api_port" "$work/healthz.lua" >/dev/null 2>&1
secs=$secs_measured
e1=$(run events "$api_port" "$work/one.lua"); h1=$(run healthz "$api_port" "$work/healthz.lua")
e2=$(run events "$api_port" "$work/one.lua"); h2=$(run healthz "$api_port" "$work/healthz.lua")
b1=$(run events-x100 "$api_port" "$work/hundred.lua")

# --- 2. persistence: the worker drains the stream into today's table; then COPY.
queued=$(redis-cli -p "$redis_port" xlen "{c:$campaign}:events")
db_url="postgres://postgres@127.0.0.1:5432/$db"
w0=$(date +%s.%N)
env STAMPEDE_REDIS_URL="redis://127.0.0.1:$redis_port" STAMPEDE_DATABASE_URL="$db_url" RUST_LOG=warn \
  ./target/release/stampede worker >"$work/worker.log" 2>&1 &
bench_pids+=("$!")
while [ "$(redis-cli -p "$redis_port" xlen "{c:$campaign}:events")" != "0" ]; do sleep 0.05; done
w1=$(date +%s.%N)
# Today's partition of `events` (the events were all taken today; the run does not
# cross midnight UTC).
table="events_$(date -u +%Y%m%d)"
rows=$(psql -w -qAt -h 127.0.0.1 -U postgres -d "$db" -c "SELECT COUNT(*) FROM $table")
psql -w -q -h 127.0.0.1 -U postgres -d "$db" -c "\\copy $table TO '$work/rows.csv' WITH (FORMAT csv)"
psql -w -q -h 127.0.0.1 -U postgres -d "$db" -c "CREATE TABLE copy_target (LIKE $table INCLUDING ALL)"
c0=$(date +%s.%N)
psql -w -q -h 127.0.0.1 -U postgres -d "$db" -c "\\copy copy_target FROM '$work/rows.csv' WITH (FORMAT csv)"
c1=$(date +%s.%N)
copied=$(psql -w -qAt -h 127.0.0.1 -U postgres -d "$db" -c "SELECT COUNT(*) FROM copy_target")

python3 - "$e1" "$e2" "$h1" "$h2" "$b1" "$queued" "$rows" "$w0" "$w1" "$copied" "$c0" "$c1" <<'PY'
import sys
e1, e2, h1, h2, b1 = map(float, sys.argv[1:6])
queued, rows, w0, w1, copied, c0, c1 = map(float, sys.argv[6:])
e, h = (e1 + e2) / 2, (h1 + h2) / 2
print(f"POST /v1/events (1 event each): {e:,.0f} req/s   /healthz: {h:,.0f} req/s   ratio: {e / h:.2f}")
print(f"POST /v1/events (100 events each): {b1:,.0f} req/s = {b1 * 100:,.0f} events/s")
w, c = rows / (w1 - w0), copied / (c1 - c0)
print(f"persisted: {rows:,.0f} of {queued:,.0f} queued events by one stampede worker in {w1 - w0:.1f} s ({w:,.0f}/s, start-up included)   "
      f"COPY of the same rows: {c:,.0f}/s   ratio: {w / c:.2f}")
PY
