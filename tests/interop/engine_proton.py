"""Proton (python3-qpid-proton) side of tests/interop/test_engine_proton.sh.

  engine_proton.py [--tls-ca CA | --tls-cert CERT KEY] [--mech M] recv PORT N [USER PASSWORD]
      listens on 127.0.0.1:PORT, receives N messages (auto-accepted),
      checks they are "message-<i>" in order, prints "received N", exits 0
  engine_proton.py send PORT ADDRESS N [USER PASSWORD]
      connects to 127.0.0.1:PORT, sends N messages to ADDRESS, waits for
      each to be accepted, closes, prints "accepted N", exits 0
--mech: the SASL mechanism the sender allows (default PLAIN).
With --tls-ca the sender connects with TLS (amqps) and verifies the
server against CA; with --tls-cert the receiver listens with TLS.
Run with Debian's /usr/bin/python3.  Exits 1 on any error and after a
20-second timeout.
"""
import sys
import threading

from proton import Message, SSLDomain
from proton.handlers import MessagingHandler
from proton.reactor import Container


class Recv(MessagingHandler):
    def __init__(self, port, n, user=None, password=None):
        super().__init__()
        self.url = "127.0.0.1:%d" % port
        self.n = n
        self.got = 0
        self.ok = True
        self.user = user
        self.password = password

    def on_start(self, event):
        if self.user:
            event.container.allowed_mechs = "PLAIN"
            event.container.sasl_enabled = True
            event.container.password_file = None
        if TLS_CERT:
            dom = SSLDomain(SSLDomain.MODE_SERVER)
            dom.set_credentials(TLS_CERT[0], TLS_CERT[1], None)
            self.acceptor = event.container.listen(self.url, ssl_domain=dom)
        else:
            self.acceptor = event.container.listen(self.url)
        print("listening", flush=True)

    def on_message(self, event):
        want = "message-%d" % self.got
        if event.message.body != want:
            print("unexpected body %r, wanted %r" % (event.message.body, want), flush=True)
            self.ok = False
        self.got += 1
        if self.got == self.n:
            self.acceptor.close()

    def on_connection_closed(self, event):
        if self.got >= self.n:
            event.container.stop()

    def on_transport_error(self, event):
        cond = event.transport.condition
        print("transport error: %s" % (cond,), flush=True)


class Send(MessagingHandler):
    def __init__(self, port, address, n, user=None, password=None):
        super().__init__()
        self.url = "127.0.0.1:%d" % port
        self.address = address
        self.n = n
        self.sent = 0
        self.accepted = 0
        self.ok = True
        self.user = user
        self.password = password

    def on_start(self, event):
        kw = {}
        if self.user:
            kw = dict(user=self.user, password=self.password, allowed_mechs=MECH,
                      allow_insecure_mechs=True)
        else:
            kw = dict(sasl_enabled=False)
        if TLS_CA:
            dom = SSLDomain(SSLDomain.MODE_CLIENT)
            dom.set_trusted_ca_db(TLS_CA)
            dom.set_peer_authentication(SSLDomain.VERIFY_PEER)
            kw["ssl_domain"] = dom
            conn = event.container.connect("amqps://" + self.url, **kw)
        else:
            conn = event.container.connect(self.url, **kw)
        event.container.create_sender(conn, self.address)

    def on_sendable(self, event):
        while event.sender.credit and self.sent < self.n:
            event.sender.send(Message(body="message-%d" % self.sent))
            self.sent += 1

    def on_accepted(self, event):
        self.accepted += 1
        if self.accepted == self.n:
            event.connection.close()

    def on_rejected(self, event):
        self.ok = False
        event.connection.close()

    def on_released(self, event):
        self.ok = False
        event.connection.close()

    def on_transport_error(self, event):
        print("transport error: %s" % (event.transport.condition,), flush=True)
        self.ok = False


TLS_CA = None
TLS_CERT = None
MECH = "PLAIN"


def main():
    global TLS_CA, TLS_CERT, MECH
    while len(sys.argv) > 1 and sys.argv[1].startswith("--"):
        if sys.argv[1] == "--mech":
            MECH = sys.argv[2]
            del sys.argv[1:3]
        elif sys.argv[1] == "--tls-ca":
            TLS_CA = sys.argv[2]
            del sys.argv[1:3]
        else:
            TLS_CERT = (sys.argv[2], sys.argv[3])
            del sys.argv[1:4]
    timer = threading.Timer(20.0, lambda: (print("timeout", flush=True), sys.stdout.flush(),
                                           __import__("os")._exit(1)))
    timer.daemon = True
    timer.start()
    role = sys.argv[1]
    if role == "recv":
        port, n = int(sys.argv[2]), int(sys.argv[3])
        user = sys.argv[4] if len(sys.argv) > 5 else None
        password = sys.argv[5] if len(sys.argv) > 5 else None
        h = Recv(port, n, user, password)
        Container(h).run()
        print("received %d" % h.got, flush=True)
        sys.exit(0 if h.ok and h.got == n else 1)
    elif role == "send":
        port, address, n = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        user = sys.argv[5] if len(sys.argv) > 6 else None
        password = sys.argv[6] if len(sys.argv) > 6 else None
        h = Send(port, address, n, user, password)
        Container(h).run()
        print("accepted %d" % h.accepted, flush=True)
        sys.exit(0 if h.ok and h.accepted == n else 1)
    sys.exit(2)


if __name__ == "__main__":
    main()
