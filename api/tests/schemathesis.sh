#!/usr/bin/env bash
# The OpenAPI-driven test (issue #16): schemathesis generates requests from the document
# the server serves (property-based, valid and invalid: examples, coverage, fuzzing, and
# stateful runs that follow the document's links from POST /v1/campaigns) and sends them
# to the real `stampede serve`, first with the admin token, then with a user JWT. It
# fails on any 5xx, any reply that disagrees with the document (status, content type,
# body schema, a valid request refused, an invalid one accepted) and any error reply
# that leaks an internal detail (see schemathesis/stampede_hooks.py).
#
# Deterministic: schemathesis' deterministic generation, no example database kept
# between runs, one worker, a fresh SQLite database per run. A few thousand requests,
# well under a minute on two cores once the binary is built.
#
# Usage: api/tests/schemathesis.sh   (STAMPEDE_BIN=path skips the build;
#        SCHEMATHESIS_MAX_EXAMPLES=n sets the cases per operation, default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."

here="$PWD/api/tests/schemathesis"
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}

if ! command -v schemathesis >/dev/null; then
  echo "schemathesis is not installed (pip install schemathesis)" >&2
  exit 2
fi

bin=${STAMPEDE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --locked -q -p stampede-api --bin stampede
  bin="${CARGO_TARGET_DIR:-target}/debug/stampede"
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin="stampede-development-admin-token"

# The development secrets (the dev admin token, the dev JWT secret): nothing else is set.
STAMPEDE_LISTEN="127.0.0.1:$port" STAMPEDE_DATABASE_URL="sqlite://$work/stampede.db" \
  "$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null
user=$("$bin" token --user schemathesis-user)

run() { # name, token
  echo "== schemathesis as $1"
  # From the scratch directory: schemathesis keeps its cache (.schemathesis/) in the
  # working directory, which must not be the repository.
  (cd "$work" && SCHEMATHESIS_HOOKS=stampede_hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
    schemathesis run "$base/openapi.json" --url "$base" \
    -H "Authorization: Bearer $2" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --generation-deterministic \
    --workers 1 \
    --request-timeout 15 \
    --no-color)
}

status=0
run admin "$admin" || status=1
# The admin run may have blocked the user or the loopback address at random; lift
# every block, so the user run reaches the routes behind the blocklist.
curl -fsS -H "Authorization: Bearer $admin" "$base/v1/admin/blocklist" |
  python3 -c 'import json, sys; [print(json.dumps({k: v for k, v in e.items() if k != "expires_at"})) for e in json.load(sys.stdin)["entries"]]' |
  while read -r body; do
    curl -fsS -X DELETE -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
      -d "$body" "$base/v1/admin/blocklist" >/dev/null
  done
run user "$user" || status=1

if [ "$status" -ne 0 ]; then
  echo "== schemathesis found disagreements (server log: last lines)" >&2
  tail -n 20 "$work/server.log" >&2
fi
exit "$status"
