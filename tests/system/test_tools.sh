#!/bin/bash
# The messaging command-line clients as scripts use them (issue 5's
# interface): lepton-send -> lepton-recv --listen in the three delivery
# modes, message counts and sizes (0 B to 10 MB), bodies and properties
# through --print and --json, signals, timeouts, refused connections, bad
# usage, --help, --rate, outcomes other than accepted (a Proton receiver,
# when /usr/bin/python3 has proton), lepton-server / lepton-client, TLS and
# SASL without a broker.
#
# Environment (set by ctest): LEPTON_BUILD_DIR, LEPTON_SOURCE_DIR,
# LEPTON_PYTHON (default /usr/bin/python3: the one that imports Debian's
# proton).  Servers listen on 127.0.0.1 only, on free ports; only the PIDs
# started here are signalled, and every wait is bounded (each program also
# runs under timeout(1), so nothing outlives a stuck test for long).
set -u

build=${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR not set}
src=${LEPTON_SOURCE_DIR:?LEPTON_SOURCE_DIR not set}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
SEND=$build/lepton-send
RECV=$build/lepton-recv
SERVER=$build/lepton-server
CLIENT=$build/lepton-client
PYLIB=$src/tests/interop/lib

for t in "$SEND" "$RECV" "$SERVER" "$CLIENT"; do
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

have_proton=0
"$PY" -c 'import proton' 2>/dev/null && have_proton=1

# ---- lepton-send -> lepton-recv --listen: modes and counts ----

for mode in at-most-once at-least-once exactly-once; do
    t="10000 messages $mode"
    port=$(free_port)
    start recv 60 "$RECV" --listen -c 10000 --settle "$mode" "amqp://127.0.0.1:$port"
    rpid=$PID
    if ! wait_listen "$port" 10; then
        ko "$t: lepton-recv does not listen"
        finish "$rpid" 0
        continue
    fi
    run send 60 "$SEND" -c 10000 --settle "$mode" "amqp://127.0.0.1:$port/q"
    sst=$STATUS
    finish "$rpid" 20
    if [ "$mode" = at-most-once ]; then
        want='^lepton-send: sent 10000 of 10000 messages (at-most-once) in [0-9.]* s'
    else
        want='^lepton-send: 10000 of 10000 messages accepted (0 rejected, 0 released, 0 modified, 0 resent) in'
    fi
    if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && grep -q "$want" "$tmp/send.err" &&
        grep -q '^lepton-recv: received 10000 messages in [0-9.]* s, [0-9]* msgs/s$' "$tmp/recv.err"; then
        ok
    else
        ko "$t: send $sst, recv $STATUS"
        show "$tmp/send.err" "$tmp/recv.err"
    fi
done

# ---- bodies and properties: sizes 0 B to 10 MB, --json ----

# check_json FILE COUNT SIZE|-  TEXT|-: every line is JSON with the
# properties the senders below set, message ids 1..COUNT, and the body
# (the -s pattern of SIZE bytes, or TEXT, or "message N").
check_json() {
    "$PY" - "$@" <<'EOF'
import json, sys
path, count, size, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(path, "rb").read().split(b"\n")
if lines[-1] != b"":
    sys.exit("output does not end with a newline")
lines = lines[:-1]
if len(lines) != count:
    sys.exit("%d lines, expected %d" % (len(lines), count))
for i, line in enumerate(lines, 1):
    m = json.loads(line)
    if size != "-":
        n = int(size)
        want = ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]
    elif text != "-":
        want = text
    else:
        want = "message %d" % i
    if m.get("body") != want:
        sys.exit("message %d: body %r..." % (i, str(m.get("body"))[:80]))
    p = m.get("properties", {})
    if p.get("message_id") != i:
        sys.exit("message %d: message_id %r" % (i, p.get("message_id")))
    if p.get("subject") != "the subject" or p.get("reply_to") != "back/here":
        sys.exit("message %d: subject/reply_to %r" % (i, p))
    if m.get("header", {}).get("durable") is not True:
        sys.exit("message %d: header %r" % (i, m.get("header")))
    if m.get("application_properties") != {"colour": "blue", "eq": "a=b", "uni": "\u00e9t\u00e9"}:
        sys.exit("message %d: application_properties %r" % (i, m.get("application_properties")))
EOF
}

