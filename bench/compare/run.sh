#!/usr/bin/env bash
# Runs the same load scenarios against stanzad, Prosody and ejabberd on loopback, each
# server started fresh in a temp dir for every round, rounds interleaved
# (round 1: stanzad, prosody, ejabberd; round 2: ...). Results: OUTDIR/ROUND-SERVER-SCENARIO.json
# (stanzad-bench --json), read by summarize.py. See README.md beside this file.
#
# usage: bench/compare/run.sh [--rounds N] [--quick] [--servers "stanzad prosody ejabberd"] [--archive off|on|both] [--scenarios "login-plain msg-closed ..."] [--msg-rate R] [--check-archive] OUTDIR
#
# --archive: the servers' message archive (XEP-0313 MAM) off (default), on, or both (each
# server runs twice a round, off then on; archive-on results are named SERVER+mam, e.g.
# 1-prosody+mam-msg-closed.json). --scenarios: a subset of login-plain login-starttls
# msg-closed msg-open offline query idle, run in that order (default: all but query; query,
# which needs the archive, is added with --archive on|both and runs on archive-on runs only).
# --msg-rate: msg-open's offered rate in msgs/s (default 2000, --quick 200).
# --check-archive: after each run's scenarios, 20 messages stored for an offline account and
# its archive queried, to confirm the archive is on or off as configured (logs/*-archive-check.*).
#
# Environment: KEEP_TMP=1 keeps the temp dirs; BENCH_THREADS (default 1) = stanzad-bench
# --threads; STANZAD_BIN_DIR (default REPO/target/release).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$HERE/../.." && pwd -P)"
BIN_DIR="${STANZAD_BIN_DIR:-$REPO/target/release}"
BENCH="$BIN_DIR/stanzad-bench"
STANZAD="$BIN_DIR/stanzad"
THREADS="${BENCH_THREADS:-1}"
PASSWORD=benchpass
PREFIX=bench
DOMAIN=localhost

usage() {
	sed -n 's/^# usage: //p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

ROUNDS=""
QUICK=0
SERVERS="stanzad prosody ejabberd"
ARCHIVE=off
SCENARIOS=""
CHECK_ARCHIVE=0
RATE=""
OUTDIR=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) [ $# -ge 2 ] || usage; ROUNDS="$2"; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--servers) [ $# -ge 2 ] || usage; SERVERS="$2"; shift 2 ;;
	--archive) [ $# -ge 2 ] || usage; ARCHIVE="$2"; shift 2 ;;
	--scenarios) [ $# -ge 2 ] || usage; SCENARIOS="$2"; shift 2 ;;
	--check-archive) CHECK_ARCHIVE=1; shift ;;
	--msg-rate) [ $# -ge 2 ] || usage; RATE="$2"; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "unknown option: $1" >&2; usage ;;
	*) [ -z "$OUTDIR" ] || usage; OUTDIR="$1"; shift ;;
	esac
done
[ -n "$OUTDIR" ] || usage
case "$ROUNDS" in
"") if [ "$QUICK" = 1 ]; then ROUNDS=1; else ROUNDS=3; fi ;;
*[!0-9]* | 0) echo "--rounds must be a positive integer" >&2; exit 2 ;;
esac
[ "$ROUNDS" -le 100 ] || { echo "--rounds at most 100" >&2; exit 2; }
for s in $SERVERS; do
	case "$s" in
	stanzad | prosody | ejabberd) ;;
	*) echo "unknown server: $s (stanzad, prosody, ejabberd)" >&2; exit 2 ;;
	esac
done
[ -n "${SERVERS// /}" ] || { echo "--servers names no server" >&2; exit 2; }
# The archive settings each server runs with, in this order within a round.
case "$ARCHIVE" in
off) ARCHIVE_MODES="off" ;;
on) ARCHIVE_MODES="on" ;;
both) ARCHIVE_MODES="off on" ;;
*) echo "--archive must be off, on or both" >&2; exit 2 ;;
esac
# Every scenario, in the order a run goes through them.
ALL_SCENARIOS="login-plain login-starttls msg-closed msg-open offline query idle"
if [ -z "$SCENARIOS" ]; then
	SCENARIOS="login-plain login-starttls msg-closed msg-open offline idle"
	[ "$ARCHIVE" = off ] || SCENARIOS="login-plain login-starttls msg-closed msg-open offline query idle"
