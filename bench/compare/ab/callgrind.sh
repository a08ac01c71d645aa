#!/usr/bin/env bash
# callgrind.sh TAG BIN CONF PAIRS: the server under `valgrind --tool=callgrind`
# (instructions, not seconds: repeatable whatever else the machine does), PAIRS pairs at
# a fixed 200 msgs/s for 5 s (1 000 messages). Writes cg-TAG.cg, cg-TAG.json and
# cg-TAG.benchlog in the current directory; cgsum.py sums them.
set -uo pipefail
TAG="$1"; BIN="$2"; CONF="$3"; PAIRS="$4"
source "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/cg-run.XXXXXX)
tls_files "$W"
"$BENCH" accounts-file --count 100 --prefix bench --domain localhost --password benchpass > "$W/accounts.txt"
mkdir -p "$W/server"
start_server "$BIN" "$CONF" "$W/server" "$W/accounts.txt" valgrind --tool=callgrind --callgrind-out-file="$PWD/cg-$TAG.cg"
# shellcheck disable=SC2046
timeout 300 "$BENCH" msg --pairs "$PAIRS" --duration 5 --rate 200 --drain-secs 5 $(common_args) \
  --max-secs 200 --json "cg-$TAG.json" > "cg-$TAG.benchlog" 2>&1
stop_server
rm -rf "$W"
