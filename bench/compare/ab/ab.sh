#!/usr/bin/env bash
# ab.sh OUT SCENARIO N OLD_BIN OLD_CONF NEW_BIN NEW_CONF: N pairs, old then new, each on a
# fresh server with 5 002 accounts, the server pinned to CPU 0 and the load generator to
# CPU 1. Results: OUT/old-I.json, OUT/new-I.json (sum.py reads them).
# SCENARIO: msg (100 pairs, 10 s, window 1) | idle (5 000 sessions held 10 s)
# Two binaries with one configuration compare code; one binary with two configurations
# compares settings (the archive off and on: ../stanzad-plain.toml, ../stanzad-archive.toml).
set -uo pipefail
OUT="$1"; SCEN="$2"; N="$3"; OLD_BIN="$4"; OLD_CONF="$5"; NEW_BIN="$6"; NEW_CONF="$7"
source "$(dirname "$0")/lib.sh"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ab-run.XXXXXX)
tls_files "$WORK"
"$BENCH" accounts-file --count 5002 --prefix bench --domain localhost --password benchpass > "$WORK/accounts.txt"
run_one() { # tag bin conf
  local tag="$1" dir="$WORK/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  start_server "$2" "$3" "$dir" "$WORK/accounts.txt" taskset -c 0
  # shellcheck disable=SC2046 # common_args is a list of words
  case "$SCEN" in
    msg) timeout 200 taskset -c 1 "$BENCH" msg --pairs 100 --duration 10 --drain-secs 5 --window 1 $(common_args) \
      --max-secs 140 --json "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1 ;;
    idle) timeout 400 taskset -c 1 "$BENCH" idle --count 5000 --concurrency 50 --hold 10 $(common_args) \
      --max-secs 310 --json "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1 ;;
  esac
  stop_server
  rm -rf "$dir"
}
for i in $(seq "$N"); do
  run_one "old-$i" "$OLD_BIN" "$OLD_CONF"
  run_one "new-$i" "$NEW_BIN" "$NEW_CONF"
done
rm -rf "$WORK"
