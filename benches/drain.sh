#!/usr/bin/env bash
# Drain rate: `stampede worker` as users run it (its own process, default settings:
# 4 consumers, batches of 1,000, cached claim pages refreshed) moving a backlog of
# accepted claims from a redis-server of the run's own into the database, next to the
# database's own rate for the same rows, 8 connections, each transaction one 100-row
# insert of literal rows that skips conflicts, into a copy of the claims table (same
# columns and indexes):
#   postgres  pgbench, `INSERT ... ON CONFLICT DO NOTHING` (the worker sends its batch as
#             arrays through UNNEST, one statement per 1,000 rows);
#   mysql     8 `mariadb` clients each running its share of `INSERT IGNORE` statements
#             from a file (the worker sends multi-row INSERT IGNORE, 1,000 rows each).
# The baselines' time leaves out their connecting, the worker's includes its start-up.
# Alternated A B A B in one run, per database.
#
# The worker's time runs from its start (connect and migrate included) until the stream
# is empty: events are deleted only when acknowledged, after their transaction commits.
#
# Usage: benches/drain.sh [claims per round, default 200000] [postgres|mysql|both, default postgres]
# Prints each round and the ratio worker / baseline per database. Needs PostgreSQL on
# 127.0.0.1 (trust auth) and pgbench, and for mysql MariaDB (or MySQL) with root on
# 127.0.0.1 without a password, as .ci/run sets up.
set -euo pipefail
cd "$(dirname "$0")/.."
claims=${1:-200000}
databases=${2:-postgres}
[ "$databases" = both ] && databases="postgres mysql"
cargo build --release -q --bin stampede -p stampede-api
cargo build --release -q --bin drain -p stampede-benches
. benches/lib.sh
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }

redis_url="redis://127.0.0.1:$redis_port"
rounds=$((claims / 100 / 8)) # per baseline connection
psql_db() { psql -w -q -h 127.0.0.1 -U postgres -d "$db" "$@"; }
my() { mariadb -h 127.0.0.1 -u root "$@"; }

# pgbench's rows: 100 claim-shaped rows per statement, as literals, on one line; ids
# unique per connection and statement.
baseline_rows() { # $1: the ids' suffix
  python3 - "$(date +%s%3N)" "$1" <<'PY'
import sys
ms, suffix = sys.argv[1], sys.argv[2]
print(", ".join(
    f"(1, 'c1-{suffix}-{k}', 'user-{suffix}-{k}', 1, 0, -1, {ms}, {ms})" for k in range(100)))
PY
}
columns="campaign_id, claim_id, user_id, quantity, amount_cents, packet_idx, accepted_at_ms, persisted_at_ms"

# pgbench puts :client_id and :r into the text, quotes included.
{
  echo '\set r random(1, 1000000000000)'
  echo "INSERT INTO baseline_claims ($columns) VALUES $(baseline_rows ':client_id-:r') ON CONFLICT DO NOTHING;"
} >"$work/insert.sql"

# MariaDB: one file of statements per connection, each statement its own rows (ids
# unique per round too: the round's start in ms is in them).
mysql_files() {
  python3 - "$work" "$rounds" "$(date +%s%3N)" "$columns" <<'PY'
import sys
work, rounds, ms, columns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
for c in range(8):
    with open(f"{work}/insert-{c}.sql", "w") as f:
        for r in range(rounds):
            rows = ", ".join(
                f"(1, 'c1-{ms}-{c}-{r}-{k}', 'user-{c}-{r}-{k}', 1, 0, -1, {ms}, {ms})" for k in range(100))
            f.write(f"INSERT IGNORE INTO baseline_claims ({columns}) VALUES {rows};\n")
PY
}

setup() { # $1: database; sets db_url
  case $1 in
    postgres)
      db_url="postgres://postgres@127.0.0.1:5432/$db"
      ./target/release/drain --redis "$redis_url" --database "$db_url" --claims 1 >/dev/null # migrates
      psql_db -c "CREATE TABLE baseline_claims (LIKE claims INCLUDING ALL)" ;;
    mysql)
      my -e "CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
      bench_cleanups+=("mariadb -h 127.0.0.1 -u root -e 'DROP DATABASE IF EXISTS $db'")
      db_url="mysql://root@127.0.0.1:3306/$db"
      ./target/release/drain --redis "$redis_url" --database "$db_url" --claims 1 >/dev/null
      my "$db" -e "CREATE TABLE baseline_claims LIKE claims" ;;
  esac
}

