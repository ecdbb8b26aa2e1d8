#!/bin/bash
# lepton-broker as an operator runs it (issue 6, "Security and
# operations"): the configuration file and the flags (errors with
# FILE:LINE:COL, --check, flags over the file), the life cycle (SIGTERM and
# SIGINT, the data directory's lock, a port in use, log levels), amqp and
# amqps listeners, SASL with a users file (salted SCRAM-SHA-256 and PLAIN
# lines, PLAIN only over TLS, ANONYMOUS only when allowed), access rules,
# limits (connections in total and per user, message size, queue depth with
# reject and block), the Prometheus endpoint, $management, dead letters and
# redelivery, and `make run`.  Everything through the real programs:
# lepton-broker, lepton-send, lepton-recv, and Proton clients
# (tests/interop/lib/pyrecv.py, pysend.py, tests/system/broker_peer.py)
# when /usr/bin/python3 has proton.
#
# Environment (set by ctest): LEPTON_BUILD_DIR, LEPTON_SOURCE_DIR,
# LEPTON_PYTHON (default /usr/bin/python3: the one that imports Debian's
# proton).  Brokers listen on 127.0.0.1 only, on free ports (make run on
# 5672, skipped when that is taken); only the PIDs started here are
# signalled, and every wait is bounded.
set -u

build=${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR not set}
src=${LEPTON_SOURCE_DIR:?LEPTON_SOURCE_DIR not set}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
BROKER=$build/lepton-broker
SEND=$build/lepton-send
RECV=$build/lepton-recv
PYLIB=$src/tests/interop/lib
PEER=$src/tests/system/broker_peer.py

for t in "$BROKER" "$SEND" "$RECV"; do
    [ -x "$t" ] || { echo "no $t: build first" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
running=() # background PIDs not yet waited for (so never reused)
cleanup() {
    stop_running
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Relative paths in a configuration file are relative to the file, never
# to the current directory: run from an empty one and check it stays so.
mkdir "$tmp/cwd"
cd "$tmp/cwd" || exit 1

# broker NAME "PORT..." ARGS...: lepton-broker ARGS in the background (log
# in $tmp/NAME.err) until every PORT listens; sets BPID.  False when it
# does not come up.
broker() {
    local name=$1 ports=$2 p
    shift 2
    start "$name" 120 "$BROKER" "$@"
    BPID=$PID
    for p in $ports; do
        if ! wait_listen "$p" 10 any; then
            ko "broker $name ($*) does not listen on $p"
            show "$tmp/$name.err"
            return 1
        fi
    done
}
# stop_broker PID NAME [SIGNAL]: stops it; a clean stop exits 0 and logs
# "stopped" last.
stop_broker() {
    kill -"${3:-TERM}" "$1" 2>/dev/null
    finish "$1" 15
    if [ $STATUS -eq 0 ] && tail -1 "$tmp/$2.err" | grep -q ' stopped$'; then ok; else
        ko "broker $2: stopped by SIG${3:-TERM} with status $STATUS (want 0 and \"stopped\" last)"
        show "$tmp/$2.err"
    fi
}
# metric NAME-AND-LABELS PORT: the value of one sample of GET /metrics
metric() {
    "$PY" - "$1" "$2" <<'EOF'
import sys, urllib.request
want, port = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(want + " "):
        print(line.split()[-1])
EOF
}

have_proton=0
"$PY" -c 'import proton' 2>/dev/null && have_proton=1

# Test credentials: TLS certificates, and a users file with alice's salted
# SCRAM-SHA-256 line (made by the script in docs/broker.md) and bob's
# PLAIN line.
have_tls=0
if command -v openssl >/dev/null && sh "$src/tests/tls/make-certs.sh" "$tmp/certs" >/dev/null 2>&1; then
    have_tls=1
fi
awk '/users-script/ {f = 1; next} f && /^```python/ {p = 1; next} p && /^```/ {exit} p' \
    "$src/docs/broker.md" >"$tmp/lepton-users.py"
if LEPTON_PASSWORD=alice-pw "$PY" "$tmp/lepton-users.py" alice >"$tmp/users.txt" &&
    grep -q '^alice:SCRAM-SHA-256:4096:' "$tmp/users.txt"; then ok; else
    ko "the users script of docs/broker.md makes no SCRAM-SHA-256 line"
fi
echo 'bob:PLAIN:bob-pw' >>"$tmp/users.txt"
chmod 600 "$tmp/users.txt"

# ---- the command line ----

# usage ARGS...: exit 2, nothing on stdout, two lines: "lepton-broker: ..."
# and the --help hint; the first line must match $want when set.
usage() {
    run usage 10 "$BROKER" "$@"
    if [ $STATUS -ne 2 ] || [ -s "$tmp/usage.out" ] || [ "$(wc -l <"$tmp/usage.err")" -ne 2 ] ||
        ! head -1 "$tmp/usage.err" | grep -q "^lepton-broker: ${want:-}" ||
        ! grep -q "^Try 'lepton-broker --help' for more information.$" "$tmp/usage.err"; then
        ko "lepton-broker $*: status $STATUS (want 2 and one line with the --help hint)"
        show "$tmp/usage.out" "$tmp/usage.err"
    else
        ok
    fi
    want=
}
want="unknown option '--bogus'" usage --bogus
want="unknown option '-x'" usage -x
want="option '--listen' needs a value" usage --listen
want="option '-c' needs a value" usage -c
want="option '--check' takes no value" usage --check=yes
want="unexpected argument 'broker.json'" usage broker.json
# a bad URL on the command line is named (it said "out of memory")
want='--listen "http://127.0.0.1:5672": unsupported scheme' usage --listen http://127.0.0.1:5672
want='--listen "amqp://u:p@127.0.0.1:1": .*no user or password' usage --listen amqp://u:p@127.0.0.1:1
want="--threads: 'many'" usage --threads many
want="--threads: '2000'" usage -t 2000

run help 10 "$BROKER" --help
missing=()
for o in -c, --config -l, --listen -d, --data --no-fsync -t, --threads --users --allow-anonymous \
    --metrics --log-level --check -h, --help -V, --version 'Exit status' SIGTERM; do
    grep -q -- "$o" "$tmp/help.out" || missing+=("$o")
done
if [ $STATUS -eq 0 ] && [ ! -s "$tmp/help.err" ] && head -1 "$tmp/help.out" | grep -q '^Usage: lepton-broker ' &&
    [ ${#missing[@]} -eq 0 ]; then ok; else
    ko "lepton-broker --help: status $STATUS, missing: ${missing[*]}"
fi
# every option the program takes is in --help
for o in $(grep -o '{"[a-z-]*", [a-z_]*_argument' "$src/tools/lepton-broker.c" | cut -d'"' -f2); do
    grep -q -- "--$o" "$tmp/help.out" || ko "--help does not document --$o"
done
run version 10 "$BROKER" --version
if [ $STATUS -eq 0 ] && grep -Eq '^lepton-broker \(lepton\) [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/version.out"; then ok; else
    ko "lepton-broker --version: status $STATUS"
    show "$tmp/version.out"
fi
# --help wins over a broken file, wherever it stands
printf '{ nonsense\n' >"$tmp/broken.json"
run help2 10 "$BROKER" -c "$tmp/broken.json" -h
check "lepton-broker -c BROKEN -h: status $STATUS" [ $STATUS -eq 0 ]

# The man page is well-formed roff and names every option of --help.
page=$src/tools/lepton-broker.1
if [ ! -f "$page" ]; then
    ko "no man page $page"
else
    if command -v groff >/dev/null 2>&1; then
        warnings=$(groff -man -ww -z "$page" 2>&1)
        check "groff warnings in lepton-broker.1: $warnings" [ -z "$warnings" ]
    fi
    for o in $(grep -o -- '--[a-z][a-z-]*' "$tmp/help.out" | sort -u); do
        grep -q -- "${o//-/\\\\-}" "$page" || ko "lepton-broker.1 does not name $o"
    done
fi

# ---- configuration errors: FILE:LINE:COL, exit 2 ----

# cfgerr NAME LINE:COL PATTERN TEXT: the file NAME.json holding TEXT is
# refused with "lepton-broker: FILE:LINE:COL: " and PATTERN, status 2, by
# a start and by --check alike, before anything is made.
cfgerr() {
    local name=$1 where=$2 pattern=$3 f=$tmp/$1.json
    printf '%s\n' "$4" >"$f"
    for mode in start check; do
        local args=(-c "$f")
        [ $mode = check ] && args+=(--check)
        run cfg 10 "$BROKER" "${args[@]}"
        if [ $STATUS -eq 2 ] && [ ! -s "$tmp/cfg.out" ] && [ "$(wc -l <"$tmp/cfg.err")" -eq 1 ] &&
            grep -q "^lepton-broker: $f:$where: .*$pattern" "$tmp/cfg.err"; then ok; else
            ko "config $name ($mode): status $STATUS, want 2 and \"$f:$where: ...$pattern\""
            show "$tmp/cfg.out" "$tmp/cfg.err"
        fi
    done
}
cfgerr syntax 3:12 "unexpected character" '{
  "listen": "amqp://127.0.0.1:1",
  "fsync": tru
}'
cfgerr unknown_key 3:3 'unknown key "max_lenght"' '{
  // a comment
  "max_lenght": 3
}'
cfgerr nested_key 2:22 'unknown key "queue_defaults.max_lenght"' '{
  "queue_defaults": {"max_lenght": 1}
}'
cfgerr wrong_type 2:12 '"fsync" must be' '{
  "fsync": "yes"
}'
cfgerr wrong_type2 4:14 '"threads" must be a number' '{
  "listen": "amqp://127.0.0.1:1",
  /* threads: */
  "threads": "two"
}'
cfgerr trailing_comma 2:35 'trailing comma' '{
  "listen": ["amqp://127.0.0.1:1",]
}'
cfgerr bad_size 1:22 'bad size "10 XB"' '{"max_message_size": "10 XB"}'
cfgerr twice 1:17 'duplicate key "fsync"' '{"fsync": true, "fsync": false}'
cfgerr acl_pattern 1:19 "may have '\\*' only at its end" \
    '{"acl": [{"user": "a*b", "address": "x", "allow": "send"}]}'