n=0
for spec in "0 4" "100 4" "1048576 3" "10485760 2" "- 3"; do
    set -- $spec
    size=$1 count=$2
    modes=(at-least-once exactly-once at-most-once)
    mode=${modes[$((n % 3))]}
    n=$((n + 1))
    t="--json, size $size, $count messages, $mode"
    port=$(free_port)
    start recv 60 "$RECV" --listen -c "$count" --json "amqp://127.0.0.1:$port"
    rpid=$PID
    wait_listen "$port" 10 || ko "$t: lepton-recv does not listen"
    body=(-s "$size")
    [ "$size" = - ] && body=()
    run send 60 "$SEND" -c "$count" "${body[@]}" --settle "$mode" --durable --subject "the subject" \
        --reply-to back/here --property colour=blue --property eq=a=b --property uni=été \
        "amqp://127.0.0.1:$port/q"
    sst=$STATUS
    finish "$rpid" 30
    if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && err=$(check_json "$tmp/recv.out" "$count" "$size" - 2>&1); then
        ok
    else
        ko "$t: send $sst, recv $STATUS: $err"
        show "$tmp/send.err" "$tmp/recv.err"
    fi
done

# -m TEXT with --print and --json; a text with quotes, backslash, tab, UTF-8
text=$'say "hi"\\ \t été ✓'
port=$(free_port)
start recv 30 "$RECV" --listen -c 3 --json "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run send 30 "$SEND" -c 3 -m "$text" --durable --subject "the subject" --reply-to back/here \
    --property colour=blue --property eq=a=b --property uni=été "amqp://127.0.0.1:$port/q"
sst=$STATUS
finish "$rpid" 20
if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && err=$(check_json "$tmp/recv.out" 3 - "$text" 2>&1); then
    ok
else
    ko "-m TEXT --json: send $sst, recv $STATUS: $err"
    show "$tmp/recv.out" "$tmp/recv.err"
fi

port=$(free_port)
start recv 30 "$RECV" --listen -c 4 --print "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run send1 30 "$SEND" -c 2 "amqp://127.0.0.1:$port/q"
s1=$STATUS
run send2 30 "$SEND" -c 2 -s 30 "amqp://127.0.0.1:$port/q"
s2=$STATUS
finish "$rpid" 20
printf '%s\n' "message 1" "message 2" abcdefghijklmnopqrstuvwxyzabcd abcdefghijklmnopqrstuvwxyzabcd >"$tmp/want"
if [ $s1 -eq 0 ] && [ $s2 -eq 0 ] && [ $STATUS -eq 0 ] && cmp -s "$tmp/want" "$tmp/recv.out"; then
    ok
else
    ko "--print: send $s1/$s2, recv $STATUS"
    show "$tmp/recv.out" "$tmp/recv.err"
fi

# A receiver that wants fewer than are sent: it stops after its count; the
# sender fails (not every message settled) instead of hanging.
port=$(free_port)
start recv 30 "$RECV" --listen -c 10 --print "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run send 30 "$SEND" -c 20 --max-reconnect 2 "amqp://127.0.0.1:$port/q"
sst=$STATUS
finish "$rpid" 10
if [ $sst -eq 1 ] && [ $STATUS -eq 0 ] && [ "$(wc -l <"$tmp/recv.out")" -eq 10 ] &&
    grep -q '^lepton-send: 10 of 20 messages accepted' "$tmp/send.err"; then
    ok
else
    ko "receiver stops at its count: send $sst (want 1), recv $STATUS"
    show "$tmp/send.err" "$tmp/recv.err"
fi

# --json keeps to JSON whatever a peer sends: binary that is not UTF-8,
# control characters, maps, lists, chars, NaN, uuids, described values,
# odd keys (a Proton sender, when there is one).
if [ $have_proton = 1 ]; then
    cat >"$tmp/odd.py" <<'EOF'