count() { # $1: database, $2: table and condition
  case $1 in
    postgres) psql_db -At -c "SELECT count(*) FROM $2" ;;
    mysql) my -N "$db" -e "SELECT count(*) FROM $2" ;;
  esac
}

worker_round() { # $1: database
  local campaign stream started secs pid persisted
  campaign=$(./target/release/drain --redis "$redis_url" --database "$db_url" --claims "$claims")
  stream="{c:$campaign}:claims"
  started=$(date +%s.%N)
  env STAMPEDE_REDIS_URL="$redis_url" STAMPEDE_DATABASE_URL="$db_url" RUST_LOG=warn \
    STAMPEDE_LISTEN="127.0.0.1:$api_port" ./target/release/stampede worker >"$work/worker.log" 2>&1 &
  pid=$!
  # One redis-cli asking every 20 ms (a process per poll would cost the machine's cores
  # more than the poll is worth).
  redis-cli -p "$redis_port" -r -1 -i 0.02 XLEN "$stream" | while read -r n; do [ "$n" = 0 ] && break; done
  secs=$(python3 -c "import time; print(time.time() - $started)")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  persisted=$(count "$1" "claims WHERE campaign_id = $campaign")
  [ "$persisted" = "$claims" ] || { echo "worker round: $persisted of $claims persisted" >&2; exit 1; }
  python3 -c "print(round($claims / $secs))"
}

baseline_round() { # $1: database
  local before after rate
  before=$(count "$1" baseline_claims)
  case $1 in
    postgres)
      rate=$(pgbench -n -h 127.0.0.1 -U postgres -c 8 -j 2 -t "$rounds" -f "$work/insert.sql" "$db" 2>/dev/null |
        sed -n -E 's/^tps = ([0-9.]+).*/\1/p' | head -n 1)
      rate=$(python3 -c "print(round($rate * 100))") ;;
    mysql)
      mysql_files
      local started pids=()
      started=$(date +%s.%N)
      for c in $(seq 0 7); do my "$db" <"$work/insert-$c.sql" & pids+=($!); done
      wait "${pids[@]}"
      rate=$(python3 -c "import time; print(round($rounds * 800 / (time.time() - $started)))") ;;
  esac
  # Every row new: the baseline skipped no conflicting row (the worker's rounds skip none).
  after=$(count "$1" baseline_claims)
  [ $((after - before)) = $((rounds * 800)) ] || { echo "baseline round: $((after - before)) new rows" >&2; exit 1; }
  echo "$rate"
}

summary=()
for database in $databases; do
  setup "$database"
  baseline=$([ "$database" = postgres ] && echo "pgbench 100-row INSERT ON CONFLICT" || echo "mariadb 100-row INSERT IGNORE")
  w1=$(worker_round "$database"); echo "$database worker   round 1: $w1 rows/s"
  b1=$(baseline_round "$database"); echo "$database baseline round 1: $b1 rows/s"
  w2=$(worker_round "$database"); echo "$database worker   round 2: $w2 rows/s"
  b2=$(baseline_round "$database"); echo "$database baseline round 2: $b2 rows/s"
  summary+=("$(python3 - "$database" "$baseline" "$w1" "$w2" "$b1" "$b2" <<'PY'
import sys
database, baseline = sys.argv[1:3]
w1, w2, b1, b2 = map(float, sys.argv[3:])
w, b = (w1 + w2) / 2, (b1 + b2) / 2
print(f"{database}: stampede worker drain rows/s: {w:,.0f}   {baseline} on 8 connections: {b:,.0f}   ratio: {w / b:.2f}")
PY
)")
done
printf '%s\n' "${summary[@]}"
echo "repeat: benches/drain.sh $claims ${2:-postgres}"