[ -e "$tmp/lepton-data" ] || [ -e "$tmp/cwd/lepton-data" ] &&
    ko "a refused configuration made a data directory"

# cfgbad NAME PATTERN TEXT: refused by the whole-configuration check
# (status 2, one line naming the setting)
cfgbad() {
    local f=$tmp/$1.json
    printf '%s\n' "$3" >"$f"
    run cfg 10 "$BROKER" --check -c "$f"
    if [ $STATUS -eq 2 ] && [ "$(wc -l <"$tmp/cfg.err")" -eq 1 ] && grep -q "^lepton-broker: .*$2" "$tmp/cfg.err"; then ok; else
        ko "config $1: status $STATUS, want 2 and \"$2\""
        show "$tmp/cfg.out" "$tmp/cfg.err"
    fi
}
cfgbad amqps_no_cert 'amqps listener needs tls_cert and tls_key' '{"listen": "amqps://127.0.0.1:1"}'
cfgbad no_users_file "users_file \"$tmp/nope.txt\": No such file" '{"users_file": "nope.txt"}'
printf 'bob:PLAIN\n' >"$tmp/badusers.txt"
cfgbad bad_users 'users_file: .*badusers.txt:1:' '{"users_file": "badusers.txt"}'
cfgbad nobody 'nobody can log in' '{"allow_anonymous": false}'
cfgbad anon_listed 'lists ANONYMOUS but allow_anonymous is false' \
    '{"users_file": "users.txt", "sasl_mechanisms": "PLAIN ANONYMOUS"}'
cfgbad require_cert 'tls_require_client_cert needs tls_ca' \
    '{"tls_require_client_cert": true, "listen": "amqp://127.0.0.1:1"}'
cfgbad metrics_is_listener 'metrics_listen "127.0.0.1:7" is also listen\[0\]' \
    '{"listen": "amqp://127.0.0.1:7", "metrics_listen": "127.0.0.1:7"}'
cfgbad per_user 'max_connections_per_user 20 is more than max_connections 10' \
    '{"max_connections": 10, "max_connections_per_user": 20}'
cfgbad same_listener 'are the same address' '{"listen": ["amqp://127.0.0.1:7", "127.0.0.1:7"]}'
run cfg 10 "$BROKER" -c "$tmp/missing.json"
if [ $STATUS -eq 2 ] && grep -q "^lepton-broker: $tmp/missing.json: cannot open: No such file" "$tmp/cfg.err"; then ok; else
    ko "a missing configuration file: status $STATUS"
    show "$tmp/cfg.err"
fi
# values given by flags are checked as the file's
run cfg 10 "$BROKER" --check --log-level loud
check "--log-level loud: status $STATUS" [ $STATUS -eq 2 ]
run cfg 10 "$BROKER" --check --metrics 9100
check "--metrics 9100: status $STATUS" [ $STATUS -eq 2 ]

