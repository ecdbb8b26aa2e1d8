# shellcheck shell=sh
# shellcheck disable=SC2034,SC1090,SC1091,SC2013,SC2119,SC2120,SC2154
# (variables are set for the caller; state files are sourced; PID files hold
# one number a line)
# tests/interop/lib/peers.sh: third-party AMQP peers for interop tests.
# POSIX sh; source it from a test script:
#
#   SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
#   . "$SRC/tests/interop/lib/peers.sh"
#   trap peers_cleanup EXIT               # or call peers_cleanup from your own trap
#   trap 'exit 1' INT TERM                # (exit runs the EXIT trap)
#
# Written for scripts with `set -u` (like the other tests here); functions
# return non-zero only to report a failure, so `set -e` scripts should call
# them in conditions.
#
# Every server listens on 127.0.0.1 only, on a port the test chose (free_port);
# only PIDs started here are signalled; every wait is bounded.  Functions that
# start a server must be called directly, not inside $(...): they set shell
# variables and the server must be a child of the test shell.
#
# Environment (all optional): LEPTON_SOURCE_DIR, LEPTON_BUILD_DIR (default
# $LEPTON_SOURCE_DIR/build), LEPTON_PYTHON (default /usr/bin/python3, the one
# that imports Debian's proton), PEERS_KEEP=1 keeps $PEERS_WORK after cleanup.
#
# Variables set on sourcing:
#   PEERS_LIB    this directory
#   PEERS_PY     the Python interpreter with the proton module
#   PYSEND, PYRECV   the Python helpers (run them with "$PEERS_PY")
#   PEERS_WORK   a private temporary directory for logs and state
#
# Utilities
#   free_port [N]            print N (default 1) distinct free TCP ports of
#                            127.0.0.1, one per line
#   wait_for FILE PATTERN SECONDS
#                            until grep finds PATTERN (basic regex) in FILE;
#                            returns 0 if found, 1 after SECONDS
#   wait_port PORT SECONDS [HOST]
#                            until something accepts on HOST:PORT
#                            (default 127.0.0.1); 0 if it did, 1 after SECONDS
#   wait_pid PID SECONDS     until PID (a child of this shell) exits; after
#                            SECONDS it is sent TERM, then KILL 2 s later;
#                            returns the process's exit status (wait)
#   port_listeners PORT      print the local address of every TCP socket
#                            listening on PORT (from /proc/net/tcp and tcp6),
#                            one a line, e.g. 127.0.0.1 or ::1: proves a
#                            server listens on loopback only
#   peers_track PID          have peers_cleanup (and the watchdog) stop PID too,
#                            e.g. a lepton program the test left running
#   peers_cleanup            stop everything started here (brokers, RabbitMQ
#                            nodes, their epmd, tracked PIDs), remove PEERS_WORK
#   pysend ARGS... / pyrecv ARGS...
#                            run pysend.py / pyrecv.py with $PEERS_PY (see
#                            their --help; both print a last summary line on stderr)
#
# Proton-C example programs (Debian libqpid-proton11-dev-examples)
#   proton_broker_build [OUTDIR]
#                            compile the C examples broker, send, receive,
#                            direct and send-abort into OUTDIR (default
#                            $LEPTON_BUILD_DIR/peers) unless already there and
#                            newer than their sources; prints the broker's path
#   proton_example NAME      print the path of the compiled example NAME
#                            (building it if needed): send, receive, direct,
#                            send-abort.  C usage: send HOST PORT ADDRESS COUNT,
#                            receive HOST PORT ADDRESS COUNT (both 10 by default)
#   proton_broker_start PORT start the example broker on 127.0.0.1:PORT, wait
#                            until it accepts; sets PROTON_BROKER_PID and
#                            PROTON_BROKER_PORT; log in $PEERS_WORK/proton-broker-PORT.log
#   proton_broker_stop [PORT]
#                            stop the broker on PORT (default: every one started)
#
# RabbitMQ 3.10 with the AMQP 1.0 plugin (Debian rabbitmq-server), a private
# node per call: its own directory, config, enabled_plugins, cookie, node
# name, epmd (own port) and distribution port, all on 127.0.0.1.
#   rabbitmq_start PORT      start a node listening on 127.0.0.1:PORT (AMQP
#                            0-9-1 and 1.0 on the same port), wait until it has
#                            booted and accepts (6-9 s); reuses the node's
#                            directory (queues, messages) when PORT was started
#                            before in this test.  Sets RABBITMQ_PORT,
#                            RABBITMQ_DIR, RABBITMQ_NODE, RABBITMQ_BEAM_PID,
#                            RABBITMQ_EPMD_PID, RABBITMQ_EPMD_PORT,
#                            RABBITMQ_DIST_PORT, RABBITMQ_LOG (its stdout log),
#                            RABBITMQ_URL (amqp://guest:guest@127.0.0.1:PORT)
#   rabbitmq_stop [PORT]     graceful stop (TERM, KILL after 20 s), then its
#                            epmd; removes its directory (default: the last started)
#   rabbitmq_restart [PORT]  stop and start again on the same port with the same
#                            directory: durable queues and persistent messages survive
#   rabbitmq_kill [PORT]     kill -9 the node's Erlang VM (beam.smp) only, as a
#                            crash; rabbitmq_start PORT / rabbitmq_restart bring it back
#   rabbitmq_ctl ARGS...     run rabbitmqctl against the last started node
#                            (e.g. rabbitmq_ctl list_queues name messages); slow (~1-2 s)
#
# A watchdog (started with the first server) stops what was started here if
# the test shell dies without running peers_cleanup (ctest timeout, kill -9).