fi
for sc in $SCENARIOS; do
	case " $ALL_SCENARIOS " in
	*" $sc "*) ;;
	*) echo "unknown scenario: $sc ($ALL_SCENARIOS)" >&2; exit 2 ;;
	esac
done
[ -n "${SCENARIOS// /}" ] || { echo "--scenarios names no scenario" >&2; exit 2; }
wants() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if wants query && [ "$ARCHIVE" = off ]; then
	echo "the query scenario needs the archive: add --archive on or --archive both" >&2
	exit 2
fi

# --- Scenario sizes -------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
	LOGIN_N=100 LOGIN_C=10
	MSG_PAIRS=10 MSG_SECS=2 MSG_RATE=200 MSG_DRAIN=2
	OFFLINE_M=200
	QUERY_M=200 QUERY_PAGE=50
	IDLE_COUNTS="50 200" IDLE_HOLD=2
	REG_C=20 PAUSE=1
else
	LOGIN_N=2000 LOGIN_C=50
	MSG_PAIRS=100 MSG_SECS=10 MSG_RATE=2000 MSG_DRAIN=5
	OFFLINE_M=5000
	QUERY_M=5000 QUERY_PAGE=50
	IDLE_COUNTS="1000 5000" IDLE_HOLD=10
	REG_C=50 PAUSE=3
fi
case "$RATE" in
"") ;;
*[!0-9]* | 0) echo "--msg-rate must be a positive integer" >&2; exit 2 ;;
*) MSG_RATE=$RATE ;;
esac
CHECK_M=20 # --check-archive: messages stored, then looked for in the archive
# Accounts 1..ACCOUNTS serve login, msg and idle (as many as the chosen ones need); the
# offline scenario has its own two (recipient ACCOUNTS+1, sender ACCOUNTS+2) so nothing an
# earlier scenario left is counted; so have the query scenario and the archive check.
ACCOUNTS=0
if wants login-plain || wants login-starttls; then ACCOUNTS=$LOGIN_N; fi
if wants msg-closed || wants msg-open; then [ $((2 * MSG_PAIRS)) -le "$ACCOUNTS" ] || ACCOUNTS=$((2 * MSG_PAIRS)); fi
if wants idle; then for n in $IDLE_COUNTS; do [ "$n" -le "$ACCOUNTS" ] || ACCOUNTS=$n; done; fi
OFFLINE_FIRST=$((ACCOUNTS + 1))
TOTAL_ACCOUNTS=$((ACCOUNTS + 2))
if wants query; then
	QUERY_FIRST=$((TOTAL_ACCOUNTS + 1))
	TOTAL_ACCOUNTS=$((TOTAL_ACCOUNTS + 2))
fi
if [ "$CHECK_ARCHIVE" = 1 ]; then
	CHECK_FIRST=$((TOTAL_ACCOUNTS + 1))
	TOTAL_ACCOUNTS=$((TOTAL_ACCOUNTS + 2))
fi

# --- Prerequisites --------------------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
if [ ! -x "$BENCH" ] || [ ! -x "$STANZAD" ]; then
	echo "build first: (cd $REPO && cargo build --release --workspace)" >&2
	exit 1
fi
need openssl "apt-get install openssl"
need python3 "apt-get install python3"
need pgrep "apt-get install procps"
need timeout coreutils
for s in $SERVERS; do
	case "$s" in
	prosody) need prosody "apt-get install prosody" ;;
	ejabberd) need ejabberdctl "apt-get install ejabberd" ;;
	esac
done
if [ "$(id -u)" != 0 ]; then
	case " $SERVERS " in *" ejabberd "*) echo "ejabberdctl must run as root (it switches to the ejabberd user)" >&2; exit 1 ;; esac
fi

if compgen -G "$OUTDIR/[0-9]*-*.json" >/dev/null; then
	echo "$OUTDIR already holds results: use a new OUTDIR (summarize.py reads every ROUND-SERVER-SCENARIO.json)" >&2
	exit 2
fi
mkdir -p "$OUTDIR/logs"
OUTDIR="$(cd "$OUTDIR" && pwd -P)"

