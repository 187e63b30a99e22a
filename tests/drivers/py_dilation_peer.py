"""Interop driver: one side of a dilated wormhole run by Python magic-wormhole 0.24.0
(`create(..., dilation=True)`, `w.dilate(...)`), with the same flags and the same final JSON line
as our `dilation-peer` bench binary (crates/bench/src/bin/dilation_peer.rs), so a test or a
benchmark can put either implementation on either side.

Usage: py_dilation_peer.py --mailbox URL [--appid A] (--code C | --allocate [--code-file F])
         --mode send|recv|echo [--file P | --bytes N] [--out P] [--streams K] [--write-size N]
         [--subprotocol NAME] [--relay tcp:HOST:PORT] [--no-listen] [--side HEX]
         [--ping-interval S] [--timeout S]

The bench stream of `--bytes N`: a 1 MiB block, SHA-256(b"dilation-bench" + be32(j)) for
j = 0..32767 concatenated, repeated and cut at N bytes (the same as ours).
`--side` forces Python's Dilation side (the greater side leads) by replacing make_side().
Prints one JSON line: ok, dilation_role, bytes_sent, bytes_received, records_received,
sha256_received,
seconds, dilated_ms, connections, cpu_s, max_rss_kb (and error). Exit status 0 when ok.
"""

import argparse
import hashlib
import json
import os
import resource
import struct
import sys
import time

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater, react
from zope.interface import implementer

import wormhole
from wormhole._dilation import manager as dil_manager
from wormhole._dilation.roles import LEADER

CONNECTIONS = [0]
_orig_made = dil_manager.Manager.connector_connection_made


def _counting_made(self, c):
    CONNECTIONS[0] += 1
    return _orig_made(self, c)


dil_manager.Manager.connector_connection_made = _counting_made


def bench_block():
    return b"".join(hashlib.sha256(b"dilation-bench" + struct.pack(">I", j)).digest() for j in range(32768))