PEERS_SRC=${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PEERS_LIB=${PEERS_LIB:-$PEERS_SRC/tests/interop/lib}
PEERS_PY=${LEPTON_PYTHON:-/usr/bin/python3}
PYSEND=$PEERS_LIB/pysend.py
PYRECV=$PEERS_LIB/pyrecv.py
PEERS_BUILD=${LEPTON_BUILD_DIR:-$PEERS_SRC/build}
case $PEERS_BUILD in /*) ;; *) PEERS_BUILD=$(pwd)/$PEERS_BUILD ;; esac
PROTON_EXAMPLES=${PROTON_EXAMPLES:-/usr/share/proton/examples/c}
RABBITMQ_SCRIPTS=${RABBITMQ_SCRIPTS:-/usr/lib/rabbitmq/bin}
PEERS_WORK=${PEERS_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lepton-peers.XXXXXX")}
PEERS_WATCHDOG_PID=""
PROTON_BROKER_PID=""
PROTON_BROKER_PORT=""
RABBITMQ_PORT=""

_peers_log() { echo "peers: $*" >&2; }

pysend() { "$PEERS_PY" "$PYSEND" "$@"; }
pyrecv() { "$PEERS_PY" "$PYRECV" "$@"; }

free_port() {
    "$PEERS_PY" - "${1:-1}" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
}

wait_for() {
    _wf_i=0
    while ! grep -q -- "$2" "$1" 2>/dev/null && [ $_wf_i -lt $(($3 * 10)) ]; do
        sleep 0.1
        _wf_i=$((_wf_i + 1))
    done
    grep -q -- "$2" "$1" 2>/dev/null
}

wait_port() {
    "$PEERS_PY" - "$1" "$2" "${3:-127.0.0.1}" <<'EOF'
import socket, sys, time
port, secs, host = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.monotonic() + secs
while True:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() >= end:
            sys.exit(1)
        time.sleep(0.1)
EOF
}

wait_pid() {
    _wp_i=0
    while kill -0 "$1" 2>/dev/null && [ $_wp_i -lt $(($2 * 10)) ]; do
        sleep 0.1
        _wp_i=$((_wp_i + 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null
        _wp_i=0
        while kill -0 "$1" 2>/dev/null && [ $_wp_i -lt 20 ]; do sleep 0.1; _wp_i=$((_wp_i + 1)); done
        kill -9 "$1" 2>/dev/null
    fi
    wait "$1"
}

port_listeners() {
    "$PEERS_PY" - "$1" <<'EOF'
import ipaddress, sys
port = int(sys.argv[1])
for path in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        addr, p = f[1].split(":")
        if f[3] != "0A" or int(p, 16) != port:   # 0A = LISTEN
            continue
        raw = bytes.fromhex(addr)
        # /proc prints the address as 32-bit words in host (little-endian) order
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        print(ipaddress.ip_address(raw))
EOF
}

# _peers_gone PID SECONDS: until PID no longer runs (need not be our child)
_peers_gone() {
    _pg_i=0
    while kill -0 "$1" 2>/dev/null && [ $_pg_i -lt $(($2 * 10)) ]; do
        sleep 0.1
        _pg_i=$((_pg_i + 1))
    done
    ! kill -0 "$1" 2>/dev/null
}

# _peers_stop_pid PID SECONDS: TERM, KILL after SECONDS, reap if a child
_peers_stop_pid() {
    [ -n "$1" ] || return 0
    if kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null
        if ! _peers_gone "$1" "$2"; then
            kill -9 "$1" 2>/dev/null
            _peers_gone "$1" 2
        fi
    fi
    wait "$1" 2>/dev/null || :
    _peers_untrack "$1"
    return 0
}

peers_track() {
    echo "$1" >>"$PEERS_WORK/pids"
    _peers_watchdog
}

_peers_untrack() {
    [ -f "$PEERS_WORK/pids" ] || return 0
    grep -vx -- "$1" "$PEERS_WORK/pids" >"$PEERS_WORK/pids.new" 2>/dev/null || :
    mv "$PEERS_WORK/pids.new" "$PEERS_WORK/pids"
}

# The watchdog outlives an abnormal end of the test shell ($$) and then
# stops the tracked PIDs.  Its output goes nowhere, so it never holds the
# test's stdout open (ctest waits for EOF there).
_peers_watchdog() {
    [ -n "$PEERS_WATCHDOG_PID" ] && kill -0 "$PEERS_WATCHDOG_PID" 2>/dev/null && return 0
    (
        trap '' INT HUP
        trap 'exit 0' TERM
        while kill -0 $$ 2>/dev/null; do sleep 1; done
        if [ -f "$PEERS_WORK/pids" ]; then
            for p in $(cat "$PEERS_WORK/pids"); do kill "$p" 2>/dev/null; done
            sleep 2
            for p in $(cat "$PEERS_WORK/pids"); do kill -9 "$p" 2>/dev/null; done
        fi
        [ "${PEERS_KEEP:-0}" = 1 ] || rm -rf "$PEERS_WORK"
    ) </dev/null >/dev/null 2>&1 &
    PEERS_WATCHDOG_PID=$!
}

peers_cleanup() {
    for _pc_f in "$PEERS_WORK"/rabbitmq-*/port; do
        [ -f "$_pc_f" ] && rabbitmq_stop "$(cat "$_pc_f")"
    done
    proton_broker_stop
    if [ -f "$PEERS_WORK/pids" ]; then
        for _pc_p in $(cat "$PEERS_WORK/pids"); do _peers_stop_pid "$_pc_p" 5; done
    fi
    if [ -n "$PEERS_WATCHDOG_PID" ]; then
        kill "$PEERS_WATCHDOG_PID" 2>/dev/null
        wait "$PEERS_WATCHDOG_PID" 2>/dev/null
        PEERS_WATCHDOG_PID=""
    fi
    if [ "${PEERS_KEEP:-0}" = 1 ]; then
        _peers_log "kept $PEERS_WORK"
    else
        rm -rf "$PEERS_WORK"
    fi
    return 0
}

