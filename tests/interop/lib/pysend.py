"""pysend.py: a Proton (python3-qpid-proton) message sender for interop tests.

  /usr/bin/python3 pysend.py [options] amqp://[user:pass@]host:port/address

Sends --count messages to the address and waits for their outcomes.
Bodies: --size N (a data section of exactly N bytes, byte i = 'a' + i % 26),
-m TEXT (an amqp-value string, or a data section with --data), or by default
the amqp-value string "message-<i>" (i from 0).

--settle at-most-once   sender settles before sending (snd-settle-mode settled);
                        success = all sent and the connection closed cleanly
--settle at-least-once  (default) success = every message accepted
--settle exactly-once   rcv-settle-mode second: the receiver must not settle
                        before us; we settle on the outcome; success = all accepted
--listen                listen on host:port instead and send to the first
                        receiving link(s) a client attaches (no broker)

stderr: "pysend: attached ..." once the link is up (or "pysend: listening on
HOST:PORT" with --listen), and a last line
"sent N accepted A rejected R released L modified M".
Exit: 0 ok, 1 an outcome other than accepted / peer error, 2 usage,
3 timeout (--timeout, default 30 s), 4 cannot connect / connection lost.
"""
import sys

from proton import Delivery, Message

import _peerutil as pu

PROG = "pysend"


class Sender(pu.Peer):
    def __init__(self, args):
        super().__init__(PROG, args, prefetch=0, auto_accept=False, auto_settle=False)
        self.sent = 0
        self.accepted = 0
        self.rejected = 0
        self.released = 0
        self.modified = 0
        self.nooutcome = 0
        self.links = []
        self.template = self._template()

    def _template(self):
        a = self.args
        if a.size is not None:
            m = Message(body=pu.pattern_body(a.size))
            m.inferred = True
        elif a.message is not None:
            if a.data:
                m = Message(body=a.message.encode("utf-8"))
                m.inferred = True
            else:
                m = Message(body=a.message)
        else:
            m = None
        return m

    def make_message(self, i):
        a = self.args
        m = self.template
        if m is None:
            m = Message(body="message-%d" % i)
        m.id = "pysend-%d" % i
        if a.durable:
            m.durable = True
        if a.subject is not None:
            m.subject = a.subject
        if a.content_type is not None:
            m.content_type = a.content_type
        if a.reply_to is not None:
            m.reply_to = a.reply_to
        if a.ttl is not None:
            m.ttl = a.ttl
        if a.property:
            props = {}
            for kv in a.property:
                k, _, v = kv.partition("=")
                props[k] = v
            m.properties = props
        return m

    def start_links(self, container, conn):
        link = container.create_sender(conn, self.args.address,
                                       options=pu.SettleOption(self.args.settle, self.args.durable))
        self.links.append(link)

    # A client attaching a receiving link to our listener.
    def on_link_opening(self, event):
        link = event.link
        if not link.is_sender:
            link.close()
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        if self.args.settle:
            pu.apply_settle(link, self.args.settle)
        else:
            link.snd_settle_mode = link.remote_snd_settle_mode
            link.rcv_settle_mode = link.remote_rcv_settle_mode
        self.links.append(link)

    def on_link_opened(self, event):
        self.log("attached %s" % pu.describe_link(event.link))
        if self.args.count == 0:
            self.finish(pu.EXIT_OK)

    def peer_left(self, why):
        if (not self.finishing and self.sent == self.args.count and self.links
                and all(self.presettled(l) for l in self.links)):
            self.finish(pu.EXIT_OK)  # pre-settled: nothing more to wait for
            return
        super().peer_left(why)

    def presettled(self, link):
        return link.snd_settle_mode == link.SND_SETTLED

    def on_link_flow(self, event):
        link = event.link
        if link.is_sender and link.credit > 0 and link.state & link.LOCAL_ACTIVE:
            self.send_some(link)

    def send_some(self, link):
        if self.finishing:
            return
        while link.credit > 0 and self.sent < self.args.count:
            link.send(self.make_message(self.sent))
            self.sent += 1
        if self.sent == self.args.count and self.presettled(link):
            self.wait_written(link)

    def wait_written(self, link):
        """Pre-settled: done once the link has no delivery left to write
        (pn_link_queued, which covers lack of credit or window too)."""
        if self.finishing:
            return
        if link.queued == 0:
            self.finish(pu.EXIT_OK)
        else:
            self.container.schedule(0.05, pu.Call(lambda: self.wait_written(link)))

    def on_delivery(self, event):
        # Our own outcome bookkeeping, instead of MessagingHandler's.
        dlv = event.delivery
        if not dlv.link.is_sender or not dlv.updated or dlv.local_state:
            return
        state = dlv.remote_state
        if state == Delivery.ACCEPTED:
            self.accepted += 1
        elif state == Delivery.REJECTED:
            self.rejected += 1
            self.log("message rejected: %s" % pu.condition_text(dlv.remote.condition))
        elif state == Delivery.RELEASED:
            self.released += 1
        elif state == Delivery.MODIFIED:
            self.modified += 1
        elif not dlv.settled:
            return  # a non-terminal state (received), wait for the outcome
        else:
            self.nooutcome += 1
            self.log("message settled by the receiver without an outcome")
        # Settle on the outcome: needed for exactly-once, harmless otherwise.
        dlv.update(state or Delivery.ACCEPTED)  # marks it handled (local_state)
        dlv.settle()
        done = self.accepted + self.rejected + self.released + self.modified + self.nooutcome
        if done == self.args.count:
            ok = self.accepted == self.args.count
            self.finish(pu.EXIT_OK if ok else pu.EXIT_FAILED,
                        None if ok else "not every message was accepted")

    def summary(self):
        s = "sent %d accepted %d rejected %d released %d modified %d" % (
            self.sent, self.accepted, self.rejected, self.released, self.modified)
        if self.nooutcome:
            s += " no-outcome %d" % self.nooutcome
        return s


def main():
    p = pu.common_options(PROG, __doc__)
    body = p.add_mutually_exclusive_group()
    body.add_argument("-s", "--size", type=int, default=None,
                      help="body: a data section of exactly SIZE bytes ('a' + i %% 26)")
    body.add_argument("-m", "--message", default=None, help="body text (amqp-value string)")
    p.add_argument("--data", action="store_true", help="send -m TEXT as a data section (UTF-8)")
    p.add_argument("--subject", default=None)
    p.add_argument("--content-type", default=None)
    p.add_argument("--reply-to", default=None)
    p.add_argument("--ttl", type=float, default=None, help="time to live, seconds")
    p.add_argument("-P", "--property", action="append", default=[],
                   help="application property KEY=VALUE (string), repeatable")
    args = p.parse_args()
    pu.check_common(p, args)
    if args.size is not None and args.size < 0:
        p.error("--size must be >= 0")
    if not args.listen and not args.address:
        p.error("no address: give it in the URL (amqp://host:port/ADDRESS) or with --address")
    h = Sender(args)
    code = pu.run(h)
    sys.stderr.write("%s\n" % h.summary())
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
