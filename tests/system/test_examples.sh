#!/bin/bash
# Runs every program in examples/ and checks what it prints and its exit
# status:
#   helloworld (its own peer), simple_send -> direct_recv,
#   multithreaded_sender -> direct_recv, client -> server_direct (until
#   signalled), and each of them against lepton's tools instead of its
#   usual partner (lepton-send -> direct_recv, simple_send and
#   multithreaded_sender -> lepton-recv --listen, lepton-client ->
#   server_direct, client -> lepton-server --listen).
# simple_recv, server and helloworld URL are clients that need a peer that
# listens and sends, or a broker.  simple_recv runs against a Proton sender
# that listens, and simple_send -> simple_recv and helloworld URL through
# Proton-C's example broker, when those are there (SKIP otherwise).  server
# waits for lepton's broker: it relies on a released request coming back,
# which Proton-C's example broker (it pre-settles) never does.
#
# Environment (set by ctest): LEPTON_BUILD_DIR, LEPTON_SOURCE_DIR,
# LEPTON_PYTHON (default /usr/bin/python3: the one that imports Debian's
# proton).  Everything listens on 127.0.0.1 only, on free ports; only the
# PIDs started here are signalled, and each program runs under timeout(1).
set -u

build=${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR not set}
src=${LEPTON_SOURCE_DIR:?LEPTON_SOURCE_DIR not set}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
EX=$build/examples
SEND=$build/lepton-send
RECV=$build/lepton-recv
SERVER=$build/lepton-server
CLIENT=$build/lepton-client
PYLIB=$src/tests/interop/lib

