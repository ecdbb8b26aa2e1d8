#!/bin/sh
# Interop over loopback: the lepton engine (tests/interop/engine_peer.c)
# against Debian's python3-qpid-proton, in both roles:
#   1. lepton client sends to a Proton listener (anonymous, no SASL)
#   2. Proton client sends to a lepton server (no SASL)
#   3. Proton client sends to a lepton server with SASL PLAIN, and a wrong
#      password is refused with amqp:unauthorized-access; SCRAM-SHA-256 when
#      Proton was built with Cyrus SASL
#   4. TLS both ways (certificates made now by tests/tls/make-certs.sh),
#      and a lepton client refusing a server its CA did not sign
#   5. heartbeats: lepton asks Proton for a 500 ms idle timeout and the
#      connection stays up while messages flow
# Servers listen on 127.0.0.1 only, on a free port; only the PIDs started
# here are stopped; every wait is bounded.
set -u
BUILD=${LEPTON_BUILD_DIR:-build}
SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
PEER="$BUILD/tests/engine_peer"
PROTON="$SRC/tests/interop/engine_proton.py"
passed=0
failed=0
work=$(mktemp -d)
pids=""

cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if ! "$PY" -c 'import proton' 2>/dev/null; then
    echo "SKIP: $PY cannot import proton (python3-qpid-proton)"
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -x "$PEER" ]; then
    echo "FAIL: $PEER not built"
    echo "0 passed, 1 failed"
    exit 1
fi

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_pid PID SECONDS: waits for PID, killing it after SECONDS; returns its status
wait_pid() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$1" 2>/dev/null; then kill "$1" 2>/dev/null; fi
    wait "$1"
}

