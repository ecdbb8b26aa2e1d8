#!/bin/sh
# Codec interop against Qpid Proton's Python binding: values and messages
# encoded by Proton must decode in lepton to the same typed print, and
# lepton's encodings must decode in Proton to the same canonical form.
# Driven by proton_vectors.py; ends with "N passed, M failed".
set -u
src="${LEPTON_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
build="${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR must name the build tree}"
py="${LEPTON_PYTHON:-/usr/bin/python3}"

if ! "$py" -c 'import proton' 2>/dev/null; then
    echo "$py cannot import proton (Debian package python3-qpid-proton): run scripts/setup.sh" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
peer="$build/tests/codec_peer"
if [ ! -x "$peer" ]; then
    echo "missing $peer: build the tree first" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
set -- "$peer"
# The message half needs lepton's message codec; its helper is built
# when include/lepton/message.h exists.
if [ -x "$build/tests/msg_peer" ]; then
    set -- "$@" "$build/tests/msg_peer"
fi
exec "$py" "$src/tests/interop/proton_vectors.py" "$@"
