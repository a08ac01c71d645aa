#!/usr/bin/env bash
# profile.sh BIN CONF OUT: `perf record -e cpu-clock -g` of the server for 8 s in the middle
# of a 14 s `msg` load (100 pairs, window 1); the load generator's report in OUT.bench.
# Read it with `perf report -i OUT --no-children --sort sym`.
set -uo pipefail
BIN="$1"; CONF="$2"; OUT="$3"
source "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/prof.XXXXXX)
tls_files "$W"
"$BENCH" accounts-file --count 202 --prefix bench --domain localhost --password benchpass > "$W/accounts.txt"
mkdir -p "$W/server"
start_server "$BIN" "$CONF" "$W/server" "$W/accounts.txt" taskset -c 0
(sleep 4; timeout 12 perf record -e cpu-clock -F 499 -g -o "$OUT" -p "$PID" -- sleep 8 >/dev/null 2>&1) &
perf_pid=$!
# shellcheck disable=SC2046
timeout 100 taskset -c 1 "$BENCH" msg --pairs 100 --duration 14 --drain-secs 3 --window 1 $(common_args) \
  --max-secs 60 > "$OUT.bench" 2>&1
wait "$perf_pid" 2>/dev/null
stop_server
rm -rf "$W"
