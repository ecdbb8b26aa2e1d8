"""broker_peer.py: a small Proton (python3-qpid-proton) client for
tests/system/test_broker_ops.sh, for what lepton's tools do not do.

  /usr/bin/python3 broker_peer.py mgmt URL OPERATION [NAME]
      An AMQP management request to URL's $management (URL without an
      address): a dynamic receiver for the answers, a sender to
      "$management", one request with the application properties
      operation=OPERATION, type="queue" (and name=NAME), reply-to the
      receiver.  Prints the answer as one JSON line:
      {"statusCode": ..., "statusDescription": ..., "body": ...}.
  /usr/bin/python3 broker_peer.py hold URL/ADDRESS N
      Receives N messages and closes the connection without settling them
      (a consumer that went away: the broker must redeliver them).
  /usr/bin/python3 broker_peer.py fail URL/ADDRESS N
      Receives N messages and settles each as modified with
      delivery-failed=true (a failed delivery attempt).

Everything is bounded by --timeout seconds (default 10; a watchdog ends
the process even if the reactor hangs).  Exit: 0 done, 1 the peer refused
or closed something, 3 timeout.  Run with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import sys
import threading

from proton import Delivery, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container, DynamicNodeProperties  # noqa: F401


def plain(v):
    """A Proton value as JSON-friendly Python."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return str(v)


def split(url):
    scheme, _, rest = url.partition("://")
    hostport, _, address = rest.partition("/")
    return "%s://%s" % (scheme, hostport), address


class Handler(MessagingHandler):
    """A refused link is said on stderr and ends the connection."""

    def on_link_error(self, event):
        cond = event.link.remote_condition
        sys.stderr.write("broker_peer: link refused: %s: %s\n" % (cond.name, cond.description))
        event.connection.close()


class Mgmt(Handler):
    def __init__(self, url, op, name):
        super().__init__()
        self.url, self.op, self.name = url, op, name
        self.code = 1
        self.sender = self.receiver = None
        self.sent = False

    def on_start(self, event):
        conn = event.container.connect(self.url, allowed_mechs="ANONYMOUS")
        self.receiver = event.container.create_receiver(conn, None, dynamic=True)
        self.sender = event.container.create_sender(conn, "$management")

    def maybe_send(self):
        if self.sent or not self.receiver.remote_source.address or not self.sender.credit:
            return
        props = {"operation": self.op, "type": "queue"}
        if self.name:
            props["name"] = self.name
        self.sender.send(Message(reply_to=self.receiver.remote_source.address,
                                 id="req-1", properties=props, body=None))
        self.sent = True

    def on_link_opened(self, event):
        self.maybe_send()

    def on_sendable(self, event):
        self.maybe_send()

    def on_message(self, event):
        m = event.message
        props = m.properties or {}
        out = {"statusCode": plain(props.get("statusCode")),
               "statusDescription": plain(props.get("statusDescription")),
               "correlation_id": plain(m.correlation_id),
               "body": plain(m.body)}
        print(json.dumps(out), flush=True)
        self.code = 0
        event.connection.close()

    def on_transport_error(self, event):
        cond = event.transport.condition
        sys.stderr.write("broker_peer: transport error: %s\n" % (cond and cond.description))


class Take(Handler):
    """hold: receive N and leave them unsettled; fail: modify(delivery-failed)."""

    def __init__(self, url, n, mode):
        super().__init__(prefetch=0, auto_accept=False, auto_settle=False)
        self.url, self.n, self.mode = url, n, mode
        self.got = 0
        self.code = 1

    def on_start(self, event):
        base, address = split(self.url)
        conn = event.container.connect(base, allowed_mechs="ANONYMOUS")
        self.link = event.container.create_receiver(conn, address)
        self.link.flow(self.n)

    def on_message(self, event):
        self.got += 1
        body = event.message.body
        print(body if isinstance(body, str) else repr(body), flush=True)
        if self.mode == "fail":
            event.delivery.local.failed = True
            event.delivery.update(Delivery.MODIFIED)
            event.delivery.settle()
        if self.got == self.n:
            self.code = 0
            event.connection.close()


def main():
    p = argparse.ArgumentParser(prog="broker_peer")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("what", choices=("mgmt", "hold", "fail"))
    p.add_argument("url")
    p.add_argument("arg")
    p.add_argument("name", nargs="?")
    args = p.parse_args()

    def watchdog():
        sys.stderr.write("broker_peer: timed out\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(3)
    t = threading.Timer(args.timeout, watchdog)
    t.daemon = True
    t.start()
    if args.what == "mgmt":
        h = Mgmt(args.url, args.arg, args.name)
    else:
        h = Take(args.url, int(args.arg), args.what)
    Container(h).run()
    sys.exit(h.code)


if __name__ == "__main__":
    main()
