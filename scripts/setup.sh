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
python3-prometheus-client
libqpid-proton11-dev
libqpid-proton11-dev-examples
rabbitmq-server
"
# libqpid-proton11-dev-examples puts the C examples (broker.c, send.c, ...)
# in /usr/share/proton/examples/c; tests/interop/lib/peers.sh compiles them
# with cc and -lqpid-proton (libqpid-proton11-dev), nothing more.
# python3-prometheus-client: its parser checks the broker's /metrics text
# (tests/unit/broker/test_metrics_http.c).
# rabbitmq-server (3.10, with its rabbitmq_amqp1_0 plugin) pulls in Erlang
# and epmd; the tests run a private node of it on loopback ports.

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
had_epmd=no
command -v epmd >/dev/null 2>&1 && had_epmd=yes
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null

# rabbitmq-server's postinst enables and starts a system-wide node
# (rabbit@HOST on 0.0.0.0:5672 and :25672) and erlang-base's starts epmd
# (*:4369, socket-activated under systemd) wherever the init system lets them
# (a container's policy-rc.d usually does not).  lepton's tests never use
# them: they start private nodes, with their own epmd, on loopback ports.  A
# broker listening on every interface is not what `make test` should leave
# behind, so when this script has just installed the package it stops and
# disables those services again -- only then: a RabbitMQ or an epmd that was
# there before is left alone.  `systemctl enable --now rabbitmq-server`
# brings the system node back.
case " $missing " in
*" rabbitmq-server "*)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now rabbitmq-server.service >/dev/null 2>&1 || true
        if [ "$had_epmd" = no ]; then
            systemctl disable --now epmd.socket epmd.service >/dev/null 2>&1 || true
        fi
    elif [ -x /etc/init.d/rabbitmq-server ]; then
        invoke-rc.d rabbitmq-server stop >/dev/null 2>&1 || true
        update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
        if [ "$had_epmd" = no ]; then
            epmd -kill >/dev/null 2>&1 || true   # the node's epmd, on 4369
        fi
    fi
    echo "lepton: stopped and disabled the system rabbitmq-server service the package started;" \
         "the tests run their own private nodes" >&2
    ;;
esac
