"""pybroker.py: Proton (python3-qpid-proton) clients of a broker's own
features, for the interop tests of lepton-broker.

  /usr/bin/python3 pybroker.py sub   [options] amqp://host:port/ADDRESS
  /usr/bin/python3 pybroker.py serve [options] amqp://host:port/ADDRESS
  /usr/bin/python3 pybroker.py mgmt  [options] amqp://host:port [-r OP[,TYPE[,NAME]]]...

sub    a subscriber whose link name (--name) and container-id
       (--container-id) stay the same from run to run, with a durable
       source (--durable: durability unsettled-state, expiry-policy never),
       so that a broker can keep a durable subscription for it between
       attaches.  Receives --count messages (credit only for those; 0: all
       until --timeout, exit 0), prints one body per line on stdout, then
       ends its link with --end detach (default: the subscription stays) or
       --end close (the subscription goes), then closes the connection.
serve  a request-response server through a broker, after Proton's
       examples/python/server.py: takes requests from ADDRESS and sends each
       reply (the body upper-cased, a string or the bytes of a data section,
       with the request's correlation-id or else its message-id) to the
       request's reply-to, over one sender without a target (the anonymous
       relay) when the broker offers ANONYMOUS-RELAY, else over a sender per
       reply-to address.  --count N: stop after N replies were accepted
       (0: serve until --timeout, exit 0).  --settle applies to every link.
mgmt   AMQP management requests: a receiver with a dynamic source for the
       answers, then each -r OPERATION[,TYPE[,NAME]] in turn as a message to
       --node (default $management) with reply-to that address, message-id
       "req-<i>" (i from 1) and application properties operation, type and
       name (those given; TYPE "-" leaves type out); waits for each answer
       and prints it as one JSON object a line: request, correlation_id,
       statusCode, statusDescription, body (maps and lists as JSON).

stderr: "pybroker: attached ..." per link, "pybroker: serving ADDRESS",
"pybroker: answers come to ADDRESS"; a last line "received N" (sub),
"answered N accepted A" (serve) or "answers N of M" (mgmt).
Exit: 0 ok, 1 an outcome other than accepted / a reply that matches nothing
/ peer error, 2 usage, 3 timeout, 4 cannot connect / connection lost.
"""
import json
import sys

from proton import Delivery, Message

import _peerutil as pu

PROG = "pybroker"


