#!/bin/sh
# Fails when the shared library exports any symbol not starting with lep_.
set -eu
lib="$1"
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRW]/ {print $3}' | grep -v '^lep_' | grep -v '^_' || true)
count=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRW]/ {print $3}' | grep -c '^lep_' || true)
if [ -n "$bad" ]; then
    echo "symbols exported without the lep_ prefix:" >&2
    echo "$bad" >&2
    exit 1
fi
if [ "$count" -lt 10 ]; then
    echo "only $count lep_ symbols exported: visibility macro broken?" >&2
    exit 1
fi
echo "$count lep_ symbols exported, none other"
