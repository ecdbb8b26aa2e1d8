"""pyrecv.py: a Proton (python3-qpid-proton) message receiver for interop tests.

  /usr/bin/python3 pyrecv.py [options] amqp://[user:pass@]host:port/address
  /usr/bin/python3 pyrecv.py --listen [options] amqp://127.0.0.1:PORT

Receives --count messages (0: no limit, stop at --timeout with exit 0).
Credit is never granted beyond what is still wanted, so a broker that
pre-settles (Proton-C's example broker) loses nothing to prefetch.

--settle at-most-once   asks the sender to pre-settle (snd-settle-mode settled)
--settle at-least-once  (default) accept and settle at once
--settle exactly-once   rcv-settle-mode second: accept, settle only after the
                        sender settled
--listen                listen on host:port and serve the clients that attach
                        sending links (a direct peer, no broker); the link
                        modes are the client's; with --settle the client's
                        request must match it (else exit 1)
--outcome O             accept (default), reject, release or modify each message
--print                 one body per line on stdout (str as is, bytes raw,
                        other values with str())
--print-message         one JSON object per message on stdout (all sections)
--expect-size N         each body must be the --size N pattern of pysend.py

stderr: "pyrecv: attached ..." once a link is up (or "pyrecv: listening on
HOST:PORT"), and a last line "received N".
Exit: 0 ok, 1 check failed / peer error, 2 usage, 3 timeout before --count,
4 cannot connect / connection lost.
"""
import sys

from proton import Delivery

import _peerutil as pu

PROG = "pyrecv"
OUTCOMES = {"accept": Delivery.ACCEPTED, "reject": Delivery.REJECTED,
            "release": Delivery.RELEASED, "modify": Delivery.MODIFIED}


