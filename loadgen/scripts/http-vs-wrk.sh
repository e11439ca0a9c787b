#!/usr/bin/env bash
# http-vs-wrk.sh — is stampede-loadgen's client as fast as wrk?
#
# Builds the load generator (release), starts a trivial target, and runs wrk and
# `stampede-loadgen http` against the same URL with the same connections, threads and
# duration, alternating ROUNDS times so that a noisy neighbour hurts both alike. Prints each
# round, then the median rates and their ratio. Goal: loadgen >= 0.90 x wrk.
#
# The target is the engine's /healthz when TARGET is set (TARGET=http://127.0.0.1:8080),
# else the built-in `stampede-loadgen hello` server on a free loopback port.
#
# Settings (environment):
#   TARGET       engine base URL; unset: the built-in hello server
#   CONNECTIONS  keep-alive connections for both tools           (default 64)
#   DURATION     seconds per run                                  (default 10)
#   THREADS      wrk threads = loadgen runtime threads            (default 1)
#   ROUNDS       alternating wrk/loadgen pairs                    (default 3)
#   CLIENT       loadgen --client: lean or hyper                  (default lean)
#   PIN          1: hello server on CPU 0, both clients on CPU 1 (default 1 with the hello
#                server and at least 2 CPUs, else 0)
#   STRICT       1: exit 1 when the ratio is below 0.90
#   CARGO_TARGET_DIR  where cargo builds (default: the workspace's target/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
connections="${CONNECTIONS:-64}"
duration="${DURATION:-10}"
threads="${THREADS:-1}"
rounds="${ROUNDS:-3}"
client="${CLIENT:-lean}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

echo "== building stampede-loadgen (release)"
(cd "$root" && cargo build --release -p stampede-loadgen --quiet)
bin="$target_dir/release/stampede-loadgen"

if ! command -v wrk >/dev/null 2>&1; then
    echo "== installing wrk"
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    $sudo apt-get install -y wrk >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; }
fi

server_pid=""
log="$(mktemp)"
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -f "$log"
}
trap cleanup EXIT

ncpu="$(nproc 2>/dev/null || echo 1)"
if [ -n "${TARGET:-}" ]; then
    url="${TARGET%/}/healthz"
    pin="${PIN:-0}"
else
    pin="${PIN:-$([ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1 && echo 1 || echo 0)}"
    server_cpu=""
    [ "$pin" = 1 ] && server_cpu="taskset -c 0"
    # Port 0: the kernel picks a free port, which the server prints once it listens.
    $server_cpu "$bin" hello --listen 127.0.0.1:0 --threads "$threads" 2>"$log" &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$log" && break
        sleep 0.05
    done
    url="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$log")/"
    [ "$url" != "/" ] || { echo "the hello server did not start:"; cat "$log"; exit 1; }
fi
client_cpu=""
[ "$pin" = 1 ] && client_cpu="taskset -c 1"

echo "== $url: $connections connections, $threads thread(s), ${duration}s per run, $rounds round(s), loadgen --client $client, pinned: $pin"
wrk_rates=()
lg_rates=()
for round in $(seq "$rounds"); do
    w="$($client_cpu wrk -t"$threads" -c"$connections" -d"${duration}s" "$url" | awk '/^Requests\/sec/ {print $2}')"
    l="$($client_cpu "$bin" http --url "$url" --concurrency "$connections" --threads "$threads" \
        --duration "${duration}s" --client "$client" --json --quiet |
        sed -n 's/.*"throughput_rps":\([0-9.e+-]*\).*/\1/p')"
    [ -n "$w" ] && [ -n "$l" ] || { echo "a run printed no rate (wrk: '$w', loadgen: '$l')"; exit 1; }
    wrk_rates+=("$w")
    lg_rates+=("$l")
    awk -v r="$round" -v w="$w" -v l="$l" \
        'BEGIN { printf "round %d: wrk %10.0f req/s   stampede-loadgen %10.0f req/s   ratio %.2f\n", r, w, l, l / w }'
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
w="$(median "${wrk_rates[@]}")"
l="$(median "${lg_rates[@]}")"
ratio="$(awk -v w="$w" -v l="$l" 'BEGIN { printf "%.2f", l / w }')"
awk -v w="$w" -v l="$l" -v r="$ratio" \
    'BEGIN { printf "median:  wrk %10.0f req/s   stampede-loadgen %10.0f req/s   ratio %s (goal >= 0.90)\n", w, l, r }'
if awk -v r="$ratio" 'BEGIN { exit !(r < 0.90) }'; then
    echo "BELOW GOAL"
    [ "${STRICT:-0}" = 1 ] && exit 1
fi
exit 0