def payload(args):
    if args.file:
        with open(args.file, "rb") as f:
            return f.read()
    n = args.bytes or 0
    block = bench_block()
    return (block * (n // len(block) + 1))[:n]


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@implementer(IHalfCloseableProtocol, IPushProducer)
class Stream(Protocol):
    """One subchannel: optionally sends `data` in `size` writes, then half-closes; counts and
    hashes what arrives; echoes it when `echo`; half-closes after the peer's CLOSE unless
    sending."""

    def __init__(self, data, size, echo, out):
        self.data, self.size, self.echo, self.out = data, size, echo, out
        self.off = 0
        self.paused = False
        self.sent = 0
        self.received = 0
        self.records = 0
        self.hash = hashlib.sha256()
        self.done = Deferred()
        self.read_done = False
        self.write_done = data is None

    def connectionMade(self):
        if self.data is not None:
            self.transport.registerProducer(self, True)
            _reactor.callLater(0, self.pump)

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        if self.paused:
            self.paused = False
            _reactor.callLater(0, self.pump)

    def stopProducing(self):
        self.paused = True

    def pump(self):
        n = 0
        while not self.paused and self.off < len(self.data) and n < 64:
            chunk = self.data[self.off:self.off + self.size]
            self.transport.write(chunk)
            self.off += len(chunk)
            self.sent += len(chunk)
            n += 1
        if self.off >= len(self.data) and not self.write_done:
            self.write_done = True
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()
        elif not self.paused and not self.write_done:
            _reactor.callLater(0, self.pump)

    def dataReceived(self, data):
        self.records += 1
        self.received += len(data)
        self.hash.update(data)
        if self.out is not None:
            self.out.write(data)
        if self.echo:
            self.transport.write(data)
            self.sent += len(data)

    def readConnectionLost(self):
        self.read_done = True
        if self.data is None:
            self.write_done = True
            self.transport.loseWriteConnection()
        self.check()

    def writeConnectionLost(self):
        self.check()

    def check(self):
        # A half-closeable subchannel never gets connectionLost: it ends when both CLOSEs crossed.
        if self.read_done and self.write_done and not self.done.called:
            self.done.callback(self)

    def connectionLost(self, reason=None):
        if not self.done.called:
            self.done.callback(self)


class ListenFactory(Factory):
    def __init__(self, make, want):
        self.make, self.want = make, want
        self.streams = []
        self.all_open = Deferred()

    def buildProtocol(self, addr):
        p = self.make()
        self.streams.append(p)
        if len(self.streams) == self.want and not self.all_open.called:
            self.all_open.callback(self.streams)
        return p


@inlineCallbacks
def run(reactor, args, start):
    w = wormhole.create(args.appid, args.mailbox, reactor, dilation=True)
    if args.code:
        w.set_code(args.code)
    else:
        w.allocate_code(2)
    code = yield w.get_code()
    if args.allocate:
        sys.stderr.write("code: %s\n" % code)
        if args.code_file:
            with open(args.code_file, "w") as f:
                f.write(code)
    dw = w.dilate(transit_relay_location=args.relay, no_listen=args.no_listen,
                  ping_interval=args.ping_interval)
    listener = None
    if args.mode != "send":
        out = open(args.out, "wb") if args.out and args.streams == 1 else None
        echo = args.mode == "echo"
        listener = ListenFactory(lambda: Stream(None, args.write_size, echo, out), args.streams)
        yield dw.listener_for(args.subprotocol).listen(listener)
    yield dw.when_dilated()
    dilated_ms = (time.monotonic() - start) * 1000.0
    t0 = time.monotonic()
    if args.mode == "send":
        data = payload(args)
        streams = []
        for _ in range(args.streams):
            p = Stream(data, args.write_size, False, None)
            yield dw.connector_for(args.subprotocol).connect(Factory.forProtocol(lambda p=p: p))
            streams.append(p)
    else:
        streams = yield listener.all_open
    for s in streams:
        yield s.done
    seconds = time.monotonic() - t0
    if args.mode == "recv" and args.bytes is not None:
        for s in streams:
            if s.received != args.bytes:
                raise RuntimeError("%d bytes arrived, %d expected" % (s.received, args.bytes))
    if len(streams) == 1:
        digest = streams[0].hash.hexdigest()
    else:
        ids = sorted(streams, key=lambda s: s.transport._scid)
        digest = hashlib.sha256(b"".join(s.hash.digest() for s in ids)).hexdigest()
    role = w._boss._D._manager._my_role
    result = {
        "ok": True,
        "dilation_role": "leader" if role == LEADER else "follower",
        "bytes_sent": sum(s.sent for s in streams),
        "bytes_received": sum(s.received for s in streams),
        "records_received": sum(s.records for s in streams),
        "sha256_received": digest,
        "seconds": seconds,
        "dilated_ms": dilated_ms,
        "connections": CONNECTIONS[0],
    }
    # Our last records (and CLOSEs) may still sit in Twisted's buffers while the peer's reading
    # is paused; closing now would lose them. Wait until the peer acknowledged every record.
    outbound = w._boss._D._manager._outbound
    while outbound._outbound_queue:
        yield deferLater(reactor, 0.02, lambda: None)
    try:
        yield w.close()
    except Exception:
        pass
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mailbox", required=True)
    p.add_argument("--appid", default="example.com/dilation-peer")
    p.add_argument("--code")
    p.add_argument("--allocate", action="store_true")
    p.add_argument("--code-file")
    p.add_argument("--mode", choices=["send", "recv", "echo"], required=True)
    p.add_argument("--file")
    p.add_argument("--bytes", type=int)
    p.add_argument("--out")
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--write-size", type=int, default=256 * 1024)
    p.add_argument("--subprotocol", default="bench")
    p.add_argument("--relay")
    p.add_argument("--no-listen", action="store_true")
    p.add_argument("--side")
    p.add_argument("--ping-interval", type=float)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()
    if args.side:
        dil_manager.make_side = lambda: args.side
    start = time.monotonic()
    out = {}

    def go(reactor):
        d = run(reactor, args, start)
        d.addTimeout(args.timeout, reactor)

        def ok(r):
            out.update(r)

        def bad(f):
            out.update({"ok": False, "error": "%s: %s" % (f.type.__name__, f.getErrorMessage())})

        d.addCallbacks(ok, bad)
        return d

    try:
        react(go)
    except SystemExit:
        pass
    out["cpu_s"] = cpu_s()
    out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0 if out.get("ok") else 1)


if __name__ == "__main__":
    main()