# --check on good files: OK on stdout, status 0, nothing made or opened
cat >"$tmp/good.json" <<'EOF'
// a development broker, as in docs/broker.md
{
  "listen": "amqp://127.0.0.1:5672",
  "data_dir": "./check-data",
  "fsync": false,
  "log_level": "debug",
  "max_message_size": "10 MiB",
  "max_frame_size": "64KiB",
  "metrics_listen": "127.0.0.1:9100"
}
EOF
run check 10 "$BROKER" --check -c "$tmp/good.json"
if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/check.out")" = "lepton-broker: configuration OK" ] &&
    [ ! -e "$tmp/check-data" ]; then ok; else
    ko "--check on a good file: status $STATUS"
    show "$tmp/check.out" "$tmp/check.err"
fi
printf '{"max_connections": null, "listen": null, "queue_defaults": {"overflow": null}}\n' >"$tmp/nulls.json"
run check 10 "$BROKER" --check -c "$tmp/nulls.json"
check "null means the default: status $STATUS" [ $STATUS -eq 0 ]
run check 10 "$BROKER" --check
check "--check with no file at all: status $STATUS" [ $STATUS -eq 0 ]

# ---- flags over the file; relative paths; log levels; life cycle ----

pa=$(free_port)
pb=$(free_port)
pc=$(free_port)
mkdir "$tmp/conf"
cat >"$tmp/conf/broker.json" <<EOF
{
  "listen": "amqp://127.0.0.1:$pa",
  "data_dir": "data",        // relative to this file: $tmp/conf/data
  "fsync": false,
  "log_level": "debug"
}
EOF
# --listen replaces the file's listener (twice: two listeners), --data
# and --log-level replace their keys
if broker flags "$pb $pc" -c "$tmp/conf/broker.json" --listen "amqp://127.0.0.1:$pb" \
    -l "127.0.0.1:$pc" --data "$tmp/flagdata" --log-level info; then
    check "--listen flags: the file's listener (port $pa) is not opened" eval '! listening $pa'
    run f1 20 "$SEND" -c 3 "amqp://127.0.0.1:$pb/queue.flags"
    s1=$STATUS
    run f2 20 "$RECV" -c 3 "amqp://127.0.0.1:$pc/queue.flags"
    check "send and receive through the two --listen listeners: $s1 $STATUS" [ $s1 -eq 0 -a $STATUS -eq 0 ]
    if grep -q " store $tmp/flagdata: " "$tmp/flags.err" && [ -d "$tmp/flagdata" ] && [ ! -e "$tmp/conf/data" ]; then ok; else
        ko "--data does not replace the file's data_dir"
        show "$tmp/flags.err"
    fi
    # info: no connection lines (they are debug); each line "TIME LEVEL text"
    if ! grep -q 'debug' "$tmp/flags.err" && grep -q ' info  listening on ' "$tmp/flags.err" &&
        ! grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warn |info |debug|trace) ' \
            "$tmp/flags.err"; then ok; else
        ko "--log-level info: debug lines, or lines without time and level"
        show "$tmp/flags.err"
    fi
    stop_broker "$BPID" flags INT
fi

# The file alone: its listener, its data_dir relative to it, debug logs.
if broker file "$pa" -c "$tmp/conf/broker.json"; then
    check "data_dir relative to the configuration file" [ -d "$tmp/conf/data" ]
    start held 30 "$RECV" -v -c 0 "amqp://127.0.0.1:$pa/queue.life"
    hpid=$PID
    wait_file "$tmp/file.err" 'consumer on queue.life' 10
    if grep -q ' debug connection open from 127.0.0.1:[0-9]*: container .*, user anonymous$' "$tmp/file.err"; then ok; else
        ko "log_level debug shows no connection"
        show "$tmp/file.err"
    fi
    # A second broker on the same data directory: refused, says why.
    p2=$(free_port)
    run lock 20 "$BROKER" --listen "amqp://127.0.0.1:$p2" --data "$tmp/conf/data"
    if [ $STATUS -eq 1 ] && between "$ELAPSED" 0 5 &&
        grep -q "^lepton-broker: cannot start: .*conf/data.*locked" "$tmp/lock.err"; then ok; else
        ko "a second broker on the same data directory: status $STATUS in $ELAPSED s (want 1 and \"locked\")"
        show "$tmp/lock.err"
    fi
    # The port in use: status 1, says so.
    run inuse 20 "$BROKER" --listen "amqp://127.0.0.1:$pa" --data "$tmp/other-data"
    if [ $STATUS -eq 1 ] && between "$ELAPSED" 0 5 &&
        grep -q "^lepton-broker: cannot start: .*127.0.0.1:$pa: Address already in use" "$tmp/inuse.err"; then ok; else
        ko "a broker on a port in use: status $STATUS in $ELAPSED s"
        show "$tmp/inuse.err"
    fi
    # SIGTERM: a clean stop, and the client sees a close without error.
    stop_broker "$BPID" file TERM
    finish "$hpid" 10
    if grep -q '<- @close(24) \[\]$' "$tmp/held.err"; then ok; else
        ko "a client of a broker stopped by SIGTERM saw no clean close (status $STATUS)"
        show "$tmp/held.err"
    fi
fi
# --log-level error: a quiet start and stop
if broker quiet "$pa" -c "$tmp/conf/broker.json" --log-level error; then
    run q1 20 "$SEND" "amqp://127.0.0.1:$pa/queue.life"
    kill -INT "$BPID"
    finish "$BPID" 15
    check "--log-level error: status $STATUS, nothing logged" [ $STATUS -eq 0 -a ! -s "$tmp/quiet.err" ]
fi
# what was sent durable-less before survives nothing, but the queue does
if broker again "$pa" -c "$tmp/conf/broker.json"; then
    check "the queues come back after a restart" grep -q ' store .*conf/data: [1-9][0-9]* queues' "$tmp/again.err"
    stop_broker "$BPID" again INT
fi

# ---- TLS and SASL ----