import sys, uuid
from proton import UNDESCRIBED, Array, Data, Message, symbol, char, ulong, Described, decimal128
from proton.utils import BlockingConnection
from proton._utils import ConnectionClosed
msgs = []
m = Message(body=b"\xff\xfe\x00bin"); m.inferred = True; msgs.append(m)
m = Message(body=b"plain data"); m.inferred = True; msgs.append(m)
msgs.append(Message(body=b"\xff\x00binary value"))
msgs.append(Message(body={"k": 1, symbol("s"): [1, 2, "x"]}))
msgs.append(Message(body=[1, "two", 3.5]))
msgs.append(Message(body="ctl \x01\x1f \"q\" \\ \u00e9 \U0001F600 \x7f"))
msgs.append(Message(body=char("\u00e9")))
msgs.append(Message(body=float("nan")))
msgs.append(Message(body=uuid.UUID(int=5)))
msgs.append(Message(body=None))
msgs.append(Message(body=decimal128(b"0123456789abcdef")))
msgs.append(Message(body=Described(symbol("x:y"), "described")))
msgs.append(Message(id=uuid.UUID(int=7), correlation_id=b"\xff\x01", body="ids"))
m = Message(id="str-id", user_id=b"\xffuser", body="uid")
m.annotations = {symbol("x-opt-a"): "v", ulong(5): 2, symbol("x-bin"): b"\xff"}
m.properties = {"p\u00e9": b"\xfe", "n": None, "f": 1.5, "b": True, "l": -3}
msgs.append(m)
msgs.append(Message(body={"k": 1, symbol("s"): [1, 2, "x"], 5: None, "m": {"in": b"\xff"}}))
m = Message(body=[[1, 2], ["x"]]); m.inferred = True; msgs.append(m)  # amqp-sequence
msgs.append(Message(body=Described(ulong(7), "v")))
msgs.append(Message(body=Array(UNDESCRIBED, Data.INT, 1, 2, 3)))
msgs.append(Message(body=Array(symbol("d"), Data.STRING, "a", "b")))
c = BlockingConnection(sys.argv[1], timeout=10)
s = c.create_sender("q")
for i, m in enumerate(msgs):
    try:
        s.send(m)
    except ConnectionClosed:
        # the receiver closes once it has its count: the last outcome
        # and the close may come in one read
        if i != len(msgs) - 1:
            raise
try:
    c.close()
except Exception:
    pass
EOF
    port=$(free_port)
    start recv 30 "$RECV" --listen -c 19 --json "amqp://127.0.0.1:$port"
    rpid=$PID
    wait_listen "$port" 10
    run odd 30 "$PY" "$tmp/odd.py" "amqp://127.0.0.1:$port"
    pst=$STATUS
    finish "$rpid" 10
    if [ $pst -eq 0 ] && [ $STATUS -eq 0 ] && err=$("$PY" - "$tmp/recv.out" <<'EOF' 2>&1
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert len(ms) == 19, len(ms)
b = [m.get("body") for m in ms]
assert b[0] == {"base64": "//4AYmlu"}, b[0]
assert b[1] == "plain data", b[1]
assert b[2] == {"base64": "/wBiaW5hcnkgdmFsdWU="}, b[2]
assert b[3] == {"k": 1, "s": [1, 2, "x"]}, b[3]
assert b[4] == [1, "two", 3.5], b[4]
assert b[5] == "ctl \x01\x1f \"q\" \\ \u00e9 \U0001F600 \x7f", b[5]
assert b[6] == "\u00e9", b[6]
assert b[7] is None and b[9] is None, (b[7], b[9])
assert b[8] == "00000000-0000-0000-0000-000000000005", b[8]
assert b[10] == "decimal128:0x30313233343536373839616263646566", b[10]
assert b[11] == {"descriptor": "x:y", "value": "described"}, b[11]
p = ms[12]["properties"]
assert p["message_id"] == "00000000-0000-0000-0000-000000000007", p
assert p["correlation_id"] == {"base64": "/wE="}, p
m = ms[13]
assert m["properties"] == {"message_id": "str-id", "user_id": {"base64": "/3VzZXI="}}, m
assert m["message_annotations"] == {"x-opt-a": "v", "5": 2, "x-bin": {"base64": "/w=="}}, m
assert m["application_properties"] == {"p\u00e9": {"base64": "/g=="}, "n": None, "f": 1.5,
                                       "b": True, "l": -3}, m
assert b[14] == {"k": 1, "s": [1, 2, "x"], "5": None, "m": {"in": {"base64": "/w=="}}}, b[14]
assert b[15] == [[1, 2], ["x"]], b[15]
assert b[16] == {"descriptor": 7, "value": "v"}, b[16]
assert b[17] == [1, 2, 3], b[17]
assert b[18] == [{"descriptor": "d", "value": "a"}, {"descriptor": "d", "value": "b"}], b[18]
EOF
    ); then
        ok
    else
        ko "--json of odd messages: sender $pst, recv $STATUS: $err"
        show "$tmp/odd.err" "$tmp/recv.out" "$tmp/recv.err"
    fi
else
    echo "SKIP: --json of odd messages ($PY cannot import proton)"
fi

# ---- lepton-recv -c 0: SIGINT and SIGTERM stop it cleanly ----

for sig in INT TERM; do
    port=$(free_port)
    start recv 30 "$RECV" --listen -c 0 --print "amqp://127.0.0.1:$port"
    rpid=$PID
    wait_listen "$port" 10
    run send 30 "$SEND" -c 5 "amqp://127.0.0.1:$port/q"
    sst=$STATUS
    wait_file "$tmp/recv.out" "message 5" 5
    kill -"$sig" "$rpid"
    finish "$rpid" 10
    if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && [ "$(wc -l <"$tmp/recv.out")" -eq 5 ] &&
        grep -q '^lepton-recv: received 5 messages in' "$tmp/recv.err"; then
        ok
    else
        ko "-c 0 and SIG$sig: send $sst, recv $STATUS (want 0)"
        show "$tmp/recv.err"
    fi
