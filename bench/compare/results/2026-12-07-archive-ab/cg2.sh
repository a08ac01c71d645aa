#!/usr/bin/env bash
# cg.sh TAG BIN PAIRS: the server under callgrind, a fixed-rate msg load; prints total Ir.
set -uo pipefail
TAG="$1"; BIN="$2"; PAIRS="$3"
BENCH=/work/main/target/release/stanzad-bench
CONF=${CONF:-/work/main/bench/compare/stanzad-plain.toml}
W=$(mktemp -d /tmp/cg-run.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=localhost" -keyout "$W/k" -out "$W/c" >/dev/null 2>&1
"$BENCH" accounts-file --count 100 --prefix bench --domain localhost --password benchpass > "$W/accounts.txt"
"$BIN" adduser --from-file "$W/accounts.txt" --data-dir "$W/data" > /dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file=/tmp/ab2/cg-$TAG.cg "$BIN" serve --config "$CONF" --data-dir "$W/data" \
  --c2s-addr "127.0.0.1:$port" --tls-addr off --allow-plaintext --cert "$W/c" --key "$W/k" > "$W/out" 2>&1 &
pid=$!
for i in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
timeout 300 "$BENCH" msg --pairs "$PAIRS" --duration 5 --rate 200 --drain-secs 5 --server "127.0.0.1:$port" --domain localhost \
  --prefix bench --password benchpass --threads 1 --max-secs 200 --json /tmp/ab2/cg-$TAG.json > /tmp/ab2/cg-$TAG.benchlog 2>&1
kill -TERM "$pid"; for i in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$pid" 2>/dev/null
rm -rf "$W"
grep -E "^(summary|totals):" /tmp/ab2/cg-$TAG.cg
