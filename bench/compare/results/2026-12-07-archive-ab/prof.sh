#!/usr/bin/env bash
set -uo pipefail
BIN=$1; CONF=$2; OUT=$3
BENCH=/work/main/target/release/stanzad-bench
W=$(mktemp -d /tmp/prof.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=localhost" -keyout "$W/k" -out "$W/c" >/dev/null 2>&1
"$BENCH" accounts-file --count 202 --prefix bench --domain localhost --password benchpass > "$W/accounts.txt"
"$BIN" adduser --from-file "$W/accounts.txt" --data-dir "$W/data" > /dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$CONF" --data-dir "$W/data" --c2s-addr "127.0.0.1:$port" --tls-addr off --allow-plaintext --cert "$W/c" --key "$W/k" > "$W/out" 2>&1 &
pid=$!
for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(sleep 4; timeout 12 perf record -e cpu-clock -F 499 -g -o "$OUT" -p "$pid" -- sleep 8 >/dev/null 2>&1) &
perf_pid=$!
timeout 100 taskset -c 1 "$BENCH" msg --pairs 100 --duration 14 --drain-secs 3 --window 1 --server "127.0.0.1:$port" --domain localhost --prefix bench --password benchpass --threads 1 --server-pid "$pid" --max-secs 60 > "$OUT.bench" 2>&1
wait "$perf_pid" 2>/dev/null || true
kill -TERM $pid; for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -KILL $pid 2>/dev/null
rm -rf "$W"
