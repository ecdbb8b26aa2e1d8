#!/bin/sh
# Request-response between lepton and Qpid Proton (python3-qpid-proton):
#   1. lepton-client -> lib/pyserver.py --listen (Proton's server_direct
#      pattern: it assigns an address to the client's dynamic receiver),
#      every settle mode: the replies are the upper-cased bodies, printed in
#      order; pyserver checks each request's reply-to is the address it
#      assigned and prints the correlation-ids lepton-client set (1, 2, ...)
#   2. lib/pyclient.py (Proton's client pattern: dynamic receiver, reply-to)
#      -> lepton-server --listen, every settle mode, requests pipelined and
#      one by one; pyclient checks each reply's correlation-id; a request
#      without correlation-id is answered with its message-id
#   3. lepton-client -> lepton-server --listen, every settle mode
#   4. lepton-server through Proton-C's example broker (which has no dynamic
#      nodes and no anonymous relay: lepton-server opens a sender to each
#      reply-to address): pysend's requests, pyrecv reads the replies
# lepton-client cannot go through the example broker (it crashes on a
# dynamic source); RabbitMQ refuses dynamic sources (test_tools_rabbitmq.sh
# checks lepton-client says so, and lepton-server through RabbitMQ).
# Servers listen on 127.0.0.1 only, on free ports; only PIDs started here
# are stopped; every wait is bounded.
set -u
SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/interop/lib/peers.sh"
BUILD=$PEERS_BUILD
CLIENT=$BUILD/lepton-client
SERVER=$BUILD/lepton-server
W=$PEERS_WORK
passed=0
failed=0
trap peers_cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
ko() {
    echo "FAIL: $1"
    for f in "$W"/*.out "$W"/*.err; do
        [ -s "$f" ] || continue
        echo "--- $f"
        tail -12 "$f" | cut -c1-300
    done
    failed=$((failed + 1))
}
fresh() { rm -f "$W"/*.out "$W"/*.err; }
finish() {
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}
pyserver() { "$PEERS_PY" "$PEERS_LIB/pyserver.py" "$@"; }
pyclient() { "$PEERS_PY" "$PEERS_LIB/pyclient.py" "$@"; }

if ! "$PEERS_PY" -c 'import proton' 2>/dev/null; then
    echo "FAIL: $PEERS_PY cannot import proton (python3-qpid-proton; run scripts/setup.sh)"
    failed=1
    finish
fi
for t in "$CLIENT" "$SERVER"; do
    if [ ! -x "$t" ]; then
        echo "FAIL: $t not built"
        failed=1
        finish
    fi
done

# shellcheck disable=SC2046
set -- $(free_port 3)
P1=$1 P2=$2 BPORT=$3
printf '%s\n' "TWAS BRILLIG, AND THE SLITHY TOVES" "DID GYRE AND GIMBLE IN THE WABE." \
    "" "ALL MIMSY WERE THE BOROGOVES" >"$W/want"

# --- 1. lepton-client -> Proton server_direct ------------------------------------------
for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="lepton-client -> pyserver --listen (server_direct), $mode: 4 replies upper-cased, in order"
    pyserver --listen "amqp://127.0.0.1:$P1" --count 4 --print -t 20 >"$W/server.out" 2>"$W/server.err" &
    s=$!
    why=""
    if wait_for "$W/server.err" "listening on" 10; then
        "$CLIENT" --settle $mode --timeout 15 "amqp://127.0.0.1:$P1/requests" \
            -m "Twas brillig, and the slithy toves" -m "Did gyre and gimble in the wabe." \
            -m "" -m "All mimsy were the borogoves" >"$W/client.out" 2>"$W/client.err" ||
            why="$why client exit $?;"
        wait_pid $s 15 || why="$why pyserver exit $?;"
    else
        why=" pyserver not listening;"
        kill $s 2>/dev/null
        wait $s 2>/dev/null
    fi
    cmp -s "$W/want" "$W/client.out" || why="$why replies;"
    # every request came with the address pyserver assigned as reply-to and
    # its number as correlation-id; pre-settled for at-most-once only
    addr=$(sed -n 's/^pyserver: assigned //p' "$W/server.err" | head -1)
    settled=false
    [ $mode = at-most-once ] && settled=true
    "$PEERS_PY" - "$W/server.out" "$addr" $settled <<'EOF' || why="$why requests: $(tail -1 "$W/check.err");"
import json, sys
path, addr, settled = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
reqs = [json.loads(l) for l in open(path)]
def bad(why):
    open(path.rsplit("/", 1)[0] + "/check.err", "a").write(why + "\n")
    sys.exit(1)
if len(reqs) != 4:
    bad("%d requests" % len(reqs))
for i, r in enumerate(reqs, 1):
    if not addr or r["reply_to"] != addr:
        bad("request %d: reply-to %r, assigned %r" % (i, r["reply_to"], addr))
    if r["correlation_id"] != str(i):
        bad("request %d: correlation-id %r" % (i, r["correlation_id"]))
    if r["settled"] != settled:
        bad("request %d: settled %r" % (i, r["settled"]))
EOF
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi
done

# --- 2. Proton client -> lepton-server --listen ---------------------------------------------
for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="pyclient -> lepton-server --listen, $mode: pipelined, one by one, and by message-id"
    "$SERVER" --listen -v -c 9 --settle $mode --timeout 30 "amqp://127.0.0.1:$P2/requests" \
        >"$W/server.out" 2>"$W/server.err" &
    s=$!
    why=""
    if wait_for "$W/server.err" "listening on" 10; then
        pyclient --settle $mode -t 15 "amqp://127.0.0.1:$P2/requests" \
            -m "Twas brillig, and the slithy toves" -m "Did gyre and gimble in the wabe." \
            -m "" -m "All mimsy were the borogoves" >"$W/client.out" 2>"$W/client.err" ||
            why="$why pipelined exit $?;"
        cmp -s "$W/want" "$W/client.out" || why="$why pipelined replies;"
        pyclient --settle $mode --one-by-one -t 15 "amqp://127.0.0.1:$P2/requests" \
            -m "Twas brillig, and the slithy toves" -m "Did gyre and gimble in the wabe." \
            -m "" -m "All mimsy were the borogoves" >"$W/client.out" 2>>"$W/client.err" ||
            why="$why one-by-one exit $?;"
        cmp -s "$W/want" "$W/client.out" || why="$why one-by-one replies;"
        pyclient --settle $mode --no-correlation-id -t 15 "amqp://127.0.0.1:$P2/requests" \
            -m "by message-id" >"$W/client.out" 2>>"$W/client.err" || why="$why by message-id exit $?;"
        [ "$(cat "$W/client.out")" = "BY MESSAGE-ID" ] || why="$why by message-id reply;"
        wait_pid $s 15 || why="$why server exit $?;"
        grep -q "answered 9 requests" "$W/server.err" || why="$why server summary;"
        # each client got an address of its own from lepton-server
        [ "$(sed -n 's/^pyclient: replies come to //p' "$W/client.err" | sort -u | wc -l)" -eq 3 ] ||
            why="$why reply addresses not distinct;"
    else
        why=" lepton-server not listening;"
        kill $s 2>/dev/null
        wait $s 2>/dev/null
    fi
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi
done

# --- 3. lepton-client -> lepton-server --listen ----------------------------------------------
for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="lepton-client -> lepton-server --listen, $mode: 4 replies upper-cased, in order"
    "$SERVER" --listen -v -c 4 --settle $mode --timeout 30 "amqp://127.0.0.1:$P2/requests" \
        >"$W/server.out" 2>"$W/server.err" &
    s=$!
    why=""
    if wait_for "$W/server.err" "listening on" 10; then
        "$CLIENT" --settle $mode --timeout 15 "amqp://127.0.0.1:$P2/requests" \
            -m "Twas brillig, and the slithy toves" -m "Did gyre and gimble in the wabe." \
            -m "" -m "All mimsy were the borogoves" >"$W/client.out" 2>"$W/client.err" ||
            why="$why client exit $?;"
        wait_pid $s 15 || why="$why server exit $?;"
    else
        why=" lepton-server not listening;"
        kill $s 2>/dev/null
        wait $s 2>/dev/null
    fi
    cmp -s "$W/want" "$W/client.out" || why="$why replies;"
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi
done

# --- 4. lepton-server through Proton-C's example broker -----------------------------------------
fresh
B=amqp://127.0.0.1:$BPORT
t="lepton-server through the Proton-C broker: pysend's 5 requests, replies to their reply-to with their message-ids"
why=""
if proton_broker_start "$BPORT" 2>"$W/broker.err"; then
    pysend "$B/requests" --count 5 -m "hello broker" --reply-to replies -t 15 2>"$W/send.err" ||
        why="$why pysend exit $?;"
    "$SERVER" -c 5 --timeout 15 "$B/requests" >"$W/server.out" 2>"$W/server.err" || why="$why server exit $?;"
    pyrecv "$B/replies" --count 5 --print-message -t 15 >"$W/replies.out" 2>"$W/replies.err" ||
        why="$why pyrecv exit $?;"
    "$PEERS_PY" - "$W/replies.out" <<'EOF' || why="$why replies: $(tail -1 "$W/check.err");"
import json, sys
path = sys.argv[1]
reps = [json.loads(l) for l in open(path)]
def bad(why):
    open(path.rsplit("/", 1)[0] + "/check.err", "a").write(why + "\n")
    sys.exit(1)
if len(reps) != 5:
    bad("%d replies" % len(reps))
for i, r in enumerate(reps):
    if r["body"] != "HELLO BROKER":
        bad("reply %d: body %r" % (i, r["body"]))
    if r["correlation_id"] != "pysend-%d" % i:
        bad("reply %d: correlation-id %r" % (i, r["correlation_id"]))
    if r["to"] != "replies":
        bad("reply %d: to %r" % (i, r["to"]))
EOF
else
    why=" broker did not start;"
fi
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

finish