# wait_for FILE PATTERN SECONDS
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null && [ $i -lt $(($3 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "$2" "$1" 2>/dev/null
}

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
ko() { echo "FAIL: $1"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; failed=$((failed + 1)); }

# 1. lepton client -> Proton server
t="lepton client sends 50 to a Proton listener"
port=$(free_port)
"$PY" "$PROTON" recv "$port" 50 >"$work/recv1.log" 2>&1 &
ppid=$!; pids="$pids $ppid"
if wait_for "$work/recv1.log" listening 10; then
    sleep 0.2
    "$PEER" client "$port" examples 50 --timeout 15000 >"$work/peer1.log" 2>&1
    prc=$?
    wait_pid "$ppid" 15; yrc=$?
    if [ $prc -eq 0 ] && [ $yrc -eq 0 ] && grep -q "received 50" "$work/recv1.log"; then ok "$t"; else ko "$t"; fi
else
    ko "$t (proton listener did not start)"
fi
rm -f "$work"/*.log

# 2. Proton client -> lepton server
t="Proton client sends 50 to a lepton server"
"$PEER" server 0 50 --timeout 15000 >"$work/peer2.log" 2>&1 &
lpid=$!; pids="$pids $lpid"
if wait_for "$work/peer2.log" "listening on" 10; then
    port=$(sed -n 's/^listening on //p' "$work/peer2.log")
    "$PY" "$PROTON" send "$port" examples 50 >"$work/send2.log" 2>&1
    yrc=$?
    wait_pid "$lpid" 15; lrc=$?
    if [ $yrc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 50 of 50" "$work/peer2.log"; then ok "$t"; else ko "$t"; fi
else
    ko "$t (lepton server did not start)"
fi
rm -f "$work"/*.log

# 3. Proton client -> lepton server, SASL PLAIN
if [ -f "$SRC/include/lepton/sasl.h" ]; then
    t="Proton client, SASL PLAIN, sends 20 to a lepton server"
    "$PEER" server 0 20 --timeout 15000 --user alice --password s3cret >"$work/peer3.log" 2>&1 &
    lpid=$!; pids="$pids $lpid"
    if wait_for "$work/peer3.log" "listening on" 10; then
        port=$(sed -n 's/^listening on //p' "$work/peer3.log")
        "$PY" "$PROTON" send "$port" examples 20 alice s3cret >"$work/send3.log" 2>&1
        yrc=$?
        wait_pid "$lpid" 15; lrc=$?
        if [ $yrc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 20 of 20" "$work/peer3.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (lepton server did not start)"
    fi
    rm -f "$work"/*.log

    t="Proton client with a wrong SASL password is refused"
    "$PEER" server 0 1 --timeout 10000 --user alice --password s3cret >"$work/peer4.log" 2>&1 &
    lpid=$!; pids="$pids $lpid"
    if wait_for "$work/peer4.log" "listening on" 10; then
        port=$(sed -n 's/^listening on //p' "$work/peer4.log")
        "$PY" "$PROTON" send "$port" examples 1 alice wrong >"$work/send4.log" 2>&1
        yrc=$?
        wait_pid "$lpid" 15; lrc=$?
        if [ $yrc -ne 0 ] && [ $lrc -ne 0 ] && grep -q "unauthorized-access" "$work/peer4.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (lepton server did not start)"
    fi
    rm -f "$work"/*.log
    # SCRAM needs a Proton built with Cyrus SASL (Debian's is not)
    if "$PY" -c 'import sys; from proton import SASL; sys.exit(0 if SASL.extended() else 1)' 2>/dev/null; then
        t="Proton client, SASL SCRAM-SHA-256, sends 5 to a lepton server"
        "$PEER" server 0 5 --timeout 15000 --user bob --password pw1 --mech SCRAM-SHA-256 >"$work/peer9.log" 2>&1 &
        lpid=$!; pids="$pids $lpid"
        if wait_for "$work/peer9.log" "listening on" 10; then
            port=$(sed -n 's/^listening on //p' "$work/peer9.log")
            "$PY" "$PROTON" --mech SCRAM-SHA-256 send "$port" examples 5 bob pw1 >"$work/send9.log" 2>&1
            yrc=$?
            wait_pid "$lpid" 15; lrc=$?
            if [ $yrc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 5 of 5" "$work/peer9.log"; then ok "$t"; else ko "$t"; fi
        else
            ko "$t (lepton server did not start)"
        fi
        rm -f "$work"/*.log
    else
        echo "SKIP: SCRAM (this Proton has no Cyrus SASL: SASL.extended() is False)"
    fi
    # and lepton to lepton over a socket, which every build can do
    t="lepton client, SASL SCRAM-SHA-512, sends 5 to a lepton server"
    "$PEER" server 0 5 --timeout 15000 --user bob --password pw1 --mech SCRAM-SHA-512 >"$work/peer10.log" 2>&1 &
    lpid=$!; pids="$pids $lpid"
    if wait_for "$work/peer10.log" "listening on" 10; then
        port=$(sed -n 's/^listening on //p' "$work/peer10.log")
        "$PEER" client "$port" examples 5 --user bob --password pw1 --mech SCRAM-SHA-512 --timeout 15000 >"$work/cli10.log" 2>&1
        crc=$?
        wait_pid "$lpid" 15; lrc=$?
        if [ $crc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 5 of 5" "$work/peer10.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (lepton server did not start)"
    fi
    rm -f "$work"/*.log
fi

# 4. TLS (pure amqps), credentials made for this run only
if [ -f "$SRC/include/lepton/tls.h" ] && [ -x "$(command -v openssl)" ] &&
   sh "$SRC/tests/tls/make-certs.sh" "$work/certs" >/dev/null 2>&1; then
    C="$work/certs"
    t="lepton client sends 10 over TLS to a Proton listener (server name checked)"
    port=$(free_port)
    "$PY" "$PROTON" --tls-cert "$C/server.pem" "$C/server.key" recv "$port" 10 >"$work/recv6.log" 2>&1 &
    ppid=$!; pids="$pids $ppid"
    if wait_for "$work/recv6.log" listening 10; then
        sleep 0.2
        "$PEER" client "$port" examples 10 --tls-ca "$C/ca.pem" --tls-host localhost --timeout 15000 >"$work/peer6.log" 2>&1
        prc=$?
        wait_pid "$ppid" 15; yrc=$?
        if [ $prc -eq 0 ] && [ $yrc -eq 0 ] && grep -q "received 10" "$work/recv6.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (proton listener did not start)"
    fi
    rm -f "$work"/*.log

    t="Proton client sends 10 over TLS to a lepton server"
    "$PEER" server 0 10 --tls-cert "$C/server.pem" --tls-key "$C/server.key" --timeout 15000 >"$work/peer7.log" 2>&1 &
    lpid=$!; pids="$pids $lpid"
    if wait_for "$work/peer7.log" "listening on" 10; then
        port=$(sed -n 's/^listening on //p' "$work/peer7.log")
        "$PY" "$PROTON" --tls-ca "$C/ca.pem" send "$port" examples 10 >"$work/send7.log" 2>&1
        yrc=$?
        wait_pid "$lpid" 15; lrc=$?
        if [ $yrc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 10 of 10" "$work/peer7.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (lepton server did not start)"
    fi
    rm -f "$work"/*.log

    t="lepton client refuses a TLS server its CA did not sign"
    port=$(free_port)
    "$PY" "$PROTON" --tls-cert "$C/server.pem" "$C/server.key" recv "$port" 1 >"$work/recv8.log" 2>&1 &
    ppid=$!; pids="$pids $ppid"
    if wait_for "$work/recv8.log" listening 10; then
        sleep 0.2
        "$PEER" client "$port" examples 1 --tls-ca "$C/other-ca.pem" --timeout 10000 >"$work/peer8.log" 2>&1
        prc=$?
        kill "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null
        if [ $prc -ne 0 ] && grep -q "transport error" "$work/peer8.log" && ! grep -q "accepted 1 of 1" "$work/peer8.log"; then ok "$t"; else ko "$t"; fi
    else
        ko "$t (proton listener did not start)"
    fi
    rm -f "$work"/*.log
fi

# 5. heartbeats: a lepton server asking for 500 ms; a slow Proton sender
t="lepton server with a 500 ms idle timeout stays up with Proton"
"$PEER" server 0 5 --timeout 15000 --idle 500 >"$work/peer5.log" 2>&1 &
lpid=$!; pids="$pids $lpid"
if wait_for "$work/peer5.log" "listening on" 10; then
    port=$(sed -n 's/^listening on //p' "$work/peer5.log")
    "$PY" - "$port" >"$work/send5.log" 2>&1 <<'EOF'
import sys, time
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container
class S(MessagingHandler):
    def __init__(self, port):
        super().__init__()
        self.port, self.sent, self.acc = port, 0, 0
    def on_start(self, e):
        self.conn = e.container.connect("127.0.0.1:%d" % self.port, sasl_enabled=False)
        self.snd = e.container.create_sender(self.conn, "slow")
        e.container.schedule(0.3, self)
    def on_timer_task(self, e):
        if self.snd.credit and self.sent < 5:
            self.snd.send(Message(body="message-%d" % self.sent)); self.sent += 1
        if self.sent < 5:
            e.container.schedule(0.4, self)
    def on_accepted(self, e):
        self.acc += 1
        if self.acc == 5:
            e.connection.close()
h = S(int(sys.argv[1]))
Container(h).run()
print("accepted %d" % h.acc)
sys.exit(0 if h.acc == 5 else 1)
EOF
    yrc=$?
    wait_pid "$lpid" 15; lrc=$?
    if [ $yrc -eq 0 ] && [ $lrc -eq 0 ] && grep -q "received 5 of 5" "$work/peer5.log"; then ok "$t"; else ko "$t"; fi
else
    ko "$t (lepton server did not start)"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