done
# ... also while nobody ever connected
port=$(free_port)
start recv 30 "$RECV" --listen -c 0 "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
kill -INT "$rpid"
finish "$rpid" 10
if [ $STATUS -eq 0 ] && grep -q '^lepton-recv: received 0 messages' "$tmp/recv.err"; then ok; else
    ko "idle -c 0 and SIGINT: recv $STATUS"
    show "$tmp/recv.err"
fi
# ... and a count not reached is a failure
port=$(free_port)
start recv 30 "$RECV" --listen -c 5 "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
kill -TERM "$rpid"
finish "$rpid" 10
if [ $STATUS -eq 1 ] && grep -q 'interrupted with 0 of 5 messages' "$tmp/recv.err"; then ok; else
    ko "-c 5 and SIGTERM: recv $STATUS (want 1)"
    show "$tmp/recv.err"
fi

# ---- timeouts and refused connections: exit 1, a clear message, no hang ----

closed=$(free_port) # nothing listens there
run t1 20 "$RECV" --listen --timeout 1 "amqp://127.0.0.1:$(free_port)"
if [ $STATUS -eq 1 ] && between "$ELAPSED" 0.8 5 &&
    grep -q 'timed out after 1 s with 0 of 1 messages (no sender came)' "$tmp/t1.err"; then ok; else
    ko "recv --listen --timeout 1: status $STATUS in $ELAPSED s"
    show "$tmp/t1.err"
fi
run t2 20 "$RECV" --timeout 1 "amqp://127.0.0.1:$closed/q"
if [ $STATUS -eq 1 ] && between "$ELAPSED" 0.8 5 && grep -q 'timed out after 1 s' "$tmp/t2.err" &&
    grep -qi 'connection refused' "$tmp/t2.err"; then ok; else
    ko "recv --timeout 1 to a closed port: status $STATUS in $ELAPSED s"
    show "$tmp/t2.err"
fi
run t3 20 "$SEND" --timeout 2 -c 3 "amqp://127.0.0.1:$closed/q"
if [ $STATUS -eq 1 ] && between "$ELAPSED" 1.8 6 && grep -qi 'connection refused' "$tmp/t3.err" &&
    grep -q 'timed out after 2 s with 0 of 3 messages settled' "$tmp/t3.err"; then ok; else
    ko "send --timeout 2 to a closed port: status $STATUS in $ELAPSED s"
    show "$tmp/t3.err"
fi
for n in 0 3; do
    run t4 20 "$SEND" --max-reconnect $n "amqp://127.0.0.1:$closed/q"
    if [ $STATUS -eq 1 ] && between "$ELAPSED" 0 5 && grep -qi 'connection refused' "$tmp/t4.err" &&
        grep -q '^lepton-send: 0 of 1 messages accepted' "$tmp/t4.err"; then ok; else
        ko "send --max-reconnect $n to a closed port: status $STATUS in $ELAPSED s"
        show "$tmp/t4.err"
    fi
done
run t5 20 "$CLIENT" --max-reconnect 1 "amqp://127.0.0.1:$closed/q" -m x
if [ $STATUS -eq 1 ] && grep -qi 'connection refused' "$tmp/t5.err" && [ ! -s "$tmp/t5.out" ]; then ok; else
    ko "client to a closed port: status $STATUS"
    show "$tmp/t5.err"
fi

# ---- --rate ----

port=$(free_port)
start recv 30 "$RECV" --listen -c 20 "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run rate 30 "$SEND" -c 20 --rate 10 "amqp://127.0.0.1:$port/q"
sst=$STATUS
finish "$rpid" 10
if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && between "$ELAPSED" 1.2 6; then ok; else
    ko "20 messages at --rate 10: send $sst, recv $STATUS, $ELAPSED s (want about 2)"
    show "$tmp/rate.err"
fi

# ---- outcomes other than accepted (a Proton receiver) ----