class Receiver(pu.Peer):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.received = 0
        self.bad = 0
        self.pending = {}         # accepted, waiting for the sender to settle
        self.links = []
        self.expect = pu.pattern_body(args.expect_size) if args.expect_size is not None else None
        self.out = sys.stdout.buffer

    def start_links(self, container, conn):
        link = container.create_receiver(conn, self.args.address,
                                         options=pu.SettleOption(self.args.settle, self.args.durable))
        self.links.append(link)
        self.flow(link)

    def wanted(self):
        if self.args.count == 0:
            return self.args.prefetch
        return min(self.args.prefetch, self.args.count - self.received)

    def flow(self, link):
        if self.finishing or not link.is_receiver or link.state & link.LOCAL_CLOSED:
            return
        want = self.wanted()
        if want > link.credit:
            link.flow(want - link.credit)

    # A client attaching a sending link to our listener.
    def on_link_opening(self, event):
        link = event.link
        if not link.is_receiver:
            link.close()
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        self.links.append(link)

    def on_link_opened(self, event):
        link = event.link
        self.log("attached %s" % pu.describe_link(link))
        if self.args.listen and self.args.settle and pu.peer_mode(link) != self.args.settle:
            self.finish(pu.EXIT_FAILED, "the client asked for %s, expected %s"
                        % (pu.peer_mode(link), self.args.settle))
            return
        self.flow(link)

    def on_delivery(self, event):
        dlv = event.delivery
        link = dlv.link
        if not link.is_receiver:
            return
        if dlv.aborted:
            self.vlog("delivery aborted")
            dlv.settle()
            self.flow(link)
            return
        if dlv.readable and not dlv.partial:
            if dlv.local_state:   # already handled (exactly-once, waiting)
                self.settled_by_sender(dlv)
                return
            self.message(dlv)
            return
        if dlv.updated and dlv.settled:
            self.settled_by_sender(dlv)

    @staticmethod
    def key(dlv):
        return (dlv.link.connection.remote_container, dlv.link.name, str(dlv.tag))

    def settled_by_sender(self, dlv):
        if dlv.settled and self.key(dlv) in self.pending:
            del self.pending[self.key(dlv)]
            dlv.settle()
            self.check_done()

    def message(self, dlv):
        link = dlv.link
        from proton import Message
        msg = Message()
        msg.decode(link.recv(dlv.pending))
        link.advance()
        if self.finishing or (self.args.count and self.received >= self.args.count):
            # More than we asked for (should not happen: credit is exact).
            dlv.update(Delivery.RELEASED)
            dlv.settle()
            return
        self.received += 1
        self.check_message(msg, dlv)
        if self.args.print_message:
            self.out.write(pu.message_json(msg).encode("utf-8") + b"\n")
            self.out.flush()
        elif self.args.print:
            body = msg.body
            if isinstance(body, bytes):
                data = body
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = str(body).encode("utf-8")
            self.out.write(data + b"\n")
            self.out.flush()
        if dlv.settled:
            # The sender pre-settled: nothing to say.
            dlv.settle()
        else:
            dlv.update(OUTCOMES[self.args.outcome])
            if link.rcv_settle_mode == link.RCV_SECOND and self.args.outcome == "accept":
                self.pending[self.key(dlv)] = dlv
            else:
                dlv.settle()
        self.flow(link)
        self.check_done()

    def check_message(self, msg, dlv):
        a = self.args
        if a.listen and a.settle:
            want_settled = a.settle == "at-most-once"
            if bool(dlv.settled) != want_settled:
                self.bad += 1
                self.log("message %d arrived %s, expected %s with --settle %s"
                         % (self.received, "settled" if dlv.settled else "unsettled",
                            "settled" if want_settled else "unsettled", a.settle))
        if self.expect is not None:
            body = msg.body
            if not isinstance(body, bytes) or not msg.inferred:
                self.bad += 1
                self.log("message %d: body is %s, expected a data section"
                         % (self.received, type(body).__name__))
            elif body != self.expect:
                self.bad += 1
                where = next((i for i in range(min(len(body), len(self.expect)))
                              if body[i] != self.expect[i]), min(len(body), len(self.expect)))
                self.log("message %d: body of %d bytes differs from the %d-byte pattern at offset %d"
                         % (self.received, len(body), len(self.expect), where))

    def check_done(self):
        if self.finishing or self.args.count == 0:
            return
        if self.received >= self.args.count:
            if self.pending:
                if not getattr(self, "grace", None):
                    # exactly-once: give the sender a moment to settle.
                    self.grace = self.container.schedule(5.0, pu.Call(self.done))
                return
            self.done()

    def done(self):
        if getattr(self, "grace", None):
            self.grace.cancel()
        if self.pending:
            self.log("%d deliveries never settled by the sender" % len(self.pending))
        code = pu.EXIT_OK if self.bad == 0 else pu.EXIT_FAILED
        self.finish(code, None if code == pu.EXIT_OK else "%d bad messages" % self.bad)

    def timed_out(self):
        if self.args.count == 0:
            self.finish(pu.EXIT_OK if self.bad == 0 else pu.EXIT_FAILED)
        else:
            super().timed_out()

    def on_link_flow(self, event):
        self.flow(event.link)


def main():
    p = pu.common_options(PROG, __doc__)
    p.add_argument("--prefetch", type=int, default=100, help="credit window (default 100)")
    p.add_argument("--outcome", choices=sorted(OUTCOMES), default="accept")
    p.add_argument("--print", action="store_true", help="one body per line on stdout")
    p.add_argument("--print-message", action="store_true", help="one JSON message per line")
    p.add_argument("--expect-size", type=int, default=None,
                   help="every body must be pysend's --size pattern of this length")
    args = p.parse_args()
    pu.check_common(p, args)
    if args.prefetch < 1:
        p.error("--prefetch must be >= 1")
    if not args.listen and not args.address:
        p.error("no address: give it in the URL (amqp://host:port/ADDRESS) or with --address")
    h = Receiver(args)
    code = pu.run(h)
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write("received %d\n" % h.received)
    sys.stderr.flush()
    if code == pu.EXIT_OK and args.count and h.received != args.count:
        code = pu.EXIT_FAILED
    sys.exit(code)


if __name__ == "__main__":
    main()
