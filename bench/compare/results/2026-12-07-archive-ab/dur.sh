#!/usr/bin/env bash
# ab.sh OUT SCENARIO N: alternate old/new, fresh server each, server on CPU 0, load on CPU 1.
# SCENARIO: msg (100 pairs, 10 s, window 1) | idle (5000 sessions, hold 10 s)
set -uo pipefail
OUT="$1"; SCEN="$2"; N="$3"; BIN="$4"
mkdir -p "$OUT"
BENCH=/work/main/target/release/stanzad-bench
CONF_OFF=/work/main/bench/compare/stanzad-plain.toml; CONF_ON=/tmp/ab2/stanzad-archive.toml
WORK=$(mktemp -d /tmp/ab-run.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
  -keyout "$WORK/localhost.key" -out "$WORK/localhost.crt" >/dev/null 2>&1
"$BENCH" accounts-file --count 5002 --prefix bench --domain localhost --password benchpass > "$WORK/accounts.txt"
run_one() { # tag bin conf
  local tag="$1" bin="$2" conf="$3" dir="$WORK/$1" port pid i
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin" adduser --from-file "$WORK/accounts.txt" --data-dir "$dir/data" > "$dir/adduser.log" 2>&1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$conf" --data-dir "$dir/data" --c2s-addr "127.0.0.1:$port" \
    --tls-addr off --allow-plaintext --cert "$WORK/localhost.crt" --key "$WORK/localhost.key" > "$dir/stdout" 2>&1 &
  pid=$!
  for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local common=(--server "127.0.0.1:$port" --domain localhost --prefix bench --password benchpass --threads 1 --server-pid "$pid")
  case "$SCEN" in
    msg) timeout 200 taskset -c 1 "$BENCH" msg --pairs 100 --duration 10 --drain-secs 5 --window 1 "${common[@]}" --max-secs 140 --json "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1 ;;
    idle) timeout 400 taskset -c 1 "$BENCH" idle --count 5000 --concurrency 50 --hold 10 "${common[@]}" --max-secs 310 --json "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1 ;;
  esac
  kill -TERM "$pid" 2>/dev/null; for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$pid" 2>/dev/null
  rm -rf "$dir"
}
for i in $(seq "$N"); do
  run_one "old-$i" /tmp/ab2/new/stanzad "$CONF_ON"
  run_one "new-$i" "$BIN" "$CONF_ON"
done
rm -rf "$WORK"
