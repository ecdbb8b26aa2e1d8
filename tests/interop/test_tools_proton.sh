#!/bin/sh
# lepton-send and lepton-recv against Qpid Proton: Proton-C's example broker
# (Debian libqpid-proton11-dev-examples) and python3-qpid-proton's
# pysend.py / pyrecv.py (tests/interop/lib), in both directions.
#   1. through the broker, every settle mode: lepton -> broker -> lepton,
#      lepton -> broker -> pyrecv, pysend -> broker -> lepton; 100 messages
#      each, every body checked in order (nothing lost, duplicated or
#      reordered); the modes asked on the wire (-v trace) and what the broker
#      makes of them (it accepts and settles at once, pre-settles what it
#      sends: exactly-once can only be asked there, not honoured)
#   2. bodies of 0 bytes, 100 bytes, 1 MB and 10 MB (data sections, byte i =
#      'a' + i % 26) on the same three paths, checked byte for byte with
#      their message-ids
#   3. direct, no broker: lepton-send -> pyrecv --listen and pysend ->
#      lepton-recv --listen in every mode, where the modes are really
#      honoured: pyrecv checks the link's modes and each delivery's settled
#      flag; lepton-recv's trace shows what it settled when; the same sizes
#   4. reconnect through the broker: it is killed (-9) and restarted while
#      lepton-send sends at a rate to an attached lepton-recv; both come back
# Servers listen on 127.0.0.1 only, on free ports; only PIDs started here
# are stopped; every wait is bounded.
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
fresh() { rm -f "$W"/*.out "$W"/*.err; }
finish() {
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}
check() { "$PEERS_PY" "$PEERS_LIB/check_msgs.py" "$@" 2>>"$W/check.err"; }
# lines FILE PATTERN: how many lines of FILE match PATTERN (grep -c, 0 if none)
lines() { grep -c -- "$2" "$1" 2>/dev/null || :; }

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

# shellcheck disable=SC2046
set -- $(free_port 3)
BPORT=$1 LPORT=$2 LPORT2=$3
B=amqp://127.0.0.1:$BPORT
t="Proton-C example broker starts on 127.0.0.1:$BPORT"
if proton_broker_start "$BPORT" 2>"$W/broker.err"; then ok "$t"; else ko "$t"; finish; fi

# --- 1. through the broker, settle modes ---------------------------------------
# The attach lepton sends for a sender is role=false, for a receiver role=true.
# snd-settle-mode 0 unsettled, 1 settled (at-most-once), 2 mixed (lepton's
# at-least-once); rcv-settle-mode 1 = second (exactly-once).
for mode in at-most-once at-least-once exactly-once; do
    case $mode in
    at-most-once) snd=1 rcv=0 ;;
    at-least-once) snd=2 rcv=0 ;;
    exactly-once) snd=0 rcv=1 ;;
    esac

    fresh
    t="broker, $mode: lepton-send 100 -> lepton-recv 100, in order, modes on the wire"
    q=ll-$mode
    "$LS" -v -c 100 --settle $mode --timeout 20 "$B/$q" 2>"$W/send.err"
    src=$?
    "$LR" -v -c 100 --settle $mode --print --timeout 20 "$B/$q" >"$W/recv.out" 2>"$W/recv.err"
    rrc=$?
    why=""
    [ $src -eq 0 ] || why="$why send exit $src;"
    [ $rrc -eq 0 ] || why="$why recv exit $rrc;"
    check lines "$W/recv.out" 100 || why="$why bodies;"
    grep -q -- "-> @attach.*role=false, snd-settle-mode=$snd, rcv-settle-mode=$rcv" "$W/send.err" ||
        why="$why sender attach;"
    grep -q -- "-> @attach.*role=true, snd-settle-mode=$snd, rcv-settle-mode=$rcv" "$W/recv.err" ||
        why="$why receiver attach;"
    # the broker pre-settles whatever it sends: lepton-recv has nothing to settle
    [ "$(lines "$W/recv.err" '<- @transfer.*settled=true')" -eq 100 ] || why="$why broker did not pre-settle;"
    [ "$(lines "$W/recv.err" '-> @disposition')" -eq 0 ] || why="$why recv sent a disposition for pre-settled messages;"
    if [ $mode = at-most-once ]; then
        # pre-settled transfers, no outcome asked or given
        [ "$(lines "$W/send.err" '-> @transfer.*settled=true')" -eq 100 ] || why="$why transfers not pre-settled;"
        [ "$(lines "$W/send.err" '<- @disposition')" -eq 0 ] || why="$why disposition for pre-settled;"
        grep -q "sent 100 of 100 messages (at-most-once)" "$W/send.err" || why="$why send summary;"
    else
        # unsettled transfers; the broker accepts and settles at once, even
        # when exactly-once asked it to wait for our settlement
        [ "$(lines "$W/send.err" '-> @transfer.*settled=true')" -eq 0 ] || why="$why transfers pre-settled;"
        grep -q -- "<- @disposition.*role=true.*settled=true, state=@accepted" "$W/send.err" ||
            why="$why no accepted+settled disposition;"
        grep -q "100 of 100 messages accepted" "$W/send.err" || why="$why send summary;"
    fi
    if [ $mode = exactly-once ]; then
        # the broker answers rcv-settle-mode first: lepton goes along with it
        grep -q -- "<- @attach.*role=true, snd-settle-mode=2, rcv-settle-mode=0" "$W/send.err" ||
            why="$why the broker's answer changed;"
    fi
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

    fresh
    t="broker, $mode: lepton-send 100 -> pyrecv 100, in order"
    q=lp-$mode
    if "$LS" -c 100 --settle $mode --timeout 20 "$B/$q" 2>"$W/send.err" &&
        pyrecv "$B/$q" --count 100 --settle $mode --print -t 20 >"$W/recv.out" 2>"$W/recv.err" &&
        check lines "$W/recv.out" 100; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="broker, $mode: pysend 100 -> lepton-recv 100, in order"
    q=pl-$mode
    if pysend "$B/$q" --count 100 --settle $mode -t 20 2>"$W/send.err" &&
        "$LR" -c 100 --settle $mode --print --timeout 20 "$B/$q" >"$W/recv.out" 2>"$W/recv.err" &&
        check lines "$W/recv.out" 100 --fmt 'message-%d' --start 0 &&
        grep -q "received 100 messages" "$W/recv.err"; then
        ok "$t"
    else
        ko "$t"
    fi
done

# lepton-recv takes no more than --count: what is left stays in the broker
# (which pre-settles, so anything asked for and not taken would be lost)
fresh
t="broker: lepton-recv -c 30 three times drains 90 messages in order, none lost to credit"
q=partial
if "$LS" -c 90 --timeout 20 "$B/$q" 2>"$W/send.err" &&
    "$LR" -c 30 --print --timeout 20 "$B/$q" >"$W/recv.out" 2>"$W/recv.err" &&
    "$LR" -c 30 --credit 7 --print --timeout 20 "$B/$q" >>"$W/recv.out" 2>>"$W/recv.err" &&
    "$LR" -c 30 --credit 1 --print --timeout 20 "$B/$q" >>"$W/recv.out" 2>>"$W/recv.err" &&
    check lines "$W/recv.out" 90; then
    ok "$t"
else
    ko "$t"
fi

# --- 2. sizes through the broker -------------------------------------------------
for size in 0 100 1000000 10000000; do
    n=50
    [ "$size" -ge 1000000 ] && n=5
    [ "$size" -ge 10000000 ] && n=3

    fresh
    t="broker: lepton-send -> lepton-recv, $n messages of $size bytes, byte-exact"
    if "$LS" -c $n -s "$size" --timeout 30 "$B/sl-$size" 2>"$W/send.err" &&
        "$LR" -c $n --json --timeout 30 "$B/sl-$size" >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids lepton; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="broker: lepton-send -> pyrecv, $n messages of $size bytes (data sections), byte-exact"
    if "$LS" -c $n -s "$size" --timeout 30 "$B/sp-$size" 2>"$W/send.err" &&
        pyrecv "$B/sp-$size" --count $n --expect-size "$size" --print-message -t 30 \
            >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids lepton --data; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="broker: pysend -> lepton-recv, $n messages of $size bytes, byte-exact"
    if pysend "$B/ps-$size" --count $n --size "$size" -t 30 2>"$W/send.err" &&
        "$LR" -c $n --json --timeout 30 "$B/ps-$size" >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids pysend; then
        ok "$t"
    else
        ko "$t"
    fi
done
rm -f "$W"/*.json

# --- 3. direct peers ------------------------------------------------------------------
for mode in at-most-once at-least-once exactly-once; do
    fresh
    t="direct, $mode: lepton-send 100 -> pyrecv --listen (modes and settled flags checked by Proton)"
    pyrecv --listen "amqp://127.0.0.1:$LPORT" --count 100 --settle $mode --print -t 20 \
        >"$W/recv.out" 2>"$W/recv.err" &
    r=$!
    if wait_for "$W/recv.err" "listening on" 10 &&
        "$LS" -c 100 --settle $mode --timeout 20 "amqp://127.0.0.1:$LPORT/direct" 2>"$W/send.err" &&
        wait_pid $r 20 && check lines "$W/recv.out" 100 &&
        ! grep -q "never settled" "$W/recv.err"; then
        ok "$t"
    else
        kill $r 2>/dev/null
        wait $r 2>/dev/null
        ko "$t"
    fi

    fresh
    t="direct, $mode: pysend 100 -> lepton-recv --listen, what it settled when"
    "$LR" --listen -v -c 100 --settle $mode --print --timeout 20 "amqp://127.0.0.1:$LPORT2" \
        >"$W/recv.out" 2>"$W/recv.err" &
    r=$!
    why=""
    if ! wait_for "$W/recv.err" "listening on" 10; then
        why=" not listening;"
    else
        pysend "amqp://127.0.0.1:$LPORT2/direct" --count 100 --settle $mode -t 20 2>"$W/send.err" ||
            why="$why pysend exit $?;"
        wait_pid $r 20 || why="$why recv exit $?;"
    fi
    check lines "$W/recv.out" 100 --fmt 'message-%d' --start 0 || why="$why bodies;"
    case $mode in
    at-most-once)
        # pre-settled transfers, nothing to answer
        [ "$(lines "$W/recv.err" '<- @transfer.*settled=true')" -eq 100 ] || why="$why transfers not pre-settled;"
        [ "$(lines "$W/recv.err" '-> @disposition')" -eq 0 ] || why="$why answered pre-settled transfers;"
        ;;
    at-least-once)
        # accepted and settled at once (first), in one or more ranges
        grep -q -- '-> @attach.*role=true, snd-settle-mode=0, rcv-settle-mode=0' "$W/recv.err" ||
            why="$why attach modes;"
        [ "$(lines "$W/recv.err" '-> @disposition')" -ge 1 ] || why="$why no disposition;"
        [ "$(lines "$W/recv.err" '-> @disposition.*settled=true, state=@accepted')" -eq \
            "$(lines "$W/recv.err" '-> @disposition')" ] || why="$why a disposition not accepted+settled;"
        grep -q "accepted 100 " "$W/send.err" || why="$why pysend summary;"
        ;;
    exactly-once)
        # second: accepted without settling; the sender settles; both before the close
        grep -q -- '-> @attach.*role=true, snd-settle-mode=0, rcv-settle-mode=1' "$W/recv.err" ||
            why="$why attach modes;"
        [ "$(lines "$W/recv.err" '-> @disposition.*state=@accepted')" -ge 1 ] || why="$why no accepted;"
        [ "$(lines "$W/recv.err" '-> @disposition.*settled=true')" -eq 0 ] || why="$why settled before the sender;"
        d=$(grep -n -- '<- @disposition.*role=false.*settled=true' "$W/recv.err" | head -1 | cut -d: -f1)
        c=$(grep -n -- '@close' "$W/recv.err" | head -1 | cut -d: -f1)
        [ -n "$d" ] && [ -n "$c" ] && [ "$d" -lt "$c" ] ||
            why="$why the sender's settlement did not come before the close;"
        grep -q "accepted 100 " "$W/send.err" || why="$why pysend summary;"
        ;;
    esac
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi
done

for size in 0 100 1000000 10000000; do
    n=20
    [ "$size" -ge 1000000 ] && n=3

    fresh
    t="direct: lepton-send -> pyrecv --listen, $n messages of $size bytes (data sections), byte-exact"
    pyrecv --listen "amqp://127.0.0.1:$LPORT" --count $n --expect-size "$size" --print-message -t 30 \
        >"$W/recv.json" 2>"$W/recv.err" &
    r=$!
    if wait_for "$W/recv.err" "listening on" 10 &&
        "$LS" -c $n -s "$size" --timeout 30 "amqp://127.0.0.1:$LPORT/direct" 2>"$W/send.err" &&
        wait_pid $r 20 && check json "$W/recv.json" $n --size "$size" --ids lepton --data; then
        ok "$t"
    else
        kill $r 2>/dev/null
        wait $r 2>/dev/null
        ko "$t"
    fi

    fresh
    t="direct: pysend -> lepton-recv --listen, $n messages of $size bytes, byte-exact"
    "$LR" --listen -v -c $n --json --timeout 30 "amqp://127.0.0.1:$LPORT2" >"$W/recv.json" 2>"$W/recv.err" &
    r=$!
    if wait_for "$W/recv.err" "listening on" 10 &&
        pysend "amqp://127.0.0.1:$LPORT2/direct" --count $n --size "$size" -t 30 2>"$W/send.err" &&
        wait_pid $r 20 && check json "$W/recv.json" $n --size "$size" --ids pysend; then
        ok "$t"
    else
        kill $r 2>/dev/null
        wait $r 2>/dev/null
        ko "$t"
    fi
    rm -f "$W"/*.json
done

# --- 4. reconnect through the broker ---------------------------------------------------
# The example broker keeps nothing across a restart and pre-settles what it
# sends, so what it holds when it dies -- messages it accepted (settled to
# the sender) and has not handed on: those in flight to the receiver (at
# most its credit, 10) and those queued for want of that credit (at most
# about one 100 ms burst of the sender's --rate, 20) -- is gone, by the
# broker's doing.  What lepton must do, and what is checked: both tools
# reconnect with backoff and re-attach; the sender sends again what was
# unsettled when the connection broke and finishes (every message accepted
# by one broker or the other); the receiver gets everything the new broker
# accepted.  So at most one run of 30 consecutive messages may be missing;
# duplicates are allowed.
fresh
N=1000
t="broker killed and restarted mid-run: lepton-send and lepton-recv reconnect, at most one short run of $N missing"
"$LR" -v -c 0 --credit 10 --print "$B/reconnect" >"$W/recv.out" 2>"$W/recv.err" &
r=$!
peers_track $r
why=""
# attached once the broker's attach came back (the queue exists from then on)
wait_for "$W/recv.err" '<- @attach' 10 || why="$why receiver never attached;"
# 1000 messages at 200/s: 5 s; the kill comes after 300 arrived (~1.5 s)
"$LS" -c $N --rate 200 --timeout 60 "$B/reconnect" 2>"$W/send.err" &
s=$!
peers_track $s
wait_for "$W/recv.out" '^message 300$' 15 || why="$why message 300 never arrived;"
before=$N
if kill -0 $s 2>/dev/null; then
    kill -9 "$PROTON_BROKER_PID"
    proton_broker_stop "$BPORT"
    before=$(lines "$W/recv.out" '^message ')
    # The same port, for the clients' URL.  Under load (ctest -j) a start
    # can be slow or find the port briefly taken by another test's
    # outgoing connection: try again.
    i=0
    until proton_broker_start "$BPORT" 2>>"$W/broker.err"; do
        i=$((i + 1))
        [ $i -lt 3 ] || break
        sleep 1
    done
    [ $i -lt 3 ] || why="$why broker did not restart;"
else
    why="$why the sender finished before the kill;"
fi
wait_pid $s 60
src=$?
# everything the new broker accepted reaches the attached receiver
wait_for "$W/recv.out" "^message $N\$" 15 || why="$why message $N never arrived;"
sleep 0.3 # let a duplicate still on its way arrive
kill $r 2>/dev/null
wait_pid $r 10
rrc=$?
[ $src -eq 0 ] || why="$why send exit $src;"
[ $rrc -eq 0 ] || why="$why recv exit $rrc (0 when stopped by a signal);"
grep -q "$N of $N messages accepted" "$W/send.err" || why="$why send summary;"
grep -q "reconnecting" "$W/send.err" || why="$why the sender saw no disconnect;"
[ "$before" -lt $N ] || why="$why the kill was not mid-run;"
[ "$(lines "$W/recv.err" '<- @attach')" -ge 2 ] || why="$why the receiver did not re-attach;"
res=$(check atleast "$W/recv.out" $N --max-missing 30) || why="$why $(tail -1 "$W/check.err");"
echo "  $before received before the kill; after: $res; $(grep -o '[0-9]* resent' "$W/send.err")"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

finish
