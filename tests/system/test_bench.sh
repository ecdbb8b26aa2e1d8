#!/bin/sh
# Smoke test of the messaging benchmark programs (no timing asserted:
# figures are for bench/compare): lepton-bench and the fair Proton-C peer
# run to the end in every settle mode, threads and connections, say so in
# valid JSON, and lepton's steady state makes no allocation per message.
set -u
BUILD=${LEPTON_BUILD_DIR:-build}
PY=${LEPTON_PYTHON:-/usr/bin/python3}
passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check NAME JSONFILE PYTHON-EXPRESSION-ON-j
check() {
    if "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($3) else 1)" "$2" 2>"$work/err"; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); echo "FAIL $1"; cat "$2" "$work/err"
    fi
}

run() { # NAME OUT PROGRAM ARGS...
    name=$1; out=$2; shift 2
    if ! timeout 60 "$@" --json >"$out" 2>"$work/stderr"; then
        failed=$((failed + 1)); echo "FAIL $name: exit status"; cat "$work/stderr"
        return 1
    fi
}

for mode in at-least-once at-most-once exactly-once; do
    if run "lepton $mode" "$work/l.json" "$BUILD/lepton-bench" -c 20000 --settle "$mode"; then
        check "lepton-bench $mode: all sent, counted, JSON" "$work/l.json" \
            "j['sent'] == 20000 and j['count'] == 20000 and j['settle'] == '$mode' and j['msgs_per_s'] > 0 and j['latency_us']['samples'] > 0"
        if [ "$mode" != at-most-once ]; then
            check "lepton-bench $mode: every message accepted" "$work/l.json" \
                "j['accepted'] == 20000 and j['not_accepted'] == 0"
        fi
        check "lepton-bench $mode: no allocation per message in the steady state" "$work/l.json" \
            "j['allocs_per_msg_steady'] == 0"
    fi
done

if run "lepton threads" "$work/t.json" "$BUILD/lepton-bench" -c 40000 --threads 2 --connections 2; then
    check "lepton-bench 2 threads 2 connections" "$work/t.json" \
        "j['threads'] == 2 and j['connections'] == 2 and j['accepted'] == 40000"
fi
if run "lepton 1 KiB" "$work/k.json" "$BUILD/lepton-bench" -c 5000 -s 1024; then
    check "lepton-bench 1 KiB bodies" "$work/k.json" "j['size'] == 1024 and j['accepted'] == 5000"
fi

if [ -x "$BUILD/bench/proton_peer" ]; then
    if run "proton" "$work/p.json" "$BUILD/bench/proton_peer" -c 20000; then
        check "proton_peer does the same work" "$work/p.json" \
            "j['impl'] == 'proton' and j['accepted'] == 20000 and j['size'] == 100 and j['credit'] == 1000"
    fi
else
    failed=$((failed + 1)); echo "FAIL proton_peer not built (libqpid-proton11-dev missing?)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