# --- Proton-C examples ------------------------------------------------------

_proton_build_one() {   # OUTDIR NAME
    _pb_src=$PROTON_EXAMPLES/$2.c
    if [ ! -f "$_pb_src" ]; then
        _peers_log "$_pb_src missing (Debian libqpid-proton11-dev-examples; run scripts/setup.sh)"
        return 1
    fi
    # shellcheck disable=SC3013 # -nt: dash and bash have it
    if [ -x "$1/$2" ] && [ ! "$_pb_src" -nt "$1/$2" ]; then
        return 0
    fi
    # Compile to a private name and rename: tests may build concurrently.
    _pb_tmp=$1/.$2.$$
    # shellcheck disable=SC2046
    if ! ${CC:-cc} -O2 -o "$_pb_tmp" "$_pb_src" -I"$PROTON_EXAMPLES" \
            $(pkg-config --cflags --libs libqpid-proton 2>/dev/null || echo -lqpid-proton) \
            -lpthread >"$1/.$2.$$.log" 2>&1; then
        _peers_log "cannot compile $_pb_src:"
        cat "$1/.$2.$$.log" >&2
        rm -f "$_pb_tmp" "$1/.$2.$$.log"
        return 1
    fi
    rm -f "$1/.$2.$$.log"
    mv -f "$_pb_tmp" "$1/$2"
}

