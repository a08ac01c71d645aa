#!/usr/bin/env bash
# Runs the real binary as a user would: generate the dev certificate, create accounts
# through the admin socket of the running server, log two slixmpp clients in over
# STARTTLS and over direct TLS, chat, then stop the server with SIGTERM.
# usage: tests/interop/run.sh path/to/stanzad
set -euo pipefail
bin=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; wait "$server_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
c2s=$(free_port)
tls=$(free_port)

cd "$work"
"$bin" serve --data-dir data --c2s-addr "127.0.0.1:$c2s" --tls-addr "127.0.0.1:$tls" >server.log 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do [ -S data/admin.sock ] && break; sleep 0.1; done
[ -S data/admin.sock ] || { cat server.log; echo "server did not start"; exit 1; }

echo alice-pw | "$bin" adduser alice@localhost --password-stdin --data-dir data
echo bob-pw | "$bin" adduser bob@localhost --password-stdin --data-dir data
"$bin" users --data-dir data | tee users.txt
grep -qx alice@localhost users.txt && grep -qx bob@localhost users.txt
[ "$(stat -c %a certs/localhost.key)" = 600 ] || { echo "key file is not 0600"; exit 1; }

status=0 passed=0 failed=0
run() { if python3 "$here/$1" "${@:2}"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi; }
run slixmpp_chat.py 127.0.0.1 "$c2s" certs/localhost.crt
run slixmpp_chat.py 127.0.0.1 "$tls" certs/localhost.crt --direct-tls
run slixmpp_subscribe.py 127.0.0.1 "$c2s" certs/localhost.crt
run slixmpp_sm_mam.py 127.0.0.1 "$c2s" certs/localhost.crt
run slixmpp_vcard_private.py 127.0.0.1 "$c2s" certs/localhost.crt
run slixmpp_adhoc_retention.py 127.0.0.1 "$c2s" certs/localhost.crt

kill -TERM "$server_pid"
wait "$server_pid" || status=1
server_pid=""
grep -q "storage flushed" server.log || { echo "no clean shutdown"; status=1; }
if [ "$status" -ne 0 ]; then cat server.log; fi
echo "interop: $passed passed, $failed failed"
exit "$status"
