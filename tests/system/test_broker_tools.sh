#!/bin/sh
# lepton's own clients against lepton-broker: a queue both ways, a
# durable topic subscription held by lepton-recv (--durable --name
# --container-id) across its absence and ended by --unsubscribe, and
# request-response through the broker (lepton-client's dynamic reply-to,
# lepton-server replying through the anonymous relay or per address).
set -u
BUILD=${LEPTON_BUILD_DIR:?}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
passed=0
failed=0
tmp=$(mktemp -d)
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
ok() { passed=$((passed + 1)); }
ko() { failed=$((failed + 1)); echo "FAIL: $*"; }
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL=amqp://127.0.0.1:$port

"$BUILD/lepton-broker" -l "$URL" -d "$tmp/data" --log-level warn 2>"$tmp/broker.err" &
BPID=$!
i=0
while ! "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "broker did not start"; cat "$tmp/broker.err"; exit 1; }
    sleep 0.1
done

# a queue both ways
if "$BUILD/lepton-send" -c 100 --durable "$URL/queue.t" 2>"$tmp/s.err" &&
   "$BUILD/lepton-recv" -c 100 --print --timeout 10 "$URL/queue.t" >"$tmp/r.out" 2>"$tmp/r.err" &&
   [ "$(wc -l <"$tmp/r.out")" -eq 100 ] && [ "$(head -1 "$tmp/r.out")" = "message 1" ] &&
   [ "$(tail -1 "$tmp/r.out")" = "message 100" ]; then ok; else ko "queue round trip"; cat "$tmp"/*.err; fi

# a durable subscription: made, kept while away, taken up again, ended
R="$BUILD/lepton-recv --durable --name orders --container-id sub-1"
$R -c 1 --timeout 0.5 "$URL/topic.orders.*" >/dev/null 2>&1
"$BUILD/lepton-send" -c 5 --durable "$URL/topic.orders.new" 2>/dev/null
"$BUILD/lepton-send" -c 2 "$URL/topic.other.new" 2>/dev/null
if $R -c 5 --print --timeout 10 "$URL/topic.orders.*" >"$tmp/d.out" 2>"$tmp/d.err" &&
   [ "$(wc -l <"$tmp/d.out")" -eq 5 ]; then ok; else ko "durable subscription kept 5 messages"; cat "$tmp/d.err"; fi
if $R -c 1 --timeout 0.5 "$URL/topic.orders.*" >/dev/null 2>&1; then
    ko "nothing more on the subscription"
else ok; fi
$R --unsubscribe -c 1 --timeout 0.5 "$URL/topic.orders.*" >/dev/null 2>&1
"$BUILD/lepton-send" -c 3 "$URL/topic.orders.new" 2>/dev/null
if $R --unsubscribe -c 1 --timeout 0.5 "$URL/topic.orders.*" >/dev/null 2>&1; then
    ko "the subscription ended with --unsubscribe"
else ok; fi

# request-response through the broker
"$BUILD/lepton-server" -c 3 --timeout 20 "$URL/queue.requests" 2>"$tmp/srv.err" &
SPID=$!
sleep 0.3
if "$BUILD/lepton-client" --timeout 10 "$URL/queue.requests" -m one -m two -m three >"$tmp/c.out" 2>"$tmp/c.err" &&
   [ "$(cat "$tmp/c.out")" = "$(printf 'ONE\nTWO\nTHREE')" ]; then ok; else
    ko "lepton-client through the broker"; cat "$tmp/c.out" "$tmp/c.err" "$tmp/srv.err"; fi
wait $SPID
if [ $? -eq 0 ]; then ok; else ko "lepton-server answered 3 and stopped"; cat "$tmp/srv.err"; fi

kill -TERM "$BPID"
wait "$BPID"
st=$?
BPID=
if [ $st -eq 0 ]; then ok; else ko "broker exit status $st"; cat "$tmp/broker.err"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
