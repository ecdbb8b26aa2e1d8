#!/bin/bash
# The broker's promise (issue 6), tested: under load from several producers
# and consumers with at-least-once, kill -9 of lepton-broker at random
# moments and a restart on the same data lose no message whose accept
# reached the producer, and duplicate only messages whose consumer
# acknowledgement (or whose accept, for a producer's resend) was in flight.
#
#   - lepton-broker, fsync on (the default), its journal in a temporary
#     directory, on a free port of 127.0.0.1;
#   - 4 producers (lepton-send --durable --rate, each its own
#     --property producer=K; message-ids 1..N) on 2 queues, 2 competing
#     consumers per queue (lepton-recv -c 0 --json, at-least-once); those
#     of the second queue start only halfway through the kills, so the
#     restarts before recover a growing backlog from the journal;
#   - KILLS rounds: after a random 0.2-2.2 s the broker gets SIGKILL; once
#     the consumers have printed what they had (their line counts are the
#     boundary between two broker lives) it is started again on the same
#     port and data directory; the tools reconnect by themselves
#     (lepton-send sends again what was unsettled when the link broke);
#   - every producer must finish with exit 0 and "N of N messages
#     accepted": it saw the accept of every message, so each (K, id) must
#     have reached a consumer at least once: lost = 0;
#   - a duplicate must straddle one kill (first copy from life i, within the
#     last few messages its consumer got before the kill, the next from
#     life i+1) -- an acknowledgement that was in flight -- or lie in one
#     life right after a kill, counted against the messages the producers
#     resent; and after a quiet second every acknowledgement is on disk: a
#     last kill -9 and restart redeliver nothing;
#   - the queues are drained at the end (nothing left), and the broker stops
#     cleanly on SIGTERM.
# Prints the figures per kill (lost, duplicated) and the totals.
#
# Environment (set by ctest): LEPTON_BUILD_DIR, LEPTON_SOURCE_DIR,
# LEPTON_PYTHON (default /usr/bin/python3).  RECOVERY_KILLS, RECOVERY_N
# (messages per producer), RECOVERY_RATE (per producer per second) and
# RECOVERY_SEED override the defaults; RECOVERY_KEEP=1 keeps the logs.
# Everything listens on 127.0.0.1 only; only the PIDs started here are
# signalled; every wait is bounded.
set -u

build=${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR not set}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
BROKER=$build/lepton-broker
SEND=$build/lepton-send
RECV=$build/lepton-recv
for t in "$BROKER" "$SEND" "$RECV"; do
    [ -x "$t" ] || { echo "no $t: build first" >&2; exit 1; }
done

KILLS=${RECOVERY_KILLS:-4}
N=${RECOVERY_N:-15000}
RATE=${RECOVERY_RATE:-1500}
SEED=${RECOVERY_SEED:-$$}
RANDOM=$SEED
PRODUCERS=4
CONSUMERS_PER_QUEUE=2
CREDIT=100
QUEUES=(queue.recovery.a queue.recovery.b)

. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lepton-recovery.XXXXXX")
running=() # background PIDs not yet waited for (so never reused)
BROKER_PID=""
cleanup() {
    stop_running
    if [ -n "${RECOVERY_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# (free_port, wait_listen, forget and stop_running from lib.sh; ok, ko and
# show here print to standard output, PASS lines too)
ok() { echo "PASS: $1"; passed=$((passed + 1)); }
ko() {
    echo "FAIL: $1"
    failed=$((failed + 1))
}
show() { # show FILE...: the ends of the files after a failure
    local f
    for f in "$@"; do
        [ -s "$f" ] && { echo "  --- $(basename "$f")"; tail -n 15 "$f" | cut -c1-300 | sed 's/^/    /'; }
    done
}
finish_test() {
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}
# wait_pid PID SECONDS: its exit status; TERM after SECONDS, KILL 2 s later
wait_pid() {
    local pid=$1 i
    for ((i = 0; i < $2 * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid"
    local st=$?
    forget "$pid"
    return $st
}
lines_of() { local n; n=$(wc -l <"$1" 2>/dev/null) || n=0; echo "${n:-0}"; }
now() { date +%s.%N; }
elapsed() { "$PY" -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }

PORT=$(free_port)
URL=amqp://127.0.0.1:$PORT
DATA=$tmp/data
LIVES=0

# broker_start: a new life of the broker on PORT and DATA; sets BROKER_PID.
# A port just freed by a killed broker can be slow to bind under load:
# tried three times.
broker_start() {
    local try
    for try in 1 2 3; do
        LIVES=$((LIVES + 1))
        "$BROKER" --listen "$URL" --data "$DATA" >"$tmp/broker.$LIVES.log" 2>&1 </dev/null &
        BROKER_PID=$!
        running+=("$BROKER_PID")
        local i
        for ((i = 0; i < 200; i++)); do
            grep -q "listening on" "$tmp/broker.$LIVES.log" && return 0
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
        forget "$BROKER_PID"
        echo "  broker start $try failed:" >&2
        sed 's/^/    /' "$tmp/broker.$LIVES.log" >&2
        sleep 0.5
    done
    return 1
}
broker_kill() {
    kill -9 "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    forget "$BROKER_PID"
    BROKER_PID=""
}
# consumers_settle: until no consumer prints more for 0.3 s (the broker is
# down: whatever was in their sockets has been read); echoes their counts
consumers_settle() {
    local prev="" cur c i
    for ((i = 0; i < 50; i++)); do
        cur=""
        for c in "${CONS_OUT[@]}"; do cur="$cur $(lines_of "$c")"; done
        [ "$cur" = "$prev" ] && break
        prev=$cur
        sleep 0.3
    done
    echo "$cur"
}

t0=$(now)
echo "seed $SEED: $PRODUCERS producers x $N durable messages at $RATE/s, $((${#QUEUES[@]} * CONSUMERS_PER_QUEUE)) consumers, $KILLS kills"
if broker_start; then
    ok "lepton-broker starts on $URL with its journal in $DATA (fsync on)"
else
    ko "lepton-broker starts"
    finish_test
fi

# The consumers of the first queue run from the start, so its messages are
# taken (and acknowledged) while the broker is killed; those of the second
# start only after LATE kills, so that a backlog of accepted messages must
# come back from the journal at each restart before that.
LATE=$(((KILLS + 1) / 2))
CONS_OUT=()
CONS_PID=()
CONS_Q=()
for q in "${QUEUES[@]}"; do
    for ((c = 1; c <= CONSUMERS_PER_QUEUE; c++)); do
        i=${#CONS_OUT[@]}
        CONS_OUT+=("$tmp/recv.$i.out")
        CONS_PID+=("")
        CONS_Q+=("$q")
        : >"$tmp/recv.$i.out"
    done
done
start_consumers() { # start_consumers QUEUE
    local i
    for ((i = 0; i < ${#CONS_OUT[@]}; i++)); do
        [ "${CONS_Q[$i]}" = "$1" ] || continue
        "$RECV" -c 0 --json --credit $CREDIT --max-reconnect 1000 "$URL/$1" \
            >"$tmp/recv.$i.out" 2>"$tmp/recv.$i.err" </dev/null &
        CONS_PID[$i]=$!
        running+=($!)
    done
}
start_consumers "${QUEUES[0]}"
[ "$LATE" -gt 0 ] || start_consumers "${QUEUES[1]}"
sleep 0.5
PROD_PID=()
for ((k = 1; k <= PRODUCERS; k++)); do
    q=${QUEUES[$(((k - 1) % ${#QUEUES[@]}))]}
    "$SEND" --durable -c "$N" --rate "$RATE" --property producer=$k --max-reconnect 1000 \
        --timeout 120 "$URL/$q" >"$tmp/send.$k.out" 2>"$tmp/send.$k.err" </dev/null &
    PROD_PID+=($!)
    running+=($!)
done

# the kills, each at a random moment of the producers' run
: >"$tmp/bounds"
for ((r = 1; r <= KILLS; r++)); do
    ms=$((200 + RANDOM % 2000))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    alive=0
    for p in "${PROD_PID[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    broker_kill
    at=$(elapsed "$t0")
    counts=$(consumers_settle)
    echo "$counts" >>"$tmp/bounds"
    total=0
    for n in $counts; do total=$((total + n)); done
    [ $alive -gt 0 ] || echo "  (the producers had finished: the rate is too high for this machine?)"
    if ! broker_start; then
        ko "broker restarts after kill $r"
        finish_test
    fi
    [ $r -eq $LATE ] && start_consumers "${QUEUES[1]}"
    rec=$(sed -n 's/.*store .*: \([0-9]* queues, [0-9]* messages recovered\).*/\1/p' "$tmp/broker.$LIVES.log")
    echo "  kill $r at ${at}s (after ${ms} ms; $alive producers running, $total received so far); restarted: ${rec:-?}"
done
ok "$KILLS kill -9 and restarts on the same port and data directory"

# the producers finish: every accept seen
why=""
for ((k = 1; k <= PRODUCERS; k++)); do
    wait_pid "${PROD_PID[$((k - 1))]}" 120
    st=$?
    if [ $st -ne 0 ] || ! grep -q "^lepton-send: $N of $N messages accepted" "$tmp/send.$k.err"; then
        why="$why producer $k exit $st;"
        show "$tmp/send.$k.err"
    fi
done
resent=$(cat "$tmp"/send.*.err | sed -n 's/.* \([0-9]*\) resent).*/\1/p' | awk '{s += $1} END {print s + 0}')
t="every producer finished with all $N accepted (exit 0) across the kills ($resent resent after reconnecting)"
if [ -z "$why" ]; then ok "$t"; else ko "$t:$why"; fi

# the consumers catch up: every (producer, id) seen, or quiet for 3 s
want=$((PRODUCERS * N))
prev=-1
quiet=0
for ((i = 0; i < 150 && quiet < 15; i++)); do
    got=$(cat "${CONS_OUT[@]}" | "$PY" -c '
import json, sys
s = set()
for ln in sys.stdin:
    try:
        m = json.loads(ln)
        s.add((m["application_properties"]["producer"], m["properties"]["message_id"]))
    except Exception:
        pass
print(len(s))')
    [ "$got" -ge "$want" ] && break
    if [ "$got" = "$prev" ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$got
    sleep 0.2
done

# every acknowledgement given a second ago is on disk: a last kill -9 and
# restart must redeliver nothing
sleep 1
broker_kill
counts=$(consumers_settle)
echo "$counts" >>"$tmp/bounds"
if broker_start; then
    ok "broker restarts after a last kill in a quiet moment"
else
    ko "broker restarts after the last kill"
    finish_test
fi
sleep 2 # the consumers reconnect; anything redelivered reaches them
for ((i = 0; i < ${#CONS_PID[@]}; i++)); do
    kill "${CONS_PID[$i]}" 2>/dev/null
    wait_pid "${CONS_PID[$i]}" 10 || {
        ko "consumer $i exit $? (0 when stopped by SIGTERM)"
        show "$tmp/recv.$i.err"
    }
done
# drain: nothing may be left on the queues
for q in "${QUEUES[@]}"; do
    i=${#CONS_OUT[@]}
    "$RECV" -c 0 --json --timeout 1.5 "$URL/$q" >"$tmp/recv.$i.out" 2>"$tmp/recv.$i.err" </dev/null
    CONS_OUT+=("$tmp/recv.$i.out")
done
# the broker stops cleanly
kill "$BROKER_PID"
if wait_pid "$BROKER_PID" 15; then
    ok "the broker stops on SIGTERM with exit 0"
else
    ko "the broker stops on SIGTERM (exit $?)"
    show "$tmp/broker.$LIVES.log"
fi
BROKER_PID=""

# the figures
t="lost = 0 (every message whose accept reached its producer was received), duplicates only where an acknowledgement or accept was in flight at a kill"
if "$PY" - "$tmp/bounds" "$PRODUCERS" "$N" "$resent" "$CREDIT" "${#QUEUES[@]}" "$CONSUMERS_PER_QUEUE" \
    "${CONS_OUT[@]}" <<'EOF'; then
import collections, json, sys

bounds_file, producers, n, resent, credit, nq, cpq = sys.argv[1:8]
producers, n, resent, credit = int(producers), int(n), int(resent), int(credit)
nlive = int(nq) * int(cpq)
files = sys.argv[8:]
# bounds[k][c]: lines consumer c had printed when life k ended (kill k+1);
# the last row is the quiet kill, the drain comes after everything
bounds = [list(map(int, ln.split())) for ln in open(bounds_file) if ln.strip()]
kills = len(bounds) - 1
DRAIN = len(bounds) + 1
# an acknowledgement in flight is one of the last messages its consumer
# took before the kill: within a few credit windows of the boundary
# (generous, for a loaded machine)
limit = 10 * credit

copies = collections.defaultdict(list)  # (producer, id) -> [(life, consumer, line)]
bad = []
for c, path in enumerate(files):
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, ln in enumerate(f):
            try:
                m = json.loads(ln)
                key = (int(m["application_properties"]["producer"]), int(m["properties"]["message_id"]))
                if m["body"] != "message %d" % key[1]:
                    bad.append("consumer %d line %d: body %r" % (c, i + 1, m["body"]))
            except Exception as e:
                bad.append("consumer %d line %d: %s: %r" % (c, i + 1, e, ln[:100]))
                continue
            if c >= nlive:
                life = DRAIN
            else:
                life = next((k for k, b in enumerate(bounds) if i < b[c]), len(bounds))
            copies[key].append((life, c, i))

want = {(p, i) for p in range(1, producers + 1) for i in range(1, n + 1)}
lost = sorted(want - set(copies))
extra = sorted(set(copies) - want)
received = sum(len(v) for v in copies.values())

# Each extra copy, by the kill it follows:
#   in_flight[k]: first copy from life k within `limit` messages of its
#                 consumer's boundary, next one from life k+1: an ack (or a
#                 producer's accept) in flight at kill k+1
#   stale[k]:     the same, but the first copy was taken long before the
#                 kill: its acknowledgement had been processed, yet lost
#   resends[k]:   two copies from life k (k >= 1): a producer's resend next
#                 to the copy the journal had kept
#   far:          copies more than one life apart
in_flight, stale, resends = collections.Counter(), collections.Counter(), collections.Counter()
far = []
depth_max = 0
for key, cs in copies.items():
    cs.sort()
    for (l1, c1, i1), (l2, c2, i2) in zip(cs, cs[1:]):
        if l2 == l1:
            resends[l1] += 1
        elif l2 == l1 + 1 and l1 < len(bounds):
            depth = bounds[l1][c1] - i1
            depth_max = max(depth_max, depth)
            (in_flight if depth <= limit else stale)[l1] += 1
        else:
            far.append((key, cs))
# a lost message is put in the life its producer's neighbours arrived in
lost_in = collections.Counter()
for p, i in lost:
    near = [copies[(p, j)][0][0] for j in (i - 1, i + 1, i - 2, i + 2) if (p, j) in copies]
    lost_in[near[0] if near else -1] += 1
delivered_in = collections.Counter(x[0] for cs in copies.values() for x in cs)

print("  %d messages accepted by the broker (seen by their producers), %d deliveries, %d distinct"
      % (len(want), received, len(copies)))
for k in range(len(bounds)):
    what = "kill %d" % (k + 1) if k < kills else "the quiet kill"
    print("  life %d, ended by %s: %d delivered, %d lost; after it: %d again with an ack or accept"
          " in flight, %d acknowledged long before, %d twice (a producer's resend)"
          % (k + 1, what, delivered_in[k], lost_in[k], in_flight[k], stale[k], resends[k + 1]))
left = delivered_in[DRAIN]
ndup = received - len(copies)
print("  total: lost %d, duplicated %d (%d with the ack or accept in flight, %d acknowledged long"
      " before, %d resends; the producers resent %d); left on the queues at the end: %d"
      % (len(lost), ndup, sum(in_flight.values()), sum(stale.values()), sum(resends.values()),
         resent, left))
if depth_max:
    print("  a redelivered message was at most %d messages before its consumer's kill boundary"
          % depth_max)

fail = []
if bad:
    fail.append("%d unreadable or wrong messages, e.g. %s" % (len(bad), bad[:3]))
if lost:
    fail.append("LOST %d accepted messages, e.g. %s" % (len(lost), lost[:10]))
if extra:
    fail.append("%d messages nobody sent, e.g. %s" % (len(extra), extra[:5]))
if far:
    fail.append("%d duplicates more than one life apart, e.g. %s" % (len(far), far[:3]))
if sum(stale.values()):
    eg = [(k, cs) for k, cs in copies.items() for (l1, c1, i1), (l2, c2, i2) in zip(cs, cs[1:])
          if l2 == l1 + 1 and l1 < len(bounds) and bounds[l1][c1] - i1 > limit]
    fail.append("%d messages redelivered after a kill although their consumer had taken them"
                " more than %d messages before it (not in flight), e.g. %s"
                % (sum(stale.values()), limit, eg[:3]))
if in_flight[kills]:
    fail.append("%d messages redelivered after the quiet kill (acknowledged a second before)"
                % in_flight[kills])
if sum(resends.values()) > resent:
    fail.append("%d duplicates within one life but the producers resent only %d"
                % (sum(resends.values()), resent))
# at most what was in flight: every consumer's credit at every kill, and
# every message a producer sent again
bound = resent + (kills + 1) * nlive * credit
if ndup > bound:
    fail.append("%d duplicates, more than could have been in flight (%d)" % (ndup, bound))
if left:
    fail.append("%d messages left on the queues" % left)
for f in fail:
    print("  " + f)
sys.exit(1 if fail else 0)
EOF
    ok "$t"
else
    ko "$t"
    show "$tmp"/broker.*.log
fi
echo "  $(elapsed "$t0") s in all"
finish_test