for p in helloworld simple_send simple_recv direct_recv multithreaded_sender client server \
    server_direct; do
    [ -x "$EX/$p" ] || { echo "no $EX/$p: build first" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"
SHOW_BYTES=2000 # what show prints of each file

tmp=$(mktemp -d)
running=() # background PIDs not yet waited for (so never reused)
broker_lib=0
cleanup() {
    stop_running
    [ $broker_lib = 1 ] && peers_cleanup
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# listener NAME PORT CMD...: starts a server and waits until it listens;
# sets PID (and fails the test when it does not listen)
listener() {
    local name=$1 port=$2
    shift 2
    start "$name" 60 "$@"
    wait_listen "$port" 10 || ko "$name does not listen on $port"
}
seq_lines() { # seq_lines FORMAT FROM TO
    local i
    for ((i = $2; i <= $3; i++)); do printf "$1\n" "$i"; done
}

# ---- helloworld: its own peer ----

run hello 20 "$EX/helloworld"
if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/hello.out")" = "Hello World!" ]; then ok; else
    ko "helloworld: status $STATUS"
    show "$tmp/hello.out" "$tmp/hello.err"
fi

# ---- simple_send -> direct_recv ----

port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener direct_recv "$port" "$EX/direct_recv" "$url" 100
rpid=$PID
run simple_send 30 "$EX/simple_send" "$url" 100
sst=$STATUS
finish "$rpid" 10
seq_lines 'sequence %d' 0 99 >"$tmp/want"
if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && [ "$(cat "$tmp/simple_send.out")" = "all messages confirmed" ] &&
    cmp -s "$tmp/want" "$tmp/direct_recv.out"; then ok; else
    ko "simple_send -> direct_recv: send $sst, recv $STATUS"
    show "$tmp/simple_send.out" "$tmp/simple_send.err" "$tmp/direct_recv.err"
fi

# ---- multithreaded_sender -> direct_recv ----

port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener direct_recv "$port" "$EX/direct_recv" "$url" 2000
rpid=$PID
run mt 30 "$EX/multithreaded_sender" "$url" 2000 4
mst=$STATUS
finish "$rpid" 10
for t in 0 1 2 3; do seq_lines "thread $t message %d" 0 499; done | sort >"$tmp/want"
sort "$tmp/direct_recv.out" >"$tmp/got"
if [ $mst -eq 0 ] && [ $STATUS -eq 0 ] &&
    [ "$(cat "$tmp/mt.out")" = "2000 messages sent by 4 threads, 2000 accepted" ] &&
    cmp -s "$tmp/want" "$tmp/got"; then ok; else
    ko "multithreaded_sender -> direct_recv: send $mst, recv $STATUS"
    show "$tmp/mt.out" "$tmp/mt.err" "$tmp/direct_recv.err"
fi
# each producer's messages arrive in the order it made them
bad=0
for t in 0 1 2 3; do
    grep "^thread $t " "$tmp/direct_recv.out" >"$tmp/got.$t"
    seq_lines "thread $t message %d" 0 499 | cmp -s - "$tmp/got.$t" || bad=1
done
if [ $bad = 0 ]; then ok; else ko "multithreaded_sender: a thread's messages out of order"; fi

# ---- client -> server_direct (runs until signalled) ----

port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener server_direct "$port" "$EX/server_direct" "$url"
spid=$PID
cat >"$tmp/want.client" <<'EOF'
Twas brillig, and the slithy toves => TWAS BRILLIG, AND THE SLITHY TOVES
Did gire and gymble in the wabe. => DID GIRE AND GYMBLE IN THE WABE.
All mimsy were the borogroves, => ALL MIMSY WERE THE BOROGROVES,
And the mome raths outgrabe. => AND THE MOME RATHS OUTGRABE.
EOF
# two clients at once, then one more: each gets its own replies
start client1 20 "$EX/client" "$url"
c1=$PID
start client2 20 "$EX/client" "$url"
c2=$PID
finish "$c1" 20
s1=$STATUS
finish "$c2" 20
s2=$STATUS
run client3 20 "$EX/client" "$url"
s3=$STATUS
# lepton-client speaks to server_direct too
run lclient 20 "$CLIENT" "$url" -m "from the tool" -m again
s4=$STATUS
kill -INT "$spid"
finish "$spid" 10
for i in 1 2 3; do
    st=s$i
    if [ "${!st}" -eq 0 ] && cmp -s "$tmp/want.client" "$tmp/client$i.out"; then ok; else
        ko "client $i -> server_direct: status ${!st}"
        show "$tmp/client$i.out" "$tmp/client$i.err"
    fi
done
if [ $s4 -eq 0 ] && [ "$(cat "$tmp/lclient.out")" = $'FROM THE TOOL\nAGAIN' ]; then ok; else
    ko "lepton-client -> server_direct: status $s4"
    show "$tmp/lclient.out" "$tmp/lclient.err"
fi
if [ $STATUS -eq 0 ]; then ok; else
    ko "server_direct stopped by SIGINT: status $STATUS (want 0)"
    show "$tmp/server_direct.err"
fi
# SIGTERM too, while idle
port=$(free_port)
listener server_direct "$port" "$EX/server_direct" "amqp://127.0.0.1:$port/examples"
spid=$PID
kill -TERM "$spid"
finish "$spid" 10
if [ $STATUS -eq 0 ]; then ok; else ko "idle server_direct and SIGTERM: status $STATUS (want 0)"; fi

# ---- the examples against lepton's tools ----

# lepton-send -> direct_recv
port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener direct_recv "$port" "$EX/direct_recv" "$url" 5
rpid=$PID
run send 20 "$SEND" -c 5 "$url"
sst=$STATUS
finish "$rpid" 10
if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && seq_lines 'message %d' 1 5 | cmp -s - "$tmp/direct_recv.out"; then ok; else
    ko "lepton-send -> direct_recv: send $sst, recv $STATUS"
    show "$tmp/send.err" "$tmp/direct_recv.out" "$tmp/direct_recv.err"
fi

# simple_send -> lepton-recv --listen --json: ids 1..100, bodies in order
port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener recv "$port" "$RECV" --listen -c 100 --json "$url"
rpid=$PID
run simple_send 30 "$EX/simple_send" "$url" 100
sst=$STATUS
finish "$rpid" 10
if [ $sst -eq 0 ] && [ $STATUS -eq 0 ] && "$PY" - "$tmp/recv.out" <<'EOF'; then ok; else
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1])]
assert len(ms) == 100, len(ms)
for i, m in enumerate(ms):
    assert m == {"properties": {"message_id": i + 1}, "body": "sequence %d" % i}, m
EOF
    ko "simple_send -> lepton-recv --listen: send $sst, recv $STATUS"
    show "$tmp/simple_send.err" "$tmp/recv.err"
fi