if [ $have_proton = 1 ]; then
    for outcome in reject release modify; do
        case $outcome in
        reject) want='0 of 3 messages accepted (3 rejected, 0 released, 0 modified' word=rejected ;;
        release) want='0 of 3 messages accepted (0 rejected, 3 released, 0 modified' word=released ;;
        modify) want='0 of 3 messages accepted (0 rejected, 0 released, 3 modified' word=modified ;;
        esac
        port=$(free_port)
        start pyrecv 30 "$PY" "$PYLIB/pyrecv.py" --listen --outcome $outcome -c 3 --timeout 20 \
            "amqp://127.0.0.1:$port"
        rpid=$PID
        wait_listen "$port" 10
        run send 30 "$SEND" -c 3 "amqp://127.0.0.1:$port/q"
        sst=$STATUS
        finish "$rpid" 10
        if [ $sst -eq 1 ] && grep -q "$want" "$tmp/send.err" &&
            grep -q "^lepton-send: message 1 $word" "$tmp/send.err"; then ok; else
            ko "receiver with --outcome $outcome: send $sst (want 1)"
            show "$tmp/send.err" "$tmp/pyrecv.err"
        fi
    done
    # lepton-recv as a client, from a Proton sender that listens
    port=$(free_port)
    start pysend 30 "$PY" "$PYLIB/pysend.py" --listen -c 5 --timeout 20 "amqp://127.0.0.1:$port"
    spid=$PID
    wait_listen "$port" 10
    run recv 30 "$RECV" -c 5 --credit 2 --print "amqp://127.0.0.1:$port/q"
    rst=$STATUS
    finish "$spid" 10
    printf 'message-%d\n' 0 1 2 3 4 >"$tmp/want"
    if [ $rst -eq 0 ] && [ $STATUS -eq 0 ] && cmp -s "$tmp/want" "$tmp/recv.out"; then ok; else
        ko "lepton-recv from a listening Proton sender: recv $rst, pysend $STATUS"
        show "$tmp/recv.out" "$tmp/recv.err" "$tmp/pysend.err"
    fi
else
    echo "SKIP: rejected/released/modified outcomes ($PY cannot import proton)"
fi

# ---- lepton-server / lepton-client ----

port=$(free_port)
start server 60 "$SERVER" --listen "amqp://127.0.0.1:$port/requests"
spid=$PID
wait_listen "$port" 10
run c1 20 "$CLIENT" "amqp://127.0.0.1:$port/requests" -m one -m "Two words" -m 'été ok' -m "" -m four
c1=$STATUS
printf '%s\n' ONE "TWO WORDS" 'éTé OK' "" FOUR >"$tmp/want"
if [ $c1 -eq 0 ] && cmp -s "$tmp/want" "$tmp/c1.out"; then ok; else
    ko "client -m x5: status $c1, replies not as expected"
    show "$tmp/c1.out" "$tmp/c1.err"
fi
# several clients at once, each getting its own replies in order
for i in 1 2 3; do
    args=()
    for k in $(seq 1 30); do args+=(-m "client $i request $k"); done
    start "cc$i" 30 "$CLIENT" "amqp://127.0.0.1:$port/requests" "${args[@]}"
    cpids[$i]=$PID
done
for i in 1 2 3; do
    finish "${cpids[$i]}" 20
    for k in $(seq 1 30); do echo "CLIENT $i REQUEST $k"; done >"$tmp/want"
    if [ $STATUS -eq 0 ] && cmp -s "$tmp/want" "$tmp/cc$i.out"; then ok; else
        ko "concurrent client $i: status $STATUS"
        show "$tmp/cc$i.out" "$tmp/cc$i.err"
    fi
done
kill -TERM "$spid"
finish "$spid" 10
if [ $STATUS -eq 0 ] && grep -q '^lepton-server: answered 95 requests$' "$tmp/server.err"; then ok; else
    ko "server stopped by SIGTERM: status $STATUS"
    show "$tmp/server.err"
fi

# --count N: exits by itself once N replies went out
port=$(free_port)
start server 30 "$SERVER" --listen --count 4 "amqp://127.0.0.1:$port/requests"
spid=$PID
wait_listen "$port" 10
run c2 20 "$CLIENT" "amqp://127.0.0.1:$port/requests" -m a -m b -m c -m d
c2=$STATUS
finish "$spid" 10
if [ $c2 -eq 0 ] && [ $STATUS -eq 0 ] && [ "$(tr -d '\n' <"$tmp/c2.out")" = ABCD ] &&
    grep -q '^lepton-server: answered 4 requests$' "$tmp/server.err"; then ok; else
    ko "server --count 4: client $c2, server $STATUS"
    show "$tmp/c2.out" "$tmp/c2.err" "$tmp/server.err"
fi

