"""Code shared by the Proton helpers (pysend.py, pyrecv.py, pyserver.py,
pyclient.py, pybroker.py).

Run with Debian's /usr/bin/python3 (python3-qpid-proton is only there).
Everything here is bounded: a hard watchdog ends the process a few seconds
after --timeout even if the reactor is stuck.
"""
import argparse
import json
import os
import sys
import threading
from urllib.parse import unquote

from proton import Delivery, Link, Message, SSLDomain, Terminus
from proton.reactor import LinkOption

SETTLE_MODES = ("at-most-once", "at-least-once", "exactly-once")

# Exit codes, the same for every helper.
EXIT_OK = 0
EXIT_FAILED = 1       # an outcome, a count, a check or the peer said no
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_CONNECTION = 4   # could not connect / transport error / connection lost

ALPHABET = b"abcdefghijklmnopqrstuvwxyz"


def pattern_body(size):
    """The deterministic --size body: byte i is 'a' + i % 26."""
    return (ALPHABET * (size // 26 + 1))[:size]


class Url:
    """amqp[s]://[user[:pass]@]host[:port][/address]

    The address is everything after the first '/' following host:port, so
    amqp://h:5672/examples -> "examples" and amqp://h:5672//queue/q ->
    "/queue/q" (RabbitMQ wants the leading slash).  '#' and '?' are part of
    the address (no fragment or query parsing), user, password and address
    are %-decoded.  The scheme may be left out (defaults to amqp).
    """

    def __init__(self, text):
        self.text = text
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "amqp", text
        if scheme not in ("amqp", "amqps"):
            raise ValueError("unsupported scheme %r (amqp or amqps)" % scheme)
        self.scheme = scheme
        netloc, _, path = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        self.user = self.password = None
        if at:
            u, colon, p = userinfo.partition(":")
            self.user = unquote(u)
            self.password = unquote(p) if colon else None
        if hostport.startswith("["):
            host, _, after = hostport[1:].partition("]")
            port = after[1:] if after.startswith(":") else ""
            self.hostport_text = "[%s]" % host
        else:
            host, colon, port = hostport.rpartition(":")
            if not colon:
                host, port = hostport, ""
            self.hostport_text = host
        self.host = host or "127.0.0.1"
        if not host:
            self.hostport_text = "127.0.0.1"
        self.port = int(port) if port else (5671 if scheme == "amqps" else 5672)
        self.address = unquote(path) if path else None

    def connect_url(self):
        return "%s://%s:%d" % (self.scheme, self.hostport_text, self.port)

    def listen_url(self):
        return "%s:%d" % (self.hostport_text, self.port)


def common_options(prog, description):
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="amqp[s]://[user:pass@]host:port/address "
                   "(address after the first '/', so //queue/q is \"/queue/q\")")
    p.add_argument("-a", "--address", help="node address (overrides the URL's)")
    p.add_argument("-c", "--count", type=int, default=1, help="messages (default 1)")
    p.add_argument("--settle", choices=SETTLE_MODES, default=None,
                   help="delivery guarantee (default at-least-once; with --listen "
                        "the default is whatever the peer asks)")
    p.add_argument("-t", "--timeout", type=float, default=30.0,
                   help="give up after this many seconds, exit 3 (default 30)")
    p.add_argument("--listen", action="store_true",
                   help="listen on the URL's host:port and serve the clients that "
                        "connect (a direct peer, no broker)")
    p.add_argument("--sasl-mechanisms", default=None,
                   help="space-separated allowed SASL mechanisms; 'none' disables SASL")
    p.add_argument("--idle-timeout", type=float, default=None,
                   help="local idle timeout in seconds (heartbeats)")
    p.add_argument("--max-frame-size", type=int, default=None)
    p.add_argument("--container-id", default=None)
    p.add_argument("--durable", action="store_true",
                   help="durable terminus (pysend: and durable messages)")
    p.add_argument("--ca", help="amqps: verify the server with this CA file")
    p.add_argument("--cert", help="amqps: certificate (client, or server with --listen)")
    p.add_argument("--key", help="amqps: private key for --cert")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def check_common(p, args):
    try:
        args.parsed = Url(args.url)
    except ValueError as e:
        p.error(str(e))
    if args.address is None:
        args.address = args.parsed.address
    if args.count < 0:
        p.error("--count must be >= 0")
    if args.timeout <= 0:
        p.error("--timeout must be > 0")
    if args.settle is None and not args.listen:
        args.settle = "at-least-once"


class Watchdog:
    """Ends the process with EXIT_TIMEOUT if the reactor never returns."""

    def __init__(self, prog, seconds):
        self.prog = prog
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        try:
            sys.stderr.write("%s: hard timeout, reactor stuck; exiting\n" % self.prog)
            sys.stderr.flush()
            sys.stdout.flush()
        finally:
            os._exit(EXIT_TIMEOUT)


class SettleOption(LinkOption):
    """Maps a --settle mode onto the link's settle modes."""

    def __init__(self, mode, durable=False):
        self.mode = mode
        self.durable = durable

    def apply(self, link):
        apply_settle(link, self.mode)
        if self.durable:
            t = link.target if link.is_sender else link.source
            t.durability = Terminus.DELIVERIES
            t.expiry_policy = Terminus.EXPIRE_NEVER


def apply_settle(link, mode):
    if mode == "at-most-once":
        link.snd_settle_mode = Link.SND_SETTLED
        link.rcv_settle_mode = Link.RCV_FIRST
    elif mode == "exactly-once":
        link.snd_settle_mode = Link.SND_UNSETTLED
        link.rcv_settle_mode = Link.RCV_SECOND
    elif mode == "at-least-once":
        link.snd_settle_mode = Link.SND_UNSETTLED
        link.rcv_settle_mode = Link.RCV_FIRST


SND_NAMES = {Link.SND_UNSETTLED: "unsettled", Link.SND_SETTLED: "settled", Link.SND_MIXED: "mixed"}
RCV_NAMES = {Link.RCV_FIRST: "first", Link.RCV_SECOND: "second"}


def peer_mode(link):
    """The --settle mode implied by what the remote end of a link asked."""
    if link.remote_snd_settle_mode == Link.SND_SETTLED:
        return "at-most-once"
    if link.remote_rcv_settle_mode == Link.RCV_SECOND:
        return "exactly-once"
    return "at-least-once"


def describe_link(link):
    src = link.remote_source.address or link.source.address
    tgt = link.remote_target.address or link.target.address
    return "%s source=%s target=%s snd-settle-mode=%s/%s rcv-settle-mode=%s/%s (local/remote)" % (
        "sender" if link.is_sender else "receiver", src, tgt,
        SND_NAMES.get(link.snd_settle_mode, "?"), SND_NAMES.get(link.remote_snd_settle_mode, "?"),
        RCV_NAMES.get(link.rcv_settle_mode, "?"), RCV_NAMES.get(link.remote_rcv_settle_mode, "?"))


def ssl_domain(args, server):
    if args.parsed.scheme != "amqps":
        return None
    if server:
        if not (args.cert and args.key):
            raise SystemExit("--listen with amqps needs --cert and --key")
        dom = SSLDomain(SSLDomain.MODE_SERVER)
        dom.set_credentials(args.cert, args.key, None)
        return dom
    dom = SSLDomain(SSLDomain.MODE_CLIENT)
    if args.ca:
        dom.set_trusted_ca_db(args.ca)
        dom.set_peer_authentication(SSLDomain.VERIFY_PEER)
    else:
        dom.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
    if args.cert and args.key:
        dom.set_credentials(args.cert, args.key, None)
    return dom


def connect_kwargs(args):
    kw = dict(url=args.parsed.connect_url(), reconnect=False)
    if args.idle_timeout:
        kw["heartbeat"] = args.idle_timeout
    if args.max_frame_size:
        kw["max_frame_size"] = args.max_frame_size
    mechs = args.sasl_mechanisms
    if mechs is not None and mechs.lower() == "none":
        kw["sasl_enabled"] = False
    else:
        kw["sasl_enabled"] = True
        kw["allow_insecure_mechs"] = True
        if mechs:
            kw["allowed_mechs"] = mechs
        if args.parsed.user is not None:
            kw["user"] = args.parsed.user
            kw["password"] = args.parsed.password or ""
    dom = ssl_domain(args, server=False)
    if dom:
        kw["ssl_domain"] = dom
    return kw


def configure_server_transport(args, transport):
    """For an accepted connection: SASL and limits on the server side."""
    if args.idle_timeout:
        transport.idle_timeout = args.idle_timeout
    if args.max_frame_size:
        transport.max_frame_size = args.max_frame_size
    mechs = args.sasl_mechanisms
    if mechs is not None and mechs.lower() == "none":
        return
    sasl = transport.sasl()
    sasl.allow_insecure_mechs = True
    if mechs:
        sasl.allowed_mechs(mechs)


def condition_text(cond):
    if cond is None:
        return "no condition"
    s = "%s: %s" % (cond.name, cond.description)
    if cond.info:
        s += " %s" % (cond.info,)
    return s


class Call:
    """A timer handler calling fn()."""

    def __init__(self, fn):
        self.fn = fn

    def on_timer_task(self, event):
        self.fn()


def message_json(msg):
    def conv(v):
        if isinstance(v, bytes):
            return {"binary": v.decode("latin-1")}
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        return str(v)
    # Message.content_type turns a missing content-type into "None".
    from cproton import pn_message_get_content_type
    d = {
        "id": msg.id, "correlation_id": msg.correlation_id, "subject": msg.subject,
        "to": msg.address, "reply_to": msg.reply_to,
        "content_type": pn_message_get_content_type(msg._msg),
        "durable": msg.durable, "priority": msg.priority, "ttl": msg.ttl,
        "user_id": msg.user_id or None, "group_id": msg.group_id,
        "properties": msg.properties, "annotations": msg.annotations,
        "data_section": bool(msg.inferred and isinstance(msg.body, bytes)),
        "body": msg.body,
    }
    return json.dumps(conv(d), sort_keys=True)


from proton.handlers import MessagingHandler  # noqa: E402


class Peer(MessagingHandler):
    """Connection bookkeeping, errors and a bounded shutdown for both helpers.

    Subclasses call self.finish(code, why) once their work is done (or failed);
    the first failure's code is kept.  finish closes every connection and the
    listener, then stops the container when the connections are closed, or
    after a 3-second grace.
    """

    def __init__(self, prog, args, **kw):
        super().__init__(**kw)
        # Deliveries are handled by the subclasses' on_delivery; only the
        # endpoint open/close handling of MessagingHandler is kept.
        from proton.handlers import EndpointStateHandler
        self.handlers = [h for h in self.handlers if isinstance(h, EndpointStateHandler)]
        self.prog = prog
        self.args = args
        self.code = None
        self.finishing = False
        self.conns = []
        self.acceptor = None
        self.container = None
        self.timeout_task = None

    def log(self, text):
        sys.stderr.write("%s: %s\n" % (self.prog, text))
        sys.stderr.flush()

    def vlog(self, text):
        if self.args.verbose:
            self.log(text)

    def on_start(self, event):
        self.container = event.container
        if self.args.container_id:
            event.container.container_id = self.args.container_id
        self.timeout_task = event.container.schedule(self.args.timeout, Call(self.on_timeout))
        if self.args.listen:
            dom = ssl_domain(self.args, server=True)
            try:
                self.acceptor = event.container.listen(self.args.parsed.listen_url(), ssl_domain=dom)
            except Exception as e:  # bind errors: port in use, bad host
                self.log("cannot listen on %s: %s" % (self.args.parsed.listen_url(), e))
                self.finish(EXIT_CONNECTION)
                return
            self.log("listening on %s" % self.args.parsed.listen_url())
        else:
            conn = event.container.connect(**connect_kwargs(self.args))
            self.conns.append(conn)
            self.start_links(event.container, conn)

    def start_links(self, container, conn):
        raise NotImplementedError

    def on_timeout(self):
        self.timeout_task = None
        self.timed_out()

    def timed_out(self):
        self.log("timeout after %gs" % self.args.timeout)
        self.finish(EXIT_TIMEOUT)

    def finish(self, code, why=None):
        if why:
            self.log(why)
        if self.code is None or (self.code == EXIT_OK and code != EXIT_OK):
            self.code = code
        if self.finishing:
            return
        self.finishing = True
        if self.timeout_task:
            self.timeout_task.cancel()
            self.timeout_task = None
        if self.acceptor:
            self.acceptor.close()
        for c in self.conns:
            if not (c.state & c.LOCAL_CLOSED):
                c.close()
        if self.container:
            # _maybe_stop ends the run once the close handshakes are done
            # and the sockets gone; this only bounds the wait.
            self.grace_task = self.container.schedule(3.0, Call(self.force_stop))
        self._maybe_stop()

    def force_stop(self):
        self.vlog("peer did not finish closing; stopping")
        self.container.stop()

    def _maybe_stop(self):
        # Stop once every transport is closed (all output written); a
        # cancelled timer would still hold the reactor until its deadline.
        if self.finishing and self.container and all(
                getattr(c, "peer_transport_closed", False) for c in self.conns):
            self.container.stop()

    # --- connections -------------------------------------------------------

    def on_connection_bound(self, event):
        conn = event.connection
        if getattr(conn, "_acceptor", None):
            if self.finishing:
                conn.close()
            configure_server_transport(self.args, event.transport)
            if conn not in self.conns:
                self.conns.append(conn)
            self.vlog("accepted a connection")

    def on_connection_opened(self, event):
        self.vlog("connection open, remote container %s" % event.connection.remote_container)

    def on_connection_opening(self, event):
        if self.args.container_id:
            event.connection.container = self.args.container_id

    def on_connection_closed(self, event):
        self._maybe_stop()

    def on_connection_closing(self, event):
        self.peer_left("peer closed the connection before the end")

    def peer_left(self, why):
        """A peer went away before we were done: fatal for a client; a
        listener logs it and waits for another client (or its timeout)."""
        if self.finishing:
            return
        if self.args.listen:
            self.log(why + "; still listening")
        else:
            self.finish(EXIT_CONNECTION if "disconnected" in why else EXIT_FAILED, why)

    def on_transport_closed(self, event):
        if event.connection is not None:
            event.connection.peer_transport_closed = True
        self._maybe_stop()

    def on_disconnected(self, event):
        self.peer_left("disconnected before the end")
        self._maybe_stop()

    def on_transport_error(self, event):
        self.log("transport error: %s" % condition_text(event.transport.condition))
        if not self.finishing:
            if self.args.listen:
                return  # one bad client does not end a listener
            self.finish(EXIT_CONNECTION)

    def on_connection_error(self, event):
        if self.args.listen and not self.finishing:
            self.log("client closed with an error: %s"
                     % condition_text(event.connection.remote_condition))
            return
        self.finish(EXIT_FAILED, "connection closed by peer: %s"
                    % condition_text(event.connection.remote_condition))

    def on_session_error(self, event):
        self.finish(EXIT_FAILED, "session ended by peer: %s"
                    % condition_text(event.session.remote_condition))

    def on_link_error(self, event):
        self.finish(EXIT_FAILED, "link detached by peer: %s"
                    % condition_text(event.link.remote_condition))

    def on_link_closing(self, event):
        self.peer_left("peer detached the link before the end")


def run(handler):
    from proton.reactor import Container
    Watchdog(handler.prog, handler.args.timeout + 8)
    try:
        Container(handler).run()
    except KeyboardInterrupt:
        handler.code = handler.code if handler.code is not None else EXIT_FAILED
    if handler.code is None:
        handler.code = EXIT_FAILED
    return handler.code


# Request-response: the servers (pyserver.py, pybroker.py serve) and the
# clients with a dynamic reply-to (pyclient.py, pybroker.py mgmt).

def upper_body(body):
    """A request's answer: its text or data upper-cased; None for any other body."""
    if isinstance(body, (str, bytes)):
        return body.upper()
    return None


def reply_message(msg, body):
    """The reply to request msg: body to its reply-to, with its
    correlation-id (its message-id when it has none); bytes go in a data
    section."""
    cid = msg.correlation_id if msg.correlation_id is not None else msg.id
    reply = Message(address=msg.reply_to, body=body, correlation_id=cid)
    if isinstance(body, bytes):
        reply.inferred = True
    return reply


def incoming(dlv, handle):
    """A delivery on a receiving link: handle(dlv) once it is complete and
    not decided yet; settled when the sender settles after our decision
    (exactly-once)."""
    if dlv.readable and not dlv.partial and not dlv.local_state:
        handle(dlv)
    elif dlv.updated and dlv.settled and dlv.local_state:
        dlv.settle()


def accept_request(dlv):
    """Settles a request that was answered (accepted, and left unsettled in
    exactly-once until the client settles) and gives its link one more credit."""
    link = dlv.link
    if dlv.settled:
        dlv.settle()
    else:
        dlv.update(Delivery.ACCEPTED)
        if link.rcv_settle_mode != link.RCV_SECOND:
            dlv.settle()
    link.flow(1)


class RequestServer(Peer):
    """A server counting replies: answered, accepted, bad; reply_done() is
    called when a reply reached its outcome.  Ends with EXIT_FAILED when a
    request failed; with --count 0 it serves until --timeout and exits 0."""

    def __init__(self, prog, args, **kw):
        super().__init__(prog, args, **kw)
        self.answered = 0
        self.accepted = 0
        self.bad = 0

    def reply_outcome(self, dlv, why):
        """The outcome of a reply: accepted counts; another one (or settled
        without one) is bad and logged as why(state); settles it then."""
        state = dlv.remote_state
        if state == Delivery.ACCEPTED:
            self.accepted += 1
        elif state is not None or dlv.settled:
            self.bad += 1
            self.log(why(state))
        else:
            return
        dlv.update(state or Delivery.ACCEPTED)
        dlv.settle()
        self.reply_done()

    def reply_done(self):
        raise NotImplementedError

    def finish_ok(self):
        self.finish(EXIT_FAILED if self.bad else EXIT_OK,
                    "%d requests failed" % self.bad if self.bad else None)

    def timed_out(self):
        if self.args.count == 0:
            self.finish_ok()
        else:
            super().timed_out()


class DynamicReplyClient(Peer):
    """A client with self.sender for its requests and self.receiver, a
    dynamic receiver, for the answers: once the peer assigned that
    receiver's address (self.reply_to; logged as REPLY_LOG), and whenever
    the sender gets credit, send_next() is called."""

    ASSIGNER = "peer"                # who assigns the address, for the error
    REPLY_LOG = "replies come to %s"

    def on_link_opened(self, event):
        link = event.link
        self.vlog("attached %s" % describe_link(link))
        if link == self.receiver:
            self.reply_to = link.remote_source.address
            if not self.reply_to:
                self.finish(EXIT_FAILED, "the %s assigned no address to the dynamic receiver"
                            % self.ASSIGNER)
                return
            self.log(self.REPLY_LOG % self.reply_to)
        self.send_next()

    def on_link_flow(self, event):
        if event.link == self.sender:
            self.send_next()

    def send_next(self):
        raise NotImplementedError