pp=$(free_port)
ps=$(free_port)
plain=amqp://127.0.0.1:$pp
if [ $have_tls = 1 ]; then
    cat >"$tmp/sec.json" <<EOF
{
  "listen": ["amqp://127.0.0.1:$pp", "amqps://127.0.0.1:$ps"],
  "data_dir": "sec-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key",
  "users_file": "users.txt",
  // alice has a SCRAM-SHA-256 line only: offer no stronger SCRAM
  "sasl_mechanisms": ["SCRAM-SHA-256", "PLAIN"]
}
EOF
    if broker sec "$pp $ps" -c "$tmp/sec.json" --log-level debug; then
        CA=(--tls-ca "$tmp/certs/ca.pem")
        run sa1 20 "$SEND" -m scram "amqp://alice:alice-pw@127.0.0.1:$pp/queue.sec"
        check "SCRAM-SHA-256 (salted line) over amqp: status $STATUS" [ $STATUS -eq 0 ]
        run sa2 20 "$SEND" -m scram-bob "amqp://bob:bob-pw@127.0.0.1:$pp/queue.sec"
        check "SCRAM-SHA-256 with a PLAIN line: status $STATUS" [ $STATUS -eq 0 ]
        run sa3 20 "$SEND" -m wrong "amqp://alice:nope@127.0.0.1:$pp/queue.sec"
        if [ $STATUS -eq 1 ] && between "$ELAPSED" 0 5 &&
            grep -q 'amqp:unauthorized-access: SASL authentication failed' "$tmp/sa3.err"; then ok; else
            ko "a wrong password: status $STATUS in $ELAPSED s (want 1 at once, a clear reason)"
            show "$tmp/sa3.err"
        fi
        run sa4 20 "$SEND" -m nobody "amqp://carol:pw@127.0.0.1:$pp/queue.sec"
        check "an unknown user: status $STATUS" [ $STATUS -eq 1 ]
        # PLAIN without TLS: not offered (the password would cross in clear)
        run sa5 20 "$SEND" -m plain --sasl-mechanisms PLAIN "amqp://bob:bob-pw@127.0.0.1:$pp/queue.sec"
        if [ $STATUS -eq 1 ] && grep -q 'no usable SASL mechanism: server offers SCRAM-SHA-256;' "$tmp/sa5.err"; then ok; else
            ko "PLAIN without TLS: status $STATUS (want 1: not offered)"
            show "$tmp/sa5.err"
        fi
        run sa6 20 "$SEND" -m plain-tls --sasl-mechanisms PLAIN "${CA[@]}" "amqps://bob:bob-pw@127.0.0.1:$ps/queue.sec"
        check "PLAIN over amqps: status $STATUS" [ $STATUS -eq 0 ]
        run sa7 20 "$SEND" -m plain-salted --sasl-mechanisms PLAIN "${CA[@]}" \
            "amqps://alice:alice-pw@localhost:$ps/queue.sec"
        check "PLAIN over amqps checked against a salted line: status $STATUS" [ $STATUS -eq 0 ]
        run sa8 20 "$SEND" -m anonymous "$plain/queue.sec"
        if [ $STATUS -eq 1 ] && grep -q 'no usable SASL mechanism' "$tmp/sa8.err"; then ok; else
            ko "ANONYMOUS with a users file: status $STATUS (want 1)"
            show "$tmp/sa8.err"
        fi
        run sa9 20 "$SEND" -m untrusted --tls-ca "$tmp/certs/other-ca.pem" "amqps://bob:bob-pw@127.0.0.1:$ps/queue.sec"
        check "amqps with the wrong CA: status $STATUS" [ $STATUS -eq 1 ]
        run sa10 20 "$RECV" -c 4 --timeout 10 --print "${CA[@]}" "amqps://alice:alice-pw@127.0.0.1:$ps/queue.sec"
        if [ $STATUS -eq 0 ] && [ "$(tr '\n' ' ' <"$tmp/sa10.out")" = "scram scram-bob plain-tls plain-salted " ]; then ok; else
            ko "lepton-recv over amqps: status $STATUS"
            show "$tmp/sa10.out" "$tmp/sa10.err"
        fi
        if grep -q 'user alice: producer to queue.sec' "$tmp/sec.err" &&
            grep -q 'SCRAM-SHA-256 authentication failed' "$tmp/sec.err"; then ok; else
            ko "the broker's log names neither the users nor the failed login"
            show "$tmp/sec.err"
        fi
        stop_broker "$BPID" sec
    fi

    # --users and --allow-anonymous from the command line, PLAIN allowed in
    # clear by the file
    printf '{"allow_plain_without_tls": true, "data_dir": "anon-data"}\n' >"$tmp/anon.json"
    if broker anon "$pp" -c "$tmp/anon.json" --listen "$plain" --users "$tmp/users.txt" --allow-anonymous; then
        run an1 20 "$SEND" -m anon "$plain/queue.anon"
        check "--allow-anonymous with a users file: ANONYMOUS works: $STATUS" [ $STATUS -eq 0 ]
        run an2 20 "$SEND" -m plain --sasl-mechanisms PLAIN "amqp://bob:bob-pw@127.0.0.1:$pp/queue.anon"
        check "allow_plain_without_tls: PLAIN over amqp works: $STATUS" [ $STATUS -eq 0 ]
        stop_broker "$BPID" anon
    fi

    # Client certificates only: no users file, allow_anonymous false.
    cat >"$tmp/ext.json" <<EOF
{
  "listen": ["amqp://127.0.0.1:$pp", "amqps://127.0.0.1:$ps"],
  "data_dir": "ext-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key", "tls_ca": "certs/ca.pem",
  "allow_anonymous": false
}
EOF
    if broker ext "$pp $ps" -c "$tmp/ext.json"; then
        run ex1 20 "$SEND" -m ext --sasl-mechanisms EXTERNAL "${CA[@]}" --tls-cert "$tmp/certs/client.pem" \
            --tls-key "$tmp/certs/client.key" "amqps://127.0.0.1:$ps/queue.ext"
        check "EXTERNAL with a client certificate: status $STATUS" [ $STATUS -eq 0 ]
        # With no users file and no sasl_mechanisms, allow_anonymous false
        # must still hold: the library's own default would offer ANONYMOUS
        # when nothing else is, so the broker names its mechanisms.
        run ex2 20 "$SEND" -m anon-plain --max-reconnect 1 "$plain/queue.ext"
        check "allow_anonymous false (client certificates only): ANONYMOUS over amqp refused: status $STATUS" \
            [ $STATUS -eq 1 ]
        run ex3 20 "$SEND" -m anon-tls --max-reconnect 1 "${CA[@]}" "amqps://127.0.0.1:$ps/queue.ext"
        check "allow_anonymous false: ANONYMOUS over amqps without a certificate refused: status $STATUS" \
            [ $STATUS -eq 1 ]
        stop_broker "$BPID" ext
    fi
    # The default mechanisms with a users file include EXTERNAL for a TLS
    # client that presented a certificate (docs/broker.md), beside SCRAM
    # and PLAIN.
    cat >"$tmp/ext2.json" <<EOF
{
  "listen": "amqps://127.0.0.1:$ps",
  "data_dir": "ext2-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key", "tls_ca": "certs/ca.pem",
  "users_file": "users.txt"
}
EOF
    if broker ext2 "$ps" -c "$tmp/ext2.json"; then
        run ex4 20 "$SEND" -m ext --max-reconnect 1 --sasl-mechanisms EXTERNAL "${CA[@]}" \
            --tls-cert "$tmp/certs/client.pem" --tls-key "$tmp/certs/client.key" "amqps://127.0.0.1:$ps/queue.ext"
        check "users_file and tls_ca, default mechanisms: EXTERNAL offered to a client certificate: status $STATUS" \
            [ $STATUS -eq 0 ]
        stop_broker "$BPID" ext2
    fi

    # TLS versions and ciphers.  tlsprobe PORT MAX [CIPHERS]: a TLS
    # handshake by Python's ssl module (the test CA; TLS 1.2 at most when
    # MAX is 1.2), printing "ok PROTOCOL CIPHER" or "failed REASON"; status
    # 0 on success.
    tlsprobe() {
        "$PY" - "$tmp/certs/ca.pem" "$@" <<'PYEOF'
import socket, ssl, sys
ca, port, maxv = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
if maxv == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if len(sys.argv) > 4:
    ctx.set_ciphers(sys.argv[4])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            print("ok", t.version(), t.cipher()[0])
except (ssl.SSLError, OSError) as e:
    print("failed", e)
    sys.exit(1)
PYEOF
    }
    cat >"$tmp/tls13.json" <<EOF
{
  "listen": "amqps://127.0.0.1:$ps",
  "data_dir": "tls13-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key",
  "tls_min_version": "1.3",
  "tls_ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"
}
EOF
    if broker tls13 "$ps" -c "$tmp/tls13.json"; then
        tlsprobe "$ps" 1.2 >"$tmp/v1.out" 2>&1
        if [ $? -eq 1 ] && grep -qi '^failed .*version' "$tmp/v1.out"; then ok; else
            ko "tls_min_version 1.3: a client limited to TLS 1.2 is not refused for its version"
            show "$tmp/v1.out" "$tmp/tls13.err"
        fi
        timeout 10 openssl s_client -tls1_2 -connect "127.0.0.1:$ps" -CAfile "$tmp/certs/ca.pem" \
            </dev/null >"$tmp/v2.out" 2>&1
        st=$?
        if [ $st -ne 0 ] && grep -q 'alert protocol version' "$tmp/v2.out"; then ok; else
            ko "tls_min_version 1.3: openssl s_client -tls1_2: status $st (want a failed handshake)"
            show "$tmp/v2.out"
        fi
        tlsprobe "$ps" any >"$tmp/v3.out" 2>&1
        check "tls_min_version 1.3, tls_ciphersuites: a TLS 1.3 client gets the one suite: $(cat "$tmp/v3.out")" \
            grep -q '^ok TLSv1.3 TLS_CHACHA20_POLY1305_SHA256$' "$tmp/v3.out"
        run v4 20 "$SEND" -m tls13 "${CA[@]}" "amqps://localhost:$ps/queue.tls"
        check "tls_min_version 1.3: lepton-send over amqps: status $STATUS" [ $STATUS -eq 0 ]
        stop_broker "$BPID" tls13
    fi
    # tls_ciphers: the TLS 1.2 list (the test keys are EC: ECDSA ciphers)
    cat >"$tmp/tls12.json" <<EOF
{
  "listen": "amqps://127.0.0.1:$ps",
  "data_dir": "tls12-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key",
  "tls_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"
}
EOF
    if broker tls12 "$ps" -c "$tmp/tls12.json"; then
        tlsprobe "$ps" 1.2 >"$tmp/c1.out" 2>&1
        check "tls_ciphers: a TLS 1.2 client gets the configured cipher: $(cat "$tmp/c1.out")" \
            grep -q '^ok TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256$' "$tmp/c1.out"
        tlsprobe "$ps" 1.2 ECDHE-ECDSA-AES256-GCM-SHA384 >"$tmp/c2.out" 2>&1
        check "tls_ciphers: a TLS 1.2 client with other ciphers only is refused: $(cat "$tmp/c2.out")" \
            grep -q '^failed ' "$tmp/c2.out"
        tlsprobe "$ps" any >"$tmp/c3.out" 2>&1
        check "tls_ciphers leaves TLS 1.3 alone: $(cat "$tmp/c3.out")" grep -q '^ok TLSv1.3 ' "$tmp/c3.out"
        stop_broker "$BPID" tls12
    fi
    # tls_require_client_cert: no certificate, no connection
    cat >"$tmp/reqcert.json" <<EOF
{
  "listen": "amqps://127.0.0.1:$ps",
  "data_dir": "reqcert-data",
  "tls_cert": "certs/server.pem", "tls_key": "certs/server.key", "tls_ca": "certs/ca.pem",
  "tls_require_client_cert": true
}
EOF
    if broker reqcert "$ps" -c "$tmp/reqcert.json"; then
        run rc1 20 "$SEND" -m nocert --max-reconnect 1 "${CA[@]}" "amqps://127.0.0.1:$ps/queue.rc"
        check "tls_require_client_cert: a client without a certificate is refused: status $STATUS" \
            [ $STATUS -eq 1 ]
        run rc2 20 "$SEND" -m cert "${CA[@]}" --tls-cert "$tmp/certs/client.pem" \
            --tls-key "$tmp/certs/client.key" "amqps://127.0.0.1:$ps/queue.rc"
        check "tls_require_client_cert: a client with a certificate gets in: status $STATUS" [ $STATUS -eq 0 ]
        stop_broker "$BPID" reqcert
    fi
    # Cipher strings OpenSSL refuses stop the start (status 2, one line
    # naming the key) and --check alike, before anything is made; so does
    # a 1.3 minimum with TLS 1.3 turned off.
    for bad in 'tls_ciphers:"NO-SUCH-CIPHER"' 'tls_ciphersuites:"TLS_NO_SUCH_SUITE"' \
        'tls_ciphersuites:"", "tls_min_version": "1.3"'; do
        key=${bad%%:*}
        printf '{"listen": "amqps://127.0.0.1:%s", "data_dir": "badtls-data",\n "tls_cert": "certs/server.pem", "tls_key": "certs/server.key",\n "%s": %s}\n' \
            "$ps" "$key" "${bad#*:}" >"$tmp/badtls.json"
        for mode in start check; do
            args=(-c "$tmp/badtls.json")
            [ $mode = check ] && args+=(--check)
            run badtls 10 "$BROKER" "${args[@]}"
            if [ $STATUS -eq 2 ] && [ "$(wc -l <"$tmp/badtls.err")" -eq 1 ] &&
                grep -q "^lepton-broker: $key \"" "$tmp/badtls.err" && [ ! -e "$tmp/badtls-data" ]; then ok; else
                ko "a bad $key ($mode): status $STATUS (want 2 and one line naming $key)"
                show "$tmp/badtls.json" "$tmp/badtls.err"
            fi
        done
    done
