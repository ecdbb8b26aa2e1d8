#!/bin/sh
# lepton-broker against Qpid Proton clients (python3-qpid-proton through
# lib/pysend.py, pyrecv.py, pyclient.py, pybroker.py; the Proton-C example
# programs send and receive built by lib/peers.sh) and against lepton's own
# tools, in both directions:
#   1. settle modes: pysend -> broker -> pyrecv in at-most-once,
#      at-least-once and exactly-once, 100 messages each in order, with what
#      the broker does on the wire (Proton's PN_TRACE_FRM): the modes it
#      answers in its attaches, pre-settled transfers for at-most-once, an
#      accept settled at once for at-least-once, in exactly-once an accept
#      left unsettled until the sender settles and, toward the receiver, a
#      settlement only after its accept; lepton-send -> broker -> pyrecv,
#      pysend -> broker -> lepton-recv and lepton -> broker -> lepton in
#      every mode
#   2. the Proton-C examples: send -> broker -> receive, send -> lepton-recv
#      and pyrecv, lepton-send and pysend -> receive
#   3. bodies of 0 B, 100 B, 1 MB and 10 MB (data sections, byte i =
#      'a' + i % 26) byte for byte: Proton -> Proton, lepton -> Proton,
#      Proton -> lepton
#   4. topics with wildcards: subscribers on topic.news.*, topic.#.ohio,
#      topic.sports.# (pyrecv), topic.# (lepton-recv) and topic.*.virginia
#      (Proton-C receive) get exactly the messages published (by pysend and
#      lepton-send) whose topic their pattern matches
#   5. durable subscriptions (pybroker.py sub: a fixed container-id and link
#      name, a durable source with expiry-policy never): what is published
#      while the subscriber is detached (by pysend and lepton-send) is kept,
#      across a broker restart too, and delivered when it attaches again;
#      closing the link ends the subscription.  lepton-recv has no option
#      for a durable source (nor for its container-id or link name), so
#      lepton's tools cannot hold a durable subscription
#   6. request-response with a dynamic reply-to through the broker:
#      lepton-client -> lepton-server in every mode, pyclient.py ->
#      lepton-server, lepton-client and pyclient.py -> pybroker.py serve (a
#      Proton server after Proton's server.py, replying through the
#      broker's anonymous relay)
#   7. $management from Proton (pybroker.py mgmt: application properties
#      operation, type, name; reply-to a dynamic receiver): CREATE, READ,
#      QUERY, DELETE with their statusCode and bodies, and the errors
# The broker keeps its journal (fsync on) in a temporary directory and
# listens on 127.0.0.1 on a free port; only PIDs started here are stopped;
# every wait is bounded.
set -u
SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/interop/lib/peers.sh"
BUILD=$PEERS_BUILD
LS=$BUILD/lepton-send
LR=$BUILD/lepton-recv
LC=$BUILD/lepton-client
LSV=$BUILD/lepton-server
LB=$BUILD/lepton-broker
PYBROKER=$PEERS_LIB/pybroker.py
PYCLIENT=$PEERS_LIB/pyclient.py
W=$PEERS_WORK
passed=0
failed=0
LB_PID=""
LB_LIVES=0
T0=$(date +%s)
trap 'lb_stop; peers_cleanup' EXIT
trap 'exit 1' INT TERM

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
ko() {
    echo "FAIL: $1"
    for f in "$W"/*.out "$W"/*.err "$W"/*.json; do
        [ -s "$f" ] || continue
        echo "--- $f"
        tail -12 "$f" | cut -c1-300
    done
    echo "--- broker log"
    tail -12 "$W/lepton-broker.$LB_LIVES.log" 2>/dev/null | cut -c1-300
    failed=$((failed + 1))
}
fresh() { rm -f "$W"/*.out "$W"/*.err "$W"/*.json; }
finish() {
    echo "$passed passed, $failed failed ($(($(date +%s) - T0)) s)"
    [ $failed -eq 0 ]
    exit
}
check() { "$PEERS_PY" "$PEERS_LIB/check_msgs.py" "$@" 2>>"$W/check.err"; }
# lines FILE PATTERN: how many lines of FILE match PATTERN (grep -c, 0 if none)
lines() { grep -c -- "$2" "$1" 2>/dev/null || :; }
# traced: a Proton python helper with every frame on stderr.  (In the
# background the helpers are run without these functions, so that $! is
# the Python process itself and a kill reaches it.)
pysend_t() { PN_TRACE_FRM=1 "$PEERS_PY" "$PYSEND" "$@"; }
pyrecv_t() { PN_TRACE_FRM=1 "$PEERS_PY" "$PYRECV" "$@"; }
pybroker() { "$PEERS_PY" "$PYBROKER" "$@"; }
pyclient() { "$PEERS_PY" "$PYCLIENT" "$@"; }
# sorted FILE: its lines sorted, on one line
sorted() { sort "$1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }

# lb_start: a (new) life of lepton-broker on LPORT with its journal in
# $W/lepton-data; sets LB_PID.  A port just freed can be slow to bind under
# load: tried three times.
lb_start() {
    _try=0
    while [ $_try -lt 3 ]; do
        _try=$((_try + 1))
        LB_LIVES=$((LB_LIVES + 1))
        "$LB" --listen "$B" --data "$W/lepton-data" >"$W/lepton-broker.$LB_LIVES.log" 2>&1 </dev/null &
        LB_PID=$!
        peers_track "$LB_PID"
        if wait_for "$W/lepton-broker.$LB_LIVES.log" "listening on" 10; then
            return 0
        fi
        lb_stop
        sleep 1
    done
    return 1
}
# lb_stop: SIGTERM (a clean stop); returns the broker's exit status
lb_stop() {
    [ -n "$LB_PID" ] || return 0
    wait_pid_term "$LB_PID" 15
    _st=$?
    _peers_untrack "$LB_PID"
    LB_PID=""
    return $_st
}
# wait_pid_term PID SECONDS: TERM now, then as wait_pid
wait_pid_term() {
    kill "$1" 2>/dev/null
    wait_pid "$1" "$2"
}

if ! "$PEERS_PY" -c 'import proton' 2>/dev/null; then
    echo "FAIL: $PEERS_PY cannot import proton (python3-qpid-proton; run scripts/setup.sh)"
    failed=1
    finish
fi
for t in "$LS" "$LR" "$LC" "$LSV" "$LB"; do
    if [ ! -x "$t" ]; then
        echo "FAIL: $t not built"
        failed=1
        finish
    fi
done
if CSEND=$(proton_example send 2>"$W/build.err") && CRECV=$(proton_example receive 2>>"$W/build.err"); then
    :
else
    echo "FAIL: the Proton-C examples do not build"
    cat "$W/build.err"
    failed=1
    finish
fi

LPORT=$(free_port)
B=amqp://127.0.0.1:$LPORT
t="lepton-broker starts on $B (journal in a temporary directory, fsync on)"
if lb_start; then ok "$t"; else ko "$t"; finish; fi

# --- 1. settle modes --------------------------------------------------------------
# Proton's trace writes the modes as 0x0/0x1: snd-settle-mode 0 unsettled,
# 1 settled; rcv-settle-mode 0 first, 1 second.  lepton's trace (-v) writes
# them in decimal, and its at-least-once sender asks for mixed (2).
for mode in at-most-once at-least-once exactly-once; do
    case $mode in
    at-most-once) snd=0x1 rcv=0x0 lsnd=1 lrcv=0 ;;
    at-least-once) snd=0x0 rcv=0x0 lsnd=2 lrcv=0 ;;
    exactly-once) snd=0x0 rcv=0x1 lsnd=0 lrcv=1 ;;
    esac

    fresh
    t="$mode: pysend 100 -> broker -> pyrecv 100, in order, what the broker does on the wire"
    q=queue.pp-$mode
    why=""
    pysend_t "$B/$q" --count 100 --settle $mode -t 20 2>"$W/send.err" || why="$why pysend exit $?;"
    pyrecv_t "$B/$q" --count 100 --settle $mode --print -t 20 >"$W/recv.out" 2>"$W/recv.err" ||
        why="$why pyrecv exit $?;"
    check lines "$W/recv.out" 100 --fmt 'message-%d' --start 0 || why="$why bodies;"
    # the broker's attaches take the modes asked
    grep -q -- "<- @attach.*role=true, snd-settle-mode=$snd, rcv-settle-mode=$rcv" "$W/send.err" ||
        why="$why broker's attach to pysend;"
    grep -q -- "<- @attach.*role=false, snd-settle-mode=$snd, rcv-settle-mode=$rcv" "$W/recv.err" ||
        why="$why broker's attach to pyrecv;"
    case $mode in
    at-most-once)
        # pre-settled both ways, no outcome asked or given
        [ "$(lines "$W/recv.err" '<- @transfer.*settled=true')" -eq 100 ] || why="$why transfers not pre-settled;"
        [ "$(lines "$W/send.err" '<- @disposition')" -eq 0 ] || why="$why broker answered pre-settled transfers;"
        [ "$(lines "$W/recv.err" '-> @disposition')" -eq 0 ] || why="$why pyrecv answered pre-settled transfers;"
        grep -q "^sent 100 " "$W/send.err" || why="$why pysend summary;"
        ;;
    at-least-once)
        # the broker accepts and settles; it sends unsettled and takes the
        # receiver's accept
        grep -q -- '<- @disposition.*role=true.*settled=true, state=@accepted' "$W/send.err" ||
            why="$why no accepted+settled from the broker;"
        [ "$(lines "$W/recv.err" '<- @transfer.*settled=true')" -eq 0 ] || why="$why transfers pre-settled;"
        grep -q -- '-> @disposition.*role=true.*settled=true, state=@accepted' "$W/recv.err" ||
            why="$why pyrecv's accept;"
        grep -q "^sent 100 accepted 100 " "$W/send.err" || why="$why pysend summary;"
        ;;
    exactly-once)
        # toward the producer: accepted, not settled, until pysend settles
        grep -q -- '<- @disposition.*role=true.*state=@accepted' "$W/send.err" || why="$why no accept from the broker;"
        [ "$(lines "$W/send.err" '<- @disposition.*role=true.*settled=true')" -eq 0 ] ||
            why="$why the broker settled before the sender;"
        grep -q -- '-> @disposition.*role=false.*settled=true' "$W/send.err" || why="$why pysend did not settle;"
        # toward the consumer: pyrecv accepts without settling, the broker settles
        [ "$(lines "$W/recv.err" '<- @transfer.*settled=true')" -eq 0 ] || why="$why transfers pre-settled;"
        grep -q -- '-> @disposition.*role=true.*state=@accepted' "$W/recv.err" || why="$why pyrecv's accept;"
        [ "$(lines "$W/recv.err" '-> @disposition.*role=true.*settled=true')" -eq 0 ] ||
            why="$why pyrecv settled first;"
        grep -q -- '<- @disposition.*role=false.*settled=true' "$W/recv.err" || why="$why the broker never settled;"
        grep -q "never settled" "$W/recv.err" && why="$why some never settled;"
        grep -q "^sent 100 accepted 100 " "$W/send.err" || why="$why pysend summary;"
        ;;
    esac
    if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

    fresh
    t="$mode: lepton-send 100 -> broker -> pyrecv 100, in order"
    q=queue.lp-$mode
    if "$LS" -c 100 --settle $mode --timeout 20 "$B/$q" 2>"$W/send.err" &&
        pyrecv_t "$B/$q" --count 100 --settle $mode --print -t 20 >"$W/recv.out" 2>"$W/recv.err" &&
        check lines "$W/recv.out" 100 &&
        grep -q -- "<- @attach.*role=false, snd-settle-mode=$snd, rcv-settle-mode=$rcv" "$W/recv.err"; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="$mode: pysend 100 -> broker -> lepton-recv 100, in order, modes on the wire"
    q=queue.pl-$mode
    if pysend "$B/$q" --count 100 --settle $mode -t 20 2>"$W/send.err" &&
        "$LR" -v -c 100 --settle $mode --print --timeout 20 "$B/$q" >"$W/recv.out" 2>"$W/recv.err" &&
        check lines "$W/recv.out" 100 --fmt 'message-%d' --start 0 &&
        grep -q -- "<- @attach.*role=false, snd-settle-mode=$lsnd, rcv-settle-mode=$lrcv" "$W/recv.err"; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="$mode: lepton-send 1000 -> broker -> lepton-recv 1000, in order"
    q=queue.ll-$mode
    if "$LS" -v -c 1000 --settle $mode --timeout 20 "$B/$q" 2>"$W/send.err" &&
        "$LR" -c 1000 --settle $mode --print --timeout 20 "$B/$q" >"$W/recv.out" 2>"$W/recv.err" &&
        check lines "$W/recv.out" 1000 &&
        grep -q -- "<- @attach.*role=true, snd-settle-mode=$lsnd, rcv-settle-mode=$lrcv" "$W/send.err"; then
        ok "$t"
    else
        ko "$t"
    fi
done

# --- 2. Proton-C examples -------------------------------------------------------------
# send HOST PORT ADDRESS COUNT: bodies {"sequence": i}, message-id i (from 1);
# receive prints each body with pn_inspect ({"sequence"=1}, "message 1").
fresh
t="Proton-C send 100 -> broker -> Proton-C receive 100"
if "$CSEND" 127.0.0.1 "$LPORT" queue.cc 100 >"$W/send.out" 2>"$W/send.err" &&
    "$CRECV" 127.0.0.1 "$LPORT" queue.cc 100 >"$W/recv.out" 2>"$W/recv.err" &&
    grep -qx "100 messages sent and acknowledged" "$W/send.out" &&
    grep -qx "100 messages received" "$W/recv.out" &&
    grep -v "messages received" "$W/recv.out" >"$W/bodies.out" &&
    check lines "$W/bodies.out" 100 --fmt '{"sequence"=%d}'; then
    ok "$t"
else
    ko "$t"
fi

fresh
t="Proton-C send 50 -> broker -> lepton-recv --json and pyrecv (25 each), bodies {\"sequence\": i}"
if "$CSEND" 127.0.0.1 "$LPORT" queue.cl 50 >"$W/send.out" 2>"$W/send.err" &&
    "$LR" -c 25 --json --timeout 20 "$B/queue.cl" >"$W/recv.json" 2>"$W/recv.err" &&
    pyrecv "$B/queue.cl" --count 25 --print -t 20 >"$W/recv2.out" 2>"$W/recv2.err" &&
    "$PEERS_PY" - "$W/recv.json" "$W/recv2.out" <<'EOF'; then
import json, sys
got = [json.loads(ln) for ln in open(sys.argv[1])]
want = [{"properties": {"message_id": i}, "body": {"sequence": i}} for i in range(1, 26)]
if got != want:
    sys.exit("lepton-recv got %r..." % got[:2])
py = open(sys.argv[2]).read().splitlines()
if py != ["{'sequence': int32(%d)}" % i for i in range(26, 51)]:
    sys.exit("pyrecv got %r..." % py[:2])
EOF
    ok "$t"
else
    ko "$t"
fi

fresh
t="lepton-send 50 and pysend 50 -> broker -> Proton-C receive 100"
if "$LS" -c 50 --timeout 20 "$B/queue.lc" 2>"$W/send.err" &&
    pysend "$B/queue.lc" --count 50 -t 20 2>"$W/send2.err" &&
    "$CRECV" 127.0.0.1 "$LPORT" queue.lc 100 >"$W/recv.out" 2>"$W/recv.err" &&
    grep -qx "100 messages received" "$W/recv.out" &&
    head -50 "$W/recv.out" >"$W/a.out" && check lines "$W/a.out" 50 --fmt '"message %d"' &&
    sed -n '51,100p' "$W/recv.out" >"$W/b.out" && check lines "$W/b.out" 50 --fmt '"message-%d"' --start 0; then
    ok "$t"
else
    ko "$t"
fi

# --- 3. sizes -----------------------------------------------------------------------------
for size in 0 100 1000000 10000000; do
    n=20
    [ "$size" -ge 1000000 ] && n=3
    [ "$size" -ge 10000000 ] && n=2

    fresh
    t="$n messages of $size bytes: pysend -> broker -> pyrecv, byte-exact"
    if pysend "$B/queue.spp-$size" --count $n --size "$size" -t 30 2>"$W/send.err" &&
        pyrecv "$B/queue.spp-$size" --count $n --expect-size "$size" --print-message -t 30 \
            >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --data; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="$n messages of $size bytes: lepton-send -> broker -> pyrecv, byte-exact, ids kept"
    if "$LS" -c $n -s "$size" --timeout 30 "$B/queue.slp-$size" 2>"$W/send.err" &&
        pyrecv "$B/queue.slp-$size" --count $n --expect-size "$size" --print-message -t 30 \
            >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids lepton --data; then
        ok "$t"
    else
        ko "$t"
    fi

    fresh
    t="$n messages of $size bytes: pysend -> broker -> lepton-recv, byte-exact, ids kept"
    if pysend "$B/queue.spl-$size" --count $n --size "$size" -t 30 2>"$W/send.err" &&
        "$LR" -c $n --json --timeout 30 "$B/queue.spl-$size" >"$W/recv.json" 2>"$W/recv.err" &&
        check json "$W/recv.json" $n --size "$size" --ids pysend; then
        ok "$t"
    else
        ko "$t"
    fi
done
rm -f "$W"/*.json

# --- 4. topics and wildcards ---------------------------------------------------------------
fresh
t="topics: each subscriber gets exactly what its pattern matches"
# (the subscribers run until stopped: a message their pattern does not
# match would show; Proton-C receive stops after its one message)
PN_TRACE_FRM=1 "$PEERS_PY" "$PYRECV" "$B/topic.news.*" --count 0 --print -t 30 >"$W/news.out" 2>"$W/news.err" &
p1=$!
PN_TRACE_FRM=1 "$PEERS_PY" "$PYRECV" "$B/topic.#.ohio" --count 0 --print -t 30 >"$W/ohio.out" 2>"$W/ohio.err" &
p2=$!
PN_TRACE_FRM=1 "$PEERS_PY" "$PYRECV" "$B/topic.sports.#" --count 0 --print -t 30 >"$W/sports.out" 2>"$W/sports.err" &
p3=$!
"$LR" -v -c 0 --print --timeout 30 "$B/topic.#" >"$W/all.out" 2>"$W/all.err" &
p4=$!
PN_TRACE_FRM=1 "$CRECV" 127.0.0.1 "$LPORT" 'topic.*.virginia' 1 >"$W/virginia.out" 2>"$W/virginia.err" &
p5=$!
for p in $p1 $p2 $p3 $p4 $p5; do peers_track "$p"; done
why=""
for f in news ohio sports all virginia; do
    wait_for "$W/$f.err" '<- @attach' 10 || why="$why $f never attached;"
done
# what the broker has made of them
pybroker mgmt "$B" -r QUERY -t 10 >"$W/query.json" 2>"$W/query.err" || why="$why QUERY failed;"
subs=$("$PEERS_PY" -c '
import json, sys
q = json.loads(open(sys.argv[1]).readline())["body"]
print(" ".join(sorted(x["pattern"] for x in q if x["type"] == "subscription")))' "$W/query.json")
[ "$subs" = "# #.ohio *.virginia news.* sports.#" ] || why="$why subscriptions listed: $subs;"
for topic in news.ohio sports.ohio weather.virginia; do
    pysend "$B/topic.$topic" -m "$topic" -t 10 2>>"$W/pub.err" || why="$why pysend to $topic;"
done
for topic in news.ohio.extra sports; do
    "$LS" -m "$topic" --timeout 10 "$B/topic.$topic" 2>>"$W/pub.err" || why="$why lepton-send to $topic;"
done
wait_pid $p5 15 || why="$why Proton-C receive exit $?;"
wait_for "$W/all.out" "^sports$" 5 || why="$why lepton-recv did not get the last one;"
sleep 0.5 # anything wrongly routed would be there by now
for p in $p1 $p2 $p3 $p4; do
    kill "$p" 2>/dev/null
    wait_pid "$p" 5
    _peers_untrack "$p"
done
_peers_untrack $p5
[ "$(sorted "$W/news.out")" = "news.ohio" ] || why="$why news.*: $(sorted "$W/news.out");"
[ "$(sorted "$W/ohio.out")" = "news.ohio sports.ohio" ] || why="$why #.ohio: $(sorted "$W/ohio.out");"
[ "$(sorted "$W/sports.out")" = "sports sports.ohio" ] || why="$why sports.#: $(sorted "$W/sports.out");"
[ "$(sorted "$W/all.out")" = "news.ohio news.ohio.extra sports sports.ohio weather.virginia" ] ||
    why="$why #: $(sorted "$W/all.out");"
[ "$(sorted "$W/virginia.out")" = '"weather.virginia" 1 messages received' ] ||
    why="$why *.virginia: $(sorted "$W/virginia.out");"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# --- 5. durable subscriptions ---------------------------------------------------------------
fresh
t="durable subscription: what is published while the subscriber is detached is kept, across a restart"
# the subscriber: the same container-id and link name every time
alerts_sub() { pybroker sub "$B/topic.alerts.#" --durable --container-id alerts-watcher --name alerts "$@"; }
why=""
# subscribe, take nothing, detach: the subscription stays
alerts_sub --count 0 -t 1 >"$W/sub1.out" 2>"$W/sub1.err" || why="$why first attach exit $?;"
pysend "$B/topic.alerts.disk" --count 5 --durable -t 10 2>"$W/pub.err" || why="$why pysend;"
"$LS" -c 2 --durable --timeout 10 "$B/topic.alerts.cpu" 2>>"$W/pub.err" || why="$why lepton-send;"
"$LS" -m "not for it" --timeout 10 "$B/topic.news.x" 2>>"$W/pub.err" || why="$why lepton-send news;"
pybroker mgmt "$B" -r QUERY -t 10 >"$W/query.json" 2>"$W/query.err" || why="$why QUERY;"
kept=$("$PEERS_PY" -c '
import json, sys
q = json.loads(open(sys.argv[1]).readline())["body"]
print(" ".join("%s:%s:%s:%s" % (x["name"], x.get("pattern"), x["depth"], x["durable"])
               for x in q if x["type"] == "subscription"))' "$W/query.json")
[ "$kept" = "alerts-watcher:alerts:alerts.#:7:True" ] || why="$why QUERY shows: $kept;"
# the journal keeps it and its messages
lb_stop || why="$why broker stop exit $?;"
lb_start || why="$why broker did not restart;"
alerts_sub --count 7 -t 10 >"$W/sub2.out" 2>"$W/sub2.err" || why="$why second attach exit $?;"
[ "$(tr '\n' ' ' <"$W/sub2.out")" = "message-0 message-1 message-2 message-3 message-4 message 1 message 2 " ] ||
    why="$why got: $(tr '\n' ' ' <"$W/sub2.out");"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

fresh
t="durable subscription: closing the link (not detaching) ends it"
why=""
alerts_sub --count 0 --end close -t 1 >"$W/sub3.out" 2>"$W/sub3.err" || why="$why close exit $?;"
[ -s "$W/sub3.out" ] && why="$why got $(tr '\n' ' ' <"$W/sub3.out");"
pysend "$B/topic.alerts.disk" --count 2 --durable -t 10 2>"$W/pub.err" || why="$why pysend;"
alerts_sub --count 0 -t 1 >"$W/sub4.out" 2>"$W/sub4.err" || why="$why new attach exit $?;"
[ -s "$W/sub4.out" ] && why="$why a new subscription got $(tr '\n' ' ' <"$W/sub4.out");"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# --- 6. request-response through the broker -------------------------------------------
REQ=queue.requests
fresh
t="lepton-client -> broker -> lepton-server, every mode (dynamic reply-to, anonymous relay)"
"$LSV" -c 6 --timeout 30 "$B/$REQ" >"$W/server.out" 2>"$W/server.err" &
s=$!
peers_track $s
why=""
for mode in at-most-once at-least-once exactly-once; do
    "$LC" --settle $mode --timeout 10 "$B/$REQ" -m "hello $mode" -m "world" >"$W/client.out" 2>"$W/client.err" ||
        why="$why $mode client exit $?;"
    [ "$(tr '\n' ' ' <"$W/client.out")" = "HELLO $(echo $mode | tr '[:lower:]' '[:upper:]') WORLD " ] ||
        why="$why $mode replies: $(tr '\n' ' ' <"$W/client.out");"
done
wait_pid $s 10 || why="$why server exit $?;"
_peers_untrack $s
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

fresh
t="pyclient.py -> broker -> lepton-server (at-least-once, exactly-once)"
"$LSV" -c 6 --timeout 30 "$B/$REQ" >"$W/server.out" 2>"$W/server.err" &
s=$!
peers_track $s
why=""
for mode in at-least-once exactly-once; do
    pyclient "$B/$REQ" --settle $mode -m one -m two -m three -t 10 >"$W/client.out" 2>"$W/client.err" ||
        why="$why $mode pyclient exit $?;"
    [ "$(tr '\n' ' ' <"$W/client.out")" = "ONE TWO THREE " ] || why="$why $mode replies: $(tr '\n' ' ' <"$W/client.out");"
done
wait_pid $s 10 || why="$why server exit $?;"
_peers_untrack $s
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

fresh
t="lepton-client and pyclient.py -> broker -> pybroker.py serve (a Proton server replying through the relay)"
"$PEERS_PY" "$PYBROKER" serve "$B/$REQ" --count 8 -t 30 >"$W/server.out" 2>"$W/server.err" &
s=$!
peers_track $s
why=""
wait_for "$W/server.err" "serving" 10 || why="$why server never attached;"
grep -q "anonymous relay" "$W/server.err" || why="$why the broker offered no ANONYMOUS-RELAY;"
for mode in at-least-once exactly-once; do
    "$LC" --settle $mode --timeout 10 "$B/$REQ" -m "abc $mode" -m "x" >"$W/client.out" 2>"$W/client.err" ||
        why="$why $mode lepton-client exit $?;"
    [ "$(tr '\n' ' ' <"$W/client.out")" = "ABC $(echo $mode | tr '[:lower:]' '[:upper:]') X " ] ||
        why="$why $mode lepton-client replies: $(tr '\n' ' ' <"$W/client.out");"
    pyclient "$B/$REQ" --settle $mode -m "def" -m "y" -t 10 >"$W/client.out" 2>"$W/client.err" ||
        why="$why $mode pyclient exit $?;"
    [ "$(tr '\n' ' ' <"$W/client.out")" = "DEF Y " ] || why="$why $mode pyclient replies: $(tr '\n' ' ' <"$W/client.out");"
done
wait_pid $s 10 || why="$why server exit $?;"
_peers_untrack $s
grep -q "answered 8 accepted 8" "$W/server.err" || why="$why server summary;"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# --- 7. $management ------------------------------------------------------------------------
fresh
t="\$management from Proton: CREATE, READ, QUERY, DELETE and errors, with statusCode and bodies"
why=""
pybroker mgmt "$B" -r CREATE,queue,queue.mgmt -r CREATE,queue,queue.mgmt -t 10 >"$W/m1.json" 2>"$W/m1.err" ||
    why="$why create exit $?;"
pysend "$B/queue.mgmt" --count 3 -t 10 2>"$W/send.err" || why="$why pysend;"
pybroker mgmt "$B" -r READ,queue,queue.mgmt -r QUERY -r DELETE,queue,queue.mgmt -r READ,queue,queue.mgmt \
    -r DELETE,queue,queue.mgmt -r QUERY,- -r READ,queue -r READ,topic,x -r FROB,queue,x \
    -r CREATE,queue,topic.x -t 10 >"$W/m2.json" 2>"$W/m2.err" || why="$why requests exit $?;"
"$PEERS_PY" - "$W/m1.json" "$W/m2.json" >"$W/m.err" 2>&1 <<'EOF' || why="$why $(tail -1 "$W/m.err");"
import json, sys
a = [json.loads(ln) for ln in open(sys.argv[1])] + [json.loads(ln) for ln in open(sys.argv[2])]
def expect(i, code, what):
    r = a[i]
    if r["statusCode"] != code:
        sys.exit("answer %d (%s): statusCode %r (%s), expected %d"
                 % (i + 1, what, r["statusCode"], r["statusDescription"], code))
    return r["body"]
def names(body):
    return {q["name"]: q for q in body}
b = expect(0, 201, "CREATE")
if b.get("name") != "queue.mgmt" or b.get("type") != "queue" or b.get("depth") != 0:
    sys.exit("CREATE body %r" % b)
expect(1, 200, "CREATE of an existing queue")
b = expect(2, 200, "READ")
if b.get("depth") != 3 or b.get("enqueued") != 3:
    sys.exit("READ body %r" % b)
q = names(expect(3, 200, "QUERY"))
if q.get("queue.mgmt", {}).get("depth") != 3:
    sys.exit("QUERY: queue.mgmt %r" % q.get("queue.mgmt"))
expect(4, 204, "DELETE")
expect(5, 404, "READ after DELETE")
expect(6, 404, "DELETE again")
if "queue.mgmt" in names(expect(7, 200, "QUERY without type")):
    sys.exit("QUERY still lists queue.mgmt")
expect(8, 400, "READ without name")
expect(9, 400, "READ of type topic")
expect(10, 501, "unknown operation")
expect(11, 400, "CREATE of a topic address")
for i, r in enumerate(a):
    if r["correlation_id"] != "req-%d" % (i + 1 if i < 2 else i - 1):
        sys.exit("answer %d: correlation-id %r" % (i + 1, r["correlation_id"]))
EOF
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# the broker stops cleanly after all this
t="lepton-broker stops on SIGTERM with exit 0"
if lb_stop; then ok "$t"; else ko "$t (exit $?)"; fi
finish
