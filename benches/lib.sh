# Shared by the benchmark scripts (sourced, not run): a redis-server and a PostgreSQL
# database of the run's own, `stampede api` on them, user tokens, and clean-up on exit.
#
#   start_api [VAR=value ...]   starts `stampede api` (extra environment as arguments);
#                               sets api_port, api_pid, work, secret, admin. It runs
#                               $STAMPEDE_BIN when set (another build, for an A/B run of
#                               two commits through the same script), else this tree's.
#   mint_tokens USER...         prints one HS256 token per user, for $secret
#   create_campaign JSON        creates a campaign, prints its id
#   token_script METHOD PATH    prints a wrk Lua script: METHOD PATH with the next token of
#                               $work/tokens.txt as its bearer, per request
#   wrk_round NAME PORT SCRIPT  one wrk round of $secs s on $conns connections; prints
#                               "req/s p99-ms"; a round with any non-2xx reply is invalid
# Needs PostgreSQL on 127.0.0.1 (trust auth, as .ci/run sets up); installs wrk when absent.

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); api_port=$(free_port)
db="stampede_bench_$$"
secret="bench-secret-0123456789abcdef"; admin="bench-admin-token-0123456789"
bench_pids=()
bench_cleanups=() # commands a script adds for what it made beyond these
cleanup() {
  kill "${bench_pids[@]}" 2>/dev/null || true
  for c in "${bench_cleanups[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  sleep 0.5
  psql -w -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
psql -w -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null

start_api() {
  env STAMPEDE_LISTEN="127.0.0.1:$api_port" STAMPEDE_REDIS_URL="redis://127.0.0.1:$redis_port" \
    STAMPEDE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" STAMPEDE_JWT_SECRET="$secret" \
    STAMPEDE_ADMIN_TOKEN="$admin" STAMPEDE_USER_RATE=0 RUST_LOG=warn "$@" \
    "${STAMPEDE_BIN:-./target/release/stampede}" api >"$work/api.log" 2>&1 &
  api_pid=$!
  bench_pids+=("$api_pid")
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && return; sleep 0.1; done
  echo "stampede api did not start (see $work/api.log)" >&2
  exit 1
}

mint_tokens() {
  python3 - "$secret" "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = sys.argv[1].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
for u in sys.argv[2:]:
    body = b64(json.dumps({"sub": u, "exp": exp}).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")
PY
}

create_campaign() {
  curl -sf -XPOST "127.0.0.1:$api_port/v1/campaigns" -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' -d "$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

token_script() {
  cat <<LUA
tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("$1", "$2", {["Authorization"] = "Bearer " .. tokens[i]})
end
LUA
}

wrk_round() {
  local out rps p99 bad
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$3" "http://127.0.0.1:$2/")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 ${rps} req/s, p99 ${p99} ms (non-2xx: ${bad:-0})" >&2
  if [ -n "$bad" ] && [ "$bad" != "0" ]; then
    echo "invalid round: $1 answered $bad requests with non-2xx (see $work/*.log)" >&2
    exit 1
  fi
  echo "$rps $p99"
}
