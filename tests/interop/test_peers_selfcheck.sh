#!/bin/sh
# Self-check of tests/interop/lib (peers.sh, pysend.py, pyrecv.py) with
# Proton's own clients only -- no lepton code -- so a failure here is the
# test infrastructure's, not lepton's:
#   1. Proton-C's example broker (compiled from Debian's examples) on a free
#      loopback port: 100 messages each way in every settle mode; bodies of
#      0 bytes, 100 bytes and 10 MB; the C send/receive examples
#   2. direct peers: pyrecv --listen <- pysend, pysend --listen -> pyrecv,
#      the settle-mode check of a listener, exit codes for refused, timeout
#   3. a private RabbitMQ node: SASL PLAIN guest/guest and ANONYMOUS to a
#      queue, wildcard topic subscriptions (/topic/a.*, /exchange/amq.topic/a.#),
#      exactly-once refused, a durable message through rabbitmq_restart, a
#      kill -9 seen by a client, start again after the kill
# Servers listen on 127.0.0.1 only (checked), on free ports; only the PIDs
# started here are stopped; every wait is bounded.
set -u
SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/interop/lib/peers.sh"
passed=0
failed=0
W=$PEERS_WORK
trap peers_cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
ko() {
    echo "FAIL: $1"
    for f in "$W"/*.out "$W"/*.err; do
        [ -s "$f" ] || continue
        echo "--- $f"
        tail -15 "$f"
    done
    failed=$((failed + 1))
}
fresh() { rm -f "$W"/*.out "$W"/*.err; }
finish() {
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}

if ! "$PEERS_PY" -c 'import proton' 2>/dev/null; then
    echo "FAIL: $PEERS_PY cannot import proton (python3-qpid-proton; run scripts/setup.sh)"
    failed=1
    finish
fi

# loopback_only PORT: every listener on PORT is 127.0.0.1 (or ::1 for epmd)
loopback_only() {
    l=$(port_listeners "$1")
    [ -n "$l" ] || return 1
    ! echo "$l" | grep -qv '^127\.0\.0\.1$\|^::1$'
}

# --- 1. Proton-C example broker --------------------------------------------
# shellcheck disable=SC2046
set -- $(free_port 4)
BPORT=$1 LPORT=$2 LPORT2=$3 RPORT=$4
B=amqp://127.0.0.1:$BPORT

t="Proton-C example broker builds and starts on 127.0.0.1:$BPORT"
if proton_broker_start "$BPORT" 2>"$W/broker.err" && loopback_only "$BPORT"; then
    ok "$t"
else
    ko "$t"
    finish
fi

for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="broker: pysend 100 / pyrecv 100, $mode"
    if pysend "$B/settle-$mode" --count 100 --settle "$mode" -t 20 2>"$W/send.err" &&
        pyrecv "$B/settle-$mode" --count 100 --settle "$mode" --print -t 20 \
            >"$W/recv.out" 2>"$W/recv.err" &&
        grep -q "^received 100$" "$W/recv.err" && [ "$(wc -l <"$W/recv.out")" -eq 100 ] &&
        [ "$(head -1 "$W/recv.out")" = message-0 ] && [ "$(tail -1 "$W/recv.out")" = message-99 ]; then
        ok "$t"
    else
        ko "$t"
    fi
done

for size in 0 100 10000000; do
    fresh
    n=100
    [ "$size" -ge 1000000 ] && n=3
    t="broker: $n messages of $size bytes (data section, pattern checked)"
    if pysend "$B/size-$size" --count $n --size "$size" -t 30 2>"$W/send.err" &&
        grep -q "accepted $n " "$W/send.err" &&
        pyrecv "$B/size-$size" --count $n --expect-size "$size" -t 30 2>"$W/recv.err" &&
        grep -q "^received $n$" "$W/recv.err"; then
        ok "$t"
    else
        ko "$t"
    fi
done

fresh
t="broker: Proton-C send and receive examples (10 messages)"
CSEND=$(proton_example send) && CRECV=$(proton_example receive)
if [ -x "$CSEND" ] && [ -x "$CRECV" ] &&
    "$CSEND" 127.0.0.1 "$BPORT" c-examples 10 >"$W/csend.out" 2>&1 &&
    grep -q "10 messages sent and acknowledged" "$W/csend.out" &&
    "$CRECV" 127.0.0.1 "$BPORT" c-examples 10 >"$W/crecv.out" 2>&1 &&
    grep -q "10 messages received" "$W/crecv.out"; then
    ok "$t"
else
    ko "$t"
fi

t="broker: proton_broker_stop ends exactly its PID"
bpid=$PROTON_BROKER_PID
proton_broker_stop "$BPORT"
if ! kill -0 "$bpid" 2>/dev/null && [ -z "$PROTON_BROKER_PID" ]; then ok "$t"; else ko "$t"; fi

# --- 2. direct peers -----------------------------------------------------------
for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="direct: pysend -> pyrecv --listen, 100 messages, $mode"
    pyrecv --listen "amqp://127.0.0.1:$LPORT" --count 100 --settle "$mode" -t 20 \
        >"$W/recv.out" 2>"$W/recv.err" &
    r=$!
    if wait_for "$W/recv.err" "listening on" 10 &&
        pysend "amqp://127.0.0.1:$LPORT/direct" --count 100 --settle "$mode" -t 20 2>"$W/send.err" &&
        wait_pid $r 20 && grep -q "^received 100$" "$W/recv.err"; then
        ok "$t"
    else
        kill $r 2>/dev/null
        ko "$t"
    fi
done

fresh
t="direct: pysend --listen -> pyrecv, 50 messages of 1000 bytes"
pysend --listen "amqp://127.0.0.1:$LPORT2" --count 50 --size 1000 -t 20 2>"$W/send.err" &
s=$!
if wait_for "$W/send.err" "listening on" 10 && loopback_only "$LPORT2" &&
    pyrecv "amqp://127.0.0.1:$LPORT2/anything" --count 50 --expect-size 1000 -t 20 2>"$W/recv.err" &&
    wait_pid $s 20 && grep -q "accepted 50 " "$W/send.err"; then
    ok "$t"
else
    kill $s 2>/dev/null
    ko "$t"
fi

fresh
t="direct: a listener given --settle exactly-once refuses an at-least-once client (exit 1)"
pyrecv --listen "amqp://127.0.0.1:$LPORT" --count 5 --settle exactly-once -t 10 2>"$W/recv.err" &
r=$!
wait_for "$W/recv.err" "listening on" 10
pysend "amqp://127.0.0.1:$LPORT/direct" --count 5 -t 10 2>"$W/send.err"
src=$?
wait_pid $r 15
rrc=$?
if [ $rrc -eq 1 ] && [ $src -ne 0 ] && grep -q "asked for at-least-once" "$W/recv.err"; then ok "$t"; else ko "$t"; fi

fresh
t="helpers: refused connection exits 4, a timeout exits 3 within its bound"
pysend "amqp://127.0.0.1:$RPORT/x" -t 5 2>"$W/send.err"
src=$?
start=$(date +%s)
pyrecv --listen "amqp://127.0.0.1:$RPORT" --count 1 -t 1 2>"$W/recv.err"
rrc=$?
el=$(($(date +%s) - start))
if [ $src -eq 4 ] && [ $rrc -eq 3 ] && [ $el -le 4 ]; then ok "$t"; else ko "$t (send $src, recv $rrc in ${el}s)"; fi

# --- 3. RabbitMQ -------------------------------------------------------------------
QPORT=$(free_port)
R=amqp://guest:guest@127.0.0.1:$QPORT
fresh
t="RabbitMQ: a private node starts on 127.0.0.1:$QPORT (AMQP, epmd, distribution on loopback)"
if rabbitmq_start "$QPORT" 2>"$W/rabbit.err"; then
    cat "$W/rabbit.err"
    if loopback_only "$QPORT" && loopback_only "$RABBITMQ_EPMD_PORT" &&
        loopback_only "$RABBITMQ_DIST_PORT"; then
        ok "$t"
    else
        echo "listeners: $(port_listeners "$QPORT") / $(port_listeners "$RABBITMQ_EPMD_PORT")" \
            "/ $(port_listeners "$RABBITMQ_DIST_PORT")"
        ko "$t"
    fi
else
    cat "$W/rabbit.err"
    ko "$t"
    finish
fi

fresh
t="RabbitMQ: SASL PLAIN guest/guest, 100 messages to /queue/selfcheck and back"
if pysend "$R//queue/selfcheck" --count 100 --sasl-mechanisms PLAIN -t 20 2>"$W/send.err" &&
    grep -q "accepted 100 " "$W/send.err" &&
    pyrecv "$R//queue/selfcheck" --count 100 --sasl-mechanisms PLAIN -t 20 2>"$W/recv.err" &&
    grep -q "^received 100$" "$W/recv.err"; then
    ok "$t"
else
    ko "$t"
fi

fresh
t="RabbitMQ: SASL ANONYMOUS, at-most-once, 10 MB message"
A=amqp://127.0.0.1:$QPORT
if pysend "$A//queue/anon" --count 20 --settle at-most-once --sasl-mechanisms ANONYMOUS 2>"$W/send.err" &&
    pyrecv "$A//queue/anon" --count 20 --settle at-most-once --sasl-mechanisms ANONYMOUS 2>"$W/recv.err" &&
    pysend "$A//queue/anon" --size 10000000 -t 30 2>>"$W/send.err" &&
    pyrecv "$A//queue/anon" --expect-size 10000000 -t 30 2>>"$W/recv.err"; then
    ok "$t"
else
    ko "$t"
fi

fresh
t="RabbitMQ: a wrong password is refused (amqp:unauthorized-access, exit 4)"
pysend "amqp://guest:wrong@127.0.0.1:$QPORT//queue/selfcheck" -t 10 2>"$W/send.err"
if [ $? -eq 4 ] && grep -q "unauthorized-access" "$W/send.err"; then ok "$t"; else ko "$t"; fi

fresh
t="RabbitMQ: /topic/a.* gets a.b and a.c, not a.b.c nor x.y"
pyrecv "$R//topic/a.*" --count 2 --print -t 15 >"$W/topic.out" 2>"$W/topic.err" &
r=$!
if wait_for "$W/topic.err" "attached" 10 &&
    pysend "$R//topic/a.b" -m a.b 2>"$W/send.err" && pysend "$R//topic/a.b.c" -m a.b.c 2>>"$W/send.err" &&
    pysend "$R//topic/x.y" -m x.y 2>>"$W/send.err" && pysend "$R//topic/a.c" -m a.c 2>>"$W/send.err" &&
    wait_pid $r 15 && [ "$(cat "$W/topic.out")" = "a.b
a.c" ]; then
    ok "$t"
else
    kill $r 2>/dev/null
    ko "$t"
fi

fresh
t="RabbitMQ: /exchange/amq.topic/a.# gets a.b.c sent to /topic/a.b.c"
pyrecv "$R//exchange/amq.topic/a.#" --count 1 --print -t 15 >"$W/topic.out" 2>"$W/topic.err" &
r=$!
if wait_for "$W/topic.err" "attached" 10 &&
    pysend "$R//topic/x.y" -m x.y 2>"$W/send.err" && pysend "$R//topic/a.b.c" -m a.b.c 2>>"$W/send.err" &&
    wait_pid $r 15 && [ "$(cat "$W/topic.out")" = "a.b.c" ]; then
    ok "$t"
else
    kill $r 2>/dev/null
    ko "$t"
fi

fresh
t="RabbitMQ: rcv-settle-mode second (exactly-once) is refused with amqp:not-implemented"
pysend "$R//queue/selfcheck" --settle exactly-once -t 10 2>"$W/send.err"
if [ $? -eq 1 ] && grep -q "not-implemented" "$W/send.err"; then ok "$t"; else ko "$t"; fi

fresh
t="RabbitMQ: a durable message on a durable queue survives rabbitmq_restart"
old=$RABBITMQ_BEAM_PID
if pysend "$R//queue/durable" --durable -m kept -t 10 2>"$W/send.err" &&
    rabbitmq_restart 2>"$W/restart.err" && [ "$RABBITMQ_BEAM_PID" != "$old" ] &&
    ! kill -0 "$old" 2>/dev/null &&
    pyrecv "$R//queue/durable" --durable --print -t 10 >"$W/recv.out" 2>"$W/recv.err" &&
    [ "$(cat "$W/recv.out")" = kept ]; then
    cat "$W/restart.err"
    ok "$t"
else
    ko "$t"
fi

fresh
t="RabbitMQ: rabbitmq_kill is seen by an attached client (exit 4); a confirmed durable message survives it"
# A message accepted on a durable queue is on disk before the accepted
# outcome (publisher-confirm semantics), so it survives kill -9.  (An ack of
# a message consumed shortly before the kill may be lost instead, and that
# message delivered again: a consumer after a crash must expect duplicates.)
pysend "$R//queue/crash" --durable -m confirmed -t 10 2>"$W/send.err"
src=$?
pyrecv "$R//queue/crash-wait" --durable --count 1 -t 20 2>"$W/recv.err" &
r=$!
old=$RABBITMQ_BEAM_PID
if [ $src -eq 0 ] && wait_for "$W/recv.err" "attached" 10 && rabbitmq_kill && ! kill -0 "$old" 2>/dev/null; then
    wait_pid $r 10
    rrc=$?
    if [ $rrc -eq 4 ] && rabbitmq_start "$QPORT" 2>"$W/restart.err" &&
        pyrecv "$R//queue/crash" --durable --print -t 10 2>>"$W/recv.err" >"$W/recv.out" &&
        [ "$(cat "$W/recv.out")" = confirmed ]; then
        cat "$W/restart.err"
        ok "$t"
    else
        ko "$t (pyrecv exit $rrc)"
    fi
else
    kill $r 2>/dev/null
    ko "$t"
fi

t="RabbitMQ: rabbitmq_stop ends exactly the node's beam.smp and epmd"
beam=$RABBITMQ_BEAM_PID
epmd_pid=$RABBITMQ_EPMD_PID
dir=$RABBITMQ_DIR
rabbitmq_stop
if [ -n "$beam" ] && [ -n "$epmd_pid" ] && ! kill -0 "$beam" 2>/dev/null &&
    ! kill -0 "$epmd_pid" 2>/dev/null && [ ! -d "$dir" ]; then
    ok "$t"
else
    ko "$t"
fi

finish