def jsonable(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


class Subscriber(pu.Peer):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.received = 0
        self.link = None
        self.ended = False   # we detached or closed the link
        self.out = sys.stdout.buffer

    def start_links(self, container, conn):
        self.link = container.create_receiver(
            conn, self.args.address, name=self.args.name,
            options=pu.SettleOption(self.args.settle, self.args.durable))
        self.flow()

    def flow(self):
        link = self.link
        if self.finishing or link is None or link.state & link.LOCAL_CLOSED:
            return
        want = self.args.prefetch if self.args.count == 0 else self.args.count - self.received
        if want > link.credit:
            link.flow(want - link.credit)

    def on_link_opened(self, event):
        self.log("attached %s name=%s" % (pu.describe_link(event.link), event.link.name))
        if self.args.count == 0 and self.args.drain_after is not None:
            self.container.schedule(self.args.drain_after, pu.Call(self.end_link))

    def on_delivery(self, event):
        dlv = event.delivery
        if dlv.link != self.link:
            return
        if dlv.readable and not dlv.partial:
            if dlv.local_state:
                if dlv.settled:
                    dlv.settle()
                return
            msg = Message()
            msg.decode(dlv.link.recv(dlv.pending))
            dlv.link.advance()
            self.received += 1
            body = msg.body
            data = body if isinstance(body, bytes) else str(body).encode("utf-8")
            self.out.write(data + b"\n")
            self.out.flush()
            if dlv.settled:
                dlv.settle()
            else:
                dlv.update(Delivery.ACCEPTED)
                if dlv.link.rcv_settle_mode != dlv.link.RCV_SECOND:
                    dlv.settle()
            if self.args.count and self.received >= self.args.count:
                # let the outcome go out with the detach
                self.container.schedule(0.2, pu.Call(self.end_link))
            else:
                self.flow()
        elif dlv.updated and dlv.settled and dlv.local_state:
            dlv.settle()

    def end_link(self):
        if self.finishing or self.link is None or self.ended:
            return
        self.ended = True
        if self.args.end == "close":
            self.link.close()
        else:
            self.link.detach()

    def on_link_closed(self, event):
        # our close was answered: done
        if event.link == self.link:
            self.finish(pu.EXIT_OK)

    def on_link_remote_detach(self, event):
        # a detach (closed=false): the answer to ours, or the broker's own
        if event.link != self.link:
            return
        if self.ended:
            self.finish(pu.EXIT_OK)
        else:
            self.peer_left("peer detached the link before the end")

    def on_link_closing(self, event):
        if event.link == self.link and self.ended:
            return
        self.peer_left("peer closed the link before the end")

    def timed_out(self):
        if self.args.count == 0:
            self.end_link()
            self.container.schedule(3.0, pu.Call(lambda: self.finish(pu.EXIT_OK)))
        else:
            super().timed_out()


class Server(pu.RequestServer):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.conn = None
        self.receiver = None
        self.relay = None
        self.senders = {}

    def start_links(self, container, conn):
        self.conn = conn
        self.receiver = container.create_receiver(conn, self.args.address,
                                                  options=pu.SettleOption(self.args.settle))

    def on_connection_opened(self, event):
        super().on_connection_opened(event)
        caps = event.connection.remote_offered_capabilities or []
        if isinstance(caps, str):  # one symbol, not an array
            caps = [caps]
        if "ANONYMOUS-RELAY" in [str(c) for c in caps]:
            self.relay = event.container.create_sender(event.connection, None,
                                                       options=pu.SettleOption(self.args.settle))
            self.log("replies go through the anonymous relay")

    def on_link_opened(self, event):
        link = event.link
        self.vlog("attached %s" % pu.describe_link(link))
        if link == self.receiver:
            self.log("serving %s" % self.args.address)
            link.flow(self.args.credit)

    def sender_for(self, address):
        if self.relay is not None:
            return self.relay
        s = self.senders.get(address)
        if s is None:
            s = self.container.create_sender(self.conn, address,
                                             options=pu.SettleOption(self.args.settle))
            self.senders[address] = s
        return s

    def on_delivery(self, event):
        dlv = event.delivery
        link = dlv.link
        if link == self.receiver:
            pu.incoming(dlv, self.request)
            return
        if not link.is_sender or not dlv.updated or dlv.local_state:
            return
        self.reply_outcome(dlv, lambda state: "reply not accepted (state %s: %s)"
                           % (state, pu.condition_text(dlv.remote.condition)))

    def request(self, dlv):
        link = dlv.link
        msg = Message()
        msg.decode(link.recv(dlv.pending))
        link.advance()
        body = pu.upper_body(msg.body)
        if not msg.reply_to or body is None:
            self.bad += 1
            self.log("a request without reply-to or text" if body is not None
                     else "a request whose body is neither text nor data")
            if not dlv.settled:
                dlv.update(Delivery.REJECTED)
            dlv.settle()
            link.flow(1)
            return
        sender = self.sender_for(msg.reply_to)
        sent = sender.send(pu.reply_message(msg, body))
        self.answered += 1
        if self.args.settle == "at-most-once":
            sent.settle()
            self.reply_done()
        pu.accept_request(dlv)

    def reply_done(self):
        if self.args.count and self.answered >= self.args.count and \
                (self.accepted >= self.args.count or self.args.settle == "at-most-once") \
                and not self.finishing:
            self.container.schedule(0.2, pu.Call(self.finish_ok))


class Management(pu.DynamicReplyClient):
    ASSIGNER = "broker"
    REPLY_LOG = "answers come to %s"

    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.requests = []
        for r in args.request:
            parts = r.split(",")
            if len(parts) > 3:
                raise SystemExit("-r takes OPERATION[,TYPE[,NAME]]: %r" % r)
            self.requests.append((parts + [None, None])[:3])
        self.sender = None
        self.receiver = None
        self.reply_to = None
        self.next = 0      # requests sent
        self.answers = 0
        self.bad = 0

    def start_links(self, container, conn):
        self.sender = container.create_sender(conn, self.args.node,
                                              options=pu.SettleOption(self.args.settle))
        self.receiver = container.create_receiver(conn, None, dynamic=True,
                                                  options=pu.SettleOption(self.args.settle))
        self.receiver.flow(len(self.requests) or 1)

    def send_next(self):
        if self.finishing or not self.reply_to or self.sender is None or self.sender.credit <= 0:
            return
        if self.next > self.answers or self.next >= len(self.requests):
            return  # one at a time
        op, typ, name = self.requests[self.next]
        self.next += 1
        props = {"operation": op}
        if typ not in (None, "", "-"):
            props["type"] = typ
        if name:
            props["name"] = name
        m = Message(reply_to=self.reply_to, id="req-%d" % self.next, properties=props)
        dlv = self.sender.send(m)
        if self.args.settle == "at-most-once":
            dlv.settle()

    def on_delivery(self, event):
        dlv = event.delivery
        link = dlv.link
        if link == self.sender:
            if dlv.updated and not dlv.local_state:
                if dlv.remote_state != Delivery.ACCEPTED:
                    self.bad += 1
                    self.log("request %s not accepted (state %s: %s)"
                             % (self.next, dlv.remote_state, pu.condition_text(dlv.remote.condition)))
                dlv.update(dlv.remote_state or Delivery.ACCEPTED)
                dlv.settle()
                if self.bad:
                    self.finish(pu.EXIT_FAILED)
            return
        if link != self.receiver or not dlv.readable or dlv.partial or dlv.local_state:
            if dlv.updated and dlv.settled and dlv.local_state:
                dlv.settle()
            return
        msg = Message()
        msg.decode(link.recv(dlv.pending))
        link.advance()
        props = msg.properties or {}
        self.answers += 1
        want = "req-%d" % self.answers
        if msg.correlation_id != want:
            self.bad += 1
            self.log("answer %d has correlation-id %r, expected %r"
                     % (self.answers, msg.correlation_id, want))
        sys.stdout.write(json.dumps({
            "request": self.answers, "correlation_id": jsonable(msg.correlation_id),
            "statusCode": jsonable(props.get("statusCode")),
            "statusDescription": jsonable(props.get("statusDescription")),
            "body": jsonable(msg.body)}, sort_keys=True) + "\n")
        sys.stdout.flush()
        if not dlv.settled:
            dlv.update(Delivery.ACCEPTED)
            if link.rcv_settle_mode != link.RCV_SECOND:
                dlv.settle()
        else:
            dlv.settle()
        if self.answers >= len(self.requests):
            self.finish(pu.EXIT_FAILED if self.bad else pu.EXIT_OK)
        else:
            self.send_next()


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("sub", "serve", "mgmt"):
        sys.stderr.write(__doc__)
        sys.exit(pu.EXIT_USAGE if len(sys.argv) < 2 or sys.argv[1] not in ("-h", "--help") else 0)
    cmd = sys.argv.pop(1)
    p = pu.common_options("%s %s" % (PROG, cmd), __doc__)
    if cmd == "sub":
        p.set_defaults(count=0)
        p.add_argument("--name", default="pybroker-sub", help="link name (default pybroker-sub)")
        p.add_argument("--end", choices=("detach", "close"), default="detach")
        p.add_argument("--prefetch", type=int, default=100)
        p.add_argument("--drain-after", type=float, default=None,
                       help="with --count 0: end the link after this many seconds")
    elif cmd == "serve":
        p.set_defaults(count=0)
        p.add_argument("--credit", type=int, default=10)
    else:
        p.add_argument("-r", "--request", action="append", default=[],
                       help="OPERATION[,TYPE[,NAME]] (repeatable)")
        p.add_argument("--node", default="$management")
    args = p.parse_args()
    pu.check_common(p, args)
    if args.listen:
        p.error("pybroker connects to a broker; no --listen")
    if cmd == "mgmt":
        if not args.request:
            p.error("no request: give at least one -r OPERATION[,TYPE[,NAME]]")
        h = Management(args)
    else:
        if not args.address:
            p.error("no address: give it in the URL (amqp://host:port/ADDRESS) or with --address")
        h = Subscriber(args) if cmd == "sub" else Server(args)
    code = pu.run(h)
    if cmd == "sub":
        sys.stderr.write("received %d\n" % h.received)
        if code == pu.EXIT_OK and args.count and h.received != args.count:
            code = pu.EXIT_FAILED
    elif cmd == "serve":
        sys.stderr.write("answered %d accepted %d\n" % (h.answered, h.accepted))
    else:
        sys.stderr.write("answers %d of %d\n" % (h.answers, len(h.requests)))
        if code == pu.EXIT_OK and h.answers != len(h.requests):
            code = pu.EXIT_FAILED
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