proton_broker_build() {
    _pbb_out=${1:-$PEERS_BUILD/peers}
    mkdir -p "$_pbb_out" || return 1
    for _pbb_n in broker send receive direct send-abort; do
        _proton_build_one "$_pbb_out" "$_pbb_n" || return 1
    done
    # broker.c loads ssl-certs/ from its working directory (for amqps).
    if [ ! -d "$_pbb_out/ssl-certs" ] && [ -d "$PROTON_EXAMPLES/ssl-certs" ]; then
        if cp -r "$PROTON_EXAMPLES/ssl-certs" "$_pbb_out/.ssl-certs.$$"; then
            mv "$_pbb_out/.ssl-certs.$$" "$_pbb_out/ssl-certs" 2>/dev/null
        fi
        rm -rf "$_pbb_out/.ssl-certs.$$"
    fi
    echo "$_pbb_out/broker"
}

proton_example() {
    _pe_out=$PEERS_BUILD/peers
    mkdir -p "$_pe_out" && _proton_build_one "$_pe_out" "$1" && echo "$_pe_out/$1"
}

proton_broker_start() {
    _pbs_port=$1
    _pbs_bin=$(proton_broker_build) || return 1
    _pbs_log=$PEERS_WORK/proton-broker-$_pbs_port.log
    # broker HOST PORT: listens on exactly that address.
    (cd "$(dirname "$_pbs_bin")" && exec "$_pbs_bin" 127.0.0.1 "$_pbs_port") \
        </dev/null >"$_pbs_log" 2>&1 &
    PROTON_BROKER_PID=$!
    PROTON_BROKER_PORT=$_pbs_port
    echo "$PROTON_BROKER_PID" >"$PEERS_WORK/proton-broker-$_pbs_port.pid"
    peers_track "$PROTON_BROKER_PID"
    if wait_for "$_pbs_log" "listening on" 10 && wait_port "$_pbs_port" 5; then
        return 0
    fi
    _peers_log "Proton-C broker did not start on 127.0.0.1:$_pbs_port:"
    cat "$_pbs_log" >&2
    proton_broker_stop "$_pbs_port"
    return 1
}

proton_broker_stop() {
    for _pbst_f in "$PEERS_WORK"/proton-broker-${1:-*}.pid; do
        [ -f "$_pbst_f" ] || continue
        _peers_stop_pid "$(cat "$_pbst_f")" 5
        rm -f "$_pbst_f"
    done
    if [ -z "${1:-}" ] || [ "${1:-}" = "$PROTON_BROKER_PORT" ]; then
        PROTON_BROKER_PID=""
        PROTON_BROKER_PORT=""
    fi
    return 0
}

# --- RabbitMQ ---------------------------------------------------------------

RABBITMQ_START_TIMEOUT=${RABBITMQ_START_TIMEOUT:-60}

# _rabbitmq_env DIR: the environment of the node and of rabbitmqctl (env -i
# style: nothing from the caller's RABBITMQ_* or ERL_* leaks in).
_rabbitmq_env() {
    # shellcheck disable=SC1090
    . "$1/ports"
    echo "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    echo "HOME=$1"
    echo "LANG=C.UTF-8"
    echo "LC_ALL=C.UTF-8"
    echo "RABBITMQ_CONF_ENV_FILE=$1/rabbitmq-env.conf"
    echo "RABBITMQ_CONFIG_FILE=$1/rabbitmq.conf"
    echo "RABBITMQ_ADVANCED_CONFIG_FILE=$1/advanced.config"
    echo "RABBITMQ_ENABLED_PLUGINS_FILE=$1/enabled_plugins"
    echo "RABBITMQ_MNESIA_BASE=$1/mnesia"
    echo "RABBITMQ_LOG_BASE=$1/log"
    echo "RABBITMQ_PID_FILE=$1/beam.pid"
    echo "RABBITMQ_NODENAME=$_rmq_node"
    echo "RABBITMQ_DIST_PORT=$_rmq_dist"
    echo "ERL_EPMD_PORT=$_rmq_epmd"
    echo "ERL_EPMD_ADDRESS=127.0.0.1"
}

_rabbitmq_dir() {   # [PORT] -> prints the node directory, fails if unknown
    _rd_port=${1:-$RABBITMQ_PORT}
    if [ -z "$_rd_port" ] || [ ! -f "$PEERS_WORK/rabbitmq-$_rd_port/ports" ]; then
        _peers_log "no RabbitMQ node on port ${_rd_port:-?} was started here"
        return 1
    fi
    echo "$PEERS_WORK/rabbitmq-$_rd_port"
}

