#!/bin/sh
# lepton-send and lepton-recv against RabbitMQ 3.10 with its AMQP 1.0 plugin
# (a private node from tests/interop/lib/peers.sh, on 127.0.0.1, started
# once):
#   1. SASL PLAIN guest/guest to a queue and back (--sasl-mechanisms PLAIN is
#      the permission to send the password without TLS; without it lepton
#      refuses; a wrong password is refused at once, no reconnect loop);
#      more messages than the credit window, where RabbitMQ sends a few
#      transfers beyond the credit (rabbitmq-server#2597); at-most-once both
#      ways; bodies of 0 bytes to 10 MB checked byte for byte; Proton's
#      pysend/pyrecv on the other end of the queue
#   2. wildcard topic subscriptions: lepton-recv on /topic/a.* (attached
#      before anything is published) gets a.b and a.c, not a.b.c nor x.y;
#      /exchange/amq.topic/a.# gets a.b.c
#   3. exactly-once is refused by RabbitMQ (amqp:not-implemented, the session
#      ends): lepton-send and lepton-recv say so and exit 1 at once;
#      lepton-server answers requests through it (no anonymous relay: a
#      sender per reply-to); lepton-client's dynamic receiver is refused:
#      exit 1 at once
#   4. reconnect: RabbitMQ is killed (-9) while lepton-send --durable sends to
#      a durable queue at a rate and lepton-recv takes from it, and started
#      again on its data; both come back, the sender finishes; what the
#      receiver got plus what is left in the queue holds every message 1..N
#      at least once (duplicates allowed, losses not)
set -u
SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/interop/lib/peers.sh"
BUILD=$PEERS_BUILD
LS=$BUILD/lepton-send
LR=$BUILD/lepton-recv
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
fresh() { rm -f "$W"/*.out "$W"/*.err "$W"/*.json; }
finish() {
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}
check() { "$PEERS_PY" "$PEERS_LIB/check_msgs.py" "$@" 2>>"$W/check.err"; }
lines() { grep -c -- "$2" "$1" 2>/dev/null || :; }
now() { date +%s; }

if ! "$PEERS_PY" -c 'import proton' 2>/dev/null; then
    echo "FAIL: $PEERS_PY cannot import proton (python3-qpid-proton; run scripts/setup.sh)"
    failed=1
    finish
fi
for t in "$LS" "$LR"; do
    if [ ! -x "$t" ]; then
        echo "FAIL: $t not built"
        failed=1
        finish
    fi
done

QPORT=$(free_port)
t="RabbitMQ: a private node starts on 127.0.0.1:$QPORT"
if rabbitmq_start "$QPORT" 2>"$W/rabbit.err"; then
    cat "$W/rabbit.err"
    ok "$t"
else
    cat "$W/rabbit.err"
    ko "$t"
    finish
fi
R=$RABBITMQ_URL
A=amqp://127.0.0.1:$QPORT
PLAIN="--sasl-mechanisms PLAIN"

# --- 1. queues ----------------------------------------------------------------------
fresh
# (-v traces no SASL frames; that PLAIN and the password were used shows
# in the wrong-password check below)
t="SASL PLAIN: lepton-send 2000 -> /queue/tools -> lepton-recv 2000, in order (RabbitMQ overruns the credit)"
# shellcheck disable=SC2086
if "$LS" -c 2000 $PLAIN --timeout 20 "$R//queue/tools" 2>"$W/send.err" &&
    "$LR" -c 2000 $PLAIN --print --timeout 20 "$R//queue/tools" >"$W/recv.out" 2>"$W/recv.err" &&
    check lines "$W/recv.out" 2000; then
    ok "$t"
else
    ko "$t"
fi

fresh
t="SASL: a password over plain TCP is refused without --sasl-mechanisms PLAIN (exit 1, says why)"
"$LS" -m x --timeout 20 "$R//queue/tools" 2>"$W/send.err"
if [ $? -eq 1 ] && grep -q "PLAIN refused on an unencrypted connection" "$W/send.err"; then
    ok "$t"
else
    ko "$t"
fi

fresh
t="SASL PLAIN: a wrong password is refused (amqp:unauthorized-access, exit 1 at once, no reconnect)"
s0=$(now)
# shellcheck disable=SC2086
"$LS" -m x $PLAIN --timeout 30 "amqp://guest:wrong@127.0.0.1:$QPORT//queue/tools" 2>"$W/send.err"
rc=$?
el=$(($(now) - s0))
if [ $rc -eq 1 ] && [ $el -le 5 ] && grep -q "unauthorized-access" "$W/send.err"; then
    ok "$t"
else
    ko "$t (exit $rc after ${el}s)"
fi

fresh
t="SASL ANONYMOUS (no user): at-most-once both ways, 100 messages"
if "$LS" -c 100 --settle at-most-once --timeout 20 "$A//queue/amo" 2>"$W/send.err" &&
    "$LR" -c 100 --settle at-most-once --print --timeout 20 "$A//queue/amo" >"$W/recv.out" 2>"$W/recv.err" &&
    check lines "$W/recv.out" 100; then
    ok "$t"
else
    ko "$t"
fi

for size in 0 100 1000000 10000000; do
    n=20
    [ "$size" -ge 1000000 ] && n=3
    fresh
    t="queue: $n messages of $size bytes, lepton-send -> lepton-recv, byte-exact"
    # shellcheck disable=SC2086
    if "$LS" -c $n -s "$size" $PLAIN --timeout 30 "$R//queue/size" 2>"$W/send.err" &&
        "$LR" -c $n $PLAIN --json --timeout 30 "$R//queue/size" >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids lepton; then
        ok "$t"
    else
        ko "$t"
    fi
done

fresh
t="queue: lepton-send -> pyrecv and pysend -> lepton-recv, 1 MB bodies, byte-exact"
# shellcheck disable=SC2086
if "$LS" -c 3 -s 1000000 $PLAIN --timeout 30 "$R//queue/mixed" 2>"$W/send.err" &&
    pyrecv "$R//queue/mixed" --count 3 --expect-size 1000000 --print-message -t 30 \
        >"$W/recv.json" 2>"$W/recv.err" &&
    check json "$W/recv.json" 3 --size 1000000 --ids lepton --data &&
    pysend "$R//queue/mixed" --count 3 --size 1000000 -t 30 2>>"$W/send.err" &&
    "$LR" -c 3 $PLAIN --json --timeout 30 "$R//queue/mixed" >"$W/recv.json" 2>>"$W/recv.err" &&
    check json "$W/recv.json" 3 --size 1000000 --ids pysend; then
    ok "$t"
else
    ko "$t"
fi

# --- 2. topics ------------------------------------------------------------------------
# A subscription exists only while its link is attached: publish once
# lepton-recv's trace shows RabbitMQ's attach reply.
fresh
t="topics: lepton-recv on /topic/a.* gets a.b and a.c from lepton-send, not a.b.c nor x.y"
# shellcheck disable=SC2086
"$LR" -v -c 2 $PLAIN --print --timeout 20 "$R//topic/a.*" >"$W/topic.out" 2>"$W/topic.err" &
r=$!
why=""
if wait_for "$W/topic.err" '<- @attach' 10; then
    for k in a.b a.b.c x.y a.c; do
        # shellcheck disable=SC2086
        "$LS" -m $k $PLAIN --timeout 10 "$R//topic/$k" 2>>"$W/send.err" || why="$why send $k;"
    done
    wait_pid $r 15 || why="$why recv exit $?;"
else
    why=" never attached;"
    kill $r 2>/dev/null
    wait $r 2>/dev/null
fi
[ "$(cat "$W/topic.out" 2>/dev/null)" = "a.b
a.c" ] || why="$why got $(tr '\n' ' ' <"$W/topic.out");"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

fresh
t="topics: lepton-recv on /exchange/amq.topic/a.# gets a.b.c from pysend; pyrecv on /topic/x.* gets x.y from lepton-send"
# shellcheck disable=SC2086
"$LR" -v -c 1 $PLAIN --print --timeout 20 "$R//exchange/amq.topic/a.#" >"$W/topic.out" 2>"$W/topic.err" &
r=$!
pyrecv "$R//topic/x.*" --count 1 --print -t 20 >"$W/topic2.out" 2>"$W/topic2.err" &
r2=$!
why=""
if wait_for "$W/topic.err" '<- @attach' 10 && wait_for "$W/topic2.err" attached 10; then
    pysend "$R//topic/x.y.z" -m x.y.z 2>>"$W/send.err" || why="$why pysend x.y.z;"
    pysend "$R//topic/a.b.c" -m a.b.c 2>>"$W/send.err" || why="$why pysend a.b.c;"
    # shellcheck disable=SC2086
    "$LS" -m x.y $PLAIN --timeout 10 "$R//topic/x.y" 2>>"$W/send.err" || why="$why send x.y;"
    wait_pid $r 15 || why="$why recv exit $?;"
    wait_pid $r2 15 || why="$why pyrecv exit $?;"
else
    why=" never attached;"
    kill $r $r2 2>/dev/null
    wait $r $r2 2>/dev/null
fi
[ "$(cat "$W/topic.out" 2>/dev/null)" = a.b.c ] || why="$why lepton-recv got $(tr '\n' ' ' <"$W/topic.out");"
[ "$(cat "$W/topic2.out" 2>/dev/null)" = x.y ] || why="$why pyrecv got $(tr '\n' ' ' <"$W/topic2.out");"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# --- 3. exactly-once refused ----------------------------------------------------------
for tool in send recv; do
    fresh
    t="exactly-once: lepton-$tool reports RabbitMQ's refusal and exits 1 at once (no hang)"
    s0=$(now)
    # shellcheck disable=SC2086
    "$BUILD/lepton-$tool" -c 1 --settle exactly-once $PLAIN --timeout 30 "$R//queue/tools" 2>"$W/$tool.err"
    rc=$?
    el=$(($(now) - s0))
    if [ $rc -eq 1 ] && [ $el -le 5 ] &&
        grep -q "amqp:not-implemented: rcv-settle-mode second not supported" "$W/$tool.err" &&
        grep -q "the peer closed the link" "$W/$tool.err"; then
        ok "$t"
    else
        ko "$t (exit $rc after ${el}s)"
    fi
done

# --- request-response through RabbitMQ -----------------------------------------------
# It has no anonymous relay: lepton-server opens a sender to each reply-to.
fresh
t="lepton-server through RabbitMQ: pysend's 5 requests to /queue/requests, replies on /queue/replies"
why=""
pysend "$R//queue/requests" --count 5 -m "hello rabbit" --reply-to /queue/replies -t 15 2>"$W/send.err" ||
    why="$why pysend exit $?;"
# shellcheck disable=SC2086
"$BUILD/lepton-server" -c 5 $PLAIN --timeout 15 "$R//queue/requests" >"$W/server.out" 2>"$W/server.err" ||
    why="$why server exit $?;"
pyrecv "$R//queue/replies" --count 5 --print-message -t 15 >"$W/replies.out" 2>"$W/replies.err" ||
    why="$why pyrecv exit $?;"
"$PEERS_PY" - "$W/replies.out" <<'EOF2' || why="$why replies: $(tail -1 "$W/check.err");"
import json, sys
path = sys.argv[1]
reps = [json.loads(l) for l in open(path)]
def bad(why):
    open(path.rsplit("/", 1)[0] + "/check.err", "a").write(why + "\n")
    sys.exit(1)
if len(reps) != 5:
    bad("%d replies" % len(reps))
for i, r in enumerate(reps):
    if r["body"] != "HELLO RABBIT" or r["correlation_id"] != "pysend-%d" % i:
        bad("reply %d: body %r, correlation-id %r" % (i, r["body"], r["correlation_id"]))
EOF2
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

fresh
t="lepton-client: RabbitMQ refuses its dynamic reply receiver; it says so and exits 1 at once"
s0=$(now)
# shellcheck disable=SC2086
"$BUILD/lepton-client" $PLAIN --timeout 30 "$R//queue/requests" -m hi >"$W/client.out" 2>"$W/client.err"
rc=$?
el=$(($(now) - s0))
if [ $rc -eq 1 ] && [ $el -le 5 ] && grep -q "Dynamic sources not supported" "$W/client.err"; then
    ok "$t"
else
    ko "$t (exit $rc after ${el}s)"
fi

# --- 4. reconnect -----------------------------------------------------------------------
# The queue must be durable for its messages to survive the kill, and
# RabbitMQ declares /queue/NAME durable only for a durable terminus, which
# lepton-send does not ask for (its --durable marks the messages); a
# durable queue declared here by Proton (pysend --durable --count 0) is
# then reached as /amq/queue/NAME (an existing queue, no declaration, so no
# durability to match).  A lepton-recv is attached to it all along.
# 2000 messages at 400/s take 5 s; the kill comes once the sender has had
# outcomes for a second (~400 messages); RabbitMQ restarts in 4-6 s while
# both tools back off (100 ms doubling, up to 10 attempts); the sender
# then sends again what was unsettled, the receiver re-attaches.  What the
# receiver got plus what is left in the queue must hold every message
# 1..N (duplicates allowed: resent messages, and acks lost in the crash).
fresh
N=2000
t="reconnect: RabbitMQ killed mid-run and restarted; lepton-send --durable finishes, lepton-recv comes back, every message 1..$N arrives"
why=""
pysend "$R//queue/rc" --durable --count 0 -t 10 2>"$W/declare.err" || why="$why cannot declare the queue;"
# shellcheck disable=SC2086
"$LR" -v -c 0 $PLAIN --print "$R//amq/queue/rc" >"$W/recv1.out" 2>"$W/recv1.trace" &
r=$!
peers_track $r
wait_for "$W/recv1.trace" '<- @attach' 10 || why="$why receiver never attached;"
# shellcheck disable=SC2086
"$LS" -v -c $N --rate 400 --durable $PLAIN --timeout 90 "$R//amq/queue/rc" 2>"$W/send.trace" &
s=$!
peers_track $s
wait_for "$W/send.trace" '<- @disposition' 10 || why="$why no outcome;"
sleep 1
before=0
if kill -0 $s 2>/dev/null; then
    rabbitmq_kill || why="$why kill;"
    before=$(lines "$W/recv1.out" '^message ')
    rabbitmq_start "$QPORT" 2>>"$W/rabbit.err" || why="$why restart;"
else
    why="$why the sender finished before the kill;"
fi
wait_pid $s 60
src=$?
# the last new message is sent after every resend: once it is in, all are
wait_for "$W/recv1.out" "^message $N\$" 20 || why="$why the receiver never got message $N;"
kill $r 2>/dev/null
wait_pid $r 10 || why="$why recv exit $? (0 when stopped by a signal);"
grep -v '^\[' "$W/send.trace" >"$W/send.err"
grep -v '^\[' "$W/recv1.trace" >"$W/recv1.err"
[ $src -eq 0 ] || why="$why send exit $src;"
grep -q "$N of $N messages accepted" "$W/send.err" || why="$why send summary;"
grep -q "reconnecting" "$W/send.err" || why="$why the sender saw no disconnect;"
[ "$(lines "$W/send.trace" '-> @open')" -ge 2 ] || why="$why no second sender connection;"
[ "$(lines "$W/recv1.trace" '<- @attach')" -ge 2 ] || why="$why the receiver did not re-attach;"
[ "$before" -gt 0 ] && [ "$before" -lt $N ] || why="$why the receiver had $before at the kill;"
# what the receiver took and did not get to accept went back to the queue
depth=$(rabbitmq_ctl list_queues name messages 2>/dev/null | awk '$1 == "rc" { print $2 }')
case $depth in '' | *[!0-9]*) why="$why queue depth unknown;" depth=0 ;; esac
: >"$W/recv2.out"
if [ "$depth" -gt 0 ]; then
    # shellcheck disable=SC2086
    "$LR" -c "$depth" $PLAIN --print --timeout 30 "$R//amq/queue/rc" >"$W/recv2.out" 2>"$W/recv2.err" ||
        why="$why drain exit $?;"
fi
cat "$W/recv1.out" "$W/recv2.out" >"$W/all.out"
res=$(check atleast "$W/all.out" $N) || why="$why $(tail -1 "$W/check.err");"
echo "  receiver: $before before the kill, $(lines "$W/recv1.out" '^message ') in all; left in the queue: $depth;" \
    "$res; $(grep -o '[0-9]* resent' "$W/send.err")"
rm -f "$W/send.trace" "$W/recv1.trace"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

finish
