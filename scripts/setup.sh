#!/bin/sh
# Installs the Debian packages lepton needs to build and test.
# As root it installs what is missing; otherwise it lists what is missing
# and exits 1.  Safe to run repeatedly: it does nothing when all is there.
set -eu

PACKAGES="
build-essential
cmake
pkg-config
clang
libclang-rt-14-dev
libcmocka-dev
libssl-dev
openssl
amqp-specs
python3
python3-qpid-proton
libqpid-proton11-dev
libqpid-proton11-dev-examples
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "lepton: missing Debian packages:$missing" >&2
    echo "lepton: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

echo "lepton: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