# --- Process bookkeeping: everything started is stopped by PID ------------------------------
SERVER_PID=""   # the server process itself (stanzad, lua5.x, beam.smp)
LAUNCHER_PID="" # what we started in the background (setpriv'd prosody / ejabberdctl)
BENCH_PID=""
RUNDIR=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL.
stop_pid() {
	local pid="$1" secs="$2" i
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "PID $pid did not stop within ${secs}s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

stop_server() {
	local pid
	stop_pid "$SERVER_PID" 20
	stop_pid "$LAUNCHER_PID" 5
	# Leftovers of this run dir only (e.g. ejabberdctl's su/sh wrappers), each by PID.
	if [ -n "$RUNDIR" ]; then
		for pid in $(pgrep -f -- "$RUNDIR" || true); do
			[ "$pid" != "$$" ] && stop_pid "$pid" 5
		done
	fi
	SERVER_PID="" LAUNCHER_PID=""
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop_pid "$BENCH_PID" 5
	stop_server
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		log "temp dir kept: $WORK"
	elif [ -n "$WORK" ]; then
		rm -rf "$WORK"
	fi
	exit "$status"
}
WORK=""
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK="$(mktemp -d /tmp/stanzad-compare.XXXXXX)"
chmod 711 "$WORK" # the prosody and ejabberd users must reach their run dirs inside
# Copies of the binaries: a concurrent `cargo build` must not swap them mid-run.
mkdir -p "$WORK/bin"
cp "$BENCH" "$STANZAD" "$WORK/bin/"
BENCH="$WORK/bin/stanzad-bench"
STANZAD="$WORK/bin/stanzad"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# find_pid DIR COMM: the process whose command line names DIR and whose name is COMM.
find_pid() {
	local pid
	for pid in $(pgrep -f -- "$1" || true); do
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# wait_ready PORT COMM: up to 60 s for the server's process and listener.
wait_ready() {
	local port="$1" comm="$2" i
	for ((i = 0; i < 600; i++)); do
		if [ -z "$SERVER_PID" ]; then SERVER_PID="$(find_pid "$RUNDIR" "$comm" || true)"; fi
		if [ -n "$SERVER_PID" ] && port_open "$port"; then
			sleep 0.5 # let the rest of the startup finish
			return 0
		fi
		if [ -n "$LAUNCHER_PID" ] && ! alive "$LAUNCHER_PID"; then break; fi
		sleep 0.1
	done
	log "server did not come up on port $port; its output:"
	tail -n 30 "$RUNDIR"/*.log "$RUNDIR"/log/*.log "$RUNDIR"/stdout 2>/dev/null >&2 || true
	return 1
}

# bench NAME SUBCOMMAND ARGS...: one stanzad-bench run into OUTDIR/NAME.json, bounded by
# its --max-secs and, as a backstop, by timeout(1). A failed run is recorded, not fatal.
bench() {
	local name="$1" max="$2"
	shift 2
	local rc=0
	timeout --kill-after=10 $((max + 60)) "$BENCH" "$@" \
		--server "127.0.0.1:$PORT" --domain "$DOMAIN" --prefix "$PREFIX" --password "$PASSWORD" \
		--threads "$THREADS" --max-secs "$max" --server-pid "$SERVER_PID" \
		--json "$OUTDIR/$name.json" >"$OUTDIR/logs/$name.txt" 2>&1 &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	if [ "$rc" = 0 ]; then
		log "  $name: ok"
	else
		log "  $name: exit $rc (see logs/$name.txt)"
		FAILED="$FAILED $name"
	fi
	alive "$SERVER_PID" || { log "  the server died"; return 1; }
	sleep "$PAUSE"
}

# --- Certificates (one self-signed pair for every server and round) -------------------------
mkdir -p "$WORK/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$DOMAIN" \
	-addext "subjectAltName=DNS:$DOMAIN" \
	-keyout "$WORK/certs/$DOMAIN.key" -out "$WORK/certs/$DOMAIN.crt" >/dev/null 2>&1
"$BENCH" accounts-file --count "$TOTAL_ACCOUNTS" --prefix "$PREFIX" --domain "$DOMAIN" \
	--password "$PASSWORD" >"$WORK/accounts.txt"

# --- Starting each server -------------------------------------------------------------------
# RUN_ARCHIVE (off or on) is the archive setting of the run being started (set by run_server).
RUN_ARCHIVE=off

start_stanzad() {
	mkdir -p "$RUNDIR/certs"
	cp "$WORK/certs/$DOMAIN.crt" "$WORK/certs/$DOMAIN.key" "$RUNDIR/certs/"
	log "  adding $TOTAL_ACCOUNTS accounts (stanzad adduser --from-file)"
	"$STANZAD" adduser --from-file "$WORK/accounts.txt" --data-dir "$RUNDIR/data" >"$RUNDIR/adduser.log" 2>&1 || {
		log "stanzad adduser failed:"
		tail -n 5 "$RUNDIR/adduser.log" >&2
		return 1
	}
	# The two configurations differ only in [archive] enabled.
	local config="$HERE/stanzad-plain.toml"
	[ "$RUN_ARCHIVE" = off ] || config="$HERE/stanzad-archive.toml"
	RUST_LOG=warn "$STANZAD" serve --config "$config" --data-dir "$RUNDIR/data" \
		--c2s-addr "127.0.0.1:$PORT" --tls-addr off --allow-plaintext \
		--cert "$RUNDIR/certs/$DOMAIN.crt" --key "$RUNDIR/certs/$DOMAIN.key" >"$RUNDIR/stdout" 2>&1 &
	LAUNCHER_PID=$!
	SERVER_PID=$LAUNCHER_PID
	wait_ready "$PORT" stanzad
}

start_prosody() {
	mkdir -p "$RUNDIR/data" "$RUNDIR/certs"
	cp "$WORK/certs/$DOMAIN.crt" "$WORK/certs/$DOMAIN.key" "$RUNDIR/certs/"
	# @MAM_MODULE@: mod_mam in modules_enabled with the archive on, nothing with it off.
	local mam=""
	[ "$RUN_ARCHIVE" = off ] || mam='"mam"; -- run.sh --archive on'
	sed -e "s|@RUNDIR@|$RUNDIR|g" -e "s|@PORT@|$PORT|g" -e "s|@MAM_MODULE@|$mam|" \
		"$HERE/prosody.cfg.lua.in" >"$RUNDIR/prosody.cfg.lua"
	# prosody's shebang names its Lua (lua5.4 on Debian 12): the process to find and sample.
	local lua
	lua="$(head -n 1 "$(command -v prosody)" | sed -n 's|^#!.*/env  *||p; s|^#!\(/[^ ]*\).*|\1|p' | head -n 1)"
	lua="$(basename "${lua:-lua}")"
	if [ "$(id -u)" = 0 ]; then
		# Prosody refuses to run as root: run it as the prosody user.
		chown -R prosody:prosody "$RUNDIR"
		setpriv --reuid=prosody --regid=prosody --init-groups \
			prosody --config "$RUNDIR/prosody.cfg.lua" -F >"$RUNDIR/stdout" 2>&1 &
	else
		prosody --config "$RUNDIR/prosody.cfg.lua" -F >"$RUNDIR/stdout" 2>&1 &
	fi
	LAUNCHER_PID=$!
	wait_ready "$PORT" "$lua"
}

start_ejabberd() {
	mkdir -p "$RUNDIR/db" "$RUNDIR/log" "$RUNDIR/certs"
	cat "$WORK/certs/$DOMAIN.crt" "$WORK/certs/$DOMAIN.key" >"$RUNDIR/certs/ejabberd.pem"
	# @MOD_MAM@: mod_mam in modules with the archive on, nothing with it off.
	local mam=""
	[ "$RUN_ARCHIVE" = off ] || mam='mod_mam: {db_type: mnesia, default: always} # run.sh --archive on'
	sed -e "s|@RUNDIR@|$RUNDIR|g" -e "s|@PORT@|$PORT|g" -e "s|@MOD_MAM@|$mam|" \
		"$HERE/ejabberd.yml.in" >"$RUNDIR/ejabberd.yml"
	[ -f /etc/ejabberd/inetrc ] && cp /etc/ejabberd/inetrc "$RUNDIR/inetrc"
	# Erlang distribution on a loopback port of its own, without epmd (no daemon left behind).
	local dist_port
	dist_port="$(free_port)"
	cat >"$RUNDIR/ejabberdctl.cfg" <<-EOF
		ERLANG_NODE=ejabberd-bench-$PORT@localhost
		ERL_DIST_PORT=$dist_port
		ERL_OPTIONS="-setcookie stanzadbench$PORT -kernel inet_dist_use_interface {127,0,0,1}"
		EJABBERD_PID_PATH=$RUNDIR/ejabberd.pid
	EOF
	chown -R ejabberd:ejabberd "$RUNDIR"
	ejabberdctl --config-dir "$RUNDIR" --config "$RUNDIR/ejabberd.yml" --ctl-config "$RUNDIR/ejabberdctl.cfg" \
		--logs "$RUNDIR/log" --spool "$RUNDIR/db" foreground >"$RUNDIR/stdout" 2>&1 </dev/null &
	LAUNCHER_PID=$!
	wait_ready "$PORT" beam.smp
}

# --- One server, one round ------------------------------------------------------------------
# run_scenarios TAG: the chosen scenarios, in ALL_SCENARIOS order; returns 1 if the server died.
run_scenarios() {
	local tag="$1" n
	if wants login-plain; then
		bench "$tag-login-plain" 600 login --count "$LOGIN_N" --concurrency "$LOGIN_C" || return 1
	fi
	if wants login-starttls; then
		bench "$tag-login-starttls" 600 login --count "$LOGIN_N" --concurrency "$LOGIN_C" --starttls --insecure || return 1
	fi
	if wants msg-closed; then
		bench "$tag-msg-closed" $((MSG_SECS + MSG_DRAIN + 120)) msg --pairs "$MSG_PAIRS" --duration "$MSG_SECS" \
			--drain-secs "$MSG_DRAIN" --window 1 || return 1
	fi
	if wants msg-open; then
		bench "$tag-msg-open" $((MSG_SECS + MSG_DRAIN + 120)) msg --pairs "$MSG_PAIRS" --duration "$MSG_SECS" \
			--drain-secs "$MSG_DRAIN" --rate "$MSG_RATE" || return 1
	fi
	if wants offline; then
		bench "$tag-offline" 600 offline --first "$OFFLINE_FIRST" --messages "$OFFLINE_M" || return 1
	fi
	# The archive's own scenario: M messages archived for an offline account, which then
	# pages through its archive. Nothing to measure with the archive off.
	if wants query && [ "$RUN_ARCHIVE" = on ]; then
		bench "$tag-query" 600 query --first "$QUERY_FIRST" --messages "$QUERY_M" --page "$QUERY_PAGE" || return 1
	fi
	if wants idle; then
		for n in $IDLE_COUNTS; do
			bench "$tag-idle-$n" $((IDLE_HOLD + 300)) idle --count "$n" --concurrency 50 --hold "$IDLE_HOLD" || return 1
		done
	fi
	return 0
}

# check_archive TAG: CHECK_M messages stored for an offline account (as in `offline`), then
# that account queries its archive (stanzad-bench query). Archive on: every message must
# come back. Archive off: the server must answer the query with an error (and not bounce the
# messages). Output in OUTDIR/logs/TAG-archive-check.{txt,json}, not read by summarize.py.
check_archive() {
	local tag="$1" rc=0 out="$OUTDIR/logs/$1-archive-check" found verdict
	timeout --kill-after=10 120 "$BENCH" query --first "$CHECK_FIRST" --messages "$CHECK_M" --page 10 \
		--server "127.0.0.1:$PORT" --domain "$DOMAIN" --prefix "$PREFIX" --password "$PASSWORD" \
		--threads "$THREADS" --max-secs 60 --server-pid "$SERVER_PID" \
		--json "$out.json" >"$out.txt" 2>&1 &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	found="$(sed -n 's/^  results  *\([0-9][0-9]*\).*/\1/p' "$out.txt" | head -n 1)"
	if [ "$RUN_ARCHIVE" = on ]; then
		if [ "$rc" = 0 ] && [ "${found:-0}" -ge "$CHECK_M" ]; then
			verdict="on, as configured: $CHECK_M stored, $found read back from the archive"
		else
			verdict="NOT on: exit $rc, ${found:-no} results"
		fi
	elif [ "$rc" != 0 ] && grep -q 'query q0: ' "$out.txt" && ! grep -Eq '^  bounced +[1-9]' "$out.txt"; then
		verdict="off, as configured: the archive query answered $(grep -o 'query q0: [a-z-]*' "$out.txt" | head -n 1 | cut -d' ' -f3)"
	else
		verdict="NOT shown off: exit $rc, ${found:-no} results"
	fi
	log "  archive check: $verdict (logs/$tag-archive-check.txt)"
	echo "$tag: $verdict" >>"$OUTDIR/archive-check.txt"
	case "$verdict" in NOT*) FAILED="$FAILED $tag-archive-check" ;; esac
	return 0
}

# run_server ROUND SERVER ARCHIVE: one fresh server, the chosen scenarios. Archive-on results
# are named SERVER+mam; the temp dir has no "+" in its name (pgrep -f reads it as a regex).
run_server() {
	local round="$1" server="$2" name="$2" tag
	RUN_ARCHIVE="$3"
	[ "$RUN_ARCHIVE" = off ] || name="$server+mam"
	tag="$round-$name"
	RUNDIR="$WORK/$round-$server-archive-$RUN_ARCHIVE"
	mkdir -p "$RUNDIR"
	PORT="$(free_port)"
	log "round $round: $server, archive $RUN_ARCHIVE ($name), on 127.0.0.1:$PORT"
	"start_$server" || { FAILED="$FAILED $tag-start"; stop_server; return 0; }
	log "  server PID $SERVER_PID ($(cat "/proc/$SERVER_PID/comm"))"
	if [ "$server" != stanzad ]; then
		# In-band registration (XEP-0077), REG_C at a time: far faster than one
		# prosodyctl/ejabberdctl process per account.
		log "  registering $TOTAL_ACCOUNTS accounts in-band"
		bench "$tag-register" 900 register --count "$TOTAL_ACCOUNTS" --concurrency "$REG_C" || true
	fi
	if run_scenarios "$tag"; then
		if [ "$CHECK_ARCHIVE" = 1 ]; then check_archive "$tag"; fi
	else
		log "  stopped $name's scenarios early"
	fi
	stop_server
	# Keep the server's own log with the results.
	for f in "$RUNDIR/stdout" "$RUNDIR/prosody.log" "$RUNDIR/log/ejabberd.log" "$RUNDIR/log/error.log"; do
		[ -s "$f" ] && cp "$f" "$OUTDIR/logs/$tag-server-$(basename "$f")"
	done
	[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$RUNDIR"
	RUNDIR=""
}

# --- Record what ran ------------------------------------------------------------------------
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host: $(uname -srm), $(nproc) cores"
	echo "stanzad: $("$STANZAD" --version 2>/dev/null) (HEAD $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', src modified'); binary sha256 $(sha256sum "$STANZAD" | cut -c1-12))"
	echo "prosody: $(cat /usr/lib/prosody/prosody.version 2>/dev/null || dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '-')"
	echo "ejabberd: $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo '-'), erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo '-')"
	echo "rounds: $ROUNDS  quick: $QUICK  servers: $SERVERS  archive: $ARCHIVE  bench threads: $THREADS"
	echo "scenarios: $SCENARIOS$([ "$CHECK_ARCHIVE" = 0 ] || echo "  (+ archive check, $CHECK_M msgs)")"
	echo "login: N=$LOGIN_N C=$LOGIN_C  msg: pairs=$MSG_PAIRS duration=${MSG_SECS}s rate=$MSG_RATE/s" \
		" offline: M=$OFFLINE_M  query: M=$QUERY_M page=$QUERY_PAGE  idle: $IDLE_COUNTS hold=${IDLE_HOLD}s  accounts: $TOTAL_ACCOUNTS"
} >"$OUTDIR/params.txt"
cat "$OUTDIR/params.txt" >&2

FAILED=""
for ((round = 1; round <= ROUNDS; round++)); do
	for server in $SERVERS; do
		for archive in $ARCHIVE_MODES; do
			run_server "$round" "$server" "$archive"
		done
	done
done

if [ -n "$FAILED" ]; then
	log "runs that failed or reported failures:$FAILED"
	echo "failed:$FAILED" >>"$OUTDIR/params.txt"
fi
log "done: python3 $HERE/summarize.py $OUTDIR"
python3 "$HERE/summarize.py" "$OUTDIR" || true