# multithreaded_sender -> lepton-recv --listen
port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener recv "$port" "$RECV" --listen -c 1000 --print "$url"
rpid=$PID
run mt 30 "$EX/multithreaded_sender" "$url" 1000 2
mst=$STATUS
finish "$rpid" 10
for t in 0 1; do seq_lines "thread $t message %d" 0 499; done | sort >"$tmp/want"
sort "$tmp/recv.out" >"$tmp/got"
if [ $mst -eq 0 ] && [ $STATUS -eq 0 ] && cmp -s "$tmp/want" "$tmp/got" &&
    grep -q '^lepton-recv: received 1000 messages' "$tmp/recv.err"; then ok; else
    ko "multithreaded_sender -> lepton-recv --listen: send $mst, recv $STATUS"
    show "$tmp/mt.out" "$tmp/mt.err" "$tmp/recv.err"
fi

# client -> lepton-server --listen (which stops after the 4 requests)
port=$(free_port)
url=amqp://127.0.0.1:$port/examples
listener server "$port" "$SERVER" --listen --count 4 "$url"
spid=$PID
run client 20 "$EX/client" "$url"
cst=$STATUS
finish "$spid" 10
if [ $cst -eq 0 ] && [ $STATUS -eq 0 ] && cmp -s "$tmp/want.client" "$tmp/client.out"; then ok; else
    ko "client -> lepton-server --listen: client $cst, server $STATUS"
    show "$tmp/client.out" "$tmp/client.err" "$tmp/server.err"
fi

# ---- the examples' command lines: a bad URL is a clear error, exit 1 ----

for p in simple_send simple_recv direct_recv multithreaded_sender client server server_direct helloworld; do
    run bad 10 "$EX/$p" 'http://127.0.0.1:1/examples'
    if [ $STATUS -eq 1 ] && grep -q "^$p: .*http" "$tmp/bad.err"; then ok; else
        ko "$p with a bad URL: status $STATUS (want 1), stderr: $(head -1 "$tmp/bad.err")"
    fi
done

# ---- clients that need a listening sender or a broker ----

have_proton=0
"$PY" -c 'import proton' 2>/dev/null && have_proton=1
if [ $have_proton = 1 ]; then
    # simple_recv from a Proton sender that listens (no broker)
    port=$(free_port)
    listener pysend "$port" "$PY" "$PYLIB/pysend.py" --listen -c 100 --timeout 20 "amqp://127.0.0.1:$port"
    ppid=$PID
    run simple_recv 30 "$EX/simple_recv" "amqp://127.0.0.1:$port/examples" 100
    rst=$STATUS
    finish "$ppid" 10
    if [ $rst -eq 0 ] && [ $STATUS -eq 0 ] && seq_lines 'message-%d' 0 99 | cmp -s - "$tmp/simple_recv.out"; then ok; else
        ko "simple_recv <- pysend --listen: simple_recv $rst, pysend $STATUS"
        show "$tmp/simple_recv.out" "$tmp/simple_recv.err" "$tmp/pysend.err"
    fi
else
    echo "SKIP: simple_recv from a listening sender ($PY cannot import proton)"
fi

# Through Proton-C's example broker (tests/interop/lib/peers.sh builds it
# from Debian's libqpid-proton11-dev-examples).
. "$src/tests/interop/lib/peers.sh"
broker_lib=1
bport=$(free_port)
if proton_broker_start "$bport" >/dev/null 2>&1; then
    url=amqp://127.0.0.1:$bport/examples
    run hello_broker 20 "$EX/helloworld" "$url"
    if [ $STATUS -eq 0 ] && [ "$(cat "$tmp/hello_broker.out")" = "Hello World!" ]; then ok; else
        ko "helloworld through the broker: status $STATUS"
        show "$tmp/hello_broker.out" "$tmp/hello_broker.err"
    fi
    run simple_send 30 "$EX/simple_send" "$url" 100
    sst=$STATUS
    run simple_recv 30 "$EX/simple_recv" "$url" 100
    rst=$STATUS
    if [ $sst -eq 0 ] && [ $rst -eq 0 ] && seq_lines 'sequence %d' 0 99 | cmp -s - "$tmp/simple_recv.out"; then ok; else
        ko "simple_send -> broker -> simple_recv: send $sst, recv $rst"
        show "$tmp/simple_send.err" "$tmp/simple_recv.out" "$tmp/simple_recv.err"
    fi
    proton_broker_stop "$bport"
else
    echo "SKIP: examples through Proton-C's example broker (cannot build or start it)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