# a peer that takes requests and never answers (lepton-recv --listen also
# gives the client's dynamic receiver an address): --timeout ends the wait
port=$(free_port)
start recv 30 "$RECV" --listen -c 0 "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run c3 20 "$CLIENT" --timeout 1 "amqp://127.0.0.1:$port/requests" -m hello -m again
c3=$STATUS
kill -INT "$rpid"
finish "$rpid" 10
if [ $c3 -eq 1 ] && between "$ELAPSED" 0.8 5 && [ ! -s "$tmp/c3.out" ] &&
    grep -q 'timed out after 1 s with 0 of 2 replies' "$tmp/c3.err"; then ok; else
    ko "client --timeout 1 against a server that never answers: status $c3 in $ELAPSED s"
    show "$tmp/c3.err"
fi

# ---- TLS ----

if command -v openssl >/dev/null && sh "$src/tests/tls/make-certs.sh" "$tmp/certs" >/dev/null 2>&1; then
    C=$tmp/certs
    port=$(free_port)
    start recv 30 "$RECV" --listen -c 0 --print --tls-cert "$C/server.pem" --tls-key "$C/server.key" \
        "amqps://127.0.0.1:$port"
    rpid=$PID
    wait_listen "$port" 10
    run tls1 20 "$SEND" -c 3 -m secret --tls-ca "$C/ca.pem" "amqps://127.0.0.1:$port/q"
    s1=$STATUS
    run tls2 20 "$SEND" -c 2 -s 1048576 --tls-ca "$C/ca.pem" "amqps://localhost:$port/q"
    s2=$STATUS
    # the wrong CA: refused at once (no reconnecting), exit 1
    run tls3 20 "$SEND" --tls-ca "$C/other-ca.pem" "amqps://127.0.0.1:$port/q"
    s3=$STATUS e3=$ELAPSED
    # a client that does not speak TLS to a TLS listener
    run tls4 20 "$SEND" --max-reconnect 1 "amqp://127.0.0.1:$port/q"
    s4=$STATUS
    wait_file "$tmp/recv.out" 'abcdef' 5
    kill -TERM "$rpid"
    finish "$rpid" 10
    if [ $s1 -eq 0 ] && [ $s2 -eq 0 ] && [ $STATUS -eq 0 ] &&
        [ "$(grep -c '^secret$' "$tmp/recv.out")" -eq 3 ] &&
        [ "$(grep -c '^abcdefghij' "$tmp/recv.out")" -eq 2 ]; then ok; else
        ko "TLS send/recv: send $s1/$s2, recv $STATUS"
        show "$tmp/tls1.err" "$tmp/tls2.err" "$tmp/recv.err"
    fi
    if [ $s3 -eq 1 ] && between "$e3" 0 5 &&
        grep -q '^lepton-send: 0 of 1 messages accepted' "$tmp/tls3.err"; then ok; else
        ko "TLS with the wrong CA: status $s3 (want 1) in $e3 s"
        show "$tmp/tls3.err"
    fi
    # The client's own reason (the server's certificate is not trusted) is
    # what the user needs, not the socket's end that follows it.
    if grep -qi 'certificate' "$tmp/tls3.err"; then ok; else
        ko "wrong CA reported as: $(grep -v '^lepton-send:' "$tmp/tls3.err" | head -1)"
    fi
    if [ $s4 -eq 1 ]; then ok; else
        ko "amqp:// client to an amqps:// listener: status $s4 (want 1)"
        show "$tmp/tls4.err"
    fi
    # the server side: lepton-server over TLS with lepton-client
    port=$(free_port)
    start server 30 "$SERVER" --listen --count 2 --tls-cert "$C/server.pem" --tls-key "$C/server.key" \
        "amqps://127.0.0.1:$port/requests"
    spid=$PID
    wait_listen "$port" 10
    run c4 20 "$CLIENT" --tls-ca "$C/ca.pem" "amqps://127.0.0.1:$port/requests" -m tls -m works
    c4=$STATUS
    finish "$spid" 10
    if [ $c4 -eq 0 ] && [ $STATUS -eq 0 ] && [ "$(tr '\n' ' ' <"$tmp/c4.out")" = "TLS WORKS " ]; then ok; else
        ko "TLS server/client: client $c4, server $STATUS"
        show "$tmp/c4.err" "$tmp/server.err"
    fi
else
    echo "SKIP: TLS (cannot make test certificates)"
fi

# ---- SASL against a listener without users (it offers ANONYMOUS only) ----
# sasl.h: a client given a user and password uses ANONYMOUS only when
# --sasl-mechanisms lists it, so that it never connects as nobody by
# surprise; PLAIN without TLS only when listed.

