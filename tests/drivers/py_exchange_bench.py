"""Benchmark driver: full in-process exchanges with the Python library (Deferred API).

Usage: py_exchange_bench.py --url URL --appid APPID --count N

Each exchange: wormhole A allocates a code, wormhole B sets it, both wait for the verifier,
each sends one message and reads the other's, both close. Both wormholes live in this one
process and reactor, so interpreter start-up is not counted. Prints {"seconds": [...]}.
"""

import argparse
import json
import sys
import time

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import react

import wormhole


@inlineCallbacks
def one(reactor, url, appid):
    t0 = time.perf_counter()
    a = wormhole.create(appid, url, reactor)
    b = wormhole.create(appid, url, reactor)
    a.allocate_code(2)
    code = yield a.get_code()
    b.set_code(code)
    va, vb = yield gatherResults([a.get_verifier(), b.get_verifier()])
    assert va == vb
    a.send_message(b"from a")
    b.send_message(b"from b")
    ma, mb = yield gatherResults([a.get_message(), b.get_message()])
    assert ma == b"from b" and mb == b"from a"
    yield gatherResults([a.close(), b.close()])
    return time.perf_counter() - t0


@inlineCallbacks
def run(reactor, args):
    times = []
    for _ in range(args.count):
        t = yield one(reactor, args.url, args.appid)
        times.append(t)
    sys.stdout.write(json.dumps({"seconds": times}) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--appid", required=True)
    p.add_argument("--count", type=int, default=10)
    args = p.parse_args()
    react(run, (args,))


if __name__ == "__main__":
    main()