else
    echo "SKIP: TLS and SASL (cannot make test certificates)"
fi

# ---- access rules ----

pl=$(free_port)
cat >"$tmp/acl.json" <<EOF
{
  "listen": "amqp://127.0.0.1:$pl",
  "data_dir": "acl-data",
  "users_file": "users.txt",
  "sasl_mechanisms": "SCRAM-SHA-256 PLAIN",
  "queues": [{"name": "queue.in"}, {"name": "queue.out"}, {"name": "queue.shared"}],
  "acl": [
    {"user": "alice", "address": "*",             "allow": "all"},
    {"user": "bob",   "address": "queue.in",      "allow": "send"},
    {"user": "bob",   "address": "queue.out",     "allow": "receive"},
    {"user": "*",     "address": "queue.shared*", "allow": ["send", "receive"]}
  ]
}
EOF
alice=amqp://alice:alice-pw@127.0.0.1:$pl
bob=amqp://bob:bob-pw@127.0.0.1:$pl
# denied ERR-FILE WHAT: the tool said amqp:unauthorized-access with WHAT
denied() {
    if [ $STATUS -eq 1 ] && grep -q "amqp:unauthorized-access: not allowed to $2" "$tmp/$1.err"; then ok; else
        ko "ACL: $1: status $STATUS, want 1 and \"amqp:unauthorized-access: not allowed to $2\""
        show "$tmp/$1.err"
    fi
}
if broker acl "$pl" -c "$tmp/acl.json"; then
    run acl1 20 "$SEND" -m to-in "$bob/queue.in"
    check "ACL: bob sends to queue.in: $STATUS" [ $STATUS -eq 0 ]
    run acl2 20 "$RECV" --timeout 10 "$bob/queue.in"
    denied acl2 "receive from this address"
    run acl3 20 "$SEND" -m to-out "$bob/queue.out"
    denied acl3 "send to this address"
    run acl4 20 "$SEND" -m new "$bob/queue.shared.new"
    denied acl4 "create this address"
    run acl5 20 "$SEND" -m made-by-alice "$alice/queue.shared.new"
    check "ACL: alice makes queue.shared.new: $STATUS" [ $STATUS -eq 0 ]
    run acl6 20 "$SEND" -m by-bob "$bob/queue.shared.new"
    check "ACL: bob sends to queue.shared.new once it exists: $STATUS" [ $STATUS -eq 0 ]
    run acl7 20 "$RECV" -c 2 --print "$bob/queue.shared.new"
    if [ $STATUS -eq 0 ] && [ "$(tr '\n' ' ' <"$tmp/acl7.out")" = "made-by-alice by-bob " ]; then ok; else
        ko "ACL: bob receives from queue.shared.new: $STATUS"
        show "$tmp/acl7.out" "$tmp/acl7.err"
    fi
    run acl8 20 "$SEND" -m for-bob "$alice/queue.out"
    run acl9 20 "$RECV" --print "$bob/queue.out"
    if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/acl9.out")" = for-bob ]; then ok; else
        ko "ACL: alice sends to queue.out, bob receives: $STATUS"
        show "$tmp/acl9.err"
    fi
    run acl10 20 "$SEND" -m x "$bob/\$management"
    denied acl10 "send to this address"
    run acl11 20 "$RECV" --timeout 10 "$bob/queue.anything"
    denied acl11 "create this address"
    if grep -q 'user bob: receiver from queue.in refused: not allowed' "$tmp/acl.err"; then ok; else
        ko "ACL: the broker's log does not say who was refused what"
        show "$tmp/acl.err"
    fi
    stop_broker "$BPID" acl
