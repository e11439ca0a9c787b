#!/usr/bin/env bash
# Drain rate: `stampede worker` as users run it (its own process, default settings:
# 4 consumers, batches of 1,000, cached claim pages refreshed) moving a backlog of
# accepted claims from a redis-server of the run's own into PostgreSQL, next to
# PostgreSQL's own rate for the same rows: pgbench, 8 connections, each transaction one
# 100-row INSERT ... ON CONFLICT DO NOTHING of literal rows into a copy of the claims table
# (same columns and indexes; the worker sends its batch as arrays through UNNEST, one
# statement per 1,000). pgbench's time leaves out its connecting, the worker's includes its
# start-up. Alternated A B A B in one run.
#
# The worker's time runs from its start (connect and migrate included) until the stream
# is empty: events are deleted only when acknowledged, after their transaction commits.
#
# Usage: benches/drain.sh [claims per round, default 200000]
# Prints each round and the ratio worker / pgbench. Needs PostgreSQL on 127.0.0.1 (trust
# auth, as .ci/run sets up) and pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
claims=${1:-200000}
cargo build --release -q --bin stampede -p stampede-api
cargo build --release -q --bin drain -p stampede-benches
. benches/lib.sh
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }

db_url="postgres://postgres@127.0.0.1:5432/$db"
redis_url="redis://127.0.0.1:$redis_port"
psql_db() { psql -w -q -h 127.0.0.1 -U postgres -d "$db" "$@"; }

# pgbench's transaction: 100 claim-shaped rows as literals (pgbench puts :client_id and
# :r into the text, quotes included), ids unique per client and transaction, on one line.
python3 - "$(date +%s%3N)" >"$work/insert.sql" <<'PY2'
import sys
ms = sys.argv[1]
rows = ", ".join(
    f"(1, 'c1-:client_id-:r-{k}', 'user:r-{k}', 1, 0, -1, {ms}, {ms})" for k in range(100))
print(r"\set r random(1, 1000000000000)")
print("INSERT INTO baseline_claims (campaign_id, claim_id, user_id, quantity, amount_cents, "
      "packet_idx, accepted_at_ms, persisted_at_ms) VALUES " + rows + " ON CONFLICT DO NOTHING;")
PY2

./target/release/drain --redis "$redis_url" --database "$db_url" --claims 1 >/dev/null # migrates
psql_db -c "CREATE TABLE baseline_claims (LIKE claims INCLUDING ALL)"

worker_round() {
  local campaign stream started secs
  campaign=$(./target/release/drain --redis "$redis_url" --database "$db_url" --claims "$claims")
  stream="{c:$campaign}:claims"
  started=$(date +%s.%N)
  env STAMPEDE_REDIS_URL="$redis_url" STAMPEDE_DATABASE_URL="$db_url" RUST_LOG=warn \
    STAMPEDE_LISTEN="127.0.0.1:$api_port" ./target/release/stampede worker >"$work/worker.log" 2>&1 &
  local pid=$!
  # One redis-cli asking every 20 ms (a process per poll would cost the machine's cores
  # more than the poll is worth).
  redis-cli -p "$redis_port" -r -1 -i 0.02 XLEN "$stream" | while read -r n; do [ "$n" = 0 ] && break; done
  secs=$(python3 -c "import time; print(time.time() - $started)")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local persisted
  persisted=$(psql_db -At -c "SELECT count(*) FROM claims WHERE campaign_id = $campaign")
  [ "$persisted" = "$claims" ] || { echo "worker round: $persisted of $claims persisted" >&2; exit 1; }
  python3 -c "print(round($claims / $secs))"
}

pgbench_round() {
  local tps before after
  before=$(psql_db -At -c "SELECT count(*) FROM baseline_claims")
  tps=$(pgbench -n -h 127.0.0.1 -U postgres -c 8 -j 2 -t $((claims / 100 / 8)) -f "$work/insert.sql" "$db" 2>/dev/null |
    sed -n -E 's/^tps = ([0-9.]+).*/\1/p' | head -n 1)
  # Every row new: the baseline skipped no conflicting row (the worker's rounds skip none).
  after=$(psql_db -At -c "SELECT count(*) FROM baseline_claims")
  [ $((after - before)) = $((claims / 100 / 8 * 800)) ] || { echo "pgbench round: $((after - before)) new rows" >&2; exit 1; }
  python3 -c "print(round($tps * 100))"
}

w1=$(worker_round); echo "worker  round 1: $w1 rows/s"
p1=$(pgbench_round); echo "pgbench round 1: $p1 rows/s"
w2=$(worker_round); echo "worker  round 2: $w2 rows/s"
p2=$(pgbench_round); echo "pgbench round 2: $p2 rows/s"
python3 - "$w1" "$w2" "$p1" "$p2" <<'PY'
import sys
w1, w2, p1, p2 = map(float, sys.argv[1:])
w, p = (w1 + w2) / 2, (p1 + p2) / 2
print(f"stampede worker drain rows/s: {w:,.0f}   pgbench 100-row INSERT on 8 connections: {p:,.0f}   ratio: {w / p:.2f}")
PY
echo "repeat: benches/drain.sh $claims"
