#!/usr/bin/python3
"""Records real AMQP 1.0 conversations for lepton-dump's demo and tests.

Each capture puts a recording TCP proxy between a Qpid Proton (Python)
client and a real server on 127.0.0.1, and saves what went each way:

  send-one-message.amqp          client -> server: a Proton client sends one
  send-one-message.server.amqp   server -> client  message to Proton-C's
                                                   example broker (broker.c,
                                                   built here from the
                                                   libqpid-proton11-dev-examples
                                                   sources), with SASL ANONYMOUS
                                                   and heartbeats (the
                                                   broker's empty frames)

  send-large-message.amqp        client -> server: a Proton client sends one
  send-large-message.server.amqp server -> client  1500-byte message to a Proton
                                                   (Python) receiver that allows
                                                   512-byte frames only, so the
                                                   transfer spans three frames

The build and the tests only read these files; run this script by hand
(needs /usr/bin/python3 with Debian's python3-qpid-proton, cc and
libqpid-proton11-dev) to make them again:

    /usr/bin/python3 examples/data/capture.py [OUTDIR]

Container ids are fixed so the captures are reproducible apart from the
order in which the peers' frames interleave, which TCP does not fix.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

PROTON_EXAMPLES = "/usr/share/proton/examples/c"
HERE = os.path.dirname(os.path.abspath(__file__))


class Recorder:
    """A one-connection TCP proxy that keeps every byte in each direction."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, src, dst, record):
        while True:
            data = src.recv(65536)
            if not data:
                break
            record.extend(data)
            dst.sendall(data)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        up = threading.Thread(target=self._pump, args=(client, server, self.to_server))
        down = threading.Thread(target=self._pump, args=(server, client, self.to_client))
        up.start()
        down.start()
        up.join()
        down.join()
        client.close()
        server.close()

    def wait(self, timeout=10):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError("proxy: connection did not finish")


class SendOne(MessagingHandler):
    """Sends one message, waits for it to be accepted, lingers, closes."""

    def __init__(self, url, address, message, heartbeat=None, linger=0.0):
        super().__init__()
        self.url = url
        self.address = address
        self.message = message
        self.heartbeat = heartbeat
        self.linger = linger
        self.sent = False
        self.accepted = False

    def on_start(self, event):
        event.container.container_id = "lepton-example-sender"
        conn = event.container.connect(self.url, heartbeat=self.heartbeat)
        event.container.create_sender(conn, self.address)

    def on_sendable(self, event):
        if not self.sent:
            event.sender.send(self.message)
            self.sent = True

    def on_accepted(self, event):
        self.accepted = True
        self.sender = event.sender
        if self.linger:
            # Idle long enough for the peer's heartbeats to show up.
            event.container.schedule(self.linger, self)
        else:
            self.close()

    def on_timer_task(self, event):
        self.close()

    def close(self):
        # The whole tear-down, one frame per level: detach, end, close.
        self.sender.close()
        self.sender.session.close()
        self.sender.connection.close()


class ReceiveOne(MessagingHandler):
    """Listens, takes one message with small frames, then stops."""

    def __init__(self, url, max_frame_size):
        super().__init__()
        self.url = url
        self.max_frame_size = max_frame_size
        self.received = None

    def on_start(self, event):
        event.container.container_id = "lepton-example-receiver"
        self.acceptor = event.container.listen(self.url)

    def on_connection_bound(self, event):
        # Before our open goes out, so the peer sees the small limit.
        event.transport.max_frame_size = self.max_frame_size
        event.connection.container = "lepton-example-receiver"

    def on_message(self, event):
        self.received = event.message

    def on_connection_closed(self, event):
        self.acceptor.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_broker(workdir):
    exe = os.path.join(workdir, "broker")
    subprocess.run(["cc", "-O1", "-o", exe, os.path.join(PROTON_EXAMPLES, "broker.c"),
                    "-I", PROTON_EXAMPLES, "-lqpid-proton", "-lpthread"], check=True)
    return exe


def start_broker(exe):
    # argv[0] becomes the broker's container-id; the examples directory
    # holds the ssl-certs it loads at start-up.
    proc = subprocess.Popen(["broker", "127.0.0.1", "0"], executable=exe,
                            cwd=PROTON_EXAMPLES, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError("broker did not start: %r" % line)
    return proc, int(line.split()[-1])


def save(outdir, name, recorder):
    with open(os.path.join(outdir, name + ".amqp"), "wb") as f:
        f.write(recorder.to_server)
    with open(os.path.join(outdir, name + ".server.amqp"), "wb") as f:
        f.write(recorder.to_client)
    print("%s: %d bytes client->server, %d bytes server->client"
          % (name, len(recorder.to_server), len(recorder.to_client)))


def capture_send_one(outdir, workdir):
    broker, port = start_broker(build_broker(workdir))
    try:
        rec = Recorder(port)
        msg = Message(id=1, address="examples", subject="greeting",
                      content_type="text/plain",
                      properties={"sender": "capture.py", "sequence": 1},
                      body="Hello, AMQP 1.0!")
        handler = SendOne("amqp://127.0.0.1:%d" % rec.port, "examples", msg,
                          heartbeat=2, linger=1.2)
        Container(handler).run()
        rec.wait()
        if not handler.accepted:
            raise RuntimeError("send-one-message: not accepted")
        save(outdir, "send-one-message", rec)
    finally:
        broker.terminate()
        broker.wait()


def capture_send_large(outdir):
    port = free_port()
    receiver = ReceiveOne("127.0.0.1:%d" % port, 512)
    server = threading.Thread(target=Container(receiver).run, daemon=True)
    server.start()
    time.sleep(0.3)
    rec = Recorder(port)
    body = "".join("line %02d: the quick brown fox jumps over the lazy dog\n" % i
                   for i in range(1, 28))
    msg = Message(id="large-1", address="examples", body=body)
    handler = SendOne("amqp://127.0.0.1:%d" % rec.port, "examples", msg)
    Container(handler).run()
    rec.wait()
    server.join(5)
    if receiver.received is None or receiver.received.body != body:
        raise RuntimeError("send-large-message: message not received intact")
    save(outdir, "send-large-message", rec)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else HERE
    workdir = tempfile.mkdtemp(prefix="lepton-capture-")
    try:
        capture_send_one(outdir, workdir)
        capture_send_large(outdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