fi

# ---- limits ----

pm=$(free_port)
mp=$(free_port)
cat >"$tmp/lim.json" <<EOF
{
  "listen": "amqp://127.0.0.1:$pm",
  "data_dir": "lim-data",
  "log_level": "debug",
  "users_file": "users.txt",
  "sasl_mechanisms": "SCRAM-SHA-256 PLAIN ANONYMOUS",
  "allow_anonymous": true,
  "max_connections": 3,
  "max_connections_per_user": 1,
  "max_message_size": "10KiB",
  "max_frame_size": "1KiB",
  "queues": [
    {"name": "queue.small", "max_depth": 3, "overflow": "reject"},
    {"name": "queue.blk", "max_depth": 2, "overflow": "block"}
  ],
  "metrics_listen": "127.0.0.1:$mp"
}
EOF
u=amqp://127.0.0.1:$pm
if broker lim "$pm $mp" -c "$tmp/lim.json"; then
    start h1 30 "$RECV" -c 0 "amqp://bob:bob-pw@127.0.0.1:$pm/queue.h1"
    h1=$PID
    wait_file "$tmp/lim.err" 'user bob: consumer on queue.h1' 10
    run l1 20 "$RECV" -c 0 --max-reconnect 1 "amqp://bob:bob-pw@127.0.0.1:$pm/queue.h1"
    if [ $STATUS -eq 1 ] && between "$ELAPSED" 0 5 &&
        grep -q 'amqp:resource-limit-exceeded: too many connections for user bob (limit 1)' "$tmp/l1.err"; then ok; else
        ko "max_connections_per_user: bob's second connection: status $STATUS in $ELAPSED s"
        show "$tmp/l1.err"
    fi
    start h2 30 "$RECV" -c 0 "amqp://alice:alice-pw@127.0.0.1:$pm/queue.h2"
    h2=$PID
    start h3 30 "$RECV" -c 0 "$u/queue.h3"
    h3=$PID
    wait_file "$tmp/lim.err" 'user alice: consumer on queue.h2' 10
    wait_file "$tmp/lim.err" 'user anonymous: consumer on queue.h3' 10
    run l2 20 "$SEND" --max-reconnect 1 "amqp://bob:bob-pw@127.0.0.1:$pm/queue.h3"
    if [ $STATUS -eq 1 ] && grep -q 'amqp:resource-limit-exceeded: too many connections (limit 3)' "$tmp/l2.err"; then ok; else
        ko "max_connections: a fourth connection: status $STATUS"
        show "$tmp/l2.err"
    fi
    for p in $h1 $h2 $h3; do
        kill -INT $p
        finish $p 10
        check "a held connection ends cleanly on SIGINT: $STATUS" [ $STATUS -eq 0 ]
    done
    if grep -q 'warn  connection from 127.0.0.1:[0-9]* (container .*, user bob) refused: too many connections' "$tmp/lim.err"; then ok; else
        ko "the refused connections are not logged as warnings"
        show "$tmp/lim.err"
    fi
    # max_message_size: lepton-send sees the broker's max-message-size in
    # its attach and refuses itself; a Proton sender that sends anyway has
    # its link closed by the broker.
    run l3 20 "$SEND" -s 20000 "$u/queue.big"
    check "lepton-send of a message over max_message_size: status $STATUS" [ $STATUS -eq 1 ]
    run l4 20 "$SEND" -v -s 5000 "$u/queue.big"
    if [ $STATUS -eq 0 ] && grep -q '<- @open(16) \[.*max-frame-size=1024' "$tmp/l4.err" &&
        grep -q '<- @attach(18) \[.*max-message-size=10240' "$tmp/l4.err"; then ok; else
        ko "max_frame_size 1KiB, max_message_size 10KiB: not announced, or a 5000-byte message refused ($STATUS)"
        grep '<- @open\|<- @attach\|^lepton' "$tmp/l4.err" | head -5 >&2
    fi
    if [ $have_proton = 1 ]; then
        run l5 20 "$PY" "$PYLIB/pysend.py" -s 20000 -t 10 "$u/queue.big"
        if [ $STATUS -eq 1 ] && grep -q 'amqp:link:message-size-exceeded' "$tmp/l5.err"; then ok; else
            ko "a Proton sender over max_message_size: status $STATUS"
            show "$tmp/l5.err"
        fi
    fi
    # overflow reject: lepton-send reports the rejections and exits 1
    run l6 20 "$SEND" -c 5 "$u/queue.small"
    if [ $STATUS -eq 1 ] && grep -q '^lepton-send: message 4 rejected (amqp:resource-limit-exceeded' "$tmp/l6.err" &&
        grep -q '^lepton-send: 3 of 5 messages accepted (2 rejected,' "$tmp/l6.err"; then ok; else
        ko "overflow reject: status $STATUS"
        show "$tmp/l6.err"
    fi
    v=$(metric 'lepton_queue_depth{queue="queue.small",type="queue"}' "$mp")
    check "metrics: lepton_queue_depth of queue.small is 3: '$v'" [ "$v" = 3 ]
    # overflow block: the producer waits for credit until a consumer drains
    start blk 30 "$SEND" -c 6 "$u/queue.blk"
    bpid=$PID
    sleep 1
    if kill -0 "$bpid" 2>/dev/null; then ok; else
        ko "overflow block: the producer of 6 messages to a queue of 2 did not wait"
        show "$tmp/blk.err"
    fi
    v=$(metric 'lepton_queue_depth{queue="queue.blk",type="queue"}' "$mp")
    check "metrics: the blocked queue holds max_depth 2: '$v'" [ "$v" = 2 ]
    run l7 20 "$RECV" -c 6 --print "amqp://bob:bob-pw@127.0.0.1:$pm/queue.blk"
    finish "$bpid" 10
    if [ $STATUS -eq 0 ] && [ "$(wc -l <"$tmp/l7.out")" -eq 6 ] &&
        grep -q '^lepton-send: 6 of 6 messages accepted' "$tmp/blk.err"; then ok; else
        ko "overflow block: the producer did not finish once drained: $STATUS"
        show "$tmp/blk.err" "$tmp/l7.err"
    fi
    "$PY" - "$mp" >"$tmp/http.out" 2>&1 <<'EOF'
import sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s" % sys.argv[1]
r = urllib.request.urlopen(base + "/metrics", timeout=5)
print(r.status, r.headers.get("Content-Type").startswith("text/plain; version=0.0.4"))
try:
    urllib.request.urlopen(base + "/other", timeout=5)
except urllib.error.HTTPError as e:
    print(e.code)
EOF
    if [ "$(tr '\n' ' ' <"$tmp/http.out")" = "200 True 404 " ]; then ok; else
        ko "metrics endpoint: $(cat "$tmp/http.out")"
    fi
    stop_broker "$BPID" lim
fi

# ---- dead letters, redelivery, $management ----

pd=$(free_port)
md=$(free_port)
cat >"$tmp/dl.json" <<EOF
{
  "listen": "amqp://127.0.0.1:$pd",
  "data_dir": "dl-data",
  "metrics_listen": "127.0.0.1:$md",
  "queues": [{"name": "queue.rd", "max_delivery_count": 2}]
}
EOF
u=amqp://127.0.0.1:$pd
if [ $have_proton = 0 ]; then
    echo "SKIP: dead letters, redelivery and \$management ($PY has no proton)"
elif broker dl "$pd $md" -c "$tmp/dl.json"; then
    # a consumer rejects: the message goes to queue.DLQ
    run d1 20 "$SEND" -m poison "$u/queue.work"
    run d2 20 "$PY" "$PYLIB/pyrecv.py" -c 1 --outcome reject -t 10 "$u/queue.work"
    run d3 20 "$RECV" --print --timeout 10 "$u/queue.DLQ"
    if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/d3.out")" = poison ]; then ok; else
        ko "a rejected message in queue.DLQ: $STATUS"
        show "$tmp/d2.err" "$tmp/d3.err"
    fi
    # a consumer goes away with unsettled messages: redelivered with
    # delivery-count 1 (and first-acquirer false)
    run d4 20 "$SEND" -c 3 "$u/queue.redo"
    run d5 20 "$PY" "$PEER" hold "$u/queue.redo" 2
    run d6 20 "$RECV" -c 3 --json --timeout 10 "$u/queue.redo"
    if [ $STATUS -eq 0 ] &&
        [ "$(grep -c '"header": {"first_acquirer": false, "delivery_count": 1}' "$tmp/d6.out")" -eq 2 ] &&
        [ "$(grep -c '"delivery_count"' "$tmp/d6.out")" -eq 2 ]; then ok; else
        ko "redelivery after a consumer went away: $STATUS"
        show "$tmp/d5.err" "$tmp/d6.out"
    fi
    # released: back on the queue, not counted (AMQP: the delivery-count of
    # a released message is not incremented), never dead-lettered
    run d7 20 "$SEND" -m released "$u/queue.rd"
    for i in 1 2 3; do
        run d8 20 "$PY" "$PYLIB/pyrecv.py" -c 1 --outcome release -t 10 "$u/queue.rd"
    done
    run d9 20 "$RECV" --json --timeout 10 "$u/queue.rd"
    if [ $STATUS -eq 0 ] && grep -q '"body": "released"' "$tmp/d9.out" && ! grep -q delivery_count "$tmp/d9.out"; then ok; else
        ko "a message released three times is not back, uncounted: $STATUS"
        show "$tmp/d9.out" "$tmp/d9.err"
    fi
    # modified with delivery-failed counts: max_delivery_count 2 and
    # the second failure sends it to queue.DLQ
    run d10 20 "$SEND" -m failing "$u/queue.rd"
    run d11 20 "$PY" "$PEER" fail "$u/queue.rd" 1
    run d12 20 "$PY" "$PEER" fail "$u/queue.rd" 1
    run d13 20 "$RECV" --print --timeout 10 "$u/queue.DLQ"
    if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/d13.out")" = failing ]; then ok; else
        ko "max_delivery_count 2: not dead-lettered after two failed deliveries: $STATUS"
        show "$tmp/d12.err" "$tmp/d13.err"
    fi
    # $management, and the metrics agree
    run d14 20 "$SEND" -c 4 "$u/queue.mgmt"
    run mq 20 "$PY" "$PEER" mgmt "$u" QUERY
    if [ $STATUS -eq 0 ] && "$PY" - "$tmp/mq.out" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
