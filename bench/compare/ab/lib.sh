# Shared by the A/B recipes: a fresh stanzad on a free loopback port, and its stop.
# Source it; BENCH (the load generator) may be set, else the workspace's release build.
HERE_AB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="${BENCH:-$HERE_AB/../../../target/release/stanzad-bench}"

# tls_files DIR: a throwaway certificate for localhost in DIR.
tls_files() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout "$1/localhost.key" -out "$1/localhost.crt" >/dev/null 2>&1
}

# start_server BIN CONF DIR ACCOUNTS [WRAPPER...]: adds ACCOUNTS (a file of
# `accounts-file`) to DIR/data, starts `BIN serve` (behind WRAPPER, e.g. taskset or
# valgrind) and waits until it listens. Sets PORT and PID.
start_server() {
  local bin="$1" conf="$2" dir="$3" accounts="$4" i
  shift 4
  "$bin" adduser --from-file "$accounts" --data-dir "$dir/data" > "$dir/adduser.log" 2>&1
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  RUST_LOG=warn "$@" "$bin" serve --config "$conf" --data-dir "$dir/data" --c2s-addr "127.0.0.1:$PORT" \
    --tls-addr off --allow-plaintext --cert "$(dirname "$accounts")/localhost.crt" \
    --key "$(dirname "$accounts")/localhost.key" > "$dir/stdout" 2>&1 &
  PID=$!
  for i in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
}

# stop_server: SIGTERM, then SIGKILL after 10 s, by PID.
stop_server() {
  local i
  kill -TERM "$PID" 2>/dev/null
  for i in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
}

# common_args: the load generator's connection arguments for the running server.
common_args() {
  echo --server "127.0.0.1:$PORT" --domain localhost --prefix bench --password benchpass --threads 1 --server-pid "$PID"
}