port=$(free_port)
start recv 60 "$RECV" --listen -c 0 --print "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
run sa1 20 "$SEND" -m anon "amqp://127.0.0.1:$port/q"
sa1=$STATUS
run sa2 20 "$SEND" -m listed --sasl-mechanisms ANONYMOUS "amqp://127.0.0.1:$port/q"
sa2=$STATUS
run sa3 20 "$SEND" -m creds "amqp://alice:secret@127.0.0.1:$port/q"
sa3=$STATUS e3=$ELAPSED
run sa4 20 "$SEND" -m creds-plain --sasl-mechanisms PLAIN "amqp://alice:secret@127.0.0.1:$port/q"
sa4=$STATUS
run sa5 20 "$SEND" -m creds-fallback --sasl-mechanisms plain,anonymous "amqp://alice:secret@127.0.0.1:$port/q"
sa5=$STATUS
run sa6 20 "$CLIENT" "amqp://bob:pw@127.0.0.1:$port/q" -m x
sa6=$STATUS
wait_file "$tmp/recv.out" creds-fallback 5
kill -INT "$rpid"
finish "$rpid" 10
printf '%s\n' anon listed creds-fallback >"$tmp/want"
check "SASL: no credentials (ANONYMOUS) works: $sa1" [ $sa1 -eq 0 ]
check "SASL: --sasl-mechanisms ANONYMOUS works: $sa2" [ $sa2 -eq 0 ]
if [ $sa3 -eq 1 ] && between "$e3" 0 5 && grep -q 'unauthorized-access.*no usable SASL mechanism' "$tmp/sa3.err"; then ok; else
    ko "SASL: credentials, server offers only ANONYMOUS: status $sa3 in $e3 s (want 1 at once)"
    show "$tmp/sa3.err"
fi
if [ $sa4 -eq 1 ] && grep -q 'no usable SASL mechanism' "$tmp/sa4.err"; then ok; else
    ko "SASL: --sasl-mechanisms PLAIN against ANONYMOUS only: status $sa4"
    show "$tmp/sa4.err"
fi
check "SASL: credentials with ANONYMOUS listed fall back to it: $sa5" [ $sa5 -eq 0 ]
check "SASL: lepton-client with credentials, ANONYMOUS only: $sa6" [ $sa6 -eq 1 ]
if [ $STATUS -eq 0 ] && cmp -s "$tmp/want" "$tmp/recv.out"; then ok; else
    ko "SASL: the listener got other messages than expected (status $STATUS)"
    show "$tmp/recv.out"
fi

# ---- bad usage: one line, a hint, exit 2; run-time problems exit 1 ----

# usage WANT TOOL ARGS...: status WANT, nothing on stdout; for 2, exactly
# two lines on stderr: "TOOL: ..." and the --help hint; for 1, one line.
usage() {
    local want=$1 tool=$2
    shift 2
    run usage 10 "$build/$tool" "$@"
    local lines
    lines=$(wc -l <"$tmp/usage.err")
    if [ $STATUS -ne "$want" ] || [ -s "$tmp/usage.out" ] || ! head -1 "$tmp/usage.err" | grep -q "^$tool: " ||
        { [ "$want" = 2 ] && { [ "$lines" -ne 2 ] || ! grep -q "^Try '$tool --help' for more information.$" "$tmp/usage.err"; }; } ||
        { [ "$want" = 1 ] && [ "$lines" -ne 1 ]; }; then
        ko "$tool $*: status $STATUS (want $want), or not one clear line"
        show "$tmp/usage.out" "$tmp/usage.err"
    else
        ok
    fi
}
u=amqp://127.0.0.1:$closed/q
for tool in lepton-send lepton-recv lepton-server lepton-client; do
    m=()
    [ $tool = lepton-client ] && m=(-m x)
    usage 2 $tool "${m[@]}"                                   # no URL
    usage 2 $tool --bogus "${m[@]}" "$u"
    usage 2 $tool -Z "${m[@]}" "$u"
    usage 2 $tool --verbose=3 "${m[@]}" "$u"
    usage 2 $tool "${m[@]}" "$u" extra
    usage 2 $tool "${m[@]}" http://127.0.0.1/q               # bad scheme
    usage 2 $tool "${m[@]}" amqp://127.0.0.1:99999/q         # bad port
    usage 2 $tool "${m[@]}" 'amqp://127.0.0.1:x/q'
    usage 2 $tool --settle sometimes "${m[@]}" "$u"
    usage 2 $tool --timeout 0 "${m[@]}" "$u"
    usage 2 $tool --timeout soon "${m[@]}" "$u"
    usage 2 $tool --max-reconnect -1 "${m[@]}" "$u"
    usage 2 $tool --sasl-mechanisms BOGUS "${m[@]}" "$u"
    usage 2 $tool --sasl-mechanisms , "${m[@]}" "$u"
    usage 2 $tool "${m[@]}" "$u" --settle                    # no value
    usage 1 $tool --tls-ca "$tmp/missing.pem" "${m[@]}" "amqps://127.0.0.1:$closed/q"
    usage 1 $tool --tls-cert "$tmp/missing.pem" --tls-key "$tmp/missing.key" "${m[@]}" \
        "amqps://127.0.0.1:$closed/q"
    usage 2 $tool --tls-key /dev/null "${m[@]}" "amqps://127.0.0.1:$closed/q"