rabbitmq_start() {
    _rs_port=$1
    _rs_dir=$PEERS_WORK/rabbitmq-$_rs_port
    if [ ! -x "$RABBITMQ_SCRIPTS/rabbitmq-server" ] || ! command -v epmd >/dev/null 2>&1; then
        _peers_log "RabbitMQ is not installed (Debian rabbitmq-server; run scripts/setup.sh)"
        return 1
    fi
    if [ ! -f "$_rs_dir/ports" ]; then
        mkdir -p "$_rs_dir/mnesia" "$_rs_dir/log" || return 1
        # shellcheck disable=SC2046
        set -- $(free_port 2)
        {
            echo "_rmq_port=$_rs_port"
            echo "_rmq_epmd=$1"
            echo "_rmq_dist=$2"
            echo "_rmq_node=lepton$_rs_port@localhost"
        } >"$_rs_dir/ports"
        echo "$_rs_port" >"$_rs_dir/port"
        : >"$_rs_dir/rabbitmq-env.conf"   # not /etc/rabbitmq/rabbitmq-env.conf
        echo "[rabbitmq_amqp1_0]." >"$_rs_dir/enabled_plugins"
        # The Erlang distribution listens on loopback only.
        echo "[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}]." >"$_rs_dir/advanced.config"
        cat >"$_rs_dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$_rs_port
# guest/guest is allowed from loopback only (the default, stated here)
loopback_users.guest = true
# SASL ANONYMOUS connections act as guest
amqp1_0.default_user = guest
amqp1_0.default_vhost = /
# a test machine's disk may be nearly full: do not block publishers
disk_free_limit.absolute = 1MB
log.file.level = info
log.console = true
log.console.level = info
EOF
    fi
    # shellcheck disable=SC1090
    . "$_rs_dir/ports"
    # Our own epmd on its own port (kept across restarts), in the foreground
    # so that its PID is the one we started; the node finds it there.
    if [ ! -f "$_rs_dir/epmd.pid" ] || ! kill -0 "$(cat "$_rs_dir/epmd.pid")" 2>/dev/null; then
        epmd -port "$_rmq_epmd" -address 127.0.0.1 </dev/null >>"$_rs_dir/epmd.log" 2>&1 &
        echo $! >"$_rs_dir/epmd.pid"
        peers_track $!
        if ! wait_port "$_rmq_epmd" 10; then
            _peers_log "epmd did not start on 127.0.0.1:$_rmq_epmd"
            cat "$_rs_dir/epmd.log" >&2
            return 1
        fi
    fi
    rm -f "$_rs_dir/beam.pid"
    : >"$_rs_dir/stdout.log.new"
    [ -f "$_rs_dir/stdout.log" ] && cat "$_rs_dir/stdout.log" >>"$_rs_dir/stdout.old.log"
    mv "$_rs_dir/stdout.log.new" "$_rs_dir/stdout.log"
    # The rabbitmq-server script itself (not /usr/sbin's wrapper, which
    # switches to the rabbitmq user): it runs as the current user, even root.
    # shellcheck disable=SC2046
    env -i $(_rabbitmq_env "$_rs_dir") "$RABBITMQ_SCRIPTS/rabbitmq-server" \
        </dev/null >"$_rs_dir/stdout.log" 2>&1 &
    _rs_sh=$!
    echo "$_rs_sh" >"$_rs_dir/script.pid"
    peers_track "$_rs_sh"
    _rs_i=0
    _rs_ok=0
    while [ $_rs_i -lt $((RABBITMQ_START_TIMEOUT * 10)) ]; do
        if [ -s "$_rs_dir/beam.pid" ] && [ ! -f "$_rs_dir/beam.tracked" ]; then
            peers_track "$(cat "$_rs_dir/beam.pid")"
            : >"$_rs_dir/beam.tracked"
        fi
        if grep -q "Server startup complete\|Starting broker\.\.\. completed" "$_rs_dir/stdout.log"; then
            _rs_ok=1
            break
        fi
        kill -0 "$_rs_sh" 2>/dev/null || break
        sleep 0.1
        _rs_i=$((_rs_i + 1))
    done
    rm -f "$_rs_dir/beam.tracked"
    if [ $_rs_ok = 1 ] && [ -s "$_rs_dir/beam.pid" ] && wait_port "$_rs_port" 10; then
        RABBITMQ_PORT=$_rs_port
        RABBITMQ_DIR=$_rs_dir
        RABBITMQ_NODE=$_rmq_node
        RABBITMQ_BEAM_PID=$(cat "$_rs_dir/beam.pid")
        RABBITMQ_EPMD_PID=$(cat "$_rs_dir/epmd.pid")
        RABBITMQ_EPMD_PORT=$_rmq_epmd
        RABBITMQ_DIST_PORT=$_rmq_dist
        RABBITMQ_LOG=$_rs_dir/stdout.log
        RABBITMQ_URL=amqp://guest:guest@127.0.0.1:$_rs_port
        echo "$RABBITMQ_BEAM_PID" >"$_rs_dir/beam.pid.saved"
        _peers_log "RabbitMQ $_rmq_node up on 127.0.0.1:$_rs_port in $((_rs_i / 10)).$((_rs_i % 10)) s"
        return 0
    fi
    _peers_log "RabbitMQ did not start on 127.0.0.1:$_rs_port (after $((_rs_i / 10)) s); its output:"
    tail -40 "$_rs_dir/stdout.log" >&2
    RABBITMQ_PORT=$_rs_port
    _rabbitmq_stop_node "$_rs_dir" 5
    return 1
}

