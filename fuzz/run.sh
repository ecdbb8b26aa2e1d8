#!/bin/sh
# Runs one libFuzzer target for a bounded time over a copy of its corpus,
# so new inputs do not land in the source tree.  Usage: run.sh BIN CORPUS SECONDS
set -eu
bin="$1"; corpus="$2"; secs="$3"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
if [ -d "$corpus" ]; then cp -r "$corpus"/. "$work/corpus/"; fi
dict="$(dirname "$corpus")/../$(basename "$bin").dict"
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/"
if [ -f "$dict" ]; then set -- "$@" -dict="$dict"; fi
if ! "$bin" "$@" "$work/corpus" >"$work/log" 2>&1; then
    tail -60 "$work/log" >&2
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [ -f "$a" ] && { echo "artifact: $a" >&2; od -An -tx1 "$a" | head -20 >&2; }
    done
    exit 1
fi
grep -E "stat::number_of_executed_units|Done" "$work/log" | tail -2