done
for tool in lepton-send lepton-recv lepton-client; do
    m=()
    [ $tool = lepton-client ] && m=(-m x)
    usage 2 $tool "${m[@]}" amqp://127.0.0.1:$closed       # no ADDRESS
done
for tool in lepton-recv lepton-server; do
    usage 2 $tool --listen "amqps://127.0.0.1:$closed"       # TLS listener without a certificate
    usage 2 $tool --credit 0 "$u"
    usage 2 $tool --count -3 "$u"
done
usage 2 lepton-send --count abc "$u"
usage 2 lepton-send -c 1.5 "$u"
usage 2 lepton-send --size -1 "$u"
usage 2 lepton-send -s 10k "$u"
usage 2 lepton-send -m text -s 10 "$u"
usage 2 lepton-send --rate fast "$u"
usage 2 lepton-send --rate -2 "$u"
usage 2 lepton-send --property novalue "$u"
usage 2 lepton-send --property =v "$u"
usage 2 lepton-send --durable=yes "$u"
usage 2 lepton-send -c "$u"
usage 2 lepton-recv --print --json "$u"
usage 2 lepton-recv --listen --credit x "$u"
usage 2 lepton-client "$u"                                  # no -m
usage 2 lepton-client -m "$u"
# a port in use is a run-time failure
port=$(free_port)
start recv 30 "$RECV" --listen -c 0 "amqp://127.0.0.1:$port"
rpid=$PID
wait_listen "$port" 10
usage 1 lepton-recv --listen "amqp://127.0.0.1:$port"
usage 1 lepton-server --listen "amqp://127.0.0.1:$port"
kill -INT "$rpid"
finish "$rpid" 10

# ---- --help and --version ----

# help TOOL OPTION...: --help exits 0, writes the usage to stdout only, and
# names every option
help() {
    local tool=$1
    shift
    run help 10 "$build/$tool" --help
    local missing=() o
    for o in "$@" --settle --timeout --sasl-mechanisms --tls-ca --tls-cert --tls-key \
        --max-reconnect --verbose --help --version at-most-once at-least-once exactly-once \
        'Exit status'; do
        grep -q -- "$o" "$tmp/help.out" || missing+=("$o")
    done
    if [ $STATUS -eq 0 ] && [ ! -s "$tmp/help.err" ] && head -1 "$tmp/help.out" | grep -q "^Usage: $tool " &&
        [ ${#missing[@]} -eq 0 ]; then ok; else
        ko "$tool --help: status $STATUS, missing: ${missing[*]}"
    fi
    run version 10 "$build/$tool" --version
    if [ $STATUS -eq 0 ] && grep -Eq "^$tool \(lepton\) [0-9]+\.[0-9]+\.[0-9]+$" "$tmp/version.out"; then ok; else
        ko "$tool --version: status $STATUS"
    fi
    # -h too, whatever else is on the line
    run help2 10 "$build/$tool" -h --bogus-after
    check "$tool -h: status $STATUS" [ $STATUS -eq 0 ]
}
help lepton-send -c, --count -m, --message -s, --size --durable --property --subject --reply-to --rate
help lepton-recv -c, --count --listen --print --json --credit
help lepton-server -c, --count --listen --credit
help lepton-client -m, --message

# The man pages are well-formed roff and name every option of --help.
for tool in lepton-send lepton-recv lepton-server lepton-client; do
    page=$src/tools/$tool.1
    if [ ! -f "$page" ]; then
        ko "no man page $page"
        continue
    fi
    if command -v groff >/dev/null 2>&1; then
        warnings=$(groff -man -ww -z "$page" 2>&1)
        check "$tool.1: $warnings" [ -z "$warnings" ]
    fi
    "$build/$tool" --help | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/opts"
    sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page" >"$tmp/page.txt"
    missing=()
    while read -r o; do
        grep -q -- "$o" "$tmp/page.txt" || missing+=("$o")
    done <"$tmp/opts"
    check "$tool.1 lacks ${missing[*]}" [ ${#missing[@]} -eq 0 ]
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
