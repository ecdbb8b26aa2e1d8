# shellcheck shell=bash
# tests/system/lib.sh: shell helpers shared by the system tests (bash).
# Source it from a test script, before any cd:
#
#   . "$(dirname "$0")/lib.sh"
#
# The functions read the caller's variables when they run: PY (the Python
# interpreter, for free_port), tmp (the test's temporary directory, where
# start and run put NAME.out and NAME.err) and running (the array of
# background PIDs not yet waited for, which the caller's cleanup stops with
# stop_running).  ok, ko and check count into passed and failed.

passed=0
failed=0
ok() { passed=$((passed + 1)); }
ko() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
# show FILE...: the files, indented, after a failure (the first SHOW_BYTES
# bytes of each, default 3000)
show() {
    local f
    for f in "$@"; do
        [ -s "$f" ] && { echo "  --- $(basename "$f")"; head -c "${SHOW_BYTES:-3000}" "$f" | sed 's/^/    /'; } >&2
    done
}
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
    local what=$1
    shift
    if "$@"; then ok; else ko "$what"; fi
}

# stop_running: TERM to every background PID not yet waited for, then waits
# for them (for the caller's EXIT trap)
stop_running() {
    local p
    for p in "${running[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${running[@]}"; do wait "$p" 2>/dev/null; done
}
forget() { # forget PID: waited for, off the list
    local keep=() p
    for p in "${running[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    running=("${keep[@]}")
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# listening PORT: a socket listens on 127.0.0.1:PORT or on every address
# (seen in /proc/net/tcp, without connecting to it)
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
# listening_local PORT: a socket listens on 127.0.0.1:PORT itself (seen in
# /proc/net/tcp, without connecting to it)
listening_local() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    awk -v a="$hex" '$2 == a && $4 == "0A" {f = 1} END {exit !f}' /proc/net/tcp
}
# wait_listen PORT SECONDS [any]: until a socket listens on 127.0.0.1:PORT
# (listening_local), or with "any" on 127.0.0.1:PORT or every address
# (listening)
wait_listen() {
    local test=listening_local i
    [ "${3:-}" = any ] && test=listening
    for ((i = 0; i < $2 * 20; i++)); do
        "$test" "$1" && return 0
        sleep 0.05
    done
    return 1
}
# wait_file FILE PATTERN SECONDS
wait_file() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# start NAME SECONDS CMD...: CMD in the background (at most SECONDS), with
# standard output and error in $tmp/NAME.out and $tmp/NAME.err; sets PID.
start() {
    local name=$1 secs=$2
    shift 2
    # --foreground: a signal sent to timeout reaches the command once (not
    # also through its process group: the broker and the tools take a second
    # SIGINT or SIGTERM as "exit now")
    timeout --foreground -k 2 "$secs" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
    PID=$!
    running+=("$PID")
}
# finish PID SECONDS: waits for a start()ed process (TERM after SECONDS,
# KILL 2 s later); sets STATUS.
finish() {
    local pid=$1 i
    for ((i = 0; i < $2 * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null
    wait "$pid"
    STATUS=$?
    forget "$pid"
}
# run NAME SECONDS CMD...: CMD in the foreground; sets STATUS (124: it hung)
# and ELAPSED (seconds).
run() {
    local name=$1 secs=$2 t0
    shift 2
    t0=$(date +%s.%N)
    timeout --foreground -k 2 "$secs" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
    STATUS=$?
    ELAPSED=$(echo "$(date +%s.%N) - $t0" | bc)
}
between() { # between X LOW HIGH
    [ "$(echo "$1 >= $2 && $1 <= $3" | bc)" = 1 ]
}