q = {x["name"]: x for x in a["body"]}
assert a["statusCode"] == 200 and a["correlation_id"] == "req-1", a
assert q["queue.mgmt"]["depth"] == 4 and q["queue.mgmt"]["enqueued"] == 4, q["queue.mgmt"]
assert q["queue.rd"]["dead_lettered"] == 1, q["queue.rd"]
assert q["queue.DLQ"]["enqueued"] == 2 and q["queue.DLQ"]["acked"] == 2, q["queue.DLQ"]
for k in ("consumers", "delivered", "bytes", "type", "durable"):
    assert k in q["queue.mgmt"], k
EOF
    then ok; else
        ko "\$management QUERY: status $STATUS"
        show "$tmp/mq.out" "$tmp/mq.err"
    fi
    v=$(metric 'lepton_queue_depth{queue="queue.mgmt",type="queue"}' "$md")
    check "metrics: lepton_queue_depth of queue.mgmt after 4 sends: '$v'" [ "$v" = 4 ]
    run mc 20 "$PY" "$PEER" mgmt "$u" CREATE queue.made
    s1=$(grep -o '"statusCode": [0-9]*' "$tmp/mc.out")
    run mr 20 "$PY" "$PEER" mgmt "$u" READ queue.made
    s2=$(grep -o '"statusCode": [0-9]*' "$tmp/mr.out")
    run md 20 "$PY" "$PEER" mgmt "$u" DELETE queue.made
    s3=$(grep -o '"statusCode": [0-9]*' "$tmp/md.out")
    run mr2 20 "$PY" "$PEER" mgmt "$u" READ queue.made
    s4=$(grep -o '"statusCode": [0-9]*' "$tmp/mr2.out")
    if [ "$s1 $s2 $s3 $s4" = '"statusCode": 201 "statusCode": 200 "statusCode": 204 "statusCode": 404' ]; then ok; else
        ko "\$management CREATE/READ/DELETE/READ: $s1 $s2 $s3 $s4"
    fi
    stop_broker "$BPID" dl INT
fi

# ---- make run ----

if listening 5672; then
    echo "SKIP: make run (port 5672 is taken)"
elif ! command -v make >/dev/null; then
    echo "SKIP: make run (no make)"
else
    # In a directory of its own (make run keeps its data in ./lepton-data),
    # with the scripts it runs and the build tree of this test.  Not
    # timeout --foreground: Ctrl-C reaches a terminal's whole process group,
    # and so does timeout's signal here (make itself ignores SIGINT, as the
    # shell started it in the background).
    mkdir "$tmp/run"
    ln -s "$src/scripts" "$tmp/run/scripts"
    timeout -s INT -k 5 60 make --no-print-directory -C "$tmp/run" -f "$src/Makefile" BUILD="$build" run \
        >"$tmp/run.out" 2>"$tmp/run.err" </dev/null &
    mpid=$!
    running+=("$mpid")
    if wait_listen 5672 30 any; then
        ok
        # the hint lines, run as printed
        send_hint=$(grep -- '-send -c 10 amqp://127.0.0.1:5672/queue.orders$' "$tmp/run.out" | sed 's/^ *//')
        recv_hint=$(grep -- '-recv -c 10 --print amqp://127.0.0.1:5672/queue.orders$' "$tmp/run.out" | sed 's/^ *//')
        if grep -q '^lepton-broker on amqp://127.0.0.1:5672 (data in ./lepton-data)' "$tmp/run.out" &&
            [ -n "$send_hint" ] && [ -n "$recv_hint" ]; then
            run hint1 20 $send_hint
            s1=$STATUS
            run hint2 20 $recv_hint
            if [ $s1 -eq 0 ] && [ $STATUS -eq 0 ] && [ "$(wc -l <"$tmp/hint2.out")" -eq 10 ]; then ok; else
                ko "make run: the hint lines do not work: $s1 $STATUS"
                show "$tmp/hint1.err" "$tmp/hint2.err"
            fi
        else
            ko "make run: no hint lines"
            show "$tmp/run.out"
        fi
        check "make run: data in ./lepton-data" [ -d "$tmp/run/lepton-data" ]
    else
        ko "make run: no broker on 127.0.0.1:5672"
        show "$tmp/run.out" "$tmp/run.err"
    fi
    kill -INT "$mpid" 2>/dev/null
    finish "$mpid" 15
    # make itself ends on SIGINT (130) once the broker has stopped
    if { [ $STATUS -eq 0 ] || [ $STATUS -eq 130 ]; } && tail -1 "$tmp/run.err" | grep -q ' stopped$'; then ok; else
        ko "make run: Ctrl-C: status $STATUS (want 0, the broker \"stopped\")"
        show "$tmp/run.err"
    fi
fi

# ---- summary ----

if [ -n "$(ls -A "$tmp/cwd")" ]; then
    ko "something was made in the current directory: $(ls -A "$tmp/cwd")"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
