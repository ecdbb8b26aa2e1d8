"""pyserver.py: a Proton (python3-qpid-proton) request-response server for
interop tests, after Proton's examples/python/server_direct.py.

  /usr/bin/python3 pyserver.py --listen [options] amqp://127.0.0.1:PORT

Clients connect to it directly (no broker).  A client's receiving link with
a dynamic source gets an address made up here ("pyserver-<uuid>"); a
receiving link with a source address gets that address.  Each request (a
message on any link the client sends on) is answered with its body
upper-cased (a string, or the bytes of a data section), sent to its reply-to
address -- which must be one assigned here -- with the request's
correlation-id (its message-id when it has none).  A request whose reply-to
is unknown is rejected (amqp:not-found) and counts as a failure.

The links take the client's settle modes: replies go pre-settled when the
client's receiver asked for that, else the server waits for their outcome.

--count N     stop after N replies reached their outcome (accepted, or written
              for pre-settled replies); 0: serve until --timeout, then exit 0
--print       one JSON object per request on stdout: body, correlation_id,
              message_id, reply_to, the address assigned to that reply-to's
              link (always the same here), settled (pre-settled request)

stderr: "pyserver: listening on HOST:PORT", "pyserver: assigned ADDRESS" per
dynamic receiver, a last line "answered N accepted A".
Exit: 0 ok, 1 a request could not be answered / a reply was not accepted,
2 usage, 3 timeout before --count, 4 cannot listen.
"""
import json
import sys
import uuid

from proton import Delivery, Message

import _peerutil as pu

PROG = "pyserver"


class Server(pu.RequestServer):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.senders = {}          # assigned address -> sending link
        self.done_replies = 0      # replies accepted (or written pre-settled)
        self.out = sys.stdout

    def start_links(self, container, conn):
        raise AssertionError("pyserver only listens")

    def on_link_opening(self, event):
        link = event.link
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if link.is_sender:
            if link.remote_source and link.remote_source.dynamic:
                addr = "pyserver-%s" % uuid.uuid4()
                link.source.address = addr
                link.source.dynamic = True
                self.senders[addr] = link
                self.log("assigned %s" % addr)
            elif link.remote_source and link.remote_source.address:
                link.source.address = link.remote_source.address
                self.senders[link.remote_source.address] = link
            link.target.copy(link.remote_target)
        else:
            link.source.copy(link.remote_source)
            link.target.copy(link.remote_target)

    def on_link_opened(self, event):
        link = event.link
        self.vlog("attached %s" % pu.describe_link(link))
        if link.is_receiver:
            link.flow(self.args.credit)

    def on_delivery(self, event):
        dlv = event.delivery
        link = dlv.link
        if link.is_receiver:
            pu.incoming(dlv, self.request)
            return
        # a reply's outcome
        if not dlv.updated or dlv.local_state:
            return
        self.reply_outcome(dlv, lambda state: "reply not accepted (state %s)" % state)

    def request(self, dlv):
        link = dlv.link
        msg = Message()
        msg.decode(link.recv(dlv.pending))
        link.advance()
        presettled = bool(dlv.settled)
        if self.args.print:
            self.out.write(json.dumps({
                "body": msg.body if not isinstance(msg.body, bytes) else msg.body.decode("latin-1"),
                "correlation_id": None if msg.correlation_id is None else str(msg.correlation_id),
                "message_id": None if msg.id is None else str(msg.id),
                "reply_to": msg.reply_to,
                "settled": presettled}, sort_keys=True) + "\n")
            self.out.flush()
        sender = self.senders.get(msg.reply_to)
        body = pu.upper_body(msg.body)
        if sender is None or body is None:
            why = ("no link for reply-to %r" % msg.reply_to if sender is None
                   else "body is neither text nor data")
            self.bad += 1
            self.log(why)
            if not presettled:
                dlv.local.condition = None
                dlv.update(Delivery.REJECTED)
                dlv.settle()
            link.flow(1)
            return
        sent = sender.send(pu.reply_message(msg, body))
        self.answered += 1
        if sender.snd_settle_mode == sender.SND_SETTLED:
            sent.settle()
            self.reply_done()
        pu.accept_request(dlv)

    def reply_done(self):
        self.done_replies += 1
        if self.args.count and self.done_replies >= self.args.count and not self.finishing:
            # Give pre-settled replies a moment to be written before closing.
            self.container.schedule(0.2, pu.Call(self.finish_ok))


def main():
    p = pu.common_options(PROG, __doc__)
    p.set_defaults(count=0)
    p.add_argument("--credit", type=int, default=10, help="request credit per link (default 10)")
    p.add_argument("--print", action="store_true", help="one JSON object per request on stdout")
    args = p.parse_args()
    if not args.listen:
        p.error("pyserver only serves with --listen (the server_direct pattern)")
    pu.check_common(p, args)
    h = Server(args)
    code = pu.run(h)
    sys.stderr.write("answered %d accepted %d\n" % (h.answered, h.accepted))
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
