"""pyclient.py: a Proton (python3-qpid-proton) request-response client for
interop tests, after Proton's examples/python/client.py.

  /usr/bin/python3 pyclient.py [options] amqp://host:port/ADDRESS -m TEXT [-m TEXT]...

Opens a sender to ADDRESS and a receiver with a dynamic source on the same
connection; once the peer assigned the receiver's address, sends every TEXT
as a request (an amqp-value string) with reply-to that address, message-id
"pyclient-<i>" and correlation-id "corr-<i>" (i from 1; --no-correlation-id
leaves the correlation-id out, so a server must answer with the message-id).
Each reply must carry the correlation-id of a request not answered yet; the
replies are printed on stdout in the order of the requests, one per line.

--settle MODE   applies to both links (requests and replies)
--one-by-one    send the next request only after the previous reply (as
                Proton's example does); default: all at once

stderr: "pyclient: replies come to ADDRESS" once the receiver is attached, a
last line "replies N of M".
Exit: 0 every request answered, 1 a request was not accepted, a reply did not
match / peer error, 2 usage, 3 timeout, 4 cannot connect / connection lost.
"""
import sys

from proton import Delivery, Message

import _peerutil as pu

PROG = "pyclient"


class Client(pu.DynamicReplyClient):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.texts = args.message
        self.replies = [None] * len(self.texts)
        self.sent = 0
        self.got = 0
        self.bad = 0
        self.sender = None
        self.receiver = None
        self.reply_to = None
        self.printed = 0

    def start_links(self, container, conn):
        opt = pu.SettleOption(self.args.settle)
        self.sender = container.create_sender(conn, self.args.address, options=opt)
        self.receiver = container.create_receiver(conn, None, dynamic=True, options=opt)
        self.receiver.flow(len(self.texts))

    def send_next(self):
        if self.finishing or not self.reply_to or self.sender is None:
            return
        while self.sent < len(self.texts) and self.sender.credit > 0:
            if self.args.one_by_one and self.got < self.sent:
                return
            i = self.sent + 1
            m = Message(body=self.texts[self.sent], reply_to=self.reply_to, id="pyclient-%d" % i)
            if not self.args.no_correlation_id:
                m.correlation_id = "corr-%d" % i
            dlv = self.sender.send(m)
            if self.args.settle == "at-most-once":
                dlv.settle()
            self.sent += 1

    def on_delivery(self, event):
        dlv = event.delivery
        link = dlv.link
        if link == self.receiver:
            pu.incoming(dlv, self.reply)
            return
        if link != self.sender or not dlv.updated or dlv.local_state:
            return
        state = dlv.remote_state
        if state is None and not dlv.settled:
            return
        if state != Delivery.ACCEPTED:
            self.bad += 1
            self.log("request not accepted (state %s: %s)"
                     % (state, pu.condition_text(dlv.remote.condition)))
        dlv.update(state or Delivery.ACCEPTED)
        dlv.settle()
        if self.bad:
            self.finish(pu.EXIT_FAILED)

    def reply(self, dlv):
        link = dlv.link
        msg = Message()
        msg.decode(link.recv(dlv.pending))
        link.advance()
        key = "pyclient-%d" if self.args.no_correlation_id else "corr-%d"
        cid = msg.correlation_id
        idx = None
        for i in range(len(self.texts)):
            if cid == key % (i + 1):
                idx = i
        if idx is None or self.replies[idx] is not None:
            self.bad += 1
            self.log("a reply with correlation-id %r matches no open request" % (cid,))
        else:
            body = msg.body
            self.replies[idx] = body.decode("latin-1") if isinstance(body, bytes) else str(body)
            self.got += 1
            self.print_ready()
        if not dlv.settled:
            dlv.update(Delivery.ACCEPTED)
            if link.rcv_settle_mode != link.RCV_SECOND:
                dlv.settle()
        else:
            dlv.settle()
        if self.got == len(self.texts):
            self.finish(pu.EXIT_FAILED if self.bad else pu.EXIT_OK)
        else:
            self.send_next()

    def print_ready(self):
        while self.printed < len(self.texts) and self.replies[self.printed] is not None:
            sys.stdout.write(self.replies[self.printed] + "\n")
            self.printed += 1
        sys.stdout.flush()


def main():
    p = pu.common_options(PROG, __doc__)
    p.add_argument("-m", "--message", action="append", default=[], help="a request (repeatable)")
    p.add_argument("--one-by-one", action="store_true",
                   help="wait for each reply before the next request")
    p.add_argument("--no-correlation-id", action="store_true",
                   help="requests carry only a message-id")
    args = p.parse_args()
    pu.check_common(p, args)
    if args.listen:
        p.error("pyclient does not listen")
    if not args.message:
        p.error("no request: give at least one -m TEXT")
    if not args.address:
        p.error("no address: give it in the URL (amqp://host:port/ADDRESS) or with --address")
    h = Client(args)
    code = pu.run(h)
    sys.stderr.write("replies %d of %d\n" % (h.got, len(args.message)))
    sys.stderr.flush()
    if code == pu.EXIT_OK and h.got != len(args.message):
        code = pu.EXIT_FAILED
    sys.exit(code)


if __name__ == "__main__":
    main()