# _rabbitmq_stop_node DIR SECONDS: stop the VM and the script, keep epmd and data
_rabbitmq_stop_node() {
    _rsn_beam=""
    [ -s "$1/beam.pid" ] && _rsn_beam=$(cat "$1/beam.pid")
    [ -z "$_rsn_beam" ] && [ -s "$1/beam.pid.saved" ] && _rsn_beam=$(cat "$1/beam.pid.saved")
    # SIGTERM to beam.smp is RabbitMQ's graceful shutdown.
    _peers_stop_pid "$_rsn_beam" "$2"
    [ -s "$1/script.pid" ] && _peers_stop_pid "$(cat "$1/script.pid")" 5
    rm -f "$1/beam.pid" "$1/beam.pid.saved" "$1/script.pid"
}

rabbitmq_stop() {
    _rst_dir=$(_rabbitmq_dir "${1:-}") || return 1
    _rabbitmq_stop_node "$_rst_dir" 20
    [ -s "$_rst_dir/epmd.pid" ] && _peers_stop_pid "$(cat "$_rst_dir/epmd.pid")" 5
    if [ "${PEERS_KEEP:-0}" = 1 ]; then
        rm -f "$_rst_dir/port" "$_rst_dir/epmd.pid"
    else
        rm -rf "$_rst_dir"
    fi
    if [ "$(basename "$_rst_dir")" = "rabbitmq-$RABBITMQ_PORT" ]; then
        RABBITMQ_PORT=""
        RABBITMQ_BEAM_PID=""
        RABBITMQ_EPMD_PID=""
    fi
    return 0
}

rabbitmq_restart() {
    _rr_dir=$(_rabbitmq_dir "${1:-}") || return 1
    _rr_port=$(cat "$_rr_dir/port")
    _rabbitmq_stop_node "$_rr_dir" 20
    rabbitmq_start "$_rr_port"
}

rabbitmq_kill() {
    _rk_dir=$(_rabbitmq_dir "${1:-}") || return 1
    _rk_beam=""
    [ -s "$_rk_dir/beam.pid.saved" ] && _rk_beam=$(cat "$_rk_dir/beam.pid.saved")
    if [ -z "$_rk_beam" ]; then
        _peers_log "RabbitMQ on $(cat "$_rk_dir/port") is not running"
        return 1
    fi
    kill -9 "$_rk_beam" 2>/dev/null || :
    _peers_gone "$_rk_beam" 5 || :
    # The script exits when its VM dies.
    [ -s "$_rk_dir/script.pid" ] && _peers_stop_pid "$(cat "$_rk_dir/script.pid")" 5
    _peers_untrack "$_rk_beam"
    rm -f "$_rk_dir/beam.pid" "$_rk_dir/beam.pid.saved" "$_rk_dir/script.pid"
    RABBITMQ_BEAM_PID=""
    return 0
}

rabbitmq_ctl() {
    _rc_dir=$(_rabbitmq_dir) || return 1
    # shellcheck disable=SC1090
    . "$_rc_dir/ports"
    # shellcheck disable=SC2046
    env -i $(_rabbitmq_env "$_rc_dir") \
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        "$RABBITMQ_SCRIPTS/rabbitmqctl" -n "$_rmq_node" "$@"
}
